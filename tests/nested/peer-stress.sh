#!/usr/bin/env bash
# Is a guest kernel's breakage the emulator's or msvmm's?  Runs the same
# interrupt-heavy loop (pipelines, console output) for SECS seconds in a
# guest of QEMU's own KVM (microvm) and in one of msx, on the same kernel
# and initramfs, ROUNDS times, and prints per guest how far the loop got and
# any panic, lockup or stall its console showed.  Not part of `make check`;
# run it inside the nested machine:
#   tests/nested/run.sh 'SECS=200 bash tests/nested/peer-stress.sh build'
# (seen under NESTED_TCG_THREAD=single with 2 CPUs: both guests double-fault.)
set -u
B=${1:-build}
SECS=${SECS:-200}
ROUNDS=${ROUNDS:-2}
SHARE=$B/share/msvmm
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
LOOP='i=0; end=$(($(date +%s)+'"$SECS"')); while [ $(date +%s) -lt $end ]; do echo x | cat | cat >/dev/null; i=$((i+1)); [ $((i % 200)) = 0 ] && echo "iter $i"; done; echo LOOP-DONE $i'
# The busybox image plus a run spec (guest-init's argv) running the loop.
mkdir -p "$W/spec/msvmm"
printf 'Ash\0A-c\0A%s\0' "$LOOP" >"$W/spec/msvmm/run"
printf 'dir msvmm 0755\nfile msvmm/run %s 0600\n' "$W/spec/msvmm/run" | "$B/bin/msvmm-mkinitramfs" "$W/spec.cpio"
cat "$SHARE/images/busybox/initramfs.cpio" "$W/spec.cpio" >"$W/initrd.cpio"
KHZ=$(awk '/^cpu MHz/ {printf "%d", $4 * 1000; exit}' /proc/cpuinfo)
# bench/boot.sh's command line for the QEMU peer (msvmm's own, lib/vm.c).
CMDLINE="console=ttyS0 reboot=t panic=-1 tsc=reliable no_timer_check random.trust_cpu=on percpu_alloc=page msvmm.lean_sysfs=1 rdinit=/init quiet loglevel=1 tsc_early_khz=$KHZ lpj=$((KHZ * 10)) noreplace-smp"
report() {
	echo "$1: exit $2, $(grep -ac '^iter' "$3") progress lines, last: $(grep -aE '^(iter|LOOP-DONE)' "$3" | tail -1)"
	grep -aE 'PANIC|Kernel panic|BUG:|lockup|stall|double fault|Oops' "$3" | head -3 | sed 's/^/    /'
}
for round in $(seq 1 "$ROUNDS"); do
	timeout $((SECS + 120)) qemu-system-x86_64 -M microvm,x-option-roms=off,rtc=off,isa-serial=on,acpi=off \
		-enable-kvm -cpu host,-arch-capabilities -m 256 -smp 1 -nodefaults -no-user-config -display none \
		-serial stdio -no-reboot -kernel "$SHARE/vmlinux" -initrd "$W/initrd.cpio" -append "$CMDLINE" \
		>"$W/qemu.log" 2>&1
	report "round $round, qemu" $? "$W/qemu.log"
	timeout $((SECS + 120)) "$B/bin/msx" busybox -- sh -c "$LOOP" >"$W/msx.log" 2>&1
	report "round $round, msx " $? "$W/msx.log"
done
