// SPDX-License-Identifier: Apache-2.0
/*
 * vmm/guest_mem: the checked accessor that turns every guest-controlled
 * address into a host pointer.  Boundaries, empty ranges, 64-bit wrap-around,
 * and the two-region layout with the 3..4 GiB MMIO hole.
 */
#include "guest_mem.h"

#include <errno.h>

#include "testutil.h"

#define MIB (1024ULL * 1024)
#define GIB (1024ULL * MIB)

START_TEST(test_init_from_one_region)
{
	uint8_t buf[4096];
	struct guest_mem gm;

	memset(&gm, 0xa5, sizeof(gm));
	guest_mem_init_from(&gm, buf, sizeof(buf));
	ck_assert_uint_eq(gm.nr_regions, 1);
	ck_assert_uint_eq(gm.regions[0].gpa, 0);
	ck_assert_uint_eq(gm.regions[0].size, sizeof(buf));
	ck_assert_ptr_eq(gm.regions[0].host, buf);
	ck_assert_uint_eq(gm.ram_size, sizeof(buf));
	ck_assert_ptr_null(gm.mapping); /* caller-owned: nothing to unmap */
	ck_assert_uint_eq(guest_mem_low_end(&gm), sizeof(buf));
}
END_TEST

START_TEST(test_ptr_boundaries)
{
	uint8_t buf[4096];
	struct guest_mem gm;

	guest_mem_init_from(&gm, buf, sizeof(buf));
	ck_assert_ptr_eq(guest_mem_ptr(&gm, 0, 1), buf);
	ck_assert_ptr_eq(guest_mem_ptr(&gm, 0, 4096), buf);
	ck_assert_ptr_eq(guest_mem_ptr(&gm, 4095, 1), buf + 4095);
	ck_assert_ptr_eq(guest_mem_ptr(&gm, 100, 3996), buf + 100);
	ck_assert_ptr_null(guest_mem_ptr(&gm, 0, 4097));
	ck_assert_ptr_null(guest_mem_ptr(&gm, 4095, 2));
	ck_assert_ptr_null(guest_mem_ptr(&gm, 4096, 1));
	ck_assert_ptr_null(guest_mem_ptr(&gm, 100, 3997));
	ck_assert_ptr_null(guest_mem_ptr(&gm, 1ULL << 32, 1));
}
END_TEST

START_TEST(test_ptr_len_zero)
{
	uint8_t buf[4096];
	struct guest_mem gm;

	guest_mem_init_from(&gm, buf, sizeof(buf));
	ck_assert_ptr_eq(guest_mem_ptr(&gm, 0, 0), buf);
	ck_assert_ptr_eq(guest_mem_ptr(&gm, 17, 0), buf + 17);
	/* The end of a region is a valid place for an empty range... */
	ck_assert_ptr_eq(guest_mem_ptr(&gm, 4096, 0), buf + 4096);
	/* ...one past it is not. */
	ck_assert_ptr_null(guest_mem_ptr(&gm, 4097, 0));
	ck_assert_ptr_null(guest_mem_ptr(&gm, UINT64_MAX, 0));
}
END_TEST

START_TEST(test_ptr_wraparound)
{
	uint8_t buf[4096];
	struct guest_mem gm;

	guest_mem_init_from(&gm, buf, sizeof(buf));
	/* gpa + len wraps to a small number that is "inside" RAM. */
	ck_assert_ptr_null(guest_mem_ptr(&gm, 16, UINT64_MAX - 7));
	ck_assert_ptr_null(guest_mem_ptr(&gm, 16, UINT64_MAX));
	ck_assert_ptr_null(guest_mem_ptr(&gm, 0, UINT64_MAX));
	ck_assert_ptr_null(guest_mem_ptr(&gm, UINT64_MAX, 1));
	ck_assert_ptr_null(guest_mem_ptr(&gm, UINT64_MAX, 2));
	ck_assert_ptr_null(guest_mem_ptr(&gm, UINT64_MAX - 4095, 4096));
	ck_assert_ptr_null(guest_mem_ptr(&gm, UINT64_MAX - 4095, 8192));
	/* Huge lengths inside the address space, too. */
	ck_assert_ptr_null(guest_mem_ptr(&gm, 0, 1ULL << 63));
	ck_assert_ptr_null(guest_mem_ptr(&gm, 1, (1ULL << 63) + 1));
}
END_TEST

START_TEST(test_read_write_helpers)
{
	uint8_t buf[256], out[8];
	struct guest_mem gm;

	memset(buf, 0, sizeof(buf));
	guest_mem_init_from(&gm, buf, sizeof(buf));
	ck_assert_int_eq(guest_mem_write(&gm, 250, "abcdef", 6), 0);
	ck_assert_mem_eq(buf + 250, "abcdef", 6);
	ck_assert_int_eq(guest_mem_read(&gm, 251, out, 5), 0);
	ck_assert_mem_eq(out, "bcdef", 5);
	/* One byte too far: refused, and nothing is written. */
	ck_assert_int_eq(guest_mem_write(&gm, 251, "XXXXXX", 6), -EFAULT);
	ck_assert_mem_eq(buf + 250, "abcdef", 6);
	memset(out, 0x11, sizeof(out));
	ck_assert_int_eq(guest_mem_read(&gm, 252, out, 5), -EFAULT);
	ck_assert_uint_eq(out[0], 0x11);
	ck_assert_int_eq(guest_mem_write(&gm, UINT64_MAX - 1, "ab", 2), -EFAULT);
	ck_assert_int_eq(guest_mem_read(&gm, 8, out, UINT64_MAX - 3), -EFAULT);
}
END_TEST

START_TEST(test_layout_exactly_3g_is_one_region)
{
	struct guest_mem gm;

	/* Layout only: the host pointer is never dereferenced here. */
	guest_mem_init_from(&gm, (uint8_t *)0x10000, GUEST_MEM_LOW_END);
	ck_assert_uint_eq(gm.nr_regions, 1);
	ck_assert_uint_eq(guest_mem_low_end(&gm), GUEST_MEM_LOW_END);
	ck_assert_ptr_null(guest_mem_ptr(&gm, GUEST_MEM_HIGH_BASE, 1));
}
END_TEST

START_TEST(test_two_regions_and_hole)
{
	const uint64_t size = 3 * GIB + 512 * MIB;
	struct guest_mem gm;
	uint8_t *lo_last, *hi_first, *hi_last;

	ck_assert_int_eq(guest_mem_init(&gm, size), 0);
	ck_assert_ptr_nonnull(gm.mapping);
	ck_assert_uint_eq(gm.mapping_size, size);
	ck_assert_uint_eq(gm.ram_size, size);
	ck_assert_uint_eq(gm.nr_regions, 2);
	ck_assert_uint_eq(gm.regions[0].gpa, 0);
	ck_assert_uint_eq(gm.regions[0].size, 3 * GIB);
	ck_assert_uint_eq(gm.regions[1].gpa, 4 * GIB);
	ck_assert_uint_eq(gm.regions[1].size, 512 * MIB);
	ck_assert_ptr_eq(gm.regions[1].host, gm.mapping + 3 * GIB);
	ck_assert_uint_eq(guest_mem_low_end(&gm), 3 * GIB);

	/* Low region edges. */
	lo_last = guest_mem_ptr(&gm, 3 * GIB - 1, 1);
	ck_assert_ptr_eq(lo_last, gm.mapping + 3 * GIB - 1);
	ck_assert_ptr_null(guest_mem_ptr(&gm, 3 * GIB - 1, 2));
	ck_assert_ptr_eq(guest_mem_ptr(&gm, 3 * GIB, 0), gm.mapping + 3 * GIB);
	/* The hole: nothing in [3 GiB, 4 GiB) is RAM. */
	ck_assert_ptr_null(guest_mem_ptr(&gm, 3 * GIB, 1));
	ck_assert_ptr_null(guest_mem_ptr(&gm, 0xfec00000ULL, 4));
	ck_assert_ptr_null(guest_mem_ptr(&gm, 0xfee00000ULL, 4));
	ck_assert_ptr_null(guest_mem_ptr(&gm, 4 * GIB - 1, 1));
	/* Ranges straddling the hole from either side are refused. */
	ck_assert_ptr_null(guest_mem_ptr(&gm, 4 * GIB - 1, 2));
	ck_assert_ptr_null(guest_mem_ptr(&gm, 3 * GIB - 4096, 2 * GIB));
	ck_assert_ptr_null(guest_mem_ptr(&gm, 0, size));
	/* High region edges. */
	hi_first = guest_mem_ptr(&gm, 4 * GIB, 1);
	ck_assert_ptr_eq(hi_first, gm.mapping + 3 * GIB);
	ck_assert_ptr_eq(guest_mem_ptr(&gm, 4 * GIB, 512 * MIB), gm.mapping + 3 * GIB);
	hi_last = guest_mem_ptr(&gm, 4 * GIB + 512 * MIB - 1, 1);
	ck_assert_ptr_eq(hi_last, gm.mapping + size - 1);
	ck_assert_ptr_eq(guest_mem_ptr(&gm, 4 * GIB + 512 * MIB, 0), gm.mapping + size);
	ck_assert_ptr_null(guest_mem_ptr(&gm, 4 * GIB + 512 * MIB, 1));
	ck_assert_ptr_null(guest_mem_ptr(&gm, 4 * GIB + 512 * MIB - 1, 2));
	ck_assert_ptr_null(guest_mem_ptr(&gm, 4 * GIB + 8, UINT64_MAX - 4));

	/* Writes land where the layout says. */
	ck_assert_int_eq(guest_mem_write(&gm, 4 * GIB + 0x1234, "high", 4), 0);
	ck_assert_mem_eq(gm.mapping + 3 * GIB + 0x1234, "high", 4);
	ck_assert_int_eq(guest_mem_write(&gm, 3 * GIB - 3, "low", 3), 0);
	ck_assert_mem_eq(gm.mapping + 3 * GIB - 3, "low", 3);
	ck_assert_int_eq(guest_mem_write(&gm, 3 * GIB - 2, "low", 3), -EFAULT);

	guest_mem_free(&gm);
	ck_assert_ptr_null(gm.mapping);
	ck_assert_uint_eq(gm.nr_regions, 0);
	ck_assert_ptr_null(guest_mem_ptr(&gm, 0, 1));
}
END_TEST

START_TEST(test_init_rejects_bad_sizes)
{
	struct guest_mem gm;

	ck_assert_int_eq(guest_mem_init(&gm, 0), -EINVAL);
	ck_assert_uint_eq(gm.nr_regions, 0);
	ck_assert_int_eq(guest_mem_init(&gm, (1ULL << 40) + 1), -EINVAL);
	ck_assert_int_eq(guest_mem_init(&gm, UINT64_MAX), -EINVAL);
	/* A small one works and is zeroed. */
	ck_assert_int_eq(guest_mem_init(&gm, 2 * MIB), 0);
	ck_assert_uint_eq(gm.nr_regions, 1);
	ck_assert_uint_eq(*(uint8_t *)guest_mem_ptr(&gm, 2 * MIB - 1, 1), 0);
	guest_mem_free(&gm);
}
END_TEST

static Suite *guest_mem_suite(void)
{
	Suite *s = suite_create("guest_mem");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_init_from_one_region);
	tcase_add_test(tc, test_ptr_boundaries);
	tcase_add_test(tc, test_ptr_len_zero);
	tcase_add_test(tc, test_ptr_wraparound);
	tcase_add_test(tc, test_read_write_helpers);
	tcase_add_test(tc, test_layout_exactly_3g_is_one_region);
	tcase_add_test(tc, test_two_regions_and_hole);
	tcase_add_test(tc, test_init_rejects_bad_sizes);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(guest_mem_suite());
}
