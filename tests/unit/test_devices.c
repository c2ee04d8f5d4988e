// SPDX-License-Identifier: Apache-2.0
/* Unit tests for the small devices and the I/O bus: RTC, control page, i8042. */
#include <check.h>
#include <stdlib.h>
#include <string.h>

#include "bus.h"
#include "ctl_dev.h"
#include "i8042.h"
#include "rtc_cmos.h"

static time_t fixed_time(void *opaque)
{
	return *(time_t *)opaque;
}

static uint8_t rtc_read(struct rtc_cmos *r, uint8_t reg)
{
	uint8_t v = reg;

	rtc_cmos_access(r, 0, &v, 1, true);
	rtc_cmos_access(r, 1, &v, 1, false);
	return v;
}

START_TEST(test_rtc_reports_time_in_bcd)
{
	/* 2026-11-23 11:24:58 UTC, a Monday. */
	time_t t = 1795433098;
	struct rtc_cmos r;

	rtc_cmos_init(&r);
	r.now = fixed_time;
	r.opaque = &t;
	ck_assert_uint_eq(rtc_read(&r, 0x00), 0x58);
	ck_assert_uint_eq(rtc_read(&r, 0x02), 0x24);
	ck_assert_uint_eq(rtc_read(&r, 0x04), 0x11);
	ck_assert_uint_eq(rtc_read(&r, 0x06), 0x02);
	ck_assert_uint_eq(rtc_read(&r, 0x07), 0x23);
	ck_assert_uint_eq(rtc_read(&r, 0x08), 0x11);
	ck_assert_uint_eq(rtc_read(&r, 0x09), 0x26);
	ck_assert_uint_eq(rtc_read(&r, 0x32), 0x20);
	/* Never "update in progress"; 24-hour BCD; battery good. */
	ck_assert_uint_eq(rtc_read(&r, 0x0a) & 0x80, 0);
	ck_assert_uint_eq(rtc_read(&r, 0x0b) & 0x06, 0x02);
	ck_assert_uint_eq(rtc_read(&r, 0x0d), 0x80);
	/* The NMI-mask bit of the index port is not part of the index. */
	ck_assert_uint_eq(rtc_read(&r, 0x80 | 0x09), 0x26);
}
END_TEST

START_TEST(test_rtc_ignores_writes_and_wide_access)
{
	time_t t = 0;
	struct rtc_cmos r;
	uint8_t v = 0x00, wide[4] = { 0 };

	rtc_cmos_init(&r);
	r.now = fixed_time;
	r.opaque = &t;
	rtc_cmos_access(&r, 0, &v, 1, true);
	v = 0x42;
	rtc_cmos_access(&r, 1, &v, 1, true);
	ck_assert_uint_eq(rtc_read(&r, 0x00), 0x00);
	rtc_cmos_access(&r, 0, wide, 4, false);
	ck_assert_uint_eq(wide[0], 0xff);
	ck_assert_uint_eq(wide[3], 0xff);
}
END_TEST

struct ctl_seen {
	int boots;
	int readies;
	int exits;
	uint32_t status;
	uint32_t phase;
};

static void seen_boot(void *o) { ((struct ctl_seen *)o)->boots++; }
static void seen_exit(void *o, uint32_t s) { ((struct ctl_seen *)o)->exits++; ((struct ctl_seen *)o)->status = s; }
static void seen_phase(void *o, uint32_t p) { ((struct ctl_seen *)o)->phase = p; }

static void seen_ready(void *o) { ((struct ctl_seen *)o)->readies++; }

static const struct ctl_dev_ops seen_ops = { seen_boot, seen_exit, seen_phase, seen_ready };

START_TEST(test_ctl_registers)
{
	struct ctl_seen s = { 0 };
	struct ctl_dev c;
	uint32_t v;

	ctl_dev_init(&c, &seen_ops, &s);
	ctl_dev_access(&c, MSVMM_CTL_MAGIC, (uint8_t *)&v, 4, false);
	ck_assert_uint_eq(v, MSVMM_CTL_MAGIC_VALUE);
	v = 1;
	ctl_dev_access(&c, MSVMM_CTL_BOOT, (uint8_t *)&v, 4, true);
	v = 9;
	ctl_dev_access(&c, MSVMM_CTL_PHASE, (uint8_t *)&v, 4, true);
	ck_assert_int_eq(s.readies, 0);
	v = 1;
	ctl_dev_access(&c, MSVMM_CTL_READY, (uint8_t *)&v, 4, true);
	ck_assert_int_eq(s.readies, 1);
	v = MSVMM_CTL_EXIT_SIGNALED | 15;
	ctl_dev_access(&c, MSVMM_CTL_EXIT, (uint8_t *)&v, 4, true);
	ck_assert_int_eq(s.boots, 1);
	ck_assert_uint_eq(s.phase, 9);
	ck_assert_int_eq(s.exits, 1);
	ck_assert_uint_eq(s.status, MSVMM_CTL_EXIT_SIGNALED | 15);
}
END_TEST

START_TEST(test_ctl_rejects_odd_accesses)
{
	struct ctl_seen s = { 0 };
	struct ctl_dev c;
	uint8_t b[4] = { 7, 0, 0, 0 };

	ctl_dev_init(&c, &seen_ops, &s);
	/* Narrow, misaligned and unknown-register writes do nothing. */
	ctl_dev_access(&c, MSVMM_CTL_EXIT, b, 1, true);
	ctl_dev_access(&c, MSVMM_CTL_EXIT + 1, b, 2, true);
	ctl_dev_access(&c, MSVMM_CTL_READY + 4, b, 4, true);
	ctl_dev_access(&c, MSVMM_CTL_READY, b, 2, true);
	ctl_dev_access(&c, MSVMM_CTL_MAGIC, b, 2, false);
	ck_assert_int_eq(s.exits, 0);
	ck_assert_int_eq(s.boots, 0);
	ck_assert_int_eq(s.readies, 0);
	ck_assert_uint_eq(b[0], 0xff);
	ck_assert_uint_eq(b[1], 0xff);
}
END_TEST

static void count_reset(void *o)
{
	(*(int *)o)++;
}

START_TEST(test_i8042_reset_only_on_0xfe_to_0x64)
{
	int resets = 0;
	struct i8042 k = { count_reset, &resets };
	uint8_t v = 0xfe;

	i8042_access(&k, 0, &v, 1, true); /* port 0x60 */
	ck_assert_int_eq(resets, 0);
	v = 0xd1;
	i8042_access(&k, 4, &v, 1, true);
	ck_assert_int_eq(resets, 0);
	v = 0xff;
	i8042_access(&k, 4, &v, 1, false);
	ck_assert_uint_eq(v, 0); /* status: both buffers empty */
	v = 0xfe;
	i8042_access(&k, 4, &v, 1, true);
	ck_assert_int_eq(resets, 1);
}
END_TEST

static uint64_t last_off;
static void record(void *o, uint64_t off, uint8_t *d, uint32_t len, bool w)
{
	(void)d; (void)len; (void)w;
	last_off = off;
	(*(int *)o)++;
}

START_TEST(test_bus_ranges)
{
	struct bus b = { .n = 0 };
	int hits = 0;
	uint8_t d[8];

	ck_assert_int_eq(bus_register(&b, 0x1000, 0x100, record, &hits), 0);
	ck_assert_int_eq(bus_register(&b, 0x10ff, 2, record, &hits), -1);   /* overlaps */
	ck_assert_int_eq(bus_register(&b, UINT64_MAX, 2, record, &hits), -1); /* wraps */
	ck_assert_int_eq(bus_register(&b, 0x2000, 0, record, &hits), -1);   /* empty */
	ck_assert(bus_access(&b, 0x1010, d, 4, false));
	ck_assert_uint_eq(last_off, 0x10);
	ck_assert(!bus_access(&b, 0x10fe, d, 4, false)); /* straddles the end */
	ck_assert(!bus_access(&b, 0xfff, d, 1, false));
	ck_assert(!bus_access(&b, UINT64_MAX, d, 8, false));
	ck_assert_int_eq(hits, 1);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("devices");
	TCase *tc = tcase_create("devices");
	SRunner *sr;
	int failed;

	tcase_add_test(tc, test_rtc_reports_time_in_bcd);
	tcase_add_test(tc, test_rtc_ignores_writes_and_wide_access);
	tcase_add_test(tc, test_ctl_registers);
	tcase_add_test(tc, test_ctl_rejects_odd_accesses);
	tcase_add_test(tc, test_i8042_reset_only_on_0xfe_to_0x64);
	tcase_add_test(tc, test_bus_ranges);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
