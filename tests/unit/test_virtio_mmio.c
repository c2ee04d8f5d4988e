// SPDX-License-Identifier: Apache-2.0
/*
 * devices/virtio_mmio: a driver simulated at register level against a fake
 * device.  Identity registers, feature negotiation, the status state
 * machine, reset, queue setup rules, config space bounds, access widths,
 * interrupt status/ack, notification paths, and DEVICE_NEEDS_RESET after a
 * malformed queue followed by recovery through reset.
 */
#include "virtio_mmio.h"

#include <errno.h>

#include "testutil.h"

#define RAM_SIZE (1024 * 1024)
#define DESC_GPA 0x1000ULL
#define AVAIL_GPA 0x2000ULL
#define USED_GPA 0x3000ULL
#define DATA_GPA 0x10000ULL

#define FAKE_ID 42
#define FAKE_QUEUES 2
#define FAKE_QMAX 16
#define FAKE_CONFIG_SIZE 12
#define FAKE_FEATURES ((1ULL << 0) | (1ULL << 35))

#define BIT(n) (1ULL << (n))
#define ACK VIRTIO_STATUS_ACKNOWLEDGE
#define DRV VIRTIO_STATUS_DRIVER
#define FOK VIRTIO_STATUS_FEATURES_OK
#define DOK VIRTIO_STATUS_DRIVER_OK

struct fake {
	struct virtio_mmio_dev dev;
	struct virtio_mmio_ops ops;
	uint8_t *ram;
	struct guest_mem gm;
	struct virtq_chain *chain;
	uint8_t config[FAKE_CONFIG_SIZE];
	int notifies, resets, irqs, config_writes;
	uint32_t cw_offset, cw_len;
	uint16_t avail_idx;
};

static void fake_config_read(void *opaque, uint32_t offset, uint8_t *data, uint32_t len)
{
	struct fake *f = opaque;

	if (offset > FAKE_CONFIG_SIZE || len > FAKE_CONFIG_SIZE - offset)
		return;
	memcpy(data, f->config + offset, len);
}

static void fake_config_write(void *opaque, uint32_t offset, const uint8_t *data, uint32_t len)
{
	struct fake *f = opaque;

	f->config_writes++;
	f->cw_offset = offset;
	f->cw_len = len;
}

/* Complete every available chain with used.len 0. */
static int fake_notify(void *opaque, unsigned int index)
{
	struct fake *f = opaque;
	struct virtq *q = virtio_mmio_queue(&f->dev, index);
	int r, n = 0;

	f->notifies++;
	while ((r = virtq_pop(q, f->chain)) == 1) {
		ck_assert_int_eq(virtq_push(q, f->chain->head, 0), 0);
		n++;
	}
	return r < 0 ? -1 : n;
}

static void fake_reset(void *opaque)
{
	((struct fake *)opaque)->resets++;
}

static void fake_irq(void *opaque)
{
	((struct fake *)opaque)->irqs++;
}

static struct fake *fake_new(void)
{
	struct fake *f = calloc(1, sizeof(*f));

	ck_assert_ptr_nonnull(f);
	f->ram = calloc(1, RAM_SIZE);
	f->chain = calloc(1, sizeof(*f->chain));
	ck_assert_ptr_nonnull(f->ram);
	ck_assert_ptr_nonnull(f->chain);
	guest_mem_init_from(&f->gm, f->ram, RAM_SIZE);
	for (int i = 0; i < FAKE_CONFIG_SIZE; i++)
		f->config[i] = (uint8_t)(0xa0 + i);
	f->ops = (struct virtio_mmio_ops){
		.device_id = FAKE_ID,
		.features = FAKE_FEATURES,
		.num_queues = FAKE_QUEUES,
		.queue_max = FAKE_QMAX,
		.config_read = fake_config_read,
		.config_write = fake_config_write,
		.notify = fake_notify,
		.reset = fake_reset,
	};
	ck_assert_int_eq(virtio_mmio_init(&f->dev, &f->gm, &f->ops, f), 0);
	virtio_mmio_set_irq(&f->dev, fake_irq, f);
	return f;
}

static void fake_free(struct fake *f)
{
	virtio_mmio_destroy(&f->dev);
	free(f->chain);
	free(f->ram);
	free(f);
}

static uint32_t rd(struct fake *f, uint64_t off)
{
	uint8_t b[4] = { 0xff, 0xff, 0xff, 0xff };

	virtio_mmio_access(&f->dev, off, b, 4, false);
	return tu_get32(b);
}

static void wr(struct fake *f, uint64_t off, uint32_t v)
{
	uint8_t b[4];

	tu_put32(b, v);
	virtio_mmio_access(&f->dev, off, b, 4, true);
}

static void write_driver_features(struct fake *f, uint64_t features)
{
	wr(f, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(f, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)features);
	wr(f, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(f, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(features >> 32));
}

/* Reset, ACK, DRIVER, features, FEATURES_OK; returns the status read back. */
static uint32_t negotiate(struct fake *f, uint64_t features)
{
	wr(f, VIRTIO_MMIO_STATUS, 0);
	wr(f, VIRTIO_MMIO_STATUS, ACK);
	wr(f, VIRTIO_MMIO_STATUS, ACK | DRV);
	write_driver_features(f, features);
	wr(f, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	return rd(f, VIRTIO_MMIO_STATUS);
}

static void setup_queue(struct fake *f, uint32_t sel, uint32_t num, uint64_t desc, uint64_t avail,
			uint64_t used)
{
	wr(f, VIRTIO_MMIO_QUEUE_SEL, sel);
	wr(f, VIRTIO_MMIO_QUEUE_NUM, num);
	wr(f, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
	wr(f, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	wr(f, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)avail);
	wr(f, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (uint32_t)(avail >> 32));
	wr(f, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)used);
	wr(f, VIRTIO_MMIO_QUEUE_USED_HIGH, (uint32_t)(used >> 32));
	wr(f, VIRTIO_MMIO_QUEUE_READY, 1);
}

/* A live device: VERSION_1 (+ extra features), queue 0 of 8 entries, DRIVER_OK. */
static void bring_up(struct fake *f, uint64_t extra)
{
	ck_assert_uint_eq(negotiate(f, BIT(VIRTIO_F_VERSION_1) | extra), ACK | DRV | FOK);
	setup_queue(f, 0, 8, DESC_GPA, AVAIL_GPA, USED_GPA);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_QUEUE_READY), 1);
	wr(f, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_STATUS), ACK | DRV | FOK | DOK);
	f->avail_idx = 0;
}

static void put_desc(struct fake *f, unsigned int i, uint64_t addr, uint32_t len, uint16_t flags,
		     uint16_t next)
{
	uint8_t *d = f->ram + DESC_GPA + 16ULL * i;

	memcpy(d, &addr, 8);
	tu_put32(d + 8, len);
	tu_put16(d + 12, flags);
	tu_put16(d + 14, next);
}

static void avail_add(struct fake *f, uint16_t head)
{
	tu_put16(f->ram + AVAIL_GPA + 4 + 2 * (f->avail_idx % 8), head);
	f->avail_idx++;
	tu_put16(f->ram + AVAIL_GPA + 2, f->avail_idx);
}

static uint16_t used_idx(struct fake *f)
{
	return tu_get16(f->ram + USED_GPA + 2);
}

START_TEST(test_identity)
{
	struct fake *f = fake_new();

	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_MAGIC_VALUE), 0x74726976);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_VERSION), 2);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_DEVICE_ID), FAKE_ID);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_VENDOR_ID), VIRTIO_MMIO_VENDOR);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_STATUS), 0);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	/* Write-only and unknown registers read as 0. */
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_QUEUE_NOTIFY), 0);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_QUEUE_DESC_LOW), 0);
	ck_assert_uint_eq(rd(f, 0x0b0), 0);
	ck_assert_uint_eq(rd(f, 0x0f8), 0);
	fake_free(f);
}
END_TEST

START_TEST(test_init_rejects_bad_ops)
{
	struct fake *f = fake_new();
	struct virtio_mmio_dev d;
	struct virtio_mmio_ops ops = f->ops;

	ops.queue_max = 12;
	ck_assert_int_eq(virtio_mmio_init(&d, &f->gm, &ops, f), -EINVAL);
	ops = f->ops;
	ops.queue_max = VIRTQ_MAX_SIZE * 2;
	ck_assert_int_eq(virtio_mmio_init(&d, &f->gm, &ops, f), -EINVAL);
	ops = f->ops;
	ops.num_queues = 0;
	ck_assert_int_eq(virtio_mmio_init(&d, &f->gm, &ops, f), -EINVAL);
	ops.num_queues = VIRTIO_MMIO_MAX_QUEUES + 1;
	ck_assert_int_eq(virtio_mmio_init(&d, &f->gm, &ops, f), -EINVAL);
	ops = f->ops;
	ops.notify = NULL;
	ck_assert_int_eq(virtio_mmio_init(&d, &f->gm, &ops, f), -EINVAL);
	fake_free(f);
}
END_TEST

START_TEST(test_device_features)
{
	struct fake *f = fake_new();

	wr(f, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_DEVICE_FEATURES),
			  (uint32_t)(BIT(0) | BIT(VIRTIO_RING_F_EVENT_IDX)));
	wr(f, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_DEVICE_FEATURES), (uint32_t)(BIT(0) | BIT(3)));
	wr(f, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 2);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_DEVICE_FEATURES), 0);
	wr(f, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0xffffffff);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_DEVICE_FEATURES), 0);
	fake_free(f);
}
END_TEST

START_TEST(test_negotiation)
{
	struct fake *f = fake_new();

	/* No VERSION_1: refused, FEATURES_OK does not stick. */
	ck_assert_uint_eq(negotiate(f, BIT(0)), ACK | DRV);
	/* An unoffered bit (low or high word): refused. */
	ck_assert_uint_eq(negotiate(f, BIT(VIRTIO_F_VERSION_1) | BIT(1)), ACK | DRV);
	ck_assert_uint_eq(negotiate(f, BIT(VIRTIO_F_VERSION_1) | BIT(40)), ACK | DRV);
	ck_assert_uint_eq(negotiate(f, BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_RING_F_INDIRECT_DESC)),
			  ACK | DRV);
	/* Setting FEATURES_OK and DRIVER_OK at once after a refusal sets neither. */
	wr(f, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_STATUS), ACK | DRV);
	/* A subset with VERSION_1: accepted. */
	ck_assert_uint_eq(negotiate(f, BIT(VIRTIO_F_VERSION_1) | BIT(35) | BIT(0)), ACK | DRV | FOK);
	ck_assert_uint_eq(negotiate(f, BIT(VIRTIO_F_VERSION_1)), ACK | DRV | FOK);
	/* Features are frozen after FEATURES_OK. */
	write_driver_features(f, BIT(VIRTIO_F_VERSION_1) | BIT(1));
	ck_assert_uint_eq(f->dev.driver_features, BIT(VIRTIO_F_VERSION_1));
	/* Selector words past 1 are ignored. */
	ck_assert_uint_eq(negotiate(f, BIT(VIRTIO_F_VERSION_1)), ACK | DRV | FOK);
	wr(f, VIRTIO_MMIO_STATUS, 0);
	wr(f, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 2);
	wr(f, VIRTIO_MMIO_DRIVER_FEATURES, 0xffffffff);
	ck_assert_uint_eq(f->dev.driver_features, 0);
	fake_free(f);
}
END_TEST

START_TEST(test_status_forward_only)
{
	struct fake *f = fake_new();

	wr(f, VIRTIO_MMIO_STATUS, DRV); /* skips ACK */
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_STATUS), 0);
	wr(f, VIRTIO_MMIO_STATUS, ACK);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_STATUS), ACK);
	wr(f, VIRTIO_MMIO_STATUS, ACK | FOK); /* skips DRIVER */
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_STATUS), ACK);
	wr(f, VIRTIO_MMIO_STATUS, ACK | DRV);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_STATUS), ACK | DRV);
	wr(f, VIRTIO_MMIO_STATUS, ACK); /* clears DRIVER */
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_STATUS), ACK | DRV);
	wr(f, VIRTIO_MMIO_STATUS, ACK | DRV | DOK); /* skips FEATURES_OK */
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_STATUS), ACK | DRV);
	/* The driver cannot set the device's NEEDS_RESET bit. */
	wr(f, VIRTIO_MMIO_STATUS, ACK | DRV | VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_STATUS), ACK | DRV);
	write_driver_features(f, BIT(VIRTIO_F_VERSION_1));
	wr(f, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	wr(f, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_STATUS), ACK | DRV | FOK | DOK);
	wr(f, VIRTIO_MMIO_STATUS, ACK | DRV | DOK); /* drops FEATURES_OK */
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_STATUS), ACK | DRV | FOK | DOK);
	/* FAILED can always be added. */
	wr(f, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK | VIRTIO_STATUS_FAILED);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_STATUS), ACK | DRV | FOK | DOK | VIRTIO_STATUS_FAILED);
	ck_assert_int_eq(f->resets, 0);
	fake_free(f);
}
END_TEST

START_TEST(test_reset_clears_everything)
{
	struct fake *f = fake_new();

	bring_up(f, BIT(VIRTIO_RING_F_EVENT_IDX));
	put_desc(f, 0, DATA_GPA, 8, 0, 0);
	avail_add(f, 0);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	wr(f, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	wr(f, VIRTIO_MMIO_QUEUE_SEL, 1);
	f->resets = 0;
	wr(f, VIRTIO_MMIO_STATUS, 0);
	ck_assert_int_eq(f->resets, 1);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_STATUS), 0);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	ck_assert_uint_eq(f->dev.driver_features, 0);
	ck_assert_uint_eq(f->dev.device_features_sel, 0);
	ck_assert_uint_eq(f->dev.queue_sel, 0);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_QUEUE_READY), 0);
	ck_assert_uint_eq(f->dev.queues[0].size, 0);
	ck_assert_uint_eq(f->dev.queues[0].desc_gpa, 0);
	ck_assert_uint_eq(f->dev.queues[0].last_avail_idx, 0);
	ck_assert(!f->dev.queues[0].event_idx);
	/* A notify after reset does nothing. */
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	ck_assert_int_eq(f->notifies, 1);
	/* And the device comes back up from scratch. */
	memset(f->ram + USED_GPA, 0, 0x100);
	memset(f->ram + AVAIL_GPA, 0, 0x100);
	bring_up(f, 0);
	avail_add(f, 0);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	ck_assert_uint_eq(used_idx(f), 1);
	fake_free(f);
}
END_TEST

START_TEST(test_queue_registers_need_features_ok)
{
	struct fake *f = fake_new();

	wr(f, VIRTIO_MMIO_STATUS, ACK);
	wr(f, VIRTIO_MMIO_STATUS, ACK | DRV);
	setup_queue(f, 0, 8, DESC_GPA, AVAIL_GPA, USED_GPA);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_QUEUE_READY), 0);
	ck_assert_uint_eq(f->dev.queues[0].size, 0);
	ck_assert_uint_eq(f->dev.queues[0].desc_gpa, 0);
	fake_free(f);
}
END_TEST

START_TEST(test_queue_setup_checks)
{
	struct fake *f = fake_new();

	ck_assert_uint_eq(negotiate(f, BIT(VIRTIO_F_VERSION_1)), ACK | DRV | FOK);
	wr(f, VIRTIO_MMIO_QUEUE_SEL, 0);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_QUEUE_NUM_MAX), FAKE_QMAX);
	/* Queues the device does not have: max 0, never ready. */
	wr(f, VIRTIO_MMIO_QUEUE_SEL, FAKE_QUEUES);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_QUEUE_NUM_MAX), 0);
	setup_queue(f, FAKE_QUEUES, 8, DESC_GPA, AVAIL_GPA, USED_GPA);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_QUEUE_READY), 0);
	setup_queue(f, 0xffffffff, 8, DESC_GPA, AVAIL_GPA, USED_GPA);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_QUEUE_READY), 0);
	/* Bad sizes. */
	static const uint32_t bad_num[] = { 0, 3, 12, FAKE_QMAX * 2, 0x10008, 0xffffffff };
	for (unsigned int i = 0; i < sizeof(bad_num) / sizeof(bad_num[0]); i++) {
		setup_queue(f, 0, bad_num[i], DESC_GPA, AVAIL_GPA, USED_GPA);
		ck_assert_uint_eq(rd(f, VIRTIO_MMIO_QUEUE_READY), 0);
	}
	/* Rings outside RAM, in the high half, or misaligned. */
	setup_queue(f, 0, 8, RAM_SIZE, AVAIL_GPA, USED_GPA);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_QUEUE_READY), 0);
	setup_queue(f, 0, 8, DESC_GPA | (1ULL << 32), AVAIL_GPA, USED_GPA);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_QUEUE_READY), 0);
	setup_queue(f, 0, 8, DESC_GPA, AVAIL_GPA, UINT64_MAX - 3);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_QUEUE_READY), 0);
	setup_queue(f, 0, 8, DESC_GPA + 4, AVAIL_GPA, USED_GPA);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_QUEUE_READY), 0);
	/* A good one. */
	setup_queue(f, 0, FAKE_QMAX, DESC_GPA, AVAIL_GPA, USED_GPA);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_QUEUE_READY), 1);
	ck_assert_uint_eq(f->dev.queues[0].size, FAKE_QMAX);
	/* Once ready, size and addresses are frozen. */
	wr(f, VIRTIO_MMIO_QUEUE_NUM, 4);
	wr(f, VIRTIO_MMIO_QUEUE_DESC_LOW, 0x5000);
	wr(f, VIRTIO_MMIO_QUEUE_USED_HIGH, 1);
	ck_assert_uint_eq(f->dev.queues[0].size, FAKE_QMAX);
	ck_assert_uint_eq(f->dev.queues[0].desc_gpa, DESC_GPA);
	ck_assert_uint_eq(f->dev.queues[0].used_gpa, USED_GPA);
	/* Before DRIVER_OK the driver may take a queue down again. */
	wr(f, VIRTIO_MMIO_QUEUE_READY, 0);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_QUEUE_READY), 0);
	setup_queue(f, 0, 8, DESC_GPA, AVAIL_GPA, USED_GPA);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_QUEUE_READY), 1);
	fake_free(f);
}
END_TEST

START_TEST(test_queue_frozen_after_driver_ok)
{
	struct fake *f = fake_new();

	bring_up(f, 0);
	/* Queue 0 is live: cannot be shrunk, moved or stopped. */
	wr(f, VIRTIO_MMIO_QUEUE_SEL, 0);
	wr(f, VIRTIO_MMIO_QUEUE_READY, 0);
	wr(f, VIRTIO_MMIO_QUEUE_NUM, 2);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_QUEUE_READY), 1);
	ck_assert_uint_eq(f->dev.queues[0].size, 8);
	/* Queue 1 was not set up: it cannot be now. */
	setup_queue(f, 1, 8, DESC_GPA + 0x8000, AVAIL_GPA + 0x8000, USED_GPA + 0x8000);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_QUEUE_READY), 0);
	ck_assert_uint_eq(f->dev.queues[1].size, 0);
	ck_assert_uint_eq(f->dev.queues[1].desc_gpa, 0);
	fake_free(f);
}
END_TEST

START_TEST(test_event_idx_reaches_queue)
{
	struct fake *f = fake_new();

	bring_up(f, 0);
	ck_assert(!f->dev.queues[0].event_idx);
	bring_up(f, BIT(VIRTIO_RING_F_EVENT_IDX));
	ck_assert(f->dev.queues[0].event_idx);
	ck_assert(!f->dev.queues[0].indirect);
	fake_free(f);
}
END_TEST

START_TEST(test_config_space)
{
	struct fake *f = fake_new();
	uint8_t b[8];

	memset(b, 0xff, sizeof(b));
	virtio_mmio_access(&f->dev, VIRTIO_MMIO_CONFIG + 1, b, 1, false);
	ck_assert_uint_eq(b[0], 0xa1);
	virtio_mmio_access(&f->dev, VIRTIO_MMIO_CONFIG + 2, b, 2, false);
	ck_assert_uint_eq(tu_get16(b), 0xa3a2);
	virtio_mmio_access(&f->dev, VIRTIO_MMIO_CONFIG + 8, b, 4, false);
	ck_assert_uint_eq(tu_get32(b), 0xabaaa9a8);
	virtio_mmio_access(&f->dev, VIRTIO_MMIO_CONFIG, b, 8, false);
	ck_assert_uint_eq(tu_get64(b), 0xa7a6a5a4a3a2a1a0ULL);
	/* Straddling the end, past it, odd widths: all zeroes. */
	memset(b, 0xff, sizeof(b));
	virtio_mmio_access(&f->dev, VIRTIO_MMIO_CONFIG + 10, b, 4, false);
	ck_assert_uint_eq(tu_get32(b), 0);
	memset(b, 0xff, sizeof(b));
	virtio_mmio_access(&f->dev, VIRTIO_MMIO_CONFIG + 12, b, 1, false);
	ck_assert_uint_eq(b[0], 0);
	memset(b, 0xff, sizeof(b));
	virtio_mmio_access(&f->dev, VIRTIO_MMIO_SIZE - 4, b, 4, false);
	ck_assert_uint_eq(tu_get32(b), 0);
	memset(b, 0xff, sizeof(b));
	virtio_mmio_access(&f->dev, VIRTIO_MMIO_CONFIG, b, 3, false);
	ck_assert_uint_eq(b[0] | b[1] | b[2], 0);
	/* Accesses that leave the window never reach the device. */
	memset(b, 0xff, sizeof(b));
	virtio_mmio_access(&f->dev, VIRTIO_MMIO_SIZE - 4, b, 8, false);
	ck_assert_uint_eq(tu_get64(b), 0);
	virtio_mmio_access(&f->dev, 0xfffffffffffffff0ULL, b, 8, false);
	ck_assert_uint_eq(tu_get64(b), 0);
	virtio_mmio_access(&f->dev, 0xfffffffffffffff0ULL, b, 8, true);
	virtio_mmio_access(&f->dev, VIRTIO_MMIO_SIZE - 4, b, 8, true);
	ck_assert_int_eq(f->config_writes, 0);
	/* Writes go to the device, which does its own bounds check. */
	virtio_mmio_access(&f->dev, VIRTIO_MMIO_CONFIG + 4, b, 2, true);
	ck_assert_int_eq(f->config_writes, 1);
	ck_assert_uint_eq(f->cw_offset, 4);
	ck_assert_uint_eq(f->cw_len, 2);
	virtio_mmio_access(&f->dev, VIRTIO_MMIO_CONFIG + 4, b, 3, true);
	ck_assert_int_eq(f->config_writes, 1);
	fake_free(f);
}
END_TEST

START_TEST(test_register_access_widths)
{
	struct fake *f = fake_new();
	uint8_t b[8];

	static const uint32_t widths[] = { 1, 2, 8 };
	for (unsigned int i = 0; i < 3; i++) {
		memset(b, 0xff, sizeof(b));
		virtio_mmio_access(&f->dev, VIRTIO_MMIO_MAGIC_VALUE, b, widths[i], false);
		for (unsigned int j = 0; j < widths[i]; j++)
			ck_assert_uint_eq(b[j], 0);
	}
	/* Unaligned 32-bit read. */
	memset(b, 0xff, sizeof(b));
	virtio_mmio_access(&f->dev, VIRTIO_MMIO_MAGIC_VALUE + 1, b, 4, false);
	ck_assert_uint_eq(tu_get32(b), 0);
	/* Narrow or unaligned writes do nothing. */
	b[0] = ACK;
	virtio_mmio_access(&f->dev, VIRTIO_MMIO_STATUS, b, 1, true);
	virtio_mmio_access(&f->dev, VIRTIO_MMIO_STATUS, b, 2, true);
	memset(b, 0, sizeof(b));
	b[0] = ACK;
	virtio_mmio_access(&f->dev, VIRTIO_MMIO_STATUS, b, 8, true);
	virtio_mmio_access(&f->dev, VIRTIO_MMIO_STATUS + 2, b, 4, true);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_STATUS), 0);
	fake_free(f);
}
END_TEST

START_TEST(test_notify_and_interrupt_ack)
{
	struct fake *f = fake_new();

	bring_up(f, 0);
	put_desc(f, 0, DATA_GPA, 8, 0, 0);
	avail_add(f, 0);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	ck_assert_int_eq(f->notifies, 1);
	ck_assert_uint_eq(used_idx(f), 1);
	ck_assert_int_eq(f->irqs, 1);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	wr(f, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_CONFIG); /* acks only what it names */
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	wr(f, VIRTIO_MMIO_INTERRUPT_ACK, VIRTIO_MMIO_INT_VRING);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	/* A kick with nothing new: the device looks, but nothing to signal. */
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	ck_assert_int_eq(f->notifies, 2);
	ck_assert_int_eq(f->irqs, 1);
	/* The driver suppresses interrupts: used is published, no irq. */
	tu_put16(f->ram + AVAIL_GPA, VIRTQ_AVAIL_F_NO_INTERRUPT);
	avail_add(f, 0);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	ck_assert_uint_eq(used_idx(f), 2);
	ck_assert_int_eq(f->irqs, 1);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	fake_free(f);
}
END_TEST

START_TEST(test_notify_ignored_when_not_live)
{
	struct fake *f = fake_new();

	/* Before DRIVER_OK. */
	ck_assert_uint_eq(negotiate(f, BIT(VIRTIO_F_VERSION_1)), ACK | DRV | FOK);
	setup_queue(f, 0, 8, DESC_GPA, AVAIL_GPA, USED_GPA);
	put_desc(f, 0, DATA_GPA, 8, 0, 0);
	avail_add(f, 0);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	virtio_mmio_notify(&f->dev, 0);
	ck_assert_int_eq(f->notifies, 0);
	wr(f, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
	/* Queues that do not exist or are not ready. */
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 1);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, FAKE_QUEUES);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0xffff);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0xffffffff);
	virtio_mmio_notify(&f->dev, 0x80000000U);
	ck_assert_int_eq(f->notifies, 0);
	/* After FAILED. */
	wr(f, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK | VIRTIO_STATUS_FAILED);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	ck_assert_int_eq(f->notifies, 0);
	ck_assert_uint_eq(used_idx(f), 0);
	fake_free(f);
}
END_TEST

START_TEST(test_ioeventfd_mode)
{
	struct fake *f = fake_new();

	bring_up(f, 0);
	virtio_mmio_set_ioeventfd(&f->dev, true);
	put_desc(f, 0, DATA_GPA, 8, 0, 0);
	avail_add(f, 0);
	/* The MMIO path leaves QueueNotify to the owner's ioeventfd... */
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	ck_assert_int_eq(f->notifies, 0);
	ck_assert_uint_eq(used_idx(f), 0);
	/* ...which calls virtio_mmio_notify(). */
	virtio_mmio_notify(&f->dev, 0);
	ck_assert_int_eq(f->notifies, 1);
	ck_assert_uint_eq(used_idx(f), 1);
	ck_assert_int_eq(f->irqs, 1);
	fake_free(f);
}
END_TEST

START_TEST(test_needs_reset_and_recovery)
{
	struct fake *f = fake_new();

	bring_up(f, 0);
	put_desc(f, 0, DATA_GPA, 8, VIRTQ_DESC_F_NEXT, 0); /* self-loop */
	avail_add(f, 0);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_STATUS),
			  ACK | DRV | FOK | DOK | VIRTIO_STATUS_DEVICE_NEEDS_RESET);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_CONFIG);
	ck_assert_int_eq(f->irqs, 1);
	ck_assert_uint_eq(used_idx(f), 0);
	/* The device stays stopped, even if the ring is fixed. */
	put_desc(f, 0, DATA_GPA, 8, 0, 0);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	virtio_mmio_notify(&f->dev, 0);
	ck_assert_int_eq(f->notifies, 1);
	ck_assert_int_eq(f->irqs, 1);
	/* The driver cannot clear the bit without a reset... */
	wr(f, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK | VIRTIO_STATUS_FAILED);
	ck_assert_uint_ne(rd(f, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
	/* ...and after one everything works again. */
	memset(f->ram + AVAIL_GPA, 0, 0x100);
	memset(f->ram + USED_GPA, 0, 0x100);
	bring_up(f, 0);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS), 0);
	avail_add(f, 0);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	ck_assert_uint_eq(used_idx(f), 1);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_STATUS), ACK | DRV | FOK | DOK);
	fake_free(f);
}
END_TEST

START_TEST(test_no_irq_callback)
{
	struct fake *f = fake_new();

	/* Without an owner callback, interrupts only show in the ISR. */
	virtio_mmio_set_irq(&f->dev, NULL, NULL);
	bring_up(f, 0);
	put_desc(f, 0, DATA_GPA, 8, 0, 0);
	avail_add(f, 0);
	wr(f, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	ck_assert_uint_eq(rd(f, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	ck_assert_int_eq(f->irqs, 0);
	fake_free(f);
}
END_TEST

static Suite *virtio_mmio_suite(void)
{
	Suite *s = suite_create("virtio_mmio");
	TCase *tc = tcase_create("registers");
	TCase *tq = tcase_create("queues");

	tcase_add_test(tc, test_identity);
	tcase_add_test(tc, test_init_rejects_bad_ops);
	tcase_add_test(tc, test_device_features);
	tcase_add_test(tc, test_negotiation);
	tcase_add_test(tc, test_status_forward_only);
	tcase_add_test(tc, test_reset_clears_everything);
	tcase_add_test(tc, test_config_space);
	tcase_add_test(tc, test_register_access_widths);
	suite_add_tcase(s, tc);

	tcase_add_test(tq, test_queue_registers_need_features_ok);
	tcase_add_test(tq, test_queue_setup_checks);
	tcase_add_test(tq, test_queue_frozen_after_driver_ok);
	tcase_add_test(tq, test_event_idx_reaches_queue);
	tcase_add_test(tq, test_notify_and_interrupt_ack);
	tcase_add_test(tq, test_notify_ignored_when_not_live);
	tcase_add_test(tq, test_ioeventfd_mode);
	tcase_add_test(tq, test_needs_reset_and_recovery);
	tcase_add_test(tq, test_no_irq_callback);
	suite_add_tcase(s, tq);
	return s;
}

int main(void)
{
	return tu_run(virtio_mmio_suite());
}
