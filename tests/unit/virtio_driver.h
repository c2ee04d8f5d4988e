/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device-independent pieces of a guest virtio-mmio driver over fake
 * guest RAM: register access, feature negotiation, queue set-up and split
 * rings.  Shared by the tests that play the guest against devices/ (through
 * vsock_driver.h, and test_snapshot_devices for virtio-blk).  Header-only;
 * the ring layout is written here independently of devices/virtqueue.c,
 * and nothing here asserts: the callers check what they need.
 */
#ifndef MSVMM_TEST_VIRTIO_DRIVER_H
#define MSVMM_TEST_VIRTIO_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio_mmio.h"

/* ---- little-endian wire format ---- */

static inline void vd_put_le(uint8_t *p, uint64_t v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

static inline uint64_t vd_get_le(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

/* ---- registers ---- */

static inline uint32_t vd_mmio_rd(struct virtio_mmio_dev *d, uint64_t off)
{
	uint8_t b[4];

	virtio_mmio_access(d, off, b, 4, false);
	return (uint32_t)vd_get_le(b, 4);
}

static inline void vd_mmio_wr(struct virtio_mmio_dev *d, uint64_t off, uint32_t val)
{
	uint8_t b[4];

	vd_put_le(b, val, 4);
	virtio_mmio_access(d, off, b, 4, true);
}

static inline uint64_t vd_mmio_device_features(struct virtio_mmio_dev *d)
{
	uint64_t f;

	vd_mmio_wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	f = vd_mmio_rd(d, VIRTIO_MMIO_DEVICE_FEATURES);
	vd_mmio_wr(d, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	return f | (uint64_t)vd_mmio_rd(d, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
}

static inline void vd_mmio_driver_features(struct virtio_mmio_dev *d, uint64_t want)
{
	vd_mmio_wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	vd_mmio_wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)want);
	vd_mmio_wr(d, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	vd_mmio_wr(d, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(want >> 32));
}

/* Program and enable queue q; false when QueueReady does not read back 1. */
static inline bool vd_mmio_queue_setup(struct virtio_mmio_dev *d, unsigned int q, uint16_t size,
				       uint64_t desc, uint64_t avail, uint64_t used)
{
	vd_mmio_wr(d, VIRTIO_MMIO_QUEUE_SEL, q);
	vd_mmio_wr(d, VIRTIO_MMIO_QUEUE_NUM, size);
	vd_mmio_wr(d, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
	vd_mmio_wr(d, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	vd_mmio_wr(d, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)avail);
	vd_mmio_wr(d, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (uint32_t)(avail >> 32));
	vd_mmio_wr(d, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)used);
	vd_mmio_wr(d, VIRTIO_MMIO_QUEUE_USED_HIGH, (uint32_t)(used >> 32));
	vd_mmio_wr(d, VIRTIO_MMIO_QUEUE_READY, 1);
	return vd_mmio_rd(d, VIRTIO_MMIO_QUEUE_READY) == 1;
}

/* ---- split rings in guest RAM ---- */

static inline void vd_put_desc(uint8_t *ram, uint64_t table, unsigned int i, uint64_t gpa, uint32_t len,
			       uint16_t flags, uint16_t next)
{
	uint8_t *d = ram + table + 16 * i;

	vd_put_le(d, gpa, 8);
	vd_put_le(d + 8, len, 4);
	vd_put_le(d + 12, flags, 2);
	vd_put_le(d + 14, next, 2);
}

/* Make head available (the ring entry, then the index with release order). */
static inline void vd_avail_push(uint8_t *ram, uint64_t avail, uint16_t size, uint16_t *idx, uint16_t head)
{
	vd_put_le(ram + avail + 4 + 2 * (*idx % size), head, 2);
	(*idx)++;
	__atomic_store_n((uint16_t *)(ram + avail + 2), *idx, __ATOMIC_RELEASE);
}

static inline uint16_t vd_used_idx(const uint8_t *ram, uint64_t used)
{
	return __atomic_load_n((const uint16_t *)(ram + used + 2), __ATOMIC_ACQUIRE);
}

/* Used ring entry n (free-running index): the chain's head and the bytes written. */
static inline void vd_used_elem(const uint8_t *ram, uint64_t used, uint16_t size, uint16_t n, uint32_t *id,
				uint32_t *len)
{
	const uint8_t *e = ram + used + 4 + 8 * (n % size);

	*id = (uint32_t)vd_get_le(e, 4);
	*len = (uint32_t)vd_get_le(e + 4, 4);
}

#endif
