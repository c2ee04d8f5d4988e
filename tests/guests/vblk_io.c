// SPDX-License-Identifier: Apache-2.0
/*
 * virtio-blk from the inside: drives device 0 with the tiny driver in
 * virtio.h and checks what a correct device must do.
 *
 *   - negotiation: VERSION_1, FLUSH, BLK_SIZE offered; RO offered exactly
 *     when the command line says msvmm.ro=1; config space capacity equals
 *     msvmm.sectors=N when given, blk_size 512;
 *   - reads return the host's bytes (the host fills the image with
 *     host_byte() below before boot);
 *   - read-write disk: single-sector, multi-segment and odd-segment writes,
 *     read back through a different segmentation, and the last sector;
 *   - read-only disk: a write fails with IOERR and changes nothing;
 *   - FLUSH, GET_ID ("msvmm-disk", NUL-padded), used.len accounting;
 *   - with msvmm.event_idx=1: EVENT_IDX is negotiated and the device keeps
 *     avail_event at the driver's avail idx once the ring is drained;
 *   - errors that are the request's fault, not the driver's: past the end,
 *     straddling the end, sector overflow, lengths not a multiple of 512
 *     -> IOERR; unknown types -> UNSUPP; and none of them may break the
 *     device (no DEVICE_NEEDS_RESET).
 *
 * tests/unit/test_vblk_guests.c checks the host side: the written bytes at
 * their offsets, nothing else touched, a read-only image unchanged.
 * Every check has a number; a failure prints "vblk_io: FAIL <n>: why" and
 * the guest's status is the first failing number (0: all passed).
 */
#include "virtio.h"

/* Must match tests/unit/test_vblk_guests.c. */
#define GUEST_SEED 0xc3
#define DISK_ID "msvmm-disk"
#define SECT_SINGLE 1
#define SECT_MULTI 8    /* 8 sectors, written as 512 + 1536 + 2048 */
#define SECT_ODD 24     /* 2 sectors, written as 100 + 700 + 224 */
#define SECT_UNALIGNED 20

enum check {
	C_NO_DEVICE = 1,
	C_INIT,
	C_FEAT_FLUSH,
	C_FEAT_RO,
	C_FEAT_BLK_SIZE,
	C_CAPACITY,
	C_BLK_SIZE,
	C_READ_HOST,
	C_WRITE_SINGLE,
	C_READ_SINGLE,
	C_WRITE_MULTI,
	C_READ_MULTI,
	C_USED_LEN_IN,
	C_WRITE_ODD,
	C_READ_ODD,
	C_WRITE_LAST,
	C_READ_LAST,
	C_STRADDLE_WRITE,
	C_RO_WRITE,
	C_RO_UNCHANGED,
	C_FLUSH,
	C_GET_ID,
	C_GET_ID_LEN,
	C_READ_PAST_END,
	C_READ_STRADDLE,
	C_READ_OVERFLOW,
	C_READ_UNALIGNED,
	C_WRITE_UNALIGNED,
	C_UNSUPP,
	C_ZERO_LEN,
	C_ALIVE,
	C_TRANSPORT,
	C_EVENT_IDX,
};

/* What the host put in the image: byte i of sector s. */
static uint8_t host_byte(uint64_t s, unsigned int i)
{
	return (uint8_t)((s * 37) ^ (i * 11) ^ ((i >> 8) * 0x81) ^ 0x5a);
}

/* What this guest writes: byte i (from the request's start) of sector s. */
static uint8_t guest_byte(uint64_t s, unsigned int i)
{
	return (uint8_t)(s * 53 + i * 5 + (i >> 8) * 0x33 + GUEST_SEED);
}

static struct vq_rings rings;
static struct vblk blk;
static uint8_t buf_a[8192] __attribute__((aligned(512)));
static uint8_t buf_b[8192] __attribute__((aligned(512)));
static uint8_t buf_c[8192] __attribute__((aligned(512)));

static struct guest_checks checks = { .name = "vblk_io" };

static bool check(bool ok, enum check n, const char *what)
{
	return guest_check(&checks, ok, (int)n, what);
}

static void fill_guest(uint8_t *p, uint64_t sector, unsigned int nsect)
{
	for (unsigned int k = 0; k < nsect; k++)
		for (unsigned int i = 0; i < VBLK_SECTOR; i++)
			p[k * VBLK_SECTOR + i] = guest_byte(sector + k, i);
}

static bool is_guest(const uint8_t *p, uint64_t sector, unsigned int nsect)
{
	for (unsigned int k = 0; k < nsect; k++)
		for (unsigned int i = 0; i < VBLK_SECTOR; i++)
			if (p[k * VBLK_SECTOR + i] != guest_byte(sector + k, i))
				return false;
	return true;
}

static bool is_host(const uint8_t *p, uint64_t sector, unsigned int nsect)
{
	for (unsigned int k = 0; k < nsect; k++)
		for (unsigned int i = 0; i < VBLK_SECTOR; i++)
			if (p[k * VBLK_SECTOR + i] != host_byte(sector + k, i))
				return false;
	return true;
}

/*
 * One request; a transport failure (timeout, DEVICE_NEEDS_RESET) is a check
 * failure of its own and ends the run, since nothing after it could pass.
 */
static bool transport_dead;

static uint8_t req_segs(uint32_t type, uint64_t sector, const struct vq_buf *segs, unsigned int n,
			uint32_t *used_len)
{
	uint8_t st = 0xff;
	int r;

	if (transport_dead)
		return 0xff;
	r = vblk_request_segs(&blk, type, sector, segs, n, &st, used_len);
	if (r) {
		serial_puts("vblk_io: transport: ");
		serial_puts(vio_strerror(r));
		serial_puts("\n");
		check(false, C_TRANSPORT, "request did not complete");
		transport_dead = true;
		return 0xff;
	}
	return st;
}

static uint8_t req(uint32_t type, uint64_t sector, void *buf, uint32_t len, uint32_t *used_len)
{
	struct vq_buf seg = { buf, len, false };

	return req_segs(type, sector, &seg, len ? 1 : 0, used_len);
}

static void read_write_disk(uint64_t cap)
{
	uint32_t used = 0;
	uint8_t st;

	/* Before anything is written: reads must show what the host put there. */
	st = req(VBLK_T_IN, SECT_SINGLE, buf_a, VBLK_SECTOR, NULL);
	check(st == VBLK_S_OK && is_host(buf_a, SECT_SINGLE, 1), C_READ_HOST, "sector 1 does not hold the host's bytes");

	fill_guest(buf_a, SECT_SINGLE, 1);
	st = req(VBLK_T_OUT, SECT_SINGLE, buf_a, VBLK_SECTOR, NULL);
	check(st == VBLK_S_OK, C_WRITE_SINGLE, "single-sector write failed");
	memset(buf_b, 0, VBLK_SECTOR);
	st = req(VBLK_T_IN, SECT_SINGLE, buf_b, VBLK_SECTOR, NULL);
	check(st == VBLK_S_OK && is_guest(buf_b, SECT_SINGLE, 1), C_READ_SINGLE, "single sector reads back wrong");

	/* Several data descriptors in one request, read back through a different split. */
	{
		struct vq_buf w[3] = { { buf_a, 512, false }, { buf_a + 512, 1536, false }, { buf_a + 2048, 2048, false } };
		struct vq_buf r[3] = { { buf_c + 4096, 1024, false }, { buf_b, 512, false }, { buf_c, 2560, false } };

		fill_guest(buf_a, SECT_MULTI, 8);
		st = req_segs(VBLK_T_OUT, SECT_MULTI, w, 3, NULL);
		check(st == VBLK_S_OK, C_WRITE_MULTI, "three-segment write failed");
		memset(buf_b, 0, sizeof(buf_b));
		memset(buf_c, 0, sizeof(buf_c));
		st = req_segs(VBLK_T_IN, SECT_MULTI, r, 3, &used);
		/* Reassemble in request order: 1024 from buf_c + 4096, 512 from buf_b, 2560 from buf_c. */
		memcpy(buf_a, buf_c + 4096, 1024);
		memcpy(buf_a + 1024, buf_b, 512);
		memcpy(buf_a + 1536, buf_c, 2560);
		check(st == VBLK_S_OK && is_guest(buf_a, SECT_MULTI, 8), C_READ_MULTI,
		      "three-segment read does not return the three-segment write");
		check(used == 4096 + 1, C_USED_LEN_IN, "used.len of a 4 KiB read is not 4097 (data + status)");
	}

	/* Segments that do not end on sector boundaries: only the total must be a multiple of 512. */
	{
		struct vq_buf w[3] = { { buf_a, 100, false }, { buf_a + 100, 700, false }, { buf_a + 800, 224, false } };

		fill_guest(buf_a, SECT_ODD, 2);
		st = req_segs(VBLK_T_OUT, SECT_ODD, w, 3, NULL);
		check(st == VBLK_S_OK, C_WRITE_ODD, "write split as 100 + 700 + 224 failed");
		memset(buf_b, 0, 1024);
		st = req(VBLK_T_IN, SECT_ODD, buf_b, 1024, NULL);
		check(st == VBLK_S_OK && is_guest(buf_b, SECT_ODD, 2), C_READ_ODD, "odd-split write reads back wrong");
	}

	/* The last sector is inside the disk... */
	fill_guest(buf_a, cap - 1, 1);
	st = req(VBLK_T_OUT, cap - 1, buf_a, VBLK_SECTOR, NULL);
	check(st == VBLK_S_OK, C_WRITE_LAST, "writing the last sector failed");
	/* ...but a write running past it is refused as a whole, not cut short. */
	memset(buf_a, 0xee, 1024);
	st = req(VBLK_T_OUT, cap - 1, buf_a, 1024, NULL);
	check(st == VBLK_S_IOERR, C_STRADDLE_WRITE, "a write straddling the end was not IOERR");
	memset(buf_b, 0, VBLK_SECTOR);
	st = req(VBLK_T_IN, cap - 1, buf_b, VBLK_SECTOR, NULL);
	check(st == VBLK_S_OK && is_guest(buf_b, cap - 1, 1), C_READ_LAST, "last sector reads back wrong");

	/* Not a multiple of 512: IOERR, and the host checks sectors 20-21 kept their bytes. */
	memset(buf_a, 0xee, 700);
	st = req(VBLK_T_OUT, SECT_UNALIGNED, buf_a, 700, NULL);
	check(st == VBLK_S_IOERR, C_WRITE_UNALIGNED, "a 700-byte write was not IOERR");
}

static void read_only_disk(void)
{
	uint8_t st;

	st = req(VBLK_T_IN, SECT_SINGLE, buf_a, VBLK_SECTOR, NULL);
	check(st == VBLK_S_OK && is_host(buf_a, SECT_SINGLE, 1), C_READ_HOST, "sector 1 does not hold the host's bytes");
	/* A driver that saw RO never writes; this one does, and must be refused. */
	fill_guest(buf_a, SECT_SINGLE, 1);
	st = req(VBLK_T_OUT, SECT_SINGLE, buf_a, VBLK_SECTOR, NULL);
	check(st == VBLK_S_IOERR, C_RO_WRITE, "a write to a read-only disk was not IOERR");
	st = req(VBLK_T_IN, SECT_SINGLE, buf_b, VBLK_SECTOR, NULL);
	check(st == VBLK_S_OK && is_host(buf_b, SECT_SINGLE, 1), C_RO_UNCHANGED, "read-only sector 1 changed");
	memset(buf_a, 0xee, 700);
	st = req(VBLK_T_OUT, SECT_UNALIGNED, buf_a, 700, NULL);
	check(st == VBLK_S_IOERR, C_WRITE_UNALIGNED, "a 700-byte write was not IOERR");
}

static void common_requests(uint64_t cap)
{
	static const char want_id[VBLK_ID_BYTES] = DISK_ID; /* NUL-padded to 20 */
	uint32_t used = 0;
	uint8_t st;

	st = req(VBLK_T_FLUSH, 0, NULL, 0, &used);
	check(st == VBLK_S_OK && used == 1, C_FLUSH, "FLUSH failed or used.len is not 1");

	memset(buf_a, 0x77, 512);
	st = req(VBLK_T_GET_ID, 0, buf_a, VBLK_ID_BYTES, &used);
	check(st == VBLK_S_OK && !memcmp(buf_a, want_id, VBLK_ID_BYTES), C_GET_ID, "GET_ID is not \"" DISK_ID "\"");
	check(used == VBLK_ID_BYTES + 1, C_GET_ID_LEN, "GET_ID used.len is not 21");

	st = req(VBLK_T_IN, cap, buf_a, VBLK_SECTOR, NULL);
	check(st == VBLK_S_IOERR, C_READ_PAST_END, "reading sector 'capacity' was not IOERR");
	st = req(VBLK_T_IN, cap - 1, buf_a, 2 * VBLK_SECTOR, NULL);
	check(st == VBLK_S_IOERR, C_READ_STRADDLE, "a read straddling the end was not IOERR");
	/* sector * 512 and sector + n both wrap 64 bits here. */
	st = req(VBLK_T_IN, ~0ULL, buf_a, VBLK_SECTOR, NULL);
	check(st == VBLK_S_IOERR, C_READ_OVERFLOW, "reading sector 2^64-1 was not IOERR");
	st = req(VBLK_T_IN, 1ULL << 55, buf_a, VBLK_SECTOR, NULL);
	check(st == VBLK_S_IOERR, C_READ_OVERFLOW, "reading sector 2^55 was not IOERR");
	st = req(VBLK_T_IN, 0, buf_a, 100, NULL);
	check(st == VBLK_S_IOERR, C_READ_UNALIGNED, "a 100-byte read was not IOERR");

	st = req(0x42, 0, buf_a, VBLK_SECTOR, NULL);
	check(st == VBLK_S_UNSUPP, C_UNSUPP, "request type 0x42 was not UNSUPP");
	st = req(11 /* DISCARD, not offered */, 0, buf_a, VBLK_SECTOR, NULL);
	check(st == VBLK_S_UNSUPP, C_UNSUPP, "DISCARD (not offered) was not UNSUPP");

	/* No data at all is a valid, empty read. */
	st = req(VBLK_T_IN, 0, NULL, 0, &used);
	check(st == VBLK_S_OK && used == 1, C_ZERO_LEN, "a read of no data failed");

	/* Request errors are not driver errors: the device must still be live. */
	check((vio_status(&blk.v) & (VIO_S_NEEDS_RESET | VIO_S_DRIVER_OK)) == VIO_S_DRIVER_OK, C_ALIVE,
	      "the device stopped after request errors");
}

int guest_main(const uint8_t *bp)
{
	const char *cl = vio_cmdline(bp);
	uint64_t base = vio_cmdline_u64(cl, "msvmm.vblk", 0);
	uint64_t want_sectors = vio_cmdline_u64(cl, "msvmm.sectors", 0);
	uint16_t qsize = (uint16_t)vio_cmdline_u64(cl, "msvmm.qsize", VQ_SIZE_MAX);
	bool ro = cmdline_has_word(cl, "msvmm.ro=1");
	bool event_idx = cmdline_has_word(cl, "msvmm.event_idx=1");
	uint64_t cap;
	int r;

	if (!base)
		base = vio_cmdline_device(cl, 0);
	if (!check(base != 0, C_NO_DEVICE, "no virtio_mmio.device= on the command line"))
		return checks.first_failure;
	r = vio_init(&blk.v, base, VIRTIO_DEV_BLOCK,
		     VIO_BIT(VBLK_F_FLUSH) | VIO_BIT(VBLK_F_RO) | VIO_BIT(VBLK_F_BLK_SIZE) | VIO_BIT(VBLK_F_SEG_MAX) |
			     VIO_BIT(VBLK_F_SIZE_MAX) | (event_idx ? VIO_BIT(VIO_F_EVENT_IDX) : 0),
		     qsize, &rings);
	if (r) {
		serial_puts("vblk_io: init: ");
		serial_puts(vio_strerror(r));
		serial_puts("\n");
		check(false, C_INIT, "device bring-up failed");
		return checks.first_failure;
	}
	check(blk.v.features & VIO_BIT(VBLK_F_FLUSH), C_FEAT_FLUSH, "FLUSH not offered");
	check(!!(blk.v.features & VIO_BIT(VBLK_F_RO)) == ro, C_FEAT_RO,
	      ro ? "RO not offered for a read-only disk" : "RO offered for a writable disk");
	check(blk.v.features & VIO_BIT(VBLK_F_BLK_SIZE), C_FEAT_BLK_SIZE, "BLK_SIZE not offered");
	cap = vblk_cfg64(&blk.v, VBLK_CFG_CAPACITY);
	check(cap >= 64 && (!want_sectors || cap == want_sectors), C_CAPACITY, "capacity is not msvmm.sectors");
	check(vblk_cfg32(&blk.v, VBLK_CFG_BLK_SIZE) == VBLK_SECTOR, C_BLK_SIZE, "blk_size is not 512");
	if (cap < 64)
		return checks.first_failure;

	if (ro)
		read_only_disk();
	else
		read_write_disk(cap);
	common_requests(cap);
	if (event_idx)
		/* The device drained the ring, then asked to hear of the next entry, which has this index. */
		check((blk.v.features & VIO_BIT(VIO_F_EVENT_IDX)) && vq_avail_event(&blk.v) == blk.v.avail_idx,
		      C_EVENT_IDX, "EVENT_IDX not negotiated, or avail_event is not the avail idx");

	if (checks.nr_failed) {
		serial_putdec(checks.nr_failed);
		serial_puts(" check(s) failed\n");
		return checks.first_failure;
	}
	serial_puts(ro ? "vblk_io: ok (ro)\n" : "vblk_io: ok\n");
	return 0;
}
