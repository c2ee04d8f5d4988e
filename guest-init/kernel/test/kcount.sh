#!/usr/bin/env bash
# Count the guest-kernel instructions of a boot to /init (QEMU TCG + the
# kcount plugin): a deterministic proxy for boot cost under PVM, where every
# guest-kernel instruction goes through KVM's emulator.  Prints totals, the
# hottest functions and the costliest initcalls.
#
# usage: guest-init/kernel/test/kcount.sh KERNELDIR [extra kernel args...]
#   KERNELDIR holds vmlinux + System.map (build.sh output).  Env: MEM (MiB,
#   default 256), TOP (rows, default 25), KEEP=FILE keeps the raw dump.
# The command line mirrors msvmm's on PVM (lib/vm.c, vmm/pvm.c).
set -euo pipefail
KDIR=${1:?usage: $0 KERNELDIR [kernel args]}
shift
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
gcc -O2 -shared -fPIC -Wall -o "$T/kcount.so" "$HERE/kcount/kcount.c" -lpthread
mkdir -p "$T/root"/{proc,sys,dev,tmp}
gcc -static -O2 -Wall -o "$T/root/init" "$HERE/init.c"
(cd "$T/root" && find . | cpio -o -H newc --quiet >"$T/initrd.cpio")
mkdir -p "$T/fs" && echo hi >"$T/fs/hello"
mkfs.ext4 -q -F -d "$T/fs" "$T/disk.img" 4M >/dev/null
SEQ=$(awk '$3 == "do_one_initcall" {print $1; exit}' "$KDIR/System.map")
timeout "${TIMEOUT:-300}" qemu-system-x86_64 \
	-M microvm,x-option-roms=off,rtc=off,isa-serial=on,acpi=off -accel tcg \
	-cpu max -smp 1 -m "${MEM:-256}" \
	-plugin "$T/kcount.so,out=$T/dump,seq=$SEQ" \
	-kernel "$KDIR/vmlinux" -initrd "$T/initrd.cpio" \
	-drive if=none,id=d0,file="$T/disk.img",format=raw -device virtio-blk-device,drive=d0 \
	-append "console=ttyS0 reboot=t panic=-1 quiet msvmm.pvm=1 noxsave clearcpuid=popcnt,smap,fsgsbase,erms,fsrm,pku,ospke,cx16 tsc_early_khz=2600000 tsc=reliable no_timer_check $*" \
	-nographic -no-reboot >"$T/console" 2>&1 || true
grep -q "init: done" "$T/console" || { tail -20 "$T/console"; echo "kcount: guest did not reach the end of /init" >&2; exit 1; }
[ -n "${KEEP:-}" ] && cp "$T/dump" "$KEEP"
python3 "$HERE/kcount/report.py" "$KDIR/vmlinux" "$T/dump" "${TOP:-25}"
