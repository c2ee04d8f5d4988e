/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-blk over virtio-mmio, backed by a raw image in a host fd.
 *
 * One request queue of VIRTIO_BLK_QUEUE_SIZE entries.  Offered: FLUSH,
 * BLK_SIZE (512), SEG_MAX and SIZE_MAX (limits the device enforces: a
 * request's data is at most VIRTIO_BLK_SEG_MAX pieces of at most
 * VIRTIO_BLK_SIZE_MAX bytes, else IOERR), and RO for read-only disks.
 * Not offered: indirect descriptors (less guest-controlled parsing), MQ,
 * DISCARD, WRITE_ZEROES, CONFIG_WCE.
 *
 * Capacity is the backing size in whole 512-byte sectors: a trailing
 * partial sector is invisible to the guest.
 *
 * Request handling (virtio 1.x 5.2.6): a 16-byte header (type, reserved,
 * sector) at the start of the readable part, data, and the status in the
 * last writable byte.  IN/OUT data must be a multiple of 512 bytes and lie
 * within the capacity, else IOERR; OUT on a read-only disk is IOERR (a
 * driver that saw RO never sends one); unknown types are UNSUPP.  A chain
 * with fewer than 16 readable bytes or no writable byte cannot even carry
 * a status: it is a driver bug, so the device goes to DEVICE_NEEDS_RESET.
 */
#ifndef MSVMM_VIRTIO_BLK_H
#define MSVMM_VIRTIO_BLK_H

#include <stdbool.h>
#include <stdint.h>
#include <sys/uio.h>

#include "guest_mem.h"
#include "virtio_mmio.h"
#include "virtqueue.h"

#define VIRTIO_ID_BLOCK 2

#define VIRTIO_BLK_F_SIZE_MAX 1
#define VIRTIO_BLK_F_SEG_MAX 2
#define VIRTIO_BLK_F_RO 5
#define VIRTIO_BLK_F_BLK_SIZE 6
#define VIRTIO_BLK_F_FLUSH 9

#define VIRTIO_BLK_T_IN 0
#define VIRTIO_BLK_T_OUT 1
#define VIRTIO_BLK_T_FLUSH 4
#define VIRTIO_BLK_T_GET_ID 8

#define VIRTIO_BLK_S_OK 0
#define VIRTIO_BLK_S_IOERR 1
#define VIRTIO_BLK_S_UNSUPP 2

#define VIRTIO_BLK_SECTOR_SIZE 512
#define VIRTIO_BLK_ID_BYTES 20
#define VIRTIO_BLK_HDR_SIZE 16
#define VIRTIO_BLK_QUEUE_SIZE 256
/* Header and status take two descriptors; Linux needs seg_max + 2 <= queue size. */
#define VIRTIO_BLK_SEG_MAX (VIRTIO_BLK_QUEUE_SIZE - 2)
#define VIRTIO_BLK_SIZE_MAX (1U << 20)
/* capacity, size_max, seg_max, geometry, blk_size */
#define VIRTIO_BLK_CONFIG_SIZE 24

_Static_assert((uint64_t)VIRTIO_BLK_SEG_MAX * VIRTIO_BLK_SIZE_MAX + VIRTIO_BLK_HDR_SIZE + 1 <=
		       VIRTQ_MAX_CHAIN_BYTES,
	       "advertised request size must fit the virtqueue chain cap");

/*
 * One disk.  Large (scratch space for a chain): allocate it, and do not move
 * it after virtio_blk_init() (the transport points into it).
 */
struct virtio_blk {
	/* The transport: bus_register(bus, base, VIRTIO_MMIO_SIZE, virtio_mmio_access, &b->mmio) */
	struct virtio_mmio_dev mmio;
	struct virtio_mmio_ops ops;
	int fd; /* not owned: the caller closes it after virtio_blk_destroy() */
	bool read_only;
	uint64_t capacity; /* sectors */
	uint8_t id[VIRTIO_BLK_ID_BYTES];
	uint8_t config[VIRTIO_BLK_CONFIG_SIZE];
	uint64_t flushes; /* fdatasync calls made for FLUSH requests */
	/* Scratch for the request being served (transport lock held). */
	struct virtq_chain chain;
	struct iovec iov[VIRTQ_MAX_SEGS];
};

/*
 * Set up a disk over 'fd' (regular file or block device, opened O_RDWR, or
 * O_RDONLY with read_only).  'id' is the GET_ID string (up to 20 bytes used;
 * NULL for none).  0 or -errno.
 */
int virtio_blk_init(struct virtio_blk *b, const struct guest_mem *gm, int fd, bool read_only,
		    const char *id);
void virtio_blk_destroy(struct virtio_blk *b);

/*
 * Drain the request queue.  This is the transport's notify callback and runs
 * with the transport lock held; owners call virtio_mmio_notify(&b->mmio, 0)
 * instead, which also interrupts the guest.  Returns the number of requests
 * completed, or -1 on a driver violation (the transport then marks the
 * device DEVICE_NEEDS_RESET).
 */
int virtio_blk_process(struct virtio_blk *b);

/*
 * Snapshots.  The section: a version (u32), the transport state
 * (virtio_mmio_save_locked), the config space and the GET_ID string.  The
 * disk's bytes are the backing file's business, not the section's.
 *
 * save: 0, or -ENOMEM when the writer ran out of memory.  restore: 'r'
 * holds exactly this section and 'b' was just set up by virtio_blk_init()
 * as the machine does it (same guest RAM, backing file, read_only and id)
 * and has not run; 0, or -EINVAL (malformed, or not this disk: other
 * features, capacity or id) with 'b' unchanged.  Both take the transport
 * lock.
 */
struct snap_w;
struct snap_r;
int virtio_blk_save(struct virtio_blk *b, struct snap_w *w);
int virtio_blk_restore(struct virtio_blk *b, struct snap_r *r);

#endif
