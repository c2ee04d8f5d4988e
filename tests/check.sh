#!/usr/bin/env bash
# SPDX-License-Identifier: Apache-2.0
# What `make check` runs once everything is built: the unit tests, the same
# under ASan+UBSan, and the end-to-end tests, then one closing total line.
#
# Where /dev/kvm is missing, the tests that boot guests (GUEST_TESTS and the
# end-to-end tests) run inside a nested KVM under QEMU's emulation
# (tests/nested/run.sh: slow, but the real-KVM path) instead of being
# skipped; the others run here.  NESTED=0 skips them instead.
# Usage: tests/check.sh BUILD_DIR GUEST_TESTS...
set -u
B=$1
shift
guests=("$@")
rm -f "$B"/*.summary "$B/tests/summary" "$B/tests-san/summary" "$B/e2e.stuck"
rc=0
if [ -e /dev/kvm ] || [ "${NESTED:-1}" = 0 ]; then
	bash tests/run-unit.sh "$B/tests" "$B/unit.summary" || rc=1
	bash tests/run-unit.sh "$B/tests-san" "$B/san.summary" || rc=1
	bash tests/e2e/run.sh "$B" || rc=1
	files=("$B/unit.summary" "$B/san.summary" "$B/e2e.summary")
else
	bash tests/run-unit.sh "$B/tests" "$B/unit.summary" --except "${guests[@]}" || rc=1
	bash tests/run-unit.sh "$B/tests-san" "$B/san.summary" --except "${guests[@]}" || rc=1
	echo "check: no /dev/kvm here: the tests that boot guests run in a nested KVM (NESTED=0 skips them)"
	nested() {
		rm -f "$B/e2e.stuck"
		bash tests/nested/run.sh "bash tests/run-unit.sh $B/tests $B/unit-guests.summary --only ${guests[*]};" \
			"a=\$?; bash tests/run-unit.sh $B/tests-san $B/san-guests.summary --only ${guests[*]};" \
			"b=\$?; bash tests/e2e/run.sh $B; c=\$?; [ \$a\$b\$c = 000 ]"
	}
	# Under the emulated machine a guest now and then stops making progress
	# or its kernel breaks (e2e says so and shows the state): run again then,
	# and only then, up to twice, while the job has time left (CI's limit is
	# 90 minutes; a nested job takes 7 to 15).
	tries=1
	until nested; do
		if [ ! -e "$B/e2e.stuck" ] || [ "$tries" -ge 3 ] || [ "$SECONDS" -ge 3000 ]; then
			rc=1
			break
		fi
		tries=$((tries + 1))
		echo "check: a guest in the nested machine stopped making progress or broke (above); try $tries of 3"
	done
	files=("$B/unit.summary" "$B/san.summary" "$B/unit-guests.summary" "$B/san-guests.summary" "$B/e2e.summary")
fi
bash tests/summary.sh "${files[@]}" || rc=1
exit $rc
