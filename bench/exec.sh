#!/usr/bin/env bash
# Command latency and vsock benchmark (bench/execbench.c does the timing):
#   1. msx start -> first output byte of `msx busybox -- echo hi` (a fresh
#      sandbox every run), min and median over RUNS, next to the host's own
#      `echo hi` process started the same way;
#   2. in one sandbox of a test image (busybox + tests/e2e/mstest.c), through
#      a guest `mstest vsock-echo`: the median 1-byte round trip over 1000
#      ping-pongs and 64 MiB sent and echoed back, next to the same work
#      through a host Unix socketpair with an echo thread;
#   3. in one python sandbox (when the python image is built): the first
#      run-code call (it starts the interpreter), then run-code print(1)
#      against the command python3 -c 'print(1)', median over CODE_RUNS.
#
# usage: bench/exec.sh BUILD_DIR   (env RUNS=N, default 5; ROUNDS=1000; MIB=64; CODE_RUNS=20)
set -euo pipefail
B=${1:-build}
RUNS=${RUNS:-5}
ROUNDS=${ROUNDS:-1000}
MIB=${MIB:-64}
EB=$B/bin/msvmm-execbench

if [ ! -e /dev/kvm ]; then
	echo "bench: /dev/kvm missing" >&2
	exit 1
fi
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT

make --no-print-directory -s BUILD="$B" "$B/bin/msx" "$B/bin/msvmm-mkinitramfs" "$EB"

# The test image, as tests/e2e/run.sh builds it: the busybox image plus mstest.
mkdir -p "$W/images/bbtest" "$W/stage"
gcc -std=c11 -D_GNU_SOURCE -Wall -Wextra -Werror -O2 -static -o "$W/stage/mstest" tests/e2e/mstest.c
printf 'dir usr 0755\ndir usr/bin 0755\nfile usr/bin/mstest %s 0755\n' "$W/stage/mstest" |
	"$B/bin/msvmm-mkinitramfs" "$W/stage/extra.cpio"
cat "$B/share/msvmm/images/busybox/initramfs.cpio" "$W/stage/extra.cpio" >"$W/images/bbtest/initramfs.cpio"
printf 'name=bbtest\ninitramfs=initramfs.cpio\ndefault_cmd=/bin/sh\n' >"$W/images/bbtest/image.conf"

PVM=0
[ -d /sys/module/kvm_pvm ] && PVM=1
echo "bench: exec and vsock, $RUNS runs each, host $([ $PVM = 1 ] && echo PVM || echo KVM)"
msx=$("$EB" first-byte "$RUNS" -- "$B/bin/msx" busybox -- echo hi)
host=$("$EB" first-byte "$RUNS" -- echo hi)
read -r mmin mmed <<<"$msx"
read -r hmin hmed <<<"$host"
printf '%-44s %12s %12s\n' "time to first output byte (ms)" min median
printf '%-44s %12.1f %12.1f\n' "msx busybox -- echo hi" "$mmin" "$mmed"
printf '%-44s %12.3f %12.3f\n' "host echo hi (fork + exec)" "$hmin" "$hmed"
awk -v a="$mmin" -v b="$hmin" -v c="$mmed" -v d="$hmed" \
	'BEGIN {printf "%-44s %11.1fx %11.1fx\n", "msx/host (lower: msx closer to a process)", a/b, c/d}'
echo
"$EB" vsock "$W/images/bbtest" "$B/share/msvmm" "$ROUNDS" "$MIB"
if [ -f "$B/share/msvmm/images/python/rootfs.ext4" ]; then
	echo
	"$EB" runcode python "$B/share/msvmm" "${CODE_RUNS:-20}"
fi
