#!/usr/bin/env bash
# Snapshot benchmark: msx start -> first output byte, booted (--no-snapshot)
# against restored from the image's ready snapshot, for `busybox echo` and
# for a python one-liner, min and median over RUNS each (bench/execbench.c
# times them), the ratios, and one restored run's phases (--timings).  Uses
# a private snapshot cache, made by one untimed run first.
#
# usage: bench/snapshot.sh BUILD_DIR   (env RUNS=N, default 5)
set -euo pipefail
B=${1:-build}
RUNS=${RUNS:-5}
EB=$B/bin/msvmm-execbench
MSX=$B/bin/msx

if [ ! -e /dev/kvm ]; then
	echo "bench: /dev/kvm missing" >&2
	exit 1
fi
W=$(mktemp -d)
trap 'rm -rf "$W"' EXIT
export MSVMM_CACHE=$W/cache
make --no-print-directory -s BUILD="$B" "$MSX" "$EB"

# pair NAME MSX_ARGS...: booted vs restored rows and their ratio (the
# arguments after msx's own options: IMAGE -- CMD..., or IMAGE --code CODE).
pair() {
	local name=$1 cold warm cmin cmed wmin wmed
	shift
	"$MSX" "$@" >/dev/null 2>&1 # makes the ready snapshot
	cold=$("$EB" first-byte "$RUNS" -- "$MSX" --no-snapshot "$@")
	warm=$("$EB" first-byte "$RUNS" -- "$MSX" "$@")
	read -r cmin cmed <<<"$cold"
	read -r wmin wmed <<<"$warm"
	printf '%-44s %12.1f %12.1f\n' "$name, booted" "$cmin" "$cmed"
	printf '%-44s %12.1f %12.1f\n' "$name, restored" "$wmin" "$wmed"
	awk -v a="$cmin" -v b="$wmin" -v c="$cmed" -v d="$wmed" \
		'BEGIN {printf "%-44s %11.1fx %11.1fx\n", "booted/restored (higher: restore faster)", a/b, c/d}'
	"$MSX" --timings "$@" 2>&1 >/dev/null | sed -n 's/^msx: /  restored run: /p' | head -2
}

echo "bench: snapshots, $RUNS runs each, host $([ -d /sys/module/kvm_pvm ] && echo PVM || echo KVM)"
printf '%-44s %12s %12s\n' "msx start -> first output byte (ms)" min median
pair "busybox echo hi" busybox -- echo hi
if [ -f "$B/share/msvmm/images/python/image.conf" ]; then
	pair "python3 -c 'print(1)'" python -- python3 -c 'print(1)'
	# The warm runtime: the restored interpreter is already up.
	pair "python --code 'print(1)'" python --code 'print(1)'
fi
