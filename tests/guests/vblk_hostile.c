// SPDX-License-Identifier: Apache-2.0
/*
 * A hostile virtio-blk driver.  With two disks attached, device 0 is fed
 * every kind of malformed virtqueue this file knows, one at a time:
 *
 *   - chains: descriptor loops, next index out of range, buffers outside
 *     RAM (above it, in the MMIO hole, wrapping 2^64, absurd lengths), an
 *     avail idx more than a queue ahead, an avail entry naming no
 *     descriptor, an indirect descriptor that was not negotiated, a
 *     device-writable header, readable after writable, no status byte, a
 *     short header.  Each must end with the device in DEVICE_NEEDS_RESET
 *     (status 0x40), the request never completed, a further valid request
 *     ignored until reset, and the VMM alive;
 *   - set-up: queue sizes that are 0, not a power of two or too big, rings
 *     outside RAM or misaligned.  QueueReady must read back 0, and the same
 *     negotiation must then accept a good queue;
 *   - negotiation: an unoffered feature (INDIRECT_DESC) and no VERSION_1
 *     must not get FEATURES_OK;
 *   - a live queue that the driver tries to move, and a kick for a queue
 *     that does not exist: ignored, I/O goes on.
 *
 * Every round k (0 before any case, then one per case) device 0 is
 * renegotiated and must serve a write + read round trip at sector
 * ROUNDTRIP_SECT + k, and device 1 (never attacked) one at sector k: a
 * broken queue stays the problem of its own device.  The malformed chains all
 * carry a write of 0xee to sector MALFORMED_SECT + case, which must never
 * reach the disk; tests/unit/test_vblk_guests.c checks both images.
 *
 * Status: 0 when everything held, else the number of the first failed
 * check (enum check); "vblk_hostile: FAIL <n> (<case>): why" on COM1.
 */
#include "virtio.h"

/* Must match tests/unit/test_vblk_guests.c. */
#define MALFORMED_SECT 100 /* disk 0: sectors 100 + case, never written */
#define ROUNDTRIP_SECT 200 /* disk 0: sector 200 + case, written after each renegotiation */
#define D0_SEED 0x17
#define D1_SEED 0x91       /* disk 1: sector k written in round k (0 .. cases) */

#define QSIZE0 64
#define QSIZE1 8
/* Far above any RAM these tests give the guest, but inside the identity map. */
#define BEYOND_RAM 0x80000000ULL
/* Short wait for something that must NOT happen (~10-20 ms). */
#define QUIET_TICKS 40000000ULL

enum check {
	C_NO_DEVICES = 1,
	C_INIT0,
	C_INIT1,
	C_ROUNDTRIP0,   /* device 0 after renegotiation */
	C_ROUNDTRIP1,   /* device 1, the bystander */
	C_COMPLETED,    /* the device completed a malformed chain */
	C_NOT_BROKEN,   /* no DEVICE_NEEDS_RESET after a malformed chain */
	C_STILL_SERVES, /* a broken device completed a later request */
	C_RESET,        /* status did not read 0 after reset */
	C_QUEUE_TAKEN,  /* a bad queue set-up was accepted */
	C_QUEUE_AFTER,  /* a good queue was refused after a bad one */
	C_FEATURES,     /* FEATURES_OK accepted for a bad feature set */
	C_LATE_MOVE,    /* moving a live queue disturbed it */
	C_CONFIG_IRQ,   /* DEVICE_NEEDS_RESET without a configuration change interrupt */
};

static struct vq_rings rings0, rings1;
static struct vblk dev0, dev1;
static struct vq_desc indirect_table[4] __attribute__((aligned(16)));
static uint8_t data[4096] __attribute__((aligned(512)));
static uint8_t scratch[4096] __attribute__((aligned(512)));
static struct vblk_hdr bad_hdr __attribute__((aligned(16)));
static uint8_t bad_status;

static const char *cur_case = "setup";
static unsigned int case_nr;
static struct guest_checks checks = { .name = "vblk_hostile" };

static bool check(bool ok, enum check n, const char *what)
{
	checks.context = cur_case;
	return guest_check(&checks, ok, (int)n, what);
}

static uint8_t pat(uint8_t seed, uint64_t s, unsigned int i)
{
	return (uint8_t)(s * 29 + i * 3 + (i >> 8) * 0x45 + seed);
}

/* Write sector s with pattern 'seed', read it back through another buffer, compare. */
static bool roundtrip(struct vblk *b, uint8_t seed, uint64_t s)
{
	uint8_t st;

	for (unsigned int i = 0; i < VBLK_SECTOR; i++)
		data[i] = pat(seed, s, i);
	if (vblk_request(b, VBLK_T_OUT, s, data, VBLK_SECTOR, &st, NULL) || st != VBLK_S_OK)
		return false;
	memset(scratch, 0, VBLK_SECTOR);
	if (vblk_request(b, VBLK_T_IN, s, scratch, VBLK_SECTOR, &st, NULL) || st != VBLK_S_OK)
		return false;
	return !memcmp(data, scratch, VBLK_SECTOR);
}

static const uint64_t blk_features = VIO_BIT(VBLK_F_FLUSH) | VIO_BIT(VBLK_F_BLK_SIZE);

/* Device 0 from scratch, then a round trip on it: recovery must be complete. */
static bool bring_up0(void)
{
	int r = vio_init(&dev0.v, dev0.v.base, VIRTIO_DEV_BLOCK, blk_features, QSIZE0, &rings0);

	if (r) {
		serial_puts("vblk_hostile: device 0: ");
		serial_puts(vio_strerror(r));
		serial_puts("\n");
		return check(false, C_INIT0, "device 0 bring-up failed");
	}
	return check(roundtrip(&dev0, D0_SEED, ROUNDTRIP_SECT + case_nr), C_ROUNDTRIP0,
		     "device 0 round trip after renegotiation failed");
}

/* The bystander: one round trip per round, at sector 'round'. */
static void bystander(void)
{
	check(roundtrip(&dev1, D1_SEED, case_nr), C_ROUNDTRIP1, "device 1 round trip failed");
}

static void reset0(void)
{
	check(vio_reset(&dev0.v) == VIO_OK, C_RESET, "device 0 did not reset");
}

/* Does used.idx move within 'ticks'?  For things that must not complete. */
static bool used_moves(const struct vdev *d, uint64_t ticks)
{
	uint16_t seen = d->used_seen;
	uint64_t t0 = rdtsc();

	while (rdtsc() - t0 < ticks)
		if (vq_used_idx(d) != seen)
			return true;
	return false;
}

/* ---- malformed chains, all on device 0 (live, queue of QSIZE0) ---- */

/* The parts every bad chain borrows: an OUT header for the case's sector, data of 0xee, a status byte. */
static void bad_parts(void)
{
	bad_hdr = (struct vblk_hdr){ .type = VBLK_T_OUT, .sector = MALFORMED_SECT + case_nr };
	memset(data, 0xee, VBLK_SECTOR);
	bad_status = 0xff;
}

#define A(p) ((uint64_t)(uintptr_t)(p))
#define HDR A(&bad_hdr), sizeof(bad_hdr)
#define DAT A(data), VBLK_SECTOR
#define STS A(&bad_status), 1
#define N VQ_DESC_F_NEXT
#define W VQ_DESC_F_WRITE

static void chain_loop_status(struct vdev *d)
{
	vq_set_desc(d, 0, HDR, N, 1);
	vq_set_desc(d, 1, DAT, N, 2);
	vq_set_desc(d, 2, STS, W | N, 2); /* points at itself */
	vq_publish(d, 0, true);
}

static void chain_loop_readable(struct vdev *d)
{
	vq_set_desc(d, 0, HDR, N, 1);
	vq_set_desc(d, 1, DAT, N, 0); /* back to the head */
	vq_publish(d, 0, true);
}

static void chain_next_out_of_range(struct vdev *d)
{
	vq_set_desc(d, 0, HDR, N, QSIZE0);
	vq_publish(d, 0, true);
}

static void chain_next_ffff(struct vdev *d)
{
	vq_set_desc(d, 0, HDR, N, 1);
	vq_set_desc(d, 1, DAT, N, 0xffff);
	vq_publish(d, 0, true);
}

static void chain_with_data(struct vdev *d, uint64_t addr, uint32_t len)
{
	vq_set_desc(d, 0, HDR, N, 1);
	vq_set_desc(d, 1, addr, len, N, 2);
	vq_set_desc(d, 2, STS, W, 0);
	vq_publish(d, 0, true);
}

static void chain_data_beyond_ram(struct vdev *d)
{
	chain_with_data(d, BEYOND_RAM, VBLK_SECTOR);
}

static void chain_data_in_mmio(struct vdev *d)
{
	chain_with_data(d, d->base, VBLK_SECTOR); /* the device's own register window */
}

static void chain_data_wraps(struct vdev *d)
{
	chain_with_data(d, 0xfffffffffffffe00ULL, 0x400);
}

static void chain_data_huge(struct vdev *d)
{
	chain_with_data(d, A(data), 0xfffffe00U);
}

static void chain_header_beyond_ram(struct vdev *d)
{
	vq_set_desc(d, 0, BEYOND_RAM, sizeof(bad_hdr), N, 1);
	vq_set_desc(d, 1, DAT, N, 2);
	vq_set_desc(d, 2, STS, W, 0);
	vq_publish(d, 0, true);
}

static void good_chain(struct vdev *d, uint16_t first)
{
	vq_set_desc(d, first, HDR, N, (uint16_t)(first + 1));
	vq_set_desc(d, (uint16_t)(first + 1), DAT, N, (uint16_t)(first + 2));
	vq_set_desc(d, (uint16_t)(first + 2), STS, W, 0);
}

/* A well-formed chain, but avail.idx claims more than a queue's worth. */
static void chain_avail_jump(struct vdev *d)
{
	good_chain(d, 0);
	d->rings->avail.ring[0] = 0;
	vq_set_avail_idx(d, (uint16_t)(d->avail_idx + QSIZE0 + 1));
}

static void chain_avail_head_out_of_range(struct vdev *d)
{
	good_chain(d, 0);
	vq_publish(d, QSIZE0 + 3, true);
}

static void chain_indirect_not_negotiated(struct vdev *d)
{
	indirect_table[0] = (struct vq_desc){ HDR, N, 1 };
	indirect_table[1] = (struct vq_desc){ DAT, N, 2 };
	indirect_table[2] = (struct vq_desc){ STS, W, 0 };
	vq_set_desc(d, 0, A(indirect_table), 3 * sizeof(struct vq_desc), VQ_DESC_F_INDIRECT, 0);
	vq_publish(d, 0, true);
}

static void chain_writable_header(struct vdev *d)
{
	vq_set_desc(d, 0, HDR, W | N, 1);
	vq_set_desc(d, 1, STS, W, 0);
	vq_publish(d, 0, true);
}

static void chain_readable_after_writable(struct vdev *d)
{
	vq_set_desc(d, 0, HDR, N, 1);
	vq_set_desc(d, 1, STS, W | N, 2);
	vq_set_desc(d, 2, DAT, 0, 0);
	vq_publish(d, 0, true);
}

static void chain_no_status(struct vdev *d)
{
	vq_set_desc(d, 0, HDR, N, 1);
	vq_set_desc(d, 1, DAT, 0, 0);
	vq_publish(d, 0, true);
}

static void chain_short_header(struct vdev *d)
{
	vq_set_desc(d, 0, A(&bad_hdr), 8, N, 1);
	vq_set_desc(d, 1, STS, W, 0);
	vq_publish(d, 0, true);
}

static const struct {
	const char *name;
	void (*submit)(struct vdev *d);
} chains[] = {
	{ "loop through the status descriptor", chain_loop_status },
	{ "loop back to the head", chain_loop_readable },
	{ "next = queue size", chain_next_out_of_range },
	{ "next = 0xffff", chain_next_ffff },
	{ "data beyond RAM", chain_data_beyond_ram },
	{ "data in the MMIO window", chain_data_in_mmio },
	{ "data address wraps 2^64", chain_data_wraps },
	{ "data length 4 GiB - 512", chain_data_huge },
	{ "header beyond RAM", chain_header_beyond_ram },
	{ "avail idx jumps past the queue size", chain_avail_jump },
	{ "avail entry names no descriptor", chain_avail_head_out_of_range },
	{ "indirect descriptor, not negotiated", chain_indirect_not_negotiated },
	{ "device-writable header", chain_writable_header },
	{ "readable after writable", chain_readable_after_writable },
	{ "no status descriptor", chain_no_status },
	{ "8-byte header", chain_short_header },
};

static void run_chain_case(unsigned int i)
{
	struct vq_used_elem e;
	uint64_t saved = dev0.v.timeout_ticks;
	int r;

	bad_parts();
	chains[i].submit(&dev0.v);
	/* Only the device's verdict is waited for: no request of ours is outstanding but the bad one. */
	dev0.v.timeout_ticks = VIO_DEFAULT_TIMEOUT_TICKS / 4;
	r = vq_wait(&dev0.v, &e);
	dev0.v.timeout_ticks = saved;
	if (r == VIO_OK)
		check(false, C_COMPLETED, "the device completed a malformed chain");
	else if (check(r == VIO_E_BROKEN, C_NOT_BROKEN, "no DEVICE_NEEDS_RESET after a malformed chain"))
		/* virtio 1.x 2.1.2: the device SHOULD tell the driver through a configuration change notification. */
		check(vio_read(&dev0.v, VIO_INTERRUPT_STATUS) & VIO_INT_CONFIG, C_CONFIG_IRQ,
		      "InterruptStatus lacks the configuration change bit");
	/* Broken means stopped: a good request now must be left alone until reset. */
	good_chain(&dev0.v, 8);
	bad_hdr = (struct vblk_hdr){ .type = VBLK_T_OUT, .sector = MALFORMED_SECT + case_nr };
	vq_publish(&dev0.v, 8, true);
	check(!used_moves(&dev0.v, QUIET_TICKS), C_STILL_SERVES, "a device needing reset still completed a request");
}

/* ---- queue set-up and negotiation ---- */

static uint64_t ring_addr(int which, int64_t delta)
{
	uint64_t a = which == 0 ? A(rings0.desc) : which == 1 ? A(&rings0.avail) : A(&rings0.used);

	return a + (uint64_t)delta;
}

/* Every register written, no pre-checks: the device alone decides. */
static uint32_t queue_setup_raw(struct vdev *d, uint32_t size, uint64_t desc, uint64_t avail, uint64_t used)
{
	vio_write(d, VIO_QUEUE_SEL, 0);
	vio_write(d, VIO_QUEUE_NUM, size);
	vio_write(d, VIO_QUEUE_DESC_LOW, (uint32_t)desc);
	vio_write(d, VIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	vio_write(d, VIO_QUEUE_AVAIL_LOW, (uint32_t)avail);
	vio_write(d, VIO_QUEUE_AVAIL_HIGH, (uint32_t)(avail >> 32));
	vio_write(d, VIO_QUEUE_USED_LOW, (uint32_t)used);
	vio_write(d, VIO_QUEUE_USED_HIGH, (uint32_t)(used >> 32));
	vio_write(d, VIO_QUEUE_READY, 1);
	return vio_read(d, VIO_QUEUE_READY);
}

static const struct {
	const char *name;
	uint32_t size;
	uint64_t desc, avail, used; /* BEYOND_RAM, or an offset from the good ring via ring_addr() */
	int8_t bad;                 /* which ring is bad: 0 desc, 1 avail, 2 used, -1 none (size is) */
	int64_t delta;
} setups[] = {
	{ "queue size 0", 0, 0, 0, 0, -1, 0 },
	{ "queue size 100 (not a power of two)", 100, 0, 0, 0, -1, 0 },
	{ "queue size 512 (above QueueNumMax)", 512, 0, 0, 0, -1, 0 },
	{ "queue size 65535", 65535, 0, 0, 0, -1, 0 },
	{ "descriptor table beyond RAM", QSIZE0, 0, 0, 0, 0, 0 },
	{ "descriptor table misaligned", QSIZE0, 0, 0, 0, 0, 8 },
	{ "avail ring misaligned", QSIZE0, 0, 0, 0, 1, 1 },
	{ "used ring misaligned", QSIZE0, 0, 0, 0, 2, 2 },
	{ "used ring beyond RAM", QSIZE0, 0, 0, 0, 2, 0 },
	{ "descriptor table in the MMIO window", QSIZE0, 0, 0, 0, 0, -1 },
};

static void run_setup_case(unsigned int i)
{
	uint64_t addr[3] = { ring_addr(0, 0), ring_addr(1, 0), ring_addr(2, 0) };
	int bad = setups[i].bad;

	if (bad >= 0) {
		if (setups[i].delta > 0)
			addr[bad] += (uint64_t)setups[i].delta;
		else if (setups[i].delta < 0)
			addr[bad] = dev0.v.base;
		else
			addr[bad] = BEYOND_RAM;
	}
	if (!check(vio_negotiate(&dev0.v, blk_features) == VIO_OK, C_INIT0, "negotiation failed"))
		return;
	memset(&rings0, 0, sizeof(rings0));
	check(queue_setup_raw(&dev0.v, setups[i].size, addr[0], addr[1], addr[2]) == 0, C_QUEUE_TAKEN,
	      "QueueReady reads 1 for a bad queue");
	/* A refused queue is simply not ready: the same driver may fix it and go on. */
	if (check(queue_setup_raw(&dev0.v, QSIZE0, ring_addr(0, 0), ring_addr(1, 0), ring_addr(2, 0)) == 1,
		  C_QUEUE_AFTER, "a good queue was refused after a bad one") &&
	    check(vio_add_status(&dev0.v, VIO_S_DRIVER_OK), C_QUEUE_AFTER, "DRIVER_OK refused")) {
		dev0.v.avail_idx = dev0.v.used_seen = 0;
		check(roundtrip(&dev0, D0_SEED, ROUNDTRIP_SECT + case_nr), C_QUEUE_AFTER,
		      "no I/O after a refused queue was fixed");
	}
}

/* FEATURES_OK with exactly 'accept' written; true if it stuck. */
static bool features_ok_with(uint64_t accept)
{
	if (vio_reset(&dev0.v) || !vio_add_status(&dev0.v, VIO_S_ACKNOWLEDGE) ||
	    !vio_add_status(&dev0.v, VIO_S_DRIVER))
		return true; /* cannot even get there: reported as accepted, so it shows */
	vio_write(&dev0.v, VIO_DRIVER_FEATURES_SEL, 0);
	vio_write(&dev0.v, VIO_DRIVER_FEATURES, (uint32_t)accept);
	vio_write(&dev0.v, VIO_DRIVER_FEATURES_SEL, 1);
	vio_write(&dev0.v, VIO_DRIVER_FEATURES, (uint32_t)(accept >> 32));
	return vio_add_status(&dev0.v, VIO_S_FEATURES_OK);
}

/* A live queue cannot be moved, and a kick for queue 5 of a one-queue device is nothing. */
static void run_late_move(void)
{
	vio_write(&dev0.v, VIO_QUEUE_SEL, 0);
	vio_write(&dev0.v, VIO_QUEUE_DESC_LOW, (uint32_t)BEYOND_RAM);
	vio_write(&dev0.v, VIO_QUEUE_NUM, 4);
	vio_write(&dev0.v, VIO_QUEUE_READY, 0);
	vio_write(&dev0.v, VIO_QUEUE_NOTIFY, 5);
	check(roundtrip(&dev0, D0_SEED, ROUNDTRIP_SECT + case_nr), C_LATE_MOVE,
	      "I/O failed after the driver tried to move a live queue");
	check(!(vio_status(&dev0.v) & VIO_S_NEEDS_RESET), C_LATE_MOVE, "moving a live queue broke the device");
}

int guest_main(const uint8_t *bp)
{
	const char *cl = vio_cmdline(bp);
	uint64_t b0 = vio_cmdline_device(cl, 0), b1 = vio_cmdline_device(cl, 1);
	unsigned int nc = sizeof(chains) / sizeof(chains[0]), ns = sizeof(setups) / sizeof(setups[0]);

	if (!check(b0 && b1, C_NO_DEVICES, "need two virtio_mmio.device= words"))
		return checks.first_failure;
	dev0.v.base = b0;
	if (!check(vio_init(&dev1.v, b1, VIRTIO_DEV_BLOCK, blk_features, QSIZE1, &rings1) == VIO_OK, C_INIT1,
		   "device 1 bring-up failed"))
		return checks.first_failure;
	/* Round 0: both devices fine before anything hostile. */
	if (!bring_up0())
		return checks.first_failure;
	bystander();

	for (unsigned int i = 0; i < nc; i++) {
		case_nr++;
		cur_case = chains[i].name;
		if (!bring_up0())
			break;
		run_chain_case(i);
		bystander();
		reset0();
	}
	for (unsigned int i = 0; i < ns; i++) {
		case_nr++;
		cur_case = setups[i].name;
		run_setup_case(i);
		bystander();
		reset0();
	}

	case_nr++;
	cur_case = "INDIRECT_DESC accepted though not offered";
	check(!features_ok_with(VIO_BIT(VIO_F_VERSION_1) | VIO_BIT(VIO_F_INDIRECT_DESC)), C_FEATURES,
	      "FEATURES_OK stuck with INDIRECT_DESC");
	bring_up0();
	bystander();
	case_nr++;
	cur_case = "no VERSION_1";
	check(!features_ok_with(VIO_BIT(VBLK_F_FLUSH)), C_FEATURES, "FEATURES_OK stuck without VERSION_1");
	bring_up0();
	bystander();

	case_nr++;
	cur_case = "moving a live queue";
	if (bring_up0())
		run_late_move();
	bystander();

	/* Last: device 0 comes back once more after all of it. */
	case_nr++;
	cur_case = "final";
	reset0();
	bring_up0();
	bystander();

	if (checks.nr_failed) {
		serial_putdec(checks.nr_failed);
		serial_puts(" check(s) failed\n");
		return checks.first_failure;
	}
	serial_puts("vblk_hostile: ok, rounds ");
	serial_putdec(case_nr);
	serial_puts("\n");
	return 0;
}
