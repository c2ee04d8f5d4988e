#!/usr/bin/env bash
# tests/run-unit.sh DIR [SUMMARY] [--only|--except NAME...]: run the unit-test
# binaries in DIR (all, only the NAMEs, or all but them); fail if any fails.
# The totals (checks passed and failed, programs skipped) go to SUMMARY
# (default DIR/summary) for tests/summary.sh.
set -u
dir=$1
summary=${2:-$dir/summary}
mode=${3:-}
names=" ${*:4} "
fail=0
passed=0 failed=0 skipped=0
for t in "$dir"/test_*; do
	[ -x "$t" ] || continue
	case "$mode:$names" in
	--only:*" $(basename "$t") "*) ;;
	--only:*) continue ;;
	--except:*" $(basename "$t") "*) continue ;;
	esac
	echo "== $(basename "$t") ($(basename "$dir"))"
	t0=$SECONDS
	# A stuck program must not stall the whole run (Check's own timeouts are per test).
	out=$(timeout -k 10 "${UNIT_TIMEOUT_S:-1200}" "$t" 2>&1)
	rc=$?
	printf '%s\n' "$out"
	echo "== $(basename "$t"): $((SECONDS - t0))s"
	if [ $rc != 0 ]; then
		echo "FAILED: $t"
		fail=1
	fi
	# Check's closing line: "NN%: Checks: C, Failures: F, Errors: E".
	line=$(printf '%s\n' "$out" | grep -E '^[0-9]+%: Checks: [0-9]+, Failures: [0-9]+, Errors: [0-9]+' | tail -1)
	if [ -n "$line" ]; then
		c=$(sed -E 's/.*Checks: ([0-9]+).*/\1/' <<<"$line")
		f=$(sed -E 's/.*Failures: ([0-9]+).*/\1/' <<<"$line")
		e=$(sed -E 's/.*Errors: ([0-9]+).*/\1/' <<<"$line")
		passed=$((passed + c - f - e))
		failed=$((failed + f + e))
	elif printf '%s\n' "$out" | grep -q 'SKIPPED'; then
		skipped=$((skipped + 1))
	elif [ $rc != 0 ]; then
		failed=$((failed + 1))
	fi
done
echo "$passed $failed $skipped" >"$summary"
echo "$(basename "$dir")${mode:+ ($mode${names% })}: $passed passed, $failed failed, $skipped skipped"
exit $fail
