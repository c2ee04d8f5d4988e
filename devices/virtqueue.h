/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Split virtqueues (virtio 1.x, section 2.7), device side, for a hostile
 * driver.  Every ring and buffer address the guest supplies is turned into a
 * host pointer only through guest_mem_ptr(), each descriptor is read once
 * into a local before it is checked and used, and every walk is bounded.
 *
 * Limits (all enforced by virtq_enable()/virtq_pop()):
 *   - queue size: a power of two, 1..VIRTQ_MAX_SIZE;
 *   - ring addresses: aligned as the spec requires (desc 16, avail 2,
 *     used 4) and wholly inside guest RAM;
 *   - avail idx may run ahead of the device by at most the queue size;
 *   - a chain has at most 'size' buffer descriptors, counting those inside
 *     an indirect table (the descriptor naming the table is not a buffer);
 *   - an indirect table: only when negotiated, never nested, never with
 *     NEXT, 16 * n bytes with 1 <= n <= size, inside guest RAM;
 *   - device-readable descriptors come before device-writable ones;
 *   - the sum of all buffer lengths is at most VIRTQ_MAX_CHAIN_BYTES;
 *   - zero-length descriptors are allowed (they count as a hop and obey the
 *     direction rule) but yield no segment and their address is not used.
 * A violation makes virtq_pop() return -1 and marks the queue broken: it
 * returns -1 from then on until virtq_reset().
 *
 * Not thread-safe: one thread at a time per queue (the transport's lock).
 */
#ifndef MSVMM_VIRTQUEUE_H
#define MSVMM_VIRTQUEUE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <sys/uio.h>

#include "guest_mem.h"

struct snap_w;
struct snap_r;

#define VIRTQ_DESC_F_NEXT 1
#define VIRTQ_DESC_F_WRITE 2
#define VIRTQ_DESC_F_INDIRECT 4
#define VIRTQ_AVAIL_F_NO_INTERRUPT 1
#define VIRTQ_USED_F_NO_NOTIFY 1

#define VIRTQ_DESC_SIZE 16
#define VIRTQ_USED_ELEM_SIZE 8

/* Largest queue this implementation accepts (the spec allows 32768). */
#define VIRTQ_MAX_SIZE 1024
/* Every chain fits in this many segments because hops are capped at size. */
#define VIRTQ_MAX_SEGS VIRTQ_MAX_SIZE
/*
 * Cap on the bytes one chain may describe: keeps every sum far from
 * overflowing 32-bit used.len and bounds the host I/O one request causes.
 * virtio-blk advertises limits (seg_max * size_max) below it.
 */
#define VIRTQ_MAX_CHAIN_BYTES (256ULL << 20)

struct virtq {
	const struct guest_mem *gm;
	/* Set by the driver through the transport while not ready. */
	uint16_t size;
	uint64_t desc_gpa, avail_gpa, used_gpa;
	/* Negotiated features that change the ring layout or rules. */
	bool event_idx;
	bool indirect;

	bool ready;
	bool broken;
	uint16_t last_avail_idx; /* next avail ring slot the device reads */
	uint16_t used_idx;       /* next used ring slot the device writes */
	uint16_t signalled_used; /* used_idx at the last interrupt decision */
};

/*
 * A popped descriptor chain as host segments, all from guest_mem_ptr():
 * iov[0 .. nr_readable) are device-readable, then nr_writable device-writable
 * ones (the direction rule guarantees this order).
 */
struct virtq_chain {
	uint16_t head;
	unsigned int nr_readable, nr_writable;
	uint64_t readable_len, writable_len;
	struct iovec iov[VIRTQ_MAX_SEGS];
};

/* A queue with nothing configured, bound to guest RAM. */
void virtq_init(struct virtq *q, const struct guest_mem *gm);
/* Back to the state after virtq_init() (device or queue reset). */
void virtq_reset(struct virtq *q);
/* Check size and ring addresses, then go live from index 0.  0 or -1. */
int virtq_enable(struct virtq *q);

/* 1: *c holds the next chain; 0: nothing available; -1: spec violation. */
int virtq_pop(struct virtq *q, struct virtq_chain *c);
/* Give back the chain the last virtq_pop() returned, unused: the next pop returns it again. */
void virtq_unpop(struct virtq *q);
/*
 * Return a chain to the driver with 'written' bytes written to its writable
 * part, and publish the new used idx (release).  0, or -1 if the queue is
 * broken or not ready, head is out of range or the used ring left RAM.
 */
int virtq_push(struct virtq *q, uint16_t head, uint32_t written);
/*
 * Whether the driver wants an interrupt for what was pushed since the last
 * call: no when nothing was pushed; else VIRTQ_AVAIL_F_NO_INTERRUPT, or with
 * event idx the used_event field, decides.
 */
bool virtq_needs_interrupt(struct virtq *q);

/*
 * Snapshots.  virtq_save() appends the ring state (size, the three ring
 * addresses, event_idx, indirect, ready, broken, last_avail_idx, used_idx,
 * signalled_used) to w.  virtq_load() decodes it into q, a queue bound to the
 * guest RAM it will serve (virtq_init), and checks what the queue itself
 * could have reached: a ready queue passes virtq_enable() against that RAM
 * and has at most 'size' chains popped but not yet used; a queue that is not
 * ready was never served (not broken, indexes 0).  Whether the flags and
 * the size fit the device is the transport's check.  0, or -1 with r->err
 * set (q then holds a partial decode: load into a scratch copy).
 */
void virtq_save(const struct virtq *q, struct snap_w *w);
int virtq_load(struct virtq *q, struct snap_r *r);

/*
 * One line for diagnostics: the device's indexes and what the driver's
 * rings hold now (avail flags/idx/used_event, used flags/idx/avail_event).
 * Reads the rings through the same checked pointers as the device does.
 */
int virtq_describe(const struct virtq *q, char *buf, size_t len);

/* Copy out of the readable part from byte 'offset'; returns bytes copied. */
uint64_t virtq_chain_read(const struct virtq_chain *c, uint64_t offset, void *dst, uint64_t len);
/* Copy into the writable part at byte 'offset'; returns bytes copied. */
uint64_t virtq_chain_write(const struct virtq_chain *c, uint64_t offset, const void *src,
			   uint64_t len);
/*
 * Describe bytes [offset, offset + len) of the readable (writable false) or
 * writable part as at most 'max' iovecs in 'out' (for preadv/pwritev).
 * Returns the count, or -1 if the range is not inside that part or needs
 * more than 'max' entries.
 */
int virtq_chain_slice(const struct virtq_chain *c, bool writable, uint64_t offset, uint64_t len,
		      struct iovec *out, unsigned int max);

#endif
