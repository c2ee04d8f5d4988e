#!/usr/bin/env bash
# virtio-blk throughput: the freestanding guest tests/guests/vblk_bench.c
# times sequential (large requests) and random 4 KiB writes and reads on a
# 256 MiB sparse raw image, under msvmm and, where it can run, under QEMU
# microvm on the same image type with the same guest code.  Runs alternate
# between the two; each gets a fresh image.  Prints the median MB/s of each
# phase and msvmm/qemu (higher: msvmm faster).
#
# The guest reads the TSC; MB/s uses the TSC rate msvmm hands the guest
# (tsc_early_khz), passed to the QEMU guest as msvmm.tsc_khz so both convert
# ticks the same way.  QEMU boots the guest through a Xen PVH note, which
# the Makefile's link discards: this script links a second copy with
# guest.ld plus a PT_NOTE and checks that its .text is byte-identical.
#
# usage: bench/blk.sh BUILD_DIR
#   env RUNS=N (5)  MIB=region MiB (32)  SEQ_KIB=request KiB (128)
#       RAND_OPS=random requests per direction (4096)  QD=in flight (1)
set -euo pipefail
B=${1:-build}
RUNS=${RUNS:-5}
MIB=${MIB:-32}
SEQ_KIB=${SEQ_KIB:-128}
RAND_OPS=${RAND_OPS:-4096}
QD=${QD:-1}
DISK_MIB=256
TIMEOUT_S=120
PHASES="seq-write seq-read rand-write-4k rand-read-4k"
# Only if a guest was told no TSC rate: the nominal clock, close enough for a ratio-free figure.
KHZ_FALLBACK=$(awk '/^cpu MHz/ {printf "%d", $4 * 1000; exit}' /proc/cpuinfo 2>/dev/null || echo 0)
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

make --no-print-directory -s BUILD="$B" "$B/bin/msvmm-vmrun" "$B/bin/msvmm-mkinitramfs" "$B/guests/vblk_bench.elf"
GUEST=$B/guests/vblk_bench.elf

# The VM wants an image; the guest never looks at it.
printf 'dir bench 0755\n' | "$B/bin/msvmm-mkinitramfs" "$W/initrd.cpio"

ARGS="msvmm.bench_mib=$MIB msvmm.seq_kib=$SEQ_KIB msvmm.rand_ops=$RAND_OPS msvmm.qd=$QD"

# "NAME MB/s" per phase from a guest's console (MB/s from bytes, ticks and kHz).
rates() {
	awk -v khz_override="${2:-0}" '$1 == "vblk_bench:" && $2 == "result" {
		khz = $7 > 0 ? $7 : khz_override
		if ($6 > 0 && khz > 0) printf "%s %.2f\n", $3, $4 * khz / ($6 * 1000)
	}' "$1"
}

median() { # numbers on stdin -> median
	sort -g | awk '{a[NR] = $1} END {if (NR) printf "%.2f", (NR % 2) ? a[(NR + 1) / 2] : (a[NR / 2] + a[NR / 2 + 1]) / 2}'
}

fresh_image() {
	rm -f "$W/disk.img"
	truncate -s "${DISK_MIB}M" "$W/disk.img"
}

run_msvmm() { # run number
	fresh_image
	if ! "$B/bin/msvmm-vmrun" "$GUEST" "$W/initrd.cpio" 256 "$TIMEOUT_S" "$ARGS" "$W/disk.img" \
		>"$W/msvmm.$1" 2>&1 ||
		! grep -q '^vblk_bench: done' "$W/msvmm.$1"; then
		echo "blk: msvmm run $1 failed:"
		cat "$W/msvmm.$1"
		exit 1
	fi
	rates "$W/msvmm.$1" "$KHZ_FALLBACK" >>"$W/msvmm.rates"
}

# QEMU needs: the binary, KVM, the PVH copy of the guest, and modern virtio-mmio.
qemu_reason=
QEMU=$(command -v qemu-system-x86_64 || true)
[ -n "$QEMU" ] || qemu_reason="qemu-system-x86_64 not installed"
[ -n "$qemu_reason" ] || [ -e /dev/kvm ] || qemu_reason="no /dev/kvm"
if [ -z "$qemu_reason" ]; then
	awk '{print} /^\tdata PT_LOAD/ {print "\tnote PT_NOTE FLAGS(4);"}
	     /^\t} :text$/ && ++n == 2 {print "\t.note.Xen : AT(ADDR(.note.Xen)) { KEEP(*(.note.Xen)) } :text :note"}' \
		tests/guests/guest.ld >"$W/pvh.ld"
	# The Makefile's flags for guests, with the PVH linker script.
	if ! cc -std=c11 -Wall -Wextra -Werror -O2 -ffreestanding -fno-pic -no-pie -nostdlib \
		-mno-red-zone -mno-sse -mgeneral-regs-only -fno-stack-protector -fcf-protection=none \
		-Wl,-T,"$W/pvh.ld" -Wl,--build-id=none -Idevices -o "$W/vblk_bench-pvh.elf" \
		tests/guests/start.S tests/guests/vblk_bench.c 2>"$W/pvh.err"; then
		qemu_reason="PVH link failed: $(head -1 "$W/pvh.err")"
	elif ! objcopy -O binary --only-section=.text "$GUEST" "$W/a.text" ||
		! objcopy -O binary --only-section=.text "$W/vblk_bench-pvh.elf" "$W/b.text" ||
		! cmp -s "$W/a.text" "$W/b.text"; then
		qemu_reason="the PVH copy's .text differs from $GUEST"
	fi
fi

run_qemu() { # run number, TSC kHz
	local out=$W/qemu.$1 rc=0
	fresh_image
	# QEMU 7.2 defaults virtio-mmio to the legacy interface; the guest drives version 2 only.
	timeout "$TIMEOUT_S" "$QEMU" -M microvm,x-option-roms=off,rtc=off,isa-serial=on,acpi=off -enable-kvm \
		-cpu host,-arch-capabilities -m 256 -smp 1 -nodefaults -no-user-config -display none \
		-serial stdio -no-reboot -global virtio-mmio.force-legacy=false \
		-kernel "$W/vblk_bench-pvh.elf" \
		-drive id=d,file="$W/disk.img",format=raw,if=none -device virtio-blk-device,drive=d \
		-append "$ARGS msvmm.tsc_khz=$2" >"$out" 2>"$W/qemu.err" || rc=$?
	if ! grep -q '^vblk_bench: done' "$out"; then
		qemu_reason="exit $rc: $( (grep -h 'vblk_bench\|qemu' "$out" "$W/qemu.err" || true) | tail -1)"
		return 1
	fi
	rates "$out" "$KHZ_FALLBACK" >>"$W/qemu.rates"
}

PVM=KVM
[ -d /sys/module/kvm_pvm ] && PVM=PVM
: >"$W/msvmm.rates"
: >"$W/qemu.rates"
for i in $(seq "$RUNS"); do
	run_msvmm "$i"
	khz=$(sed -n 's/^vblk_bench: region .* tsc \([0-9]*\) kHz$/\1/p' "$W/msvmm.$i" | head -1)
	if [ -z "$qemu_reason" ]; then
		run_qemu "$i" "${khz:-0}" || true
	fi
done

echo "blk bench: ${MIB} MiB sequential in ${SEQ_KIB} KiB requests, ${RAND_OPS} random 4 KiB requests each way," \
	"qd $QD, ${DISK_MIB} MiB sparse image, $RUNS runs (median), TSC ${khz:-?} kHz, host $PVM"
printf '%-16s %12s %12s %12s\n' phase "msvmm MB/s" "qemu MB/s" "msvmm/qemu"
for p in $PHASES; do
	m=$(awk -v p="$p" '$1 == p {print $2}' "$W/msvmm.rates" | median)
	q=
	[ -n "$qemu_reason" ] || q=$(awk -v p="$p" '$1 == p {print $2}' "$W/qemu.rates" | median)
	if [ -n "$q" ]; then
		printf '%-16s %12s %12s %11.2fx\n' "$p" "$m" "$q" "$(awk -v a="$m" -v b="$q" 'BEGIN {print (b > 0) ? a / b : 0}')"
	else
		printf '%-16s %12s %12s %12s\n' "$p" "$m" n/a n/a
	fi
done
[ -z "$qemu_reason" ] || echo "qemu: n/a ($qemu_reason)"
