#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
#
# tests/nested/run.sh COMMAND...: run COMMAND (a shell line, in this
# directory) inside a nested Linux whose /dev/kvm is real KVM, for hosts that
# have no /dev/kvm of their own.  Exits with COMMAND's status; its output
# streams to ours.
#
# The nested machine is QEMU without acceleration (TCG) with AMD SVM and
# nested paging emulated (-cpu max), running Debian's stock kernel with
# kvm_amd.  Its root is this host's / over 9p (the same packages, build tree
# and image cache), with its own /proc, /dev, /run and TMPDIR=/run/tmp.  It is slow (every
# instruction is emulated, the guests msvmm starts inside it too) but it runs
# the tests that boot guests through the real-KVM path, which a host without
# /dev/kvm would otherwise skip.  Not a product path: test tooling only.
#
# The kernel comes from Debian's linux-image-amd64 (apt-get download); the
# small initramfs that loads the modules is cached under
# ${MSVMM_CACHE:-~/.cache/msvmm}/nested/<hash of package version + this file>.
#
# Environment: NESTED_MEM_MIB (default 8192), NESTED_CPUS (default 1, see below),
# NESTED_TIMEOUT_S (default 1800, per try), NESTED_TRIES (default 5),
# NESTED_TCG_THREAD (default multi: a host thread per vCPU; single: one for all).
set -euo pipefail

HERE=$(cd "$(dirname "$0")" && pwd)
say() { echo "nested: $*" >&2; }
die() { say "$*"; exit 125; }
SUDO=""
[ "$(id -u)" -eq 0 ] || SUDO=sudo

[ $# -gt 0 ] || die "usage: $0 COMMAND..."
command -v qemu-system-x86_64 >/dev/null || die "qemu-system-x86_64 is not installed (tests/deps.sh installs it)"
command -v busybox >/dev/null || die "busybox is not installed (package busybox-static)"

# ------------------------------------------------------------ kernel + initramfs
META=$(apt-cache depends linux-image-amd64 2>/dev/null | awk '/Depends: linux-image-[0-9]/ { print $2; exit }')
[ -n "$META" ] || die "cannot resolve linux-image-amd64 to a kernel package (apt-cache depends)"
PKGVER=$(apt-cache policy "$META" | awk '/Candidate:/ { print $2 }')
KVER=${META#linux-image-}
HASH=$( (echo "$META $PKGVER"; cat "$HERE/run.sh" "$HERE/init") | sha256sum | cut -c1-16)
CACHE=${MSVMM_CACHE:-$HOME/.cache/msvmm}/nested
DEST=$CACHE/$HASH

build_initramfs() {
	local tmp mods need all n i
	tmp=$(mktemp -d "$CACHE/.work-XXXXXX")
	trap 'rm -rf "$tmp"' RETURN
	say "fetching $META $PKGVER (once; cached in $DEST)"
	# Stale package lists name a version the archive no longer has: refresh once.
	(cd "$tmp" && apt-get download -qq "$META=$PKGVER" 2>/dev/null) ||
		{ ${SUDO:-} apt-get update -qq && (cd "$tmp" && apt-get download -qq "$META" 2>/dev/null); } ||
		die "apt-get download $META failed"
	dpkg-deb -x "$tmp"/*.deb "$tmp/pkg"
	mods=lib/modules/$KVER
	mkdir -p "$tmp/ird/bin" "$tmp/ird/$mods" "$tmp/ird/proc" "$tmp/ird/sys" "$tmp/ird/dev" "$tmp/ird/root"
	cp "$(command -v busybox)" "$tmp/ird/bin/busybox"
	busybox depmod -b "$tmp/pkg" "$KVER"
	# The modules nesting needs, with everything they depend on.
	need="kernel/drivers/virtio/virtio_pci.ko kernel/net/9p/9pnet_virtio.ko kernel/fs/9p/9p.ko"
	need="$need kernel/arch/x86/kvm/kvm-amd.ko"
	all=$need
	for i in 1 2 3 4 5; do
		for n in $all; do
			all="$all $(grep "^$n:" "$tmp/pkg/$mods/modules.dep" | cut -d: -f2)"
		done
		all=$(echo $all | tr ' ' '\n' | sort -u)
	done
	for n in $all; do
		mkdir -p "$tmp/ird/$mods/$(dirname "$n")"
		cp "$tmp/pkg/$mods/$n" "$tmp/ird/$mods/$n"
	done
	cp "$tmp/pkg/$mods/modules.builtin" "$tmp/pkg/$mods/modules.order" "$tmp/ird/$mods/" 2>/dev/null || true
	busybox depmod -b "$tmp/ird" "$KVER"
	cp "$HERE/init" "$tmp/ird/init"
	chmod 755 "$tmp/ird/init"
	(cd "$tmp/ird" && find . | cpio -o -H newc --quiet | gzip -1) > "$tmp/initrd.gz"
	mkdir -p "$tmp/out"
	cp "$tmp/pkg/boot/vmlinuz-$KVER" "$tmp/out/vmlinuz"
	mv "$tmp/initrd.gz" "$tmp/out/initrd.gz"
	rm -rf "$DEST"
	mv "$tmp/out" "$DEST"
}

mkdir -p "$CACHE"
[ -f "$DEST/vmlinuz" ] && [ -f "$DEST/initrd.gz" ] || build_initramfs

# ------------------------------------------------------------------- the run
# The job directory lives on the shared root, outside the tmpfs the nested
# machine mounts on /run: it carries the command in and the status out.
JOB=$(mktemp -d "${NESTED_JOBDIR:-/var/tmp}/msvmm-nested-XXXXXX")
trap 'rm -rf "$JOB"' EXIT
{
	printf 'cd %q || exit 125\n' "$PWD"
	printf 'export HOME=%q TMPDIR=/run/tmp MSVMM_NESTED=1\n' "$HOME"
	[ -n "${MSVMM_CACHE:-}" ] && printf 'export MSVMM_CACHE=%q\n' "$MSVMM_CACHE"
	printf '%s\n' "$*"
} > "$JOB/cmd"

grep -qw svm /proc/cpuinfo 2>/dev/null && say "note: this host has SVM; /dev/kvm would be faster than nesting"

# The emulated machine itself now and then locks up for good with
# multi-threaded TCG (its kernel reports a soft lockup or an RCU stall on
# every CPU, QEMU spins): seen with and without huge pages, never on the
# same step twice.  Such a run is killed and the command run again from the
# start (NESTED_TRIES, default 5); a command that fails on its own is never
# rerun.  The emulated CPU also breaks the kernels of its own KVM guests
# (QEMU's as well as ours): interrupts taken with IF=0, so spinlock
# deadlocks inside handle_edge_irq and double faults in the entry code.
# Measured (the sandbox API test, 10 runs in a row): with 2 emulated CPUs,
# single-threaded TCG broke the guest in about every other run and
# multi-threaded TCG locked the whole machine up in 5 tries of 5 in one CI
# rehearsal; with ONE emulated CPU (multi-threaded TCG) 10 of 10 passed,
# ~20 s each, and the machine did not lock up.  Hence NESTED_CPUS=1.
STALL='watchdog: BUG: soft lockup|rcu: INFO: rcu_(preempt|sched) (self-)?detected stall'
# Its heartbeat (tests/nested/init, every 10 s of its time) missing this
# long means the same, also when its kernel cannot say so any more.
STALL_S=${NESTED_STALL_S:-90}

# stalled WHY: say so once and kill the machine.
stalled() {
	[ -e "$JOB/stalled" ] && return
	printf '%s\n' "$1" >"$JOB/stalled"
	pkill -f "nested.job=$JOB" 2>/dev/null || true
}

# Kill the machine once no heartbeat came for STALL_S seconds.
heartbeat_watch() {
	# Its sleep holds none of our output open.
	while sleep 10 </dev/null >/dev/null 2>&1; do
		if [ $(($(date +%s) - $(stat -c %Y "$JOB/beat"))) -gt "$STALL_S" ]; then
			say "no heartbeat from the nested machine for ${STALL_S} s"
			stalled "no heartbeat"
			return
		fi
	done
}

# One boot: 0 with the command's status in $JOB/rc, 124 past the limit,
# 3 when the machine locked up, anything else when QEMU failed.
boot_once() {
	rm -f "$JOB/rc" "$JOB/stalled"
	# The clock starts now: a machine that wedges before its first beat counts too.
	touch "$JOB/beat"
	# QEMU runs in the background so that a signal to this script (a timeout
	# around it, Ctrl-C) takes the nested machine down too instead of orphaning it.
	timeout "${NESTED_TIMEOUT_S:-1800}" qemu-system-x86_64 \
		-accel tcg,thread="${NESTED_TCG_THREAD:-multi}" -cpu max -smp "${NESTED_CPUS:-1}" -m "${NESTED_MEM_MIB:-8192}" \
		-nodefaults -no-user-config -nographic -no-reboot -serial stdio -net none \
		-kernel "$DEST/vmlinuz" -initrd "$DEST/initrd.gz" \
		-append "console=ttyS0 loglevel=4 panic=-1 nested.job=$JOB" \
		-virtfs local,path=/,mount_tag=hostroot,security_model=passthrough,multidevs=remap,id=hostroot \
		</dev/null > >(sed -u 's/\r$//' | while IFS= read -r line; do
			# It may end a line the console had begun (no newline yet).
			if [[ $line == *"nested: heartbeat" ]]; then
				touch "$JOB/beat"
				line=${line%"nested: heartbeat"}
				[ -n "$line" ] || continue
			fi
			printf '%s\n' "$line"
			[[ $line =~ $STALL ]] && stalled "its kernel said so"
		done) &
	QPID=$!
	heartbeat_watch &
	local hb=$!
	trap 'kill "$QPID" "$hb" 2>/dev/null; wait "$QPID" 2>/dev/null; rm -rf "$JOB"; exit 125' INT TERM HUP
	local rc=0
	wait "$QPID" || rc=$?
	kill "$hb" 2>/dev/null || true
	wait "$hb" 2>/dev/null || true
	trap - INT TERM HUP
	# The console reader may still be taking QEMU's last lines.
	sleep 1
	if [ -e "$JOB/stalled" ] && [ ! -f "$JOB/rc" ]; then
		return 3
	fi
	return "$rc"
}

tries=${NESTED_TRIES:-5}
for try in $(seq 1 "$tries"); do
	say "booting $KVER under TCG with SVM to run: $* (try $try of $tries)"
	rc=0
	boot_once || rc=$?
	[ "$rc" -eq 3 ] || break
	say "the nested machine locked up ($(cat "$JOB/stalled")); killed it"
done
[ "$rc" -eq 3 ] && die "the nested machine locked up on every try"
[ "$rc" -eq 124 ] && die "the nested machine ran past ${NESTED_TIMEOUT_S:-1800} s"
[ "$rc" -eq 0 ] || die "qemu failed (status $rc)"
[ -f "$JOB/rc" ] || die "the nested machine stopped before the command finished"
exit "$(cat "$JOB/rc")"
