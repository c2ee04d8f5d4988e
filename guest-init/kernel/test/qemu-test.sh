#!/usr/bin/env bash
# Smoke test for the msvmm guest kernel under QEMU TCG (no KVM: under PVM the
# stock QEMU cannot boot it, see /work/shared/PLATFORM.md).  reboot=t here:
# microvm has no i8042, so reboot=k (what msvmm uses) would hang QEMU.
#
# usage: guest-init/kernel/test/qemu-test.sh KERNELDIR [extra kernel args...]
#   KERNELDIR holds vmlinux (from build.sh).  Env: ICOUNT=1 runs with
#   -icount shift=0 so guest time ~= executed instructions (1 ns each), a
#   proxy for the cost under PVM's instruction emulator.
set -euo pipefail
KDIR=${1:?usage: $0 KERNELDIR [kernel args]}
shift
HERE=$(cd "$(dirname "${BASH_SOURCE[0]}")" && pwd)
T=$(mktemp -d)
trap 'rm -rf "$T"' EXIT
mkdir -p "$T/root"/{proc,sys,dev,tmp}
gcc -static -O2 -Wall -o "$T/root/init" "$HERE/init.c"
(cd "$T/root" && find . | cpio -o -H newc --quiet >"$T/initrd.cpio")
mkdir -p "$T/fs"
echo "hello from ext4" >"$T/fs/hello"
mkfs.ext4 -q -F -d "$T/fs" "$T/disk.img" 4M >/dev/null
VSOCK=()
# vhost-vsock needs /dev/vhost-vsock on the host (absent under PVM)
[ -e /dev/vhost-vsock ] && VSOCK=(-device vhost-vsock-device,guest-cid=3)
ACCEL=(-accel tcg)
[ "${ICOUNT:-0}" = 1 ] && ACCEL+=(-icount shift=0)
timeout "${TIMEOUT:-300}" qemu-system-x86_64 \
	-M microvm,x-option-roms=off,rtc=off,isa-serial=on,acpi=off "${ACCEL[@]}" \
	-cpu max -smp "${SMP:-2}" -m "${MEM:-256}" \
	-kernel "$KDIR/${KIMG:-vmlinux}" -initrd "$T/initrd.cpio" \
	-drive if=none,id=d0,file="$T/disk.img",format=raw \
	-device virtio-blk-device,drive=d0 \
	-netdev user,id=n0 -device virtio-net-device,netdev=n0 "${VSOCK[@]}" \
	-append "console=ttyS0 reboot=t panic=-1 nohpet random.trust_cpu=on tsc=reliable no_timer_check msvmm.pvm=1 $*" \
	-nographic -no-reboot
