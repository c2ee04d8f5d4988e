#!/usr/bin/env bash
# Run every unit-test binary in DIR; fail if any fails.
set -u
dir=$1
fail=0
for t in "$dir"/test_*; do
	[ -x "$t" ] || continue
	echo "== $(basename "$t") ($(basename "$dir"))"
	if ! "$t"; then
		echo "FAILED: $t"
		fail=1
	fi
done
exit $fail
