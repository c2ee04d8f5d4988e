#!/usr/bin/env bash
# Cold-boot benchmark: msvmm against QEMU microvm booting the same vmlinux
# and initramfs to the same marker (guest-init runs `echo MARK`, we time the
# marker's arrival on the host).  Runs are interleaved; prints min and median
# of each and their ratio, plus msx's host-side time to the first KVM_RUN.
#
# usage: bench/boot.sh BUILD_DIR   (env RUNS=N, default 5)
set -euo pipefail
B=${1:-build}
RUNS=${RUNS:-5}
SHARE=$B/share/msvmm
KERNEL=$SHARE/vmlinux
IMAGE=$SHARE/images/busybox/initramfs.cpio
MARK=MSVMM-BOOT-MARK
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

cc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -o "$W/bootbench" bench/bootbench.c

# The same initramfs for both: the image plus a run spec saying `echo MARK`.
mkdir -p "$W/spec/msvmm"
printf 'Aecho\0A%s\0' "$MARK" >"$W/spec/msvmm/run"
printf 'dir msvmm 0755\nfile msvmm/run %s 0600\n' "$W/spec/msvmm/run" | "$B/bin/msvmm-mkinitramfs" "$W/spec.cpio"
cat "$IMAGE" "$W/spec.cpio" >"$W/initrd.cpio"

PVM=0
[ -d /sys/module/kvm_pvm ] && PVM=1
KHZ=$(awk '/^cpu MHz/ {printf "%d", $4 * 1000; exit}' /proc/cpuinfo)
# msvmm's own command line (lib/vm.c), so both guests do the same work.
CMDLINE="console=ttyS0 reboot=t panic=-1 tsc=reliable no_timer_check random.trust_cpu=on percpu_alloc=page msvmm.lean_sysfs=1 rdinit=/init quiet loglevel=1 tsc_early_khz=$KHZ lpj=$((KHZ * 10)) noreplace-smp"
if [ "$PVM" = 1 ]; then
	# QEMU cannot emulate XSAVE or step over INT3/FWAIT on PVM: the guest avoids
	# them itself (noxsave, msvmm.qemu_peer=1), see guest-init/kernel/patches.
	CMDLINE="$CMDLINE msvmm.pvm=1 msvmm.qemu_peer=1 noxsave clearcpuid=popcnt,smap,fsgsbase,erms,fsrm,pku,ospke,xsaves,xsavec,cx16"
fi

run_qemu() {
	"$W/bootbench" "$MARK" 300 -- qemu-system-x86_64 \
		-M microvm,x-option-roms=off,rtc=off,isa-serial=on,acpi=off -enable-kvm \
		-cpu host,-arch-capabilities -m 256 -smp 1 -nodefaults -no-user-config \
		-display none -serial stdio -no-reboot \
		-kernel "$KERNEL" -initrd "$W/initrd.cpio" -append "$CMDLINE"
}
run_msvmm() {
	# Cold boots only (bench/snapshot.sh measures restores): a cached ready
	# snapshot would otherwise turn every run after the first into a restore.
	"$W/bootbench" "$MARK" 300 -- "$B/bin/msx" --no-snapshot --timings --kernel "$KERNEL" busybox -- echo "$MARK" 2>"$W/msx.err"
	# The first-KVM_RUN figure, from a second run left to finish (bootbench stops the first at the marker).
	"$B/bin/msx" --no-snapshot --timings --kernel "$KERNEL" busybox -- true 2>&1 >/dev/null |
		sed -n 's/.*first-KVM_RUN \([0-9.]*\).*/\1/p' >>"$W/firstrun"
}

stats() { # file -> "min median"
	sort -n "$1" | awk '{a[NR]=$1} END {m=(NR%2)?a[(NR+1)/2]:(a[NR/2]+a[NR/2+1])/2; printf "%.1f %.1f\n", a[1], m}'
}

: >"$W/msvmm"; : >"$W/qemu"; : >"$W/firstrun"
qemu_ok=1
echo "bench: $RUNS interleaved cold boots each, kernel $(basename "$KERNEL"), host $([ $PVM = 1 ] && echo PVM || echo KVM)"
for i in $(seq "$RUNS"); do
	r=$(run_msvmm) || { echo "bench: msvmm run $i failed"; cat "$W/msx.err"; exit 1; }
	echo "$r" >>"$W/msvmm"
	if [ $qemu_ok = 1 ]; then
		if q=$(run_qemu 2>"$W/qemu.err"); then
			echo "$q" >>"$W/qemu"
		else
			qemu_ok=0
			echo "bench: QEMU did not reach the marker: $(tail -1 "$W/qemu.err")"
		fi
	fi
	echo "  run $i: msvmm $r ms, qemu ${q:-n/a} ms"
	q=
done
read -r mmin mmed < <(stats "$W/msvmm")
read -r fmin fmed < <(stats "$W/firstrun")
printf '%-34s %10s %10s\n' "time to init marker (ms)" min median
printf '%-34s %10s %10s\n' "msvmm" "$mmin" "$mmed"
if [ -s "$W/qemu" ]; then
	read -r qmin qmed < <(stats "$W/qemu")
	printf '%-34s %10s %10s\n' "qemu microvm" "$qmin" "$qmed"
	awk -v a="$qmin" -v b="$mmin" -v c="$qmed" -v d="$mmed" \
		'BEGIN {printf "%-34s %9.2fx %9.2fx\n", "qemu/msvmm (higher: msvmm faster)", a/b, c/d}'
fi
printf '%-34s %10s %10s\n' "msx start -> first KVM_RUN (ms)" "$fmin" "$fmed"
