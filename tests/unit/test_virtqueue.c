// SPDX-License-Identifier: Apache-2.0
/*
 * devices/virtqueue: split rings built by hand in a fake 1 MiB guest RAM.
 * Valid chains (direct, indirect, mixed directions), then what a hostile
 * driver can do: loops, overlong chains, bad indexes, addresses outside RAM
 * or wrapping past 2^64, bad lengths, direction violations, malformed
 * indirect tables and a runaway avail idx.  Each must come back as -1 with
 * nothing published and no out-of-bounds access (run under ASan too).
 * Then used-ring publishing and the interrupt/event-idx decisions.
 */
#include "virtqueue.h"

#include "testutil.h"

#define RAM_SIZE (1024 * 1024)
#define DESC_GPA 0x1000ULL   /* up to 1024 descriptors: 0x1000..0x5000 */
#define AVAIL_GPA 0x8000ULL  /* 4 + 2 * 1024 + 2 bytes */
#define USED_GPA 0x9000ULL   /* 4 + 8 * 1024 + 2 bytes */
#define TABLE_GPA 0x10000ULL /* indirect tables */
#define DATA_GPA 0x20000ULL  /* buffers */

struct tq {
	uint8_t *ram;
	struct guest_mem gm;
	struct virtq q;
	struct virtq_chain *c;
	uint16_t avail_idx; /* the driver's next avail slot */
};

static void tq_init(struct tq *t, uint16_t size, bool event_idx, bool indirect)
{
	t->ram = calloc(1, RAM_SIZE);
	t->c = calloc(1, sizeof(*t->c));
	ck_assert_ptr_nonnull(t->ram);
	ck_assert_ptr_nonnull(t->c);
	guest_mem_init_from(&t->gm, t->ram, RAM_SIZE);
	virtq_init(&t->q, &t->gm);
	t->q.size = size;
	t->q.desc_gpa = DESC_GPA;
	t->q.avail_gpa = AVAIL_GPA;
	t->q.used_gpa = USED_GPA;
	t->q.event_idx = event_idx;
	t->q.indirect = indirect;
	t->avail_idx = 0;
	ck_assert_int_eq(virtq_enable(&t->q), 0);
}

static void tq_fini(struct tq *t)
{
	free(t->c);
	free(t->ram);
}

static void put_desc_at(struct tq *t, uint64_t table, unsigned int i, uint64_t addr, uint32_t len,
			uint16_t flags, uint16_t next)
{
	uint8_t *d = t->ram + table + 16ULL * i;

	memcpy(d, &addr, 8);
	tu_put32(d + 8, len);
	tu_put16(d + 12, flags);
	tu_put16(d + 14, next);
}

static void put_desc(struct tq *t, unsigned int i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	put_desc_at(t, DESC_GPA, i, addr, len, flags, next);
}

/* The driver makes 'head' available and publishes the new avail idx. */
static void avail_add(struct tq *t, uint16_t head)
{
	tu_put16(t->ram + AVAIL_GPA + 4 + 2 * (t->avail_idx % t->q.size), head);
	t->avail_idx++;
	tu_put16(t->ram + AVAIL_GPA + 2, t->avail_idx);
}

static void set_avail_idx(struct tq *t, uint16_t idx)
{
	t->avail_idx = idx;
	tu_put16(t->ram + AVAIL_GPA + 2, idx);
}

static uint16_t used_idx(const struct tq *t)
{
	return tu_get16(t->ram + USED_GPA + 2);
}

static uint32_t used_id(const struct tq *t, unsigned int slot)
{
	return tu_get32(t->ram + USED_GPA + 4 + 8 * slot);
}

static uint32_t used_len(const struct tq *t, unsigned int slot)
{
	return tu_get32(t->ram + USED_GPA + 4 + 8 * slot + 4);
}

static void set_used_event(struct tq *t, uint16_t v)
{
	tu_put16(t->ram + AVAIL_GPA + 4 + 2 * t->q.size, v);
}

static uint16_t avail_event(const struct tq *t)
{
	return tu_get16(t->ram + USED_GPA + 4 + 8 * t->q.size);
}

/* Pop must fail, break the queue, publish nothing, and keep failing. */
static void expect_violation(struct tq *t)
{
	ck_assert_int_eq(virtq_pop(&t->q, t->c), -1);
	ck_assert(t->q.broken);
	ck_assert_int_eq(virtq_pop(&t->q, t->c), -1);
	ck_assert_int_eq(virtq_push(&t->q, 0, 0), -1);
	ck_assert_uint_eq(used_idx(t), 0);
}

#define R 0
#define W VIRTQ_DESC_F_WRITE
#define N VIRTQ_DESC_F_NEXT
#define I VIRTQ_DESC_F_INDIRECT

/* ---- valid chains ---- */

START_TEST(test_single_readable)
{
	struct tq t;

	tq_init(&t, 8, false, false);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), 0); /* empty */
	put_desc(&t, 3, DATA_GPA, 100, R, 0);
	avail_add(&t, 3);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), 1);
	ck_assert_uint_eq(t.c->head, 3);
	ck_assert_uint_eq(t.c->nr_readable, 1);
	ck_assert_uint_eq(t.c->nr_writable, 0);
	ck_assert_uint_eq(t.c->readable_len, 100);
	ck_assert_ptr_eq(t.c->iov[0].iov_base, t.ram + DATA_GPA);
	ck_assert_uint_eq(t.c->iov[0].iov_len, 100);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), 0);
	ck_assert_uint_eq(t.q.last_avail_idx, 1);
	tq_fini(&t);
}
END_TEST

START_TEST(test_mixed_directions_and_copies)
{
	struct tq t;
	uint8_t buf[64];

	tq_init(&t, 8, false, false);
	put_desc(&t, 0, DATA_GPA, 10, R | N, 5);
	put_desc(&t, 5, DATA_GPA + 0x100, 20, R | N, 2);
	put_desc(&t, 2, DATA_GPA + 0x200, 7, W | N, 7);
	put_desc(&t, 7, DATA_GPA + 0x300, 9, W, 0);
	for (int i = 0; i < 10; i++)
		t.ram[DATA_GPA + i] = (uint8_t)i;
	for (int i = 0; i < 20; i++)
		t.ram[DATA_GPA + 0x100 + i] = (uint8_t)(10 + i);
	avail_add(&t, 0);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), 1);
	ck_assert_uint_eq(t.c->nr_readable, 2);
	ck_assert_uint_eq(t.c->nr_writable, 2);
	ck_assert_uint_eq(t.c->readable_len, 30);
	ck_assert_uint_eq(t.c->writable_len, 16);
	/* Reads cross the segment boundary and stop at the end of the part. */
	ck_assert_uint_eq(virtq_chain_read(t.c, 7, buf, 6), 6);
	for (int i = 0; i < 6; i++)
		ck_assert_uint_eq(buf[i], 7 + i);
	ck_assert_uint_eq(virtq_chain_read(t.c, 25, buf, 64), 5);
	ck_assert_uint_eq(virtq_chain_read(t.c, 30, buf, 1), 0);
	/* Writes land in the writable part only. */
	memset(buf, 0xee, sizeof(buf));
	ck_assert_uint_eq(virtq_chain_write(t.c, 5, buf, 4), 4);
	ck_assert_uint_eq(t.ram[DATA_GPA + 0x200 + 4], 0);
	ck_assert_uint_eq(t.ram[DATA_GPA + 0x200 + 5], 0xee);
	ck_assert_uint_eq(t.ram[DATA_GPA + 0x200 + 6], 0xee);
	ck_assert_uint_eq(t.ram[DATA_GPA + 0x300 + 0], 0xee);
	ck_assert_uint_eq(t.ram[DATA_GPA + 0x300 + 1], 0xee);
	ck_assert_uint_eq(t.ram[DATA_GPA + 0x300 + 2], 0);
	ck_assert_uint_eq(virtq_chain_write(t.c, 10, buf, 64), 6);
	ck_assert_uint_eq(t.ram[DATA_GPA + 0x300 + 9], 0);
	ck_assert_uint_eq(t.ram[DATA_GPA + 0x100], 10); /* readable untouched */
	tq_fini(&t);
}
END_TEST

START_TEST(test_chain_slice)
{
	struct tq t;
	struct iovec iov[4];

	tq_init(&t, 8, false, false);
	put_desc(&t, 0, DATA_GPA, 10, R | N, 1);
	put_desc(&t, 1, DATA_GPA + 0x100, 20, R | N, 2);
	put_desc(&t, 2, DATA_GPA + 0x200, 8, W, 0);
	avail_add(&t, 0);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), 1);
	ck_assert_int_eq(virtq_chain_slice(t.c, false, 5, 20, iov, 4), 2);
	ck_assert_ptr_eq(iov[0].iov_base, t.ram + DATA_GPA + 5);
	ck_assert_uint_eq(iov[0].iov_len, 5);
	ck_assert_ptr_eq(iov[1].iov_base, t.ram + DATA_GPA + 0x100);
	ck_assert_uint_eq(iov[1].iov_len, 15);
	ck_assert_int_eq(virtq_chain_slice(t.c, true, 0, 7, iov, 4), 1);
	ck_assert_ptr_eq(iov[0].iov_base, t.ram + DATA_GPA + 0x200);
	ck_assert_uint_eq(iov[0].iov_len, 7);
	ck_assert_int_eq(virtq_chain_slice(t.c, false, 0, 0, iov, 4), 0);
	ck_assert_int_eq(virtq_chain_slice(t.c, false, 10, 21, iov, 4), -1); /* past the part */
	ck_assert_int_eq(virtq_chain_slice(t.c, true, 9, 0, iov, 4), -1);
	ck_assert_int_eq(virtq_chain_slice(t.c, false, UINT64_MAX, 2, iov, 4), -1);
	ck_assert_int_eq(virtq_chain_slice(t.c, false, 0, 30, iov, 1), -1); /* too many pieces */
	tq_fini(&t);
}
END_TEST

START_TEST(test_indirect_chain)
{
	struct tq t;

	tq_init(&t, 8, false, true);
	put_desc_at(&t, TABLE_GPA, 0, DATA_GPA, 16, R | N, 2);
	put_desc_at(&t, TABLE_GPA, 2, DATA_GPA + 0x100, 512, W | N, 1);
	put_desc_at(&t, TABLE_GPA, 1, DATA_GPA + 0x400, 1, W, 0);
	/* The WRITE flag on the descriptor naming the table is ignored. */
	put_desc(&t, 4, TABLE_GPA, 3 * 16, I | W, 0);
	avail_add(&t, 4);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), 1);
	ck_assert_uint_eq(t.c->head, 4);
	ck_assert_uint_eq(t.c->nr_readable, 1);
	ck_assert_uint_eq(t.c->nr_writable, 2);
	ck_assert_uint_eq(t.c->readable_len, 16);
	ck_assert_uint_eq(t.c->writable_len, 513);
	ck_assert_ptr_eq(t.c->iov[2].iov_base, t.ram + DATA_GPA + 0x400);
	tq_fini(&t);
}
END_TEST

START_TEST(test_direct_then_indirect)
{
	struct tq t;

	tq_init(&t, 8, false, true);
	put_desc_at(&t, TABLE_GPA, 0, DATA_GPA + 0x100, 64, W, 0);
	put_desc(&t, 0, DATA_GPA, 16, R | N, 1);
	put_desc(&t, 1, TABLE_GPA, 16, I, 0);
	avail_add(&t, 0);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), 1);
	ck_assert_uint_eq(t.c->nr_readable, 1);
	ck_assert_uint_eq(t.c->nr_writable, 1);
	tq_fini(&t);
}
END_TEST

START_TEST(test_zero_length_descriptor_skipped)
{
	struct tq t;

	tq_init(&t, 8, false, false);
	/* A zero-length buffer's address is never used, even if it is junk. */
	put_desc(&t, 0, UINT64_MAX, 0, R | N, 1);
	put_desc(&t, 1, DATA_GPA, 8, W, 0);
	avail_add(&t, 0);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), 1);
	ck_assert_uint_eq(t.c->nr_readable, 0);
	ck_assert_uint_eq(t.c->nr_writable, 1);
	put_desc(&t, 2, RAM_SIZE + 4096, 0, W, 0);
	avail_add(&t, 2);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), 1);
	ck_assert_uint_eq(t.c->nr_readable + t.c->nr_writable, 0);
	tq_fini(&t);
}
END_TEST

START_TEST(test_full_ring_and_wraparound)
{
	struct tq t;

	tq_init(&t, 4, false, false);
	for (int i = 0; i < 4; i++)
		put_desc(&t, i, DATA_GPA + 16 * i, 16, W, 0);
	/* Start near the 16-bit wrap to cover idx arithmetic. */
	t.q.last_avail_idx = 0xfffe;
	t.q.used_idx = 0xfffe;
	t.q.signalled_used = 0xfffe;
	set_avail_idx(&t, 0xfffe);
	for (int i = 0; i < 4; i++)
		avail_add(&t, (uint16_t)i); /* exactly a ring's worth: allowed */
	for (int i = 0; i < 4; i++) {
		ck_assert_int_eq(virtq_pop(&t.q, t.c), 1);
		ck_assert_uint_eq(t.c->head, i);
		ck_assert_int_eq(virtq_push(&t.q, t.c->head, 16), 0);
	}
	ck_assert_int_eq(virtq_pop(&t.q, t.c), 0);
	ck_assert_uint_eq(used_idx(&t), 2);
	/* Slots are taken modulo the size: 0xfffe -> slot 2, 0xffff -> 3, 0 -> 0, 1 -> 1. */
	ck_assert_uint_eq(used_id(&t, 2), 0);
	ck_assert_uint_eq(used_id(&t, 3), 1);
	ck_assert_uint_eq(used_id(&t, 0), 2);
	ck_assert_uint_eq(used_id(&t, 1), 3);
	tq_fini(&t);
}
END_TEST

/* ---- hostile chains ---- */

START_TEST(test_self_loop)
{
	struct tq t;

	tq_init(&t, 8, false, false);
	put_desc(&t, 0, DATA_GPA, 16, R | N, 0);
	avail_add(&t, 0);
	expect_violation(&t);
	tq_fini(&t);
}
END_TEST

START_TEST(test_two_cycle)
{
	struct tq t;

	tq_init(&t, 8, false, false);
	put_desc(&t, 0, DATA_GPA, 16, R | N, 1);
	put_desc(&t, 1, DATA_GPA, 16, R | N, 0);
	avail_add(&t, 0);
	expect_violation(&t);
	tq_fini(&t);
}
END_TEST

START_TEST(test_longest_legal_chain)
{
	struct tq t;

	tq_init(&t, 8, false, false);
	for (int i = 0; i < 8; i++)
		put_desc(&t, i, DATA_GPA, 16, (uint16_t)(R | (i < 7 ? N : 0)), (uint16_t)(i + 1));
	avail_add(&t, 0);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), 1);
	ck_assert_uint_eq(t.c->nr_readable, 8);
	tq_fini(&t);
}
END_TEST

START_TEST(test_chain_longer_than_queue_via_indirect)
{
	struct tq t;

	tq_init(&t, 8, false, true);
	/* A full 8-entry table is fine on its own... */
	for (int i = 0; i < 8; i++)
		put_desc_at(&t, TABLE_GPA, i, DATA_GPA, 16, (uint16_t)(R | (i < 7 ? N : 0)),
			    (uint16_t)(i + 1));
	put_desc(&t, 0, TABLE_GPA, 8 * 16, I, 0);
	avail_add(&t, 0);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), 1);
	/* ...but one direct buffer before it makes 9 hops in a size-8 queue. */
	put_desc(&t, 1, DATA_GPA, 16, R | N, 2);
	put_desc(&t, 2, TABLE_GPA, 8 * 16, I, 0);
	avail_add(&t, 1);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), -1);
	ck_assert(t.q.broken);
	tq_fini(&t);
}
END_TEST

START_TEST(test_indirect_table_loop)
{
	struct tq t;

	tq_init(&t, 8, false, true);
	put_desc_at(&t, TABLE_GPA, 0, DATA_GPA, 16, R | N, 1);
	put_desc_at(&t, TABLE_GPA, 1, DATA_GPA, 16, R | N, 0);
	put_desc(&t, 0, TABLE_GPA, 2 * 16, I, 0);
	avail_add(&t, 0);
	expect_violation(&t);
	tq_fini(&t);
}
END_TEST

START_TEST(test_next_out_of_range)
{
	struct tq t;

	tq_init(&t, 8, false, false);
	put_desc(&t, 0, DATA_GPA, 16, R | N, 8);
	avail_add(&t, 0);
	expect_violation(&t);
	tq_fini(&t);
}
END_TEST

START_TEST(test_indirect_next_out_of_range)
{
	struct tq t;

	tq_init(&t, 8, false, true);
	put_desc_at(&t, TABLE_GPA, 0, DATA_GPA, 16, R | N, 2); /* table has 2 entries */
	put_desc(&t, 0, TABLE_GPA, 2 * 16, I, 0);
	avail_add(&t, 0);
	expect_violation(&t);
	tq_fini(&t);
}
END_TEST

START_TEST(test_head_out_of_range)
{
	struct tq t;

	tq_init(&t, 8, false, false);
	avail_add(&t, 8);
	expect_violation(&t);
	tq_fini(&t);
	tq_init(&t, 8, false, false);
	avail_add(&t, 0xffff);
	expect_violation(&t);
	tq_fini(&t);
}
END_TEST

START_TEST(test_buffer_beyond_ram)
{
	static const struct {
		uint64_t addr;
		uint32_t len;
	} bad[] = {
		{ RAM_SIZE - 8, 16 },       /* straddles the end */
		{ RAM_SIZE, 1 },            /* starts at the end */
		{ 0xc0000000ULL, 4 },       /* the MMIO hole */
		{ 1ULL << 40, 4096 },       /* far away */
		{ UINT64_MAX - 7, 16 },     /* wraps past 2^64 */
		{ UINT64_MAX, 1 },
		{ 0, UINT32_MAX },          /* huge */
		{ DATA_GPA, 0x80000000U },
	};

	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tq t;

		tq_init(&t, 8, false, false);
		put_desc(&t, 0, DATA_GPA, 16, R | N, 1);
		put_desc(&t, 1, bad[i].addr, bad[i].len, W, 0);
		avail_add(&t, 0);
		expect_violation(&t);
		tq_fini(&t);
	}
}
END_TEST

START_TEST(test_last_byte_of_ram_ok)
{
	struct tq t;

	tq_init(&t, 8, false, false);
	put_desc(&t, 0, RAM_SIZE - 1, 1, W, 0);
	avail_add(&t, 0);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), 1);
	ck_assert_ptr_eq(t.c->iov[0].iov_base, t.ram + RAM_SIZE - 1);
	tq_fini(&t);
}
END_TEST

START_TEST(test_chain_byte_cap)
{
	struct tq t;
	unsigned int n = (unsigned int)(VIRTQ_MAX_CHAIN_BYTES / RAM_SIZE);

	/* n descriptors of all of RAM add up to exactly the cap: accepted. */
	tq_init(&t, 512, false, false);
	for (unsigned int i = 0; i < n; i++)
		put_desc(&t, i, 0, RAM_SIZE, (uint16_t)(R | (i + 1 < n ? N : 0)), (uint16_t)(i + 1));
	avail_add(&t, 0);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), 1);
	ck_assert_uint_eq(t.c->readable_len, VIRTQ_MAX_CHAIN_BYTES);
	/* One byte more is refused. */
	put_desc(&t, n - 1, 0, RAM_SIZE, R | N, (uint16_t)n);
	put_desc(&t, n, 0, 1, R, 0);
	avail_add(&t, 0);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), -1);
	ck_assert(t.q.broken);
	tq_fini(&t);
}
END_TEST

START_TEST(test_write_before_read)
{
	struct tq t;

	tq_init(&t, 8, false, false);
	put_desc(&t, 0, DATA_GPA, 16, W | N, 1);
	put_desc(&t, 1, DATA_GPA + 0x100, 16, R, 0);
	avail_add(&t, 0);
	expect_violation(&t);
	tq_fini(&t);
}
END_TEST

START_TEST(test_write_before_read_in_indirect)
{
	struct tq t;

	tq_init(&t, 8, false, true);
	put_desc(&t, 0, DATA_GPA, 16, W | N, 1);
	put_desc(&t, 1, TABLE_GPA, 16, I, 0);
	put_desc_at(&t, TABLE_GPA, 0, DATA_GPA + 0x100, 16, R, 0);
	avail_add(&t, 0);
	expect_violation(&t);
	tq_fini(&t);
}
END_TEST

START_TEST(test_indirect_not_negotiated)
{
	struct tq t;

	tq_init(&t, 8, false, false);
	put_desc_at(&t, TABLE_GPA, 0, DATA_GPA, 16, R, 0);
	put_desc(&t, 0, TABLE_GPA, 16, I, 0);
	avail_add(&t, 0);
	expect_violation(&t);
	tq_fini(&t);
}
END_TEST

START_TEST(test_indirect_inside_indirect)
{
	struct tq t;

	tq_init(&t, 8, false, true);
	put_desc_at(&t, TABLE_GPA + 0x100, 0, DATA_GPA, 16, R, 0);
	put_desc_at(&t, TABLE_GPA, 0, TABLE_GPA + 0x100, 16, I, 0);
	put_desc(&t, 0, TABLE_GPA, 16, I, 0);
	avail_add(&t, 0);
	expect_violation(&t);
	tq_fini(&t);
}
END_TEST

START_TEST(test_indirect_self_reference)
{
	struct tq t;

	/* A table whose entry names the table itself must not recurse. */
	tq_init(&t, 8, false, true);
	put_desc_at(&t, TABLE_GPA, 0, TABLE_GPA, 16, I, 0);
	put_desc(&t, 0, TABLE_GPA, 16, I, 0);
	avail_add(&t, 0);
	expect_violation(&t);
	tq_fini(&t);
}
END_TEST

START_TEST(test_indirect_with_next)
{
	struct tq t;

	tq_init(&t, 8, false, true);
	put_desc_at(&t, TABLE_GPA, 0, DATA_GPA, 16, R, 0);
	put_desc(&t, 0, TABLE_GPA, 16, I | N, 1);
	put_desc(&t, 1, DATA_GPA, 16, W, 0);
	avail_add(&t, 0);
	expect_violation(&t);
	tq_fini(&t);
}
END_TEST

START_TEST(test_indirect_bad_tables)
{
	static const struct {
		uint64_t addr;
		uint32_t len;
	} bad[] = {
		{ TABLE_GPA, 0 },              /* empty */
		{ TABLE_GPA, 24 },             /* not a multiple of 16 */
		{ TABLE_GPA, 15 },
		{ TABLE_GPA, 9 * 16 },         /* more entries than the queue size */
		{ TABLE_GPA, UINT32_MAX & ~15U },
		{ RAM_SIZE - 16, 32 },         /* beyond RAM */
		{ UINT64_MAX - 15, 32 },       /* wraps past 2^64 */
	};

	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		struct tq t;

		tq_init(&t, 8, false, true);
		put_desc(&t, 0, bad[i].addr, bad[i].len, I, 0);
		avail_add(&t, 0);
		expect_violation(&t);
		tq_fini(&t);
	}
}
END_TEST

START_TEST(test_avail_idx_runaway)
{
	struct tq t;

	tq_init(&t, 8, false, false);
	put_desc(&t, 0, DATA_GPA, 16, R, 0);
	set_avail_idx(&t, 9); /* size + 1 ahead */
	expect_violation(&t);
	tq_fini(&t);

	tq_init(&t, 8, false, false);
	set_avail_idx(&t, 0x8000);
	expect_violation(&t);
	tq_fini(&t);

	/* Going backwards looks like a huge jump too. */
	tq_init(&t, 8, false, false);
	put_desc(&t, 0, DATA_GPA, 16, R, 0);
	avail_add(&t, 0);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), 1);
	ck_assert_int_eq(virtq_push(&t.q, 0, 0), 0);
	set_avail_idx(&t, 0);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), -1);
	ck_assert_uint_eq(used_idx(&t), 1);
	tq_fini(&t);
}
END_TEST

START_TEST(test_broken_until_reset)
{
	struct tq t;

	tq_init(&t, 8, false, false);
	avail_add(&t, 9);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), -1);
	/* Fixing the ring does not revive the queue... */
	set_avail_idx(&t, 0);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), -1);
	/* ...a reset and a fresh enable do. */
	virtq_reset(&t.q);
	ck_assert(!t.q.broken);
	ck_assert(!t.q.ready);
	ck_assert_ptr_eq(t.q.gm, &t.gm);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), 0); /* not ready: nothing */
	t.q.size = 8;
	t.q.desc_gpa = DESC_GPA;
	t.q.avail_gpa = AVAIL_GPA;
	t.q.used_gpa = USED_GPA;
	ck_assert_int_eq(virtq_enable(&t.q), 0);
	put_desc(&t, 0, DATA_GPA, 16, R, 0);
	avail_add(&t, 0);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), 1);
	tq_fini(&t);
}
END_TEST

/* ---- enable-time checks ---- */

static int try_enable(uint32_t size, uint64_t desc, uint64_t avail, uint64_t used, bool event_idx)
{
	uint8_t *ram = calloc(1, RAM_SIZE);
	struct guest_mem gm;
	struct virtq q;
	int r;

	guest_mem_init_from(&gm, ram, RAM_SIZE);
	virtq_init(&q, &gm);
	q.size = (uint16_t)size;
	q.desc_gpa = desc;
	q.avail_gpa = avail;
	q.used_gpa = used;
	q.event_idx = event_idx;
	r = virtq_enable(&q);
	ck_assert_int_eq(q.ready, r == 0);
	free(ram);
	return r;
}

START_TEST(test_enable_checks)
{
	ck_assert_int_eq(try_enable(8, DESC_GPA, AVAIL_GPA, USED_GPA, false), 0);
	ck_assert_int_eq(try_enable(1, DESC_GPA, AVAIL_GPA, USED_GPA, false), 0);
	ck_assert_int_eq(try_enable(VIRTQ_MAX_SIZE, DESC_GPA, AVAIL_GPA, USED_GPA, true), 0);
	ck_assert_int_eq(try_enable(0, DESC_GPA, AVAIL_GPA, USED_GPA, false), -1);
	ck_assert_int_eq(try_enable(3, DESC_GPA, AVAIL_GPA, USED_GPA, false), -1);
	ck_assert_int_eq(try_enable(VIRTQ_MAX_SIZE * 2, DESC_GPA, AVAIL_GPA, USED_GPA, false), -1);
	/* Alignment: desc 16, avail 2, used 4. */
	ck_assert_int_eq(try_enable(8, DESC_GPA + 8, AVAIL_GPA, USED_GPA, false), -1);
	ck_assert_int_eq(try_enable(8, DESC_GPA, AVAIL_GPA + 1, USED_GPA, false), -1);
	ck_assert_int_eq(try_enable(8, DESC_GPA, AVAIL_GPA, USED_GPA + 2, false), -1);
	/* Outside RAM, partly outside, wrapping. */
	ck_assert_int_eq(try_enable(8, RAM_SIZE - 64, AVAIL_GPA, USED_GPA, false), -1);
	ck_assert_int_eq(try_enable(8, DESC_GPA, RAM_SIZE, USED_GPA, false), -1);
	ck_assert_int_eq(try_enable(8, DESC_GPA, AVAIL_GPA, 0xc0000000ULL, false), -1);
	ck_assert_int_eq(try_enable(8, UINT64_MAX - 15, AVAIL_GPA, USED_GPA, false), -1);
	ck_assert_int_eq(try_enable(8, DESC_GPA, UINT64_MAX - 1, USED_GPA, false), -1);
	/* The event fields need 2 more bytes in each ring. */
	ck_assert_int_eq(try_enable(8, DESC_GPA, RAM_SIZE - 20, USED_GPA, false), 0);
	ck_assert_int_eq(try_enable(8, DESC_GPA, RAM_SIZE - 20, USED_GPA, true), -1);
	ck_assert_int_eq(try_enable(8, DESC_GPA, AVAIL_GPA, RAM_SIZE - 68, false), 0);
	ck_assert_int_eq(try_enable(8, DESC_GPA, AVAIL_GPA, RAM_SIZE - 68, true), -1);
}
END_TEST

/* ---- used ring and notifications ---- */

START_TEST(test_push_publishes)
{
	struct tq t;

	tq_init(&t, 8, false, false);
	put_desc(&t, 6, DATA_GPA, 64, W, 0);
	avail_add(&t, 6);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), 1);
	ck_assert_int_eq(virtq_push(&t.q, 6, 42), 0);
	ck_assert_uint_eq(used_idx(&t), 1);
	ck_assert_uint_eq(used_id(&t, 0), 6);
	ck_assert_uint_eq(used_len(&t, 0), 42);
	/* A head outside the queue is the device's bug: refused, nothing written. */
	ck_assert_int_eq(virtq_push(&t.q, 8, 1), -1);
	ck_assert_uint_eq(used_idx(&t), 1);
	ck_assert_uint_eq(used_id(&t, 1), 0);
	tq_fini(&t);
}
END_TEST

START_TEST(test_interrupt_without_event_idx)
{
	struct tq t;

	tq_init(&t, 8, false, false);
	ck_assert(!virtq_needs_interrupt(&t.q)); /* nothing pushed */
	ck_assert_int_eq(virtq_push(&t.q, 0, 0), 0);
	ck_assert(virtq_needs_interrupt(&t.q));
	ck_assert(!virtq_needs_interrupt(&t.q)); /* already decided */
	tu_put16(t.ram + AVAIL_GPA, VIRTQ_AVAIL_F_NO_INTERRUPT);
	ck_assert_int_eq(virtq_push(&t.q, 1, 0), 0);
	ck_assert(!virtq_needs_interrupt(&t.q));
	tu_put16(t.ram + AVAIL_GPA, 0);
	ck_assert_int_eq(virtq_push(&t.q, 2, 0), 0);
	ck_assert(virtq_needs_interrupt(&t.q));
	tq_fini(&t);
}
END_TEST

START_TEST(test_interrupt_with_event_idx)
{
	struct tq t;

	tq_init(&t, 8, true, false);
	/* NO_INTERRUPT is ignored once event idx is in use. */
	tu_put16(t.ram + AVAIL_GPA, VIRTQ_AVAIL_F_NO_INTERRUPT);
	set_used_event(&t, 0);
	ck_assert_int_eq(virtq_push(&t.q, 0, 0), 0); /* used idx 0 -> 1 passes 0 */
	ck_assert(virtq_needs_interrupt(&t.q));
	/* The driver wants to hear when entry 4 is used (idx goes from 4 to 5). */
	set_used_event(&t, 4);
	for (int i = 2; i <= 7; i++) {
		ck_assert_int_eq(virtq_push(&t.q, 0, 0), 0);
		ck_assert_uint_eq(t.q.used_idx, i);
		ck_assert_int_eq(virtq_needs_interrupt(&t.q), i == 5);
	}
	/* A batch that steps over the event in one go still interrupts. */
	set_used_event(&t, 7);
	for (int i = 0; i < 3; i++)
		ck_assert_int_eq(virtq_push(&t.q, 0, 0), 0);
	ck_assert_uint_eq(t.q.used_idx, 10);
	ck_assert(virtq_needs_interrupt(&t.q));
	/* An event already behind us: no interrupt. */
	set_used_event(&t, 3);
	ck_assert_int_eq(virtq_push(&t.q, 0, 0), 0);
	ck_assert(!virtq_needs_interrupt(&t.q));
	tq_fini(&t);
}
END_TEST

START_TEST(test_avail_event_written)
{
	struct tq t;

	tq_init(&t, 8, true, false);
	tu_put16(t.ram + USED_GPA + 4 + 8 * 8, 0x5555);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), 0);
	ck_assert_uint_eq(avail_event(&t), 0);
	put_desc(&t, 0, DATA_GPA, 16, R, 0);
	avail_add(&t, 0);
	avail_add(&t, 0);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), 1);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), 1);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), 0);
	/* "Notify me when you make entry 2 available." */
	ck_assert_uint_eq(avail_event(&t), 2);
	tq_fini(&t);
}
END_TEST

/* The diagnostics line shows both sides: the device's indexes and what the rings hold. */
START_TEST(test_describe)
{
	char line[256];
	struct tq t;

	tq_init(&t, 8, true, false);
	put_desc(&t, 0, DATA_GPA, 16, W, 0);
	avail_add(&t, 0);
	avail_add(&t, 0);
	set_used_event(&t, 5);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), 1);
	ck_assert_int_eq(virtq_push(&t.q, t.c->head, 16), 0);
	virtq_describe(&t.q, line, sizeof(line));
	ck_assert_str_eq(line, "size 8 ready 1 broken 0 event_idx 1 last_avail 1 used 1 signalled 0"
			       " | avail flags 0 idx 2 used_event 5 | used flags 0 idx 1 avail_event 0");
	/* Too small a buffer: cut, terminated, never overrun. */
	memset(line, 'x', sizeof(line));
	virtq_describe(&t.q, line, 20);
	ck_assert_uint_eq(strlen(line), 19);
	ck_assert_int_eq(line[20], 'x');
	t.q.ready = false;
	virtq_describe(&t.q, line, sizeof(line));
	ck_assert_str_eq(line, "size 8 ready 0 broken 0 event_idx 1 last_avail 1 used 1 signalled 0");
	tq_fini(&t);
}
END_TEST

START_TEST(test_no_event_fields_without_event_idx)
{
	struct tq t;

	tq_init(&t, 8, false, false);
	tu_put16(t.ram + USED_GPA + 4 + 8 * 8, 0x5555);
	ck_assert_int_eq(virtq_pop(&t.q, t.c), 0);
	ck_assert_uint_eq(avail_event(&t), 0x5555);
	tq_fini(&t);
}
END_TEST

static Suite *virtqueue_suite(void)
{
	Suite *s = suite_create("virtqueue");
	TCase *ok = tcase_create("valid");
	TCase *bad = tcase_create("hostile");
	TCase *ring = tcase_create("rings");

	tcase_add_test(ok, test_single_readable);
	tcase_add_test(ok, test_mixed_directions_and_copies);
	tcase_add_test(ok, test_chain_slice);
	tcase_add_test(ok, test_indirect_chain);
	tcase_add_test(ok, test_direct_then_indirect);
	tcase_add_test(ok, test_zero_length_descriptor_skipped);
	tcase_add_test(ok, test_full_ring_and_wraparound);
	tcase_add_test(ok, test_longest_legal_chain);
	tcase_add_test(ok, test_last_byte_of_ram_ok);
	suite_add_tcase(s, ok);

	tcase_add_test(bad, test_self_loop);
	tcase_add_test(bad, test_two_cycle);
	tcase_add_test(bad, test_chain_longer_than_queue_via_indirect);
	tcase_add_test(bad, test_indirect_table_loop);
	tcase_add_test(bad, test_next_out_of_range);
	tcase_add_test(bad, test_indirect_next_out_of_range);
	tcase_add_test(bad, test_head_out_of_range);
	tcase_add_test(bad, test_buffer_beyond_ram);
	tcase_add_test(bad, test_chain_byte_cap);
	tcase_add_test(bad, test_write_before_read);
	tcase_add_test(bad, test_write_before_read_in_indirect);
	tcase_add_test(bad, test_indirect_not_negotiated);
	tcase_add_test(bad, test_indirect_inside_indirect);
	tcase_add_test(bad, test_indirect_self_reference);
	tcase_add_test(bad, test_indirect_with_next);
	tcase_add_test(bad, test_indirect_bad_tables);
	tcase_add_test(bad, test_avail_idx_runaway);
	tcase_add_test(bad, test_broken_until_reset);
	suite_add_tcase(s, bad);

	tcase_add_test(ring, test_enable_checks);
	tcase_add_test(ring, test_push_publishes);
	tcase_add_test(ring, test_interrupt_without_event_idx);
	tcase_add_test(ring, test_interrupt_with_event_idx);
	tcase_add_test(ring, test_avail_event_written);
	tcase_add_test(ring, test_no_event_fields_without_event_idx);
	tcase_add_test(ring, test_describe);
	suite_add_tcase(s, ring);
	return s;
}

int main(void)
{
	return tu_run(virtqueue_suite());
}
