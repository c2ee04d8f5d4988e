#!/usr/bin/env bash
# The closing line of `make check`: the totals of the unit, sanitizer and
# end-to-end runs (their summary files, "PASSED FAILED SKIPPED").
set -u
p=0 f=0 s=0
for file in "$@"; do
	[ -f "$file" ] || { echo "summary: $file missing" >&2; f=$((f + 1)); continue; }
	read -r a b c <"$file"
	p=$((p + a)) f=$((f + b)) s=$((s + c))
done
echo "check: $p passed, $f failed, $s skipped"
[ "$f" = 0 ]
