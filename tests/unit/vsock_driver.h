/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The vsock-specific pieces of a guest virtio-vsock driver over fake guest
 * RAM (the packet header, register access bound to the device), shared by
 * the tests that play the guest against devices/virtio_vsock
 * (test_virtio_vsock, test_vsock_agent, test_snapshot_devices); the generic
 * ones are in virtio_driver.h.  Header-only; the wire format is written here
 * independently of the device's codec, and nothing here asserts: the
 * callers check what they need.
 */
#ifndef MSVMM_TEST_VSOCK_DRIVER_H
#define MSVMM_TEST_VSOCK_DRIVER_H

#include <stdbool.h>
#include <stdint.h>

#include "virtio_driver.h"
#include "virtio_vsock.h"

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
	return vd_mmio_rd(&v->mmio, off);
}

static inline void vd_wr(struct virtio_vsock *v, uint64_t off, uint32_t val)
{
	vd_mmio_wr(&v->mmio, off, val);
}

static inline uint64_t vd_device_features(struct virtio_vsock *v)
{
	return vd_mmio_device_features(&v->mmio);
}

static inline void vd_driver_features(struct virtio_vsock *v, uint64_t want)
{
	vd_mmio_driver_features(&v->mmio, want);
}

/* Program and enable queue q; false when the device disagrees (NUM_MAX or READY). */
static inline bool vd_queue_setup(struct virtio_vsock *v, unsigned int q, uint16_t size, uint64_t desc,
				  uint64_t avail, uint64_t used)
{
	vd_wr(v, VIRTIO_MMIO_QUEUE_SEL, q);
	if (vd_rd(v, VIRTIO_MMIO_QUEUE_NUM_MAX) != VSOCK_QUEUE_SIZE)
		return false;
	return vd_mmio_queue_setup(&v->mmio, q, size, desc, avail, used);
}

#endif
