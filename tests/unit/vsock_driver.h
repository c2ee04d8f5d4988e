/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The register- and ring-level pieces of a guest virtio-vsock driver over
 * fake guest RAM, shared by the tests that play the guest against
 * devices/virtio_vsock (test_virtio_vsock, test_vsock_agent).  Header-only;
 * the wire format is written here independently of the device's codec, and
 * nothing here asserts: the callers check what they need.
 */
#ifndef MSVMM_TEST_VSOCK_DRIVER_H
#define MSVMM_TEST_VSOCK_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio_vsock.h"

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

/* struct virtio_vsock_hdr, 44 bytes. */
static inline void vd_hdr_put(uint8_t *p, const struct vsock_hdr *h)
{
	vd_put_le(p + 0, h->src_cid, 8);
	vd_put_le(p + 8, h->dst_cid, 8);
	vd_put_le(p + 16, h->src_port, 4);
	vd_put_le(p + 20, h->dst_port, 4);
	vd_put_le(p + 24, h->len, 4);
	vd_put_le(p + 28, h->type, 2);
	vd_put_le(p + 30, h->op, 2);
	vd_put_le(p + 32, h->flags, 4);
	vd_put_le(p + 36, h->buf_alloc, 4);
	vd_put_le(p + 40, h->fwd_cnt, 4);
}

static inline void vd_hdr_get(const uint8_t *p, struct vsock_hdr *h)
{
	h->src_cid = vd_get_le(p + 0, 8);
	h->dst_cid = vd_get_le(p + 8, 8);
	h->src_port = (uint32_t)vd_get_le(p + 16, 4);
	h->dst_port = (uint32_t)vd_get_le(p + 20, 4);
	h->len = (uint32_t)vd_get_le(p + 24, 4);
	h->type = (uint16_t)vd_get_le(p + 28, 2);
	h->op = (uint16_t)vd_get_le(p + 30, 2);
	h->flags = (uint32_t)vd_get_le(p + 32, 4);
	h->buf_alloc = (uint32_t)vd_get_le(p + 36, 4);
	h->fwd_cnt = (uint32_t)vd_get_le(p + 40, 4);
}

/* ---- registers ---- */

static inline uint32_t vd_rd(struct virtio_vsock *v, uint64_t off)
{
	uint8_t b[4];

	virtio_mmio_access(&v->mmio, off, b, 4, false);
	return (uint32_t)vd_get_le(b, 4);
}

static inline void vd_wr(struct virtio_vsock *v, uint64_t off, uint32_t val)
{
	uint8_t b[4];

	vd_put_le(b, val, 4);
	virtio_mmio_access(&v->mmio, off, b, 4, true);
}

static inline uint64_t vd_device_features(struct virtio_vsock *v)
{
	uint64_t f;

	vd_wr(v, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 0);
	f = vd_rd(v, VIRTIO_MMIO_DEVICE_FEATURES);
	vd_wr(v, VIRTIO_MMIO_DEVICE_FEATURES_SEL, 1);
	return f | (uint64_t)vd_rd(v, VIRTIO_MMIO_DEVICE_FEATURES) << 32;
}

static inline void vd_driver_features(struct virtio_vsock *v, uint64_t want)
{
	vd_wr(v, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	vd_wr(v, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)want);
	vd_wr(v, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	vd_wr(v, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(want >> 32));
}

/* Program and enable queue q; false when the device disagrees (NUM_MAX or READY). */
static inline bool vd_queue_setup(struct virtio_vsock *v, unsigned int q, uint16_t size, uint64_t desc,
				  uint64_t avail, uint64_t used)
{
	vd_wr(v, VIRTIO_MMIO_QUEUE_SEL, q);
	if (vd_rd(v, VIRTIO_MMIO_QUEUE_NUM_MAX) != VSOCK_QUEUE_SIZE)
		return false;
	vd_wr(v, VIRTIO_MMIO_QUEUE_NUM, size);
	vd_wr(v, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)desc);
	vd_wr(v, VIRTIO_MMIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	vd_wr(v, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)avail);
	vd_wr(v, VIRTIO_MMIO_QUEUE_AVAIL_HIGH, (uint32_t)(avail >> 32));
	vd_wr(v, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)used);
	vd_wr(v, VIRTIO_MMIO_QUEUE_USED_HIGH, (uint32_t)(used >> 32));
	vd_wr(v, VIRTIO_MMIO_QUEUE_READY, 1);
	return vd_rd(v, VIRTIO_MMIO_QUEUE_READY) == 1;
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
