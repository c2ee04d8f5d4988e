// SPDX-License-Identifier: Apache-2.0
/*
 * devices/virtio_blk: a temp-file disk driven through the virtio-mmio
 * registers by a small guest driver written here over fake guest RAM.
 * Round trips (bytes compared in guest RAM and in the file), multi-segment
 * I/O, flush, GET_ID, config space, then the refusals: out-of-range
 * sectors, unaligned lengths, oversized segments, writes to a read-only
 * disk (file hash unchanged), unknown types, and chains too malformed to
 * carry a status, which break the device until reset.
 */
#include "virtio_blk.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "testutil.h"

#define RAM_SIZE (4 * 1024 * 1024)
#define DESC_GPA 0x1000ULL
#define AVAIL_GPA 0x2000ULL
#define USED_GPA 0x3000ULL
#define HDR_GPA 0x10000ULL
#define STATUS_GPA 0x10100ULL
#define DATA_GPA 0x100000ULL /* up to 3 MiB of data buffers */
#define QSIZE 16

#define DISK_SIZE (4 * 1024 * 1024)
#define DISK_SECTORS (DISK_SIZE / 512)
#define DISK_ID "msvmm-test-disk"

#define ACK VIRTIO_STATUS_ACKNOWLEDGE
#define DRV VIRTIO_STATUS_DRIVER
#define FOK VIRTIO_STATUS_FEATURES_OK
#define DOK VIRTIO_STATUS_DRIVER_OK
#define BIT(n) (1ULL << (n))

struct bt {
	struct virtio_blk *b;
	uint8_t *ram;
	struct guest_mem gm;
	int fd;
	uint16_t avail_idx;
	int irqs;
};

/* One guest buffer of a request. */
struct seg {
	uint64_t gpa;
	uint32_t len;
	bool writable;
};

static void count_irq(void *opaque)
{
	((struct bt *)opaque)->irqs++;
}

/* A sparse temp file of 'size' bytes with a known pattern in its first 64 KiB. */
static int make_disk(off_t size, bool read_only)
{
	char path[] = "/tmp/msvmm-blk-XXXXXX";
	int fd = mkstemp(path);
	uint8_t buf[4096];
	int ro;

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, size), 0);
	for (off_t off = 0; off < 65536 && off < size; off += (off_t)sizeof(buf)) {
		size_t n = size - off < (off_t)sizeof(buf) ? (size_t)(size - off) : sizeof(buf);

		for (size_t i = 0; i < n; i++)
			buf[i] = (uint8_t)((off + (off_t)i) * 7 + 3);
		ck_assert_int_eq(pwrite(fd, buf, n, off), (ssize_t)n);
	}
	if (read_only) {
		ro = open(path, O_RDONLY | O_CLOEXEC);
		ck_assert_int_ge(ro, 0);
		close(fd);
		fd = ro;
	}
	unlink(path);
	return fd;
}

static uint64_t file_hash(int fd)
{
	uint64_t h = 14695981039346656037ULL;
	uint8_t buf[65536];
	ssize_t n;
	off_t off = 0;

	while ((n = pread(fd, buf, sizeof(buf), off)) > 0) {
		for (ssize_t i = 0; i < n; i++)
			h = (h ^ buf[i]) * 1099511628211ULL;
		off += n;
	}
	ck_assert_int_eq(n, 0);
	return h;
}

static uint32_t rd(struct bt *t, uint64_t off)
{
	uint8_t b[4];

	virtio_mmio_access(&t->b->mmio, off, b, 4, false);
	return tu_get32(b);
}

static void wr(struct bt *t, uint64_t off, uint32_t v)
{
	uint8_t b[4];

	tu_put32(b, v);
	virtio_mmio_access(&t->b->mmio, off, b, 4, true);
}

static uint64_t device_features(struct bt *t)
{
	uint64_t f;

	wr(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	f = rd(t, VIRTIO_MMIO_DEVICE_FEATURES);
	wr(t, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	return f | (uint64_t)rd(t, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
}

/* What Linux's probe does, in register writes. */
static void driver_bring_up(struct bt *t)
{
	uint64_t want = device_features(t) & ~BIT(VIRTIO_RING_F_EVENT_IDX);

	wr(t, VIRTIO_MMIO_STATUS, 0);
	ck_assert_uint_eq(rd(t, VIRTIO_MMIO_MAGIC_VALUE), VIRTIO_MMIO_MAGIC);
	ck_assert_uint_eq(rd(t, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_BLOCK);
	wr(t, VIRTIO_MMIO_STATUS, ACK);
	wr(t, VIRTIO_MMIO_STATUS, ACK | DRV);
	wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)want);
	wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(want >> 32));
	wr(t, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	ck_assert_uint_eq(rd(t, VIRTIO_MMIO_STATUS), ACK | DRV | FOK);
	wr(t, VIRTIO_MMIO_QUEUE_SEL, 0);
	ck_assert_uint_eq(rd(t, VIRTIO_MMIO_QUEUE_NUM_MAX), VIRTIO_BLK_QUEUE_SIZE);
	wr(t, VIRTIO_MMIO_QUEUE_NUM, QSIZE);
	wr(t, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)DESC_GPA);
	wr(t, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)AVAIL_GPA);
	wr(t, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)USED_GPA);
	wr(t, VIRTIO_MMIO_QUEUE_READY, 1);
	ck_assert_uint_eq(rd(t, VIRTIO_MMIO_QUEUE_READY), 1);
	wr(t, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
	memset(t->ram + AVAIL_GPA, 0, 0x1000);
	memset(t->ram + USED_GPA, 0, 0x1000);
	t->avail_idx = 0;
}

static void bt_init_fd(struct bt *t, int fd, bool read_only)
{
	memset(t, 0, sizeof(*t));
	t->ram = calloc(1, RAM_SIZE);
	t->b = calloc(1, sizeof(*t->b));
	ck_assert_ptr_nonnull(t->ram);
	ck_assert_ptr_nonnull(t->b);
	guest_mem_init_from(&t->gm, t->ram, RAM_SIZE);
	t->fd = fd;
	ck_assert_int_eq(virtio_blk_init(t->b, &t->gm, fd, read_only, DISK_ID), 0);
	virtio_mmio_set_irq(&t->b->mmio, count_irq, t);
	driver_bring_up(t);
}

static void bt_init(struct bt *t, bool read_only)
{
	bt_init_fd(t, make_disk(DISK_SIZE, read_only), read_only);
}

static void bt_fini(struct bt *t)
{
	virtio_blk_destroy(t->b);
	close(t->fd);
	free(t->b);
	free(t->ram);
}

static uint16_t used_idx(struct bt *t)
{
	return tu_get16(t->ram + USED_GPA + 2);
}

/*
 * Post one chain made of 'segs' (descriptors 0..n-1) and kick through the
 * QueueNotify register.  Returns used.len, or -1 if nothing was used.
 */
static int64_t run_chain(struct bt *t, const struct seg *segs, unsigned int n)
{
	uint16_t before = used_idx(t);
	uint8_t *elem;

	for (unsigned int i = 0; i < n; i++) {
		uint8_t *d = t->ram + DESC_GPA + 16 * i;
		uint16_t flags = (uint16_t)((segs[i].writable ? VIRTQ_DESC_F_WRITE : 0) |
					    (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0));

		memcpy(d, &segs[i].gpa, 8);
		tu_put32(d + 8, segs[i].len);
		tu_put16(d + 12, flags);
		tu_put16(d + 14, (uint16_t)(i + 1));
	}
	tu_put16(t->ram + AVAIL_GPA + 4 + 2 * (t->avail_idx % QSIZE), 0);
	t->avail_idx++;
	tu_put16(t->ram + AVAIL_GPA + 2, t->avail_idx);
	wr(t, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	if (used_idx(t) == before)
		return -1;
	ck_assert_uint_eq(used_idx(t), (uint16_t)(before + 1));
	elem = t->ram + USED_GPA + 4 + 8 * (before % QSIZE);
	ck_assert_uint_eq(tu_get32(elem), 0);
	return tu_get32(elem + 4);
}

static void put_header(struct bt *t, uint32_t type, uint64_t sector)
{
	uint8_t *h = t->ram + HDR_GPA;

	tu_put32(h, type);
	tu_put32(h + 4, 0);
	memcpy(h + 8, &sector, 8);
}

/* A request laid out as Linux does it: header, one data buffer, status. */
static uint8_t blk_req(struct bt *t, uint32_t type, uint64_t sector, uint32_t len, bool data_in,
		       int64_t *used_len)
{
	struct seg segs[3];
	unsigned int n = 0;
	int64_t used;

	put_header(t, type, sector);
	t->ram[STATUS_GPA] = 0xff;
	segs[n++] = (struct seg){ HDR_GPA, 16, false };
	if (len)
		segs[n++] = (struct seg){ DATA_GPA, len, data_in };
	segs[n++] = (struct seg){ STATUS_GPA, 1, true };
	used = run_chain(t, segs, n);
	ck_assert_int_ge(used, 1);
	if (used_len)
		*used_len = used;
	return t->ram[STATUS_GPA];
}

static void fill_pattern(uint8_t *p, size_t len, unsigned int seed)
{
	for (size_t i = 0; i < len; i++)
		p[i] = (uint8_t)(i * 13 + seed);
}

START_TEST(test_config_and_features)
{
	struct bt t;
	uint8_t b[8];
	uint64_t f;

	bt_init(&t, false);
	f = device_features(&t);
	ck_assert(f & BIT(VIRTIO_F_VERSION_1));
	ck_assert(f & BIT(VIRTIO_BLK_F_FLUSH));
	ck_assert(f & BIT(VIRTIO_BLK_F_BLK_SIZE));
	ck_assert(f & BIT(VIRTIO_BLK_F_SEG_MAX));
	ck_assert(f & BIT(VIRTIO_BLK_F_SIZE_MAX));
	ck_assert(!(f & BIT(VIRTIO_BLK_F_RO)));
	ck_assert(!(f & BIT(VIRTIO_RING_F_INDIRECT_DESC)));
	virtio_mmio_access(&t.b->mmio, VIRTIO_MMIO_CONFIG, b, 8, false);
	ck_assert_uint_eq(tu_get64(b), DISK_SECTORS);
	ck_assert_uint_eq(rd(&t, VIRTIO_MMIO_CONFIG + 8), VIRTIO_BLK_SIZE_MAX);
	ck_assert_uint_eq(rd(&t, VIRTIO_MMIO_CONFIG + 12), VIRTIO_BLK_SEG_MAX);
	ck_assert_uint_eq(rd(&t, VIRTIO_MMIO_CONFIG + 20), 512);
	/* Past the config struct: zeroes. */
	ck_assert_uint_eq(rd(&t, VIRTIO_MMIO_CONFIG + 24), 0);
	virtio_mmio_access(&t.b->mmio, VIRTIO_MMIO_CONFIG + 20, b, 8, false);
	ck_assert_uint_eq(tu_get64(b), 0);
	/* Writes change nothing. */
	wr(&t, VIRTIO_MMIO_CONFIG, 1);
	virtio_mmio_access(&t.b->mmio, VIRTIO_MMIO_CONFIG, b, 8, false);
	ck_assert_uint_eq(tu_get64(b), DISK_SECTORS);
	bt_fini(&t);
}
END_TEST

START_TEST(test_init_checks)
{
	struct virtio_blk *b = calloc(1, sizeof(*b));
	uint8_t ram[4096];
	struct guest_mem gm;
	int fds[2];
	int fd;

	guest_mem_init_from(&gm, ram, sizeof(ram));
	ck_assert_int_eq(virtio_blk_init(b, &gm, -1, false, NULL), -EBADF);
	ck_assert_int_eq(pipe(fds), 0);
	ck_assert_int_eq(virtio_blk_init(b, &gm, fds[0], false, NULL), -EINVAL);
	close(fds[0]);
	close(fds[1]);
	/* A trailing partial sector is not part of the disk. */
	fd = make_disk(1000, false);
	ck_assert_int_eq(virtio_blk_init(b, &gm, fd, true, NULL), 0);
	ck_assert_uint_eq(b->capacity, 1);
	ck_assert(b->ops.features & BIT(VIRTIO_BLK_F_RO));
	virtio_blk_destroy(b);
	close(fd);
	free(b);
}
END_TEST

START_TEST(test_write_then_read_back)
{
	struct bt t;
	uint8_t expect[2048], file[2048];
	int64_t used;

	bt_init(&t, false);
	fill_pattern(expect, sizeof(expect), 5);
	memcpy(t.ram + DATA_GPA, expect, sizeof(expect));
	ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_OUT, 10, 2048, false, &used), VIRTIO_BLK_S_OK);
	ck_assert_int_eq(used, 1);
	ck_assert_int_eq(pread(t.fd, file, sizeof(file), 10 * 512), (ssize_t)sizeof(file));
	ck_assert_mem_eq(file, expect, sizeof(expect));
	memset(t.ram + DATA_GPA, 0, sizeof(expect));
	ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_IN, 10, 2048, true, &used), VIRTIO_BLK_S_OK);
	ck_assert_int_eq(used, 2048 + 1);
	ck_assert_mem_eq(t.ram + DATA_GPA, expect, sizeof(expect));
	ck_assert_int_ge(t.irqs, 2);
	/* The last sector of the disk is reachable. */
	ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_OUT, DISK_SECTORS - 1, 512, false, NULL),
			  VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_IN, DISK_SECTORS - 1, 512, true, NULL),
			  VIRTIO_BLK_S_OK);
	ck_assert_mem_eq(t.ram + DATA_GPA, expect, 512);
	/* Zero-length transfers are no-ops that succeed. */
	ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_IN, DISK_SECTORS, 0, true, NULL), VIRTIO_BLK_S_OK);
	bt_fini(&t);
}
END_TEST

START_TEST(test_read_existing_contents)
{
	struct bt t;
	uint8_t expect[1024];

	bt_init(&t, false);
	ck_assert_int_eq(pread(t.fd, expect, sizeof(expect), 3 * 512), (ssize_t)sizeof(expect));
	ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_IN, 3, 1024, true, NULL), VIRTIO_BLK_S_OK);
	ck_assert_mem_eq(t.ram + DATA_GPA, expect, sizeof(expect));
	bt_fini(&t);
}
END_TEST

START_TEST(test_scattered_segments)
{
	struct bt t;
	uint8_t expect[2048], file[2048];
	struct seg segs[6];
	int64_t used;

	bt_init(&t, false);
	fill_pattern(expect, sizeof(expect), 77);
	/* OUT: header and first 100 data bytes share a descriptor (any layout). */
	put_header(&t, VIRTIO_BLK_T_OUT, 20);
	memcpy(t.ram + HDR_GPA + 16, expect, 100);
	memcpy(t.ram + DATA_GPA + 0x1000, expect + 100, 412);
	memcpy(t.ram + DATA_GPA, expect + 512, 1536);
	segs[0] = (struct seg){ HDR_GPA, 16 + 100, false };
	segs[1] = (struct seg){ DATA_GPA + 0x1000, 412, false };
	segs[2] = (struct seg){ DATA_GPA, 1536, false };
	segs[3] = (struct seg){ STATUS_GPA, 1, true };
	t.ram[STATUS_GPA] = 0xff;
	ck_assert_int_eq(run_chain(&t, segs, 4), 1);
	ck_assert_uint_eq(t.ram[STATUS_GPA], VIRTIO_BLK_S_OK);
	ck_assert_int_eq(pread(t.fd, file, sizeof(file), 20 * 512), (ssize_t)sizeof(file));
	ck_assert_mem_eq(file, expect, sizeof(expect));
	/* IN: three data pieces, the last one also holding the status byte. */
	memset(t.ram + DATA_GPA, 0, 0x10000);
	put_header(&t, VIRTIO_BLK_T_IN, 20);
	segs[0] = (struct seg){ HDR_GPA, 16, false };
	segs[1] = (struct seg){ DATA_GPA + 0x2000, 1000, true };
	segs[2] = (struct seg){ DATA_GPA + 0x4000, 24, true };
	segs[3] = (struct seg){ DATA_GPA + 0x8000, 1024 + 1, true };
	used = run_chain(&t, segs, 4);
	ck_assert_int_eq(used, 2048 + 1);
	ck_assert_uint_eq(t.ram[DATA_GPA + 0x8000 + 1024], VIRTIO_BLK_S_OK);
	ck_assert_mem_eq(t.ram + DATA_GPA + 0x2000, expect, 1000);
	ck_assert_mem_eq(t.ram + DATA_GPA + 0x4000, expect + 1000, 24);
	ck_assert_mem_eq(t.ram + DATA_GPA + 0x8000, expect + 1024, 1024);
	bt_fini(&t);
}
END_TEST

START_TEST(test_flush)
{
	struct bt t;

	bt_init(&t, false);
	ck_assert_uint_eq(t.b->flushes, 0);
	ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_FLUSH, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_FLUSH, 12345, 0, false, NULL), VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(t.b->flushes, 2);
	bt_fini(&t);
}
END_TEST

START_TEST(test_get_id)
{
	struct bt t;
	uint8_t expect[VIRTIO_BLK_ID_BYTES] = DISK_ID;
	int64_t used;

	bt_init(&t, false);
	memset(t.ram + DATA_GPA, 0xff, 64);
	ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_GET_ID, 0, VIRTIO_BLK_ID_BYTES, true, &used),
			  VIRTIO_BLK_S_OK);
	ck_assert_int_eq(used, VIRTIO_BLK_ID_BYTES + 1);
	ck_assert_mem_eq(t.ram + DATA_GPA, expect, VIRTIO_BLK_ID_BYTES);
	/* A short buffer gets a truncated id; nothing past it is touched. */
	memset(t.ram + DATA_GPA, 0xff, 64);
	ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_GET_ID, 0, 4, true, &used), VIRTIO_BLK_S_OK);
	ck_assert_int_eq(used, 5);
	ck_assert_mem_eq(t.ram + DATA_GPA, "msvm", 4);
	ck_assert_uint_eq(t.ram[DATA_GPA + 4], 0xff);
	bt_fini(&t);
}
END_TEST

START_TEST(test_sector_out_of_range)
{
	static const struct {
		uint64_t sector;
		uint32_t len;
	} bad[] = {
		{ DISK_SECTORS, 512 },
		{ DISK_SECTORS - 1, 1024 },
		{ DISK_SECTORS + 1, 0 },
		{ UINT64_MAX, 512 },
		{ UINT64_MAX >> 9, 512 },
		{ (UINT64_MAX >> 9) + 1, 512 },
		{ 1ULL << 55, 4096 },
	};
	struct bt t;
	uint64_t before;

	bt_init(&t, false);
	before = file_hash(t.fd);
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_IN, bad[i].sector, bad[i].len, true, NULL),
				  VIRTIO_BLK_S_IOERR);
		ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_OUT, bad[i].sector, bad[i].len, false, NULL),
				  VIRTIO_BLK_S_IOERR);
	}
	ck_assert_uint_eq(file_hash(t.fd), before);
	ck_assert_uint_eq(virtio_mmio_status(&t.b->mmio) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
	bt_fini(&t);
}
END_TEST

START_TEST(test_unaligned_length)
{
	struct bt t;
	uint64_t before;
	int64_t used;

	bt_init(&t, false);
	before = file_hash(t.fd);
	ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_IN, 0, 100, true, &used), VIRTIO_BLK_S_IOERR);
	ck_assert_int_eq(used, 1);
	ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_IN, 0, 513, true, NULL), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_OUT, 0, 511, false, NULL), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_OUT, 0, 1023, false, NULL), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(file_hash(t.fd), before);
	bt_fini(&t);
}
END_TEST

START_TEST(test_segment_size_limit)
{
	struct bt t;

	bt_init(&t, false);
	ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_IN, 0, VIRTIO_BLK_SIZE_MAX, true, NULL),
			  VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_IN, 0, VIRTIO_BLK_SIZE_MAX + 512, true, NULL),
			  VIRTIO_BLK_S_IOERR);
	bt_fini(&t);
}
END_TEST

START_TEST(test_read_only_refuses_writes)
{
	struct bt t;
	uint8_t expect[512];
	uint64_t before;

	bt_init(&t, true);
	ck_assert(device_features(&t) & BIT(VIRTIO_BLK_F_RO));
	before = file_hash(t.fd);
	fill_pattern(t.ram + DATA_GPA, 4096, 9);
	ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_OUT, 0, 4096, false, NULL), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_OUT, 100, 512, false, NULL), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(file_hash(t.fd), before);
	/* Reads and flushes still work. */
	ck_assert_int_eq(pread(t.fd, expect, sizeof(expect), 0), (ssize_t)sizeof(expect));
	ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_IN, 0, 512, true, NULL), VIRTIO_BLK_S_OK);
	ck_assert_mem_eq(t.ram + DATA_GPA, expect, sizeof(expect));
	ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_FLUSH, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
	bt_fini(&t);
}
END_TEST

START_TEST(test_read_only_enforced_by_device)
{
	struct bt t;
	uint64_t before;

	/* The fd could write; the device must refuse anyway. */
	bt_init_fd(&t, make_disk(DISK_SIZE, false), true);
	before = file_hash(t.fd);
	fill_pattern(t.ram + DATA_GPA, 4096, 9);
	ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_OUT, 0, 4096, false, NULL), VIRTIO_BLK_S_IOERR);
	ck_assert_uint_eq(file_hash(t.fd), before);
	bt_fini(&t);
}
END_TEST

START_TEST(test_unknown_type)
{
	static const uint32_t types[] = { 2, 3, 11, 13, 99, 0x80000000U, 0xffffffffU };
	struct bt t;

	bt_init(&t, false);
	for (unsigned int i = 0; i < sizeof(types) / sizeof(types[0]); i++)
		ck_assert_uint_eq(blk_req(&t, types[i], 0, 512, true, NULL), VIRTIO_BLK_S_UNSUPP);
	bt_fini(&t);
}
END_TEST

START_TEST(test_backing_shrunk_under_us)
{
	struct bt t;

	bt_init(&t, false);
	ck_assert_int_eq(ftruncate(t.fd, 4096), 0);
	ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_IN, 0, 512, true, NULL), VIRTIO_BLK_S_OK);
	/* Still inside the advertised capacity, but past EOF now: an error, not a hang. */
	ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_IN, 100, 512, true, NULL), VIRTIO_BLK_S_IOERR);
	bt_fini(&t);
}
END_TEST

static void expect_broken(struct bt *t, const struct seg *segs, unsigned int n)
{
	ck_assert_int_eq(run_chain(t, segs, n), -1);
	ck_assert_uint_ne(virtio_mmio_status(&t->b->mmio) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
	ck_assert_uint_eq(rd(t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG,
			  VIRTIO_MMIO_INT_CONFIG);
	/* Everything stops until the driver resets the device. */
	ck_assert_uint_eq(t->ram[STATUS_GPA], 0xee);
}

START_TEST(test_missing_status_breaks_device)
{
	struct bt t;
	struct seg segs[2];

	bt_init(&t, false);
	t.ram[STATUS_GPA] = 0xee;
	put_header(&t, VIRTIO_BLK_T_FLUSH, 0);
	segs[0] = (struct seg){ HDR_GPA, 16, false };
	expect_broken(&t, segs, 1);
	/* Even a good request is ignored now. */
	segs[1] = (struct seg){ STATUS_GPA, 1, true };
	ck_assert_int_eq(run_chain(&t, segs, 2), -1);
	ck_assert_uint_eq(t.ram[STATUS_GPA], 0xee);
	/* A reset brings the device back. */
	driver_bring_up(&t);
	ck_assert_uint_eq(blk_req(&t, VIRTIO_BLK_T_FLUSH, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
	bt_fini(&t);
}
END_TEST

START_TEST(test_short_header_breaks_device)
{
	struct bt t;
	struct seg segs[2];

	bt_init(&t, false);
	t.ram[STATUS_GPA] = 0xee;
	put_header(&t, VIRTIO_BLK_T_IN, 0);
	segs[0] = (struct seg){ HDR_GPA, 8, false };
	segs[1] = (struct seg){ STATUS_GPA, 1, true };
	expect_broken(&t, segs, 2);
	bt_fini(&t);
}
END_TEST

START_TEST(test_writable_header_breaks_device)
{
	struct bt t;
	struct seg segs[2];

	/* Header and status both writable: no readable header at all. */
	bt_init(&t, false);
	t.ram[STATUS_GPA] = 0xee;
	put_header(&t, VIRTIO_BLK_T_IN, 0);
	segs[0] = (struct seg){ HDR_GPA, 16, true };
	segs[1] = (struct seg){ STATUS_GPA, 1, true };
	expect_broken(&t, segs, 2);
	bt_fini(&t);
}
END_TEST

START_TEST(test_hostile_chain_breaks_device)
{
	struct bt t;
	struct seg segs[3];

	/* A data buffer outside guest RAM: a queue violation, nothing is read. */
	bt_init(&t, false);
	t.ram[STATUS_GPA] = 0xee;
	put_header(&t, VIRTIO_BLK_T_IN, 0);
	segs[0] = (struct seg){ HDR_GPA, 16, false };
	segs[1] = (struct seg){ RAM_SIZE - 256, 512, true };
	segs[2] = (struct seg){ STATUS_GPA, 1, true };
	expect_broken(&t, segs, 3);
	bt_fini(&t);
}
END_TEST

static Suite *virtio_blk_suite(void)
{
	Suite *s = suite_create("virtio_blk");
	TCase *io = tcase_create("io");
	TCase *bad = tcase_create("refusals");

	tcase_add_test(io, test_config_and_features);
	tcase_add_test(io, test_init_checks);
	tcase_add_test(io, test_write_then_read_back);
	tcase_add_test(io, test_read_existing_contents);
	tcase_add_test(io, test_scattered_segments);
	tcase_add_test(io, test_flush);
	tcase_add_test(io, test_get_id);
	suite_add_tcase(s, io);

	tcase_add_test(bad, test_sector_out_of_range);
	tcase_add_test(bad, test_unaligned_length);
	tcase_add_test(bad, test_segment_size_limit);
	tcase_add_test(bad, test_read_only_refuses_writes);
	tcase_add_test(bad, test_read_only_enforced_by_device);
	tcase_add_test(bad, test_unknown_type);
	tcase_add_test(bad, test_backing_shrunk_under_us);
	tcase_add_test(bad, test_missing_status_breaks_device);
	tcase_add_test(bad, test_short_header_breaks_device);
	tcase_add_test(bad, test_writable_header_breaks_device);
	tcase_add_test(bad, test_hostile_chain_breaks_device);
	suite_add_tcase(s, bad);
	return s;
}

int main(void)
{
	return tu_run(virtio_blk_suite());
}
