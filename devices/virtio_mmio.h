/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-mmio transport, modern interface (version 2) only: one 4 KiB
 * register window per device (virtio 1.x section 4.2.2).
 *
 * Driver-facing rules this transport enforces:
 *   - only 32-bit, 4-byte-aligned accesses below 0x100; anything else is
 *     ignored and reads as 0.  Config space (0x100+) takes 1, 2, 4 or 8
 *     bytes and the device checks offset + len against its config size;
 *   - status bits only move forward (ACKNOWLEDGE -> DRIVER -> FEATURES_OK
 *     -> DRIVER_OK, FAILED at any time); a write that clears a bit or skips
 *     a step is ignored.  Writing 0 resets the device and all queues;
 *   - FEATURES_OK is refused (reads back clear) unless the driver accepted
 *     VIRTIO_F_VERSION_1 and only offered bits;
 *   - driver features are writable only before FEATURES_OK;
 *   - queue registers (QueueNum, the ring addresses, QueueReady) are
 *     writable only between FEATURES_OK and DRIVER_OK, and QueueNum and the
 *     addresses only while the selected queue is not ready.  QueueReady = 1
 *     validates the queue (virtq_enable); if that fails it reads back 0;
 *   - a queue violation sets DEVICE_NEEDS_RESET, raises a configuration
 *     change interrupt and stops all queue processing until reset.
 *
 * Threading: a mutex serialises register accesses (vCPU threads) against
 * queue processing (a device thread calling virtio_mmio_notify()).  Device
 * callbacks run with it held and must not call back into the locking API.
 */
#ifndef MSVMM_VIRTIO_MMIO_H
#define MSVMM_VIRTIO_MMIO_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "guest_mem.h"
#include "virtqueue.h"

#define VIRTIO_MMIO_SIZE 0x1000

/* Register offsets. */
#define VIRTIO_MMIO_MAGIC_VALUE 0x000
#define VIRTIO_MMIO_VERSION 0x004
#define VIRTIO_MMIO_DEVICE_ID 0x008
#define VIRTIO_MMIO_VENDOR_ID 0x00c
#define VIRTIO_MMIO_DEVICE_FEATURES 0x010
#define VIRTIO_MMIO_DEVICE_FEATURES_SEL 0x014
#define VIRTIO_MMIO_DRIVER_FEATURES 0x020
#define VIRTIO_MMIO_DRIVER_FEATURES_SEL 0x024
#define VIRTIO_MMIO_QUEUE_SEL 0x030
#define VIRTIO_MMIO_QUEUE_NUM_MAX 0x034
#define VIRTIO_MMIO_QUEUE_NUM 0x038
#define VIRTIO_MMIO_QUEUE_READY 0x044
/* ioeventfd: a 4-byte write here whose value is the queue index. */
#define VIRTIO_MMIO_QUEUE_NOTIFY 0x050
#define VIRTIO_MMIO_INTERRUPT_STATUS 0x060
#define VIRTIO_MMIO_INTERRUPT_ACK 0x064
#define VIRTIO_MMIO_STATUS 0x070
#define VIRTIO_MMIO_QUEUE_DESC_LOW 0x080
#define VIRTIO_MMIO_QUEUE_DESC_HIGH 0x084
#define VIRTIO_MMIO_QUEUE_AVAIL_LOW 0x090
#define VIRTIO_MMIO_QUEUE_AVAIL_HIGH 0x094
#define VIRTIO_MMIO_QUEUE_USED_LOW 0x0a0
#define VIRTIO_MMIO_QUEUE_USED_HIGH 0x0a4
#define VIRTIO_MMIO_CONFIG_GENERATION 0x0fc
#define VIRTIO_MMIO_CONFIG 0x100

#define VIRTIO_MMIO_MAGIC 0x74726976U /* "virt" */
#define VIRTIO_MMIO_VENDOR 0x4d56534dU /* "MSVM" */

#define VIRTIO_MMIO_INT_VRING 0x1U
#define VIRTIO_MMIO_INT_CONFIG 0x2U

/* Device status bits. */
#define VIRTIO_STATUS_ACKNOWLEDGE 0x01U
#define VIRTIO_STATUS_DRIVER 0x02U
#define VIRTIO_STATUS_DRIVER_OK 0x04U
#define VIRTIO_STATUS_FEATURES_OK 0x08U
#define VIRTIO_STATUS_DEVICE_NEEDS_RESET 0x40U
#define VIRTIO_STATUS_FAILED 0x80U

/* Transport and ring feature bits (bit numbers). */
#define VIRTIO_RING_F_INDIRECT_DESC 28
#define VIRTIO_RING_F_EVENT_IDX 29
#define VIRTIO_F_VERSION_1 32

#define VIRTIO_MMIO_MAX_QUEUES 8

/* What a device model provides; 'opaque' is given to every callback. */
struct virtio_mmio_ops {
	uint32_t device_id;
	/* Device feature bits; VERSION_1 and EVENT_IDX are added by the transport. */
	uint64_t features;
	unsigned int num_queues; /* 1..VIRTIO_MMIO_MAX_QUEUES */
	uint16_t queue_max;      /* power of two, <= VIRTQ_MAX_SIZE */
	/* Config space access; 'data' is zeroed for reads, offset is relative to 0x100. */
	void (*config_read)(void *opaque, uint32_t offset, uint8_t *data, uint32_t len);
	void (*config_write)(void *opaque, uint32_t offset, const uint8_t *data, uint32_t len);
	/*
	 * Process queue 'index' (ready, device live).  Returns the number of
	 * chains pushed, or -1 when the driver broke the rules.
	 */
	int (*notify)(void *opaque, unsigned int index);
	void (*reset)(void *opaque);
};

struct virtio_mmio_dev {
	pthread_mutex_t lock;
	const struct virtio_mmio_ops *ops;
	void *opaque;
	uint64_t host_features; /* ops->features plus the transport's */

	/* Set by the owner before the guest runs. */
	/*
	 * Raise the (edge) interrupt, e.g. write the irqfd.  Called with the
	 * lock held, on whichever thread found work; must not re-enter us.
	 */
	void (*irq)(void *opaque);
	void *irq_opaque;
	bool ioeventfd; /* QueueNotify reaches us through an ioeventfd, not the MMIO handler */

	/* Register state. */
	uint32_t status;
	uint32_t isr;
	uint32_t config_generation;
	uint32_t device_features_sel, driver_features_sel;
	uint64_t driver_features;
	uint32_t queue_sel;
	struct virtq queues[VIRTIO_MMIO_MAX_QUEUES];
};

/* 0, or -EINVAL for inconsistent ops, or a pthread error (negated). */
int virtio_mmio_init(struct virtio_mmio_dev *d, const struct guest_mem *gm,
		     const struct virtio_mmio_ops *ops, void *opaque);
void virtio_mmio_destroy(struct virtio_mmio_dev *d);
void virtio_mmio_set_irq(struct virtio_mmio_dev *d, void (*irq)(void *opaque), void *opaque);
/* true: the owner delivers QueueNotify through virtio_mmio_notify() itself. */
void virtio_mmio_set_ioeventfd(struct virtio_mmio_dev *d, bool on);

/* The register window; matches bus_handler (opaque is the virtio_mmio_dev). */
void virtio_mmio_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);
/*
 * The guest kicked queue 'index': process it if the device is live, then
 * interrupt the guest if it wants one.  Takes the lock; any thread.
 */
void virtio_mmio_notify(struct virtio_mmio_dev *d, unsigned int index);

/* For device callbacks (lock held): the queue the device serves. */
struct virtq *virtio_mmio_queue(struct virtio_mmio_dev *d, unsigned int index);
/* Lock held: mark the device broken (NEEDS_RESET + config interrupt). */
void virtio_mmio_needs_reset_locked(struct virtio_mmio_dev *d);
/* Lock held: interrupt the guest for queue 'index' if it wants one. */
void virtio_mmio_used_locked(struct virtio_mmio_dev *d, unsigned int index);

/*
 * For devices with work that does not start at a guest kick (host sockets):
 * take the transport lock, and ask whether queues may be served now.
 */
void virtio_mmio_lock(struct virtio_mmio_dev *d);
void virtio_mmio_unlock(struct virtio_mmio_dev *d);
bool virtio_mmio_live_locked(const struct virtio_mmio_dev *d);

/* Diagnostics (locks): the registers and every queue's state, as lines on fd. */
void virtio_mmio_describe(struct virtio_mmio_dev *d, int fd, const char *name);

/* Snapshot of the status register (locks). */
uint32_t virtio_mmio_status(struct virtio_mmio_dev *d);

/*
 * Snapshots, for the device models (each frames the transport state inside
 * its own versioned section).  Saved: the device id, offered features and
 * queue count (to recognise the device), status, interrupt status, config
 * generation, both feature selects, the driver features, the queue select
 * and every queue's ring state (virtq_save).  Not saved: the irq callback
 * and ioeventfd, which belong to the device restored into.
 *
 * virtio_mmio_load_locked() decodes into 's' and checks it against the
 * device it is for, changing nothing: the same device id, features and
 * queue count; a status the forward-only rules can reach; driver features
 * that passed the FEATURES_OK check once it is set; queues that fit what
 * the register path allows (size <= queue_max, ring flags as negotiated,
 * configured only after FEATURES_OK, served only after DRIVER_OK) and pass
 * virtq_load()'s checks against the device's guest RAM.  0, or -EINVAL
 * with r->err set.  virtio_mmio_apply_locked() then installs it.
 *
 * The interrupt is not raised again on restore: it is an edge, and one the
 * guest had not taken yet is in the restored irqchip state.  A kick the
 * device had not served before the save is not: the owner notifies every
 * queue once when the restored machine runs (it costs nothing when the
 * rings are idle).
 */
struct snap_w;
struct snap_r;

struct virtio_mmio_state {
	uint32_t status, isr, config_generation;
	uint32_t device_features_sel, driver_features_sel, queue_sel;
	uint64_t driver_features;
	struct virtq queues[VIRTIO_MMIO_MAX_QUEUES];
};

void virtio_mmio_save_locked(const struct virtio_mmio_dev *d, struct snap_w *w);
int virtio_mmio_load_locked(const struct virtio_mmio_dev *d, struct snap_r *r,
			    struct virtio_mmio_state *s);
void virtio_mmio_apply_locked(struct virtio_mmio_dev *d, const struct virtio_mmio_state *s);

#endif
