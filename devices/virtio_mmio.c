// SPDX-License-Identifier: Apache-2.0
#include "virtio_mmio.h"

#include <endian.h>
#include <errno.h>
#include <stdio.h>
#include <string.h>

#include "snap_io.h"

/* The status bits the driver owns; DEVICE_NEEDS_RESET belongs to the device. */
#define VIRTIO_STATUS_DRIVER_BITS                                                   \
	(VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER | VIRTIO_STATUS_FEATURES_OK | \
	 VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_FAILED)

static bool virtio_mmio_ops_valid(const struct virtio_mmio_ops *ops)
{
	return ops && ops->notify && ops->num_queues >= 1 &&
	       ops->num_queues <= VIRTIO_MMIO_MAX_QUEUES && ops->queue_max >= 1 &&
	       ops->queue_max <= VIRTQ_MAX_SIZE && !(ops->queue_max & (ops->queue_max - 1));
}

int virtio_mmio_init(struct virtio_mmio_dev *d, const struct guest_mem *gm,
		     const struct virtio_mmio_ops *ops, void *opaque)
{
	int r;

	if (!virtio_mmio_ops_valid(ops))
		return -EINVAL;
	memset(d, 0, sizeof(*d));
	r = pthread_mutex_init(&d->lock, NULL);
	if (r)
		return -r;
	d->ops = ops;
	d->opaque = opaque;
	d->host_features = ops->features | (1ULL << VIRTIO_F_VERSION_1) |
			   (1ULL << VIRTIO_RING_F_EVENT_IDX);
	for (unsigned int i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++)
		virtq_init(&d->queues[i], gm);
	return 0;
}

void virtio_mmio_destroy(struct virtio_mmio_dev *d)
{
	pthread_mutex_destroy(&d->lock);
}

void virtio_mmio_set_irq(struct virtio_mmio_dev *d, void (*irq)(void *opaque), void *opaque)
{
	pthread_mutex_lock(&d->lock);
	d->irq = irq;
	d->irq_opaque = opaque;
	pthread_mutex_unlock(&d->lock);
}

void virtio_mmio_set_ioeventfd(struct virtio_mmio_dev *d, bool on)
{
	pthread_mutex_lock(&d->lock);
	d->ioeventfd = on;
	pthread_mutex_unlock(&d->lock);
}

void virtio_mmio_lock(struct virtio_mmio_dev *d)
{
	pthread_mutex_lock(&d->lock);
}

void virtio_mmio_unlock(struct virtio_mmio_dev *d)
{
	pthread_mutex_unlock(&d->lock);
}

void virtio_mmio_describe(struct virtio_mmio_dev *d, int fd, const char *name)
{
	char line[256];

	pthread_mutex_lock(&d->lock);
	dprintf(fd, "%s: device %u status %#x isr %#x driver features %#llx\n", name, d->ops->device_id,
		d->status, d->isr, (unsigned long long)d->driver_features);
	for (unsigned int i = 0; i < d->ops->num_queues; i++) {
		virtq_describe(&d->queues[i], line, sizeof(line));
		dprintf(fd, "%s: queue %u: %s\n", name, i, line);
	}
	pthread_mutex_unlock(&d->lock);
}

uint32_t virtio_mmio_status(struct virtio_mmio_dev *d)
{
	uint32_t s;

	pthread_mutex_lock(&d->lock);
	s = d->status;
	pthread_mutex_unlock(&d->lock);
	return s;
}

struct virtq *virtio_mmio_queue(struct virtio_mmio_dev *d, unsigned int index)
{
	return index < d->ops->num_queues ? &d->queues[index] : NULL;
}

static void virtio_mmio_raise(struct virtio_mmio_dev *d, uint32_t why)
{
	d->isr |= why;
	if (d->irq)
		d->irq(d->irq_opaque);
}

void virtio_mmio_needs_reset_locked(struct virtio_mmio_dev *d)
{
	if (d->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET)
		return; /* one interrupt per failure is enough */
	d->status |= VIRTIO_STATUS_DEVICE_NEEDS_RESET;
	virtio_mmio_raise(d, VIRTIO_MMIO_INT_CONFIG);
}

void virtio_mmio_used_locked(struct virtio_mmio_dev *d, unsigned int index)
{
	struct virtq *q = virtio_mmio_queue(d, index);

	if (q && virtq_needs_interrupt(q))
		virtio_mmio_raise(d, VIRTIO_MMIO_INT_VRING);
}

static void virtio_mmio_reset_locked(struct virtio_mmio_dev *d)
{
	d->status = 0;
	d->isr = 0;
	d->device_features_sel = 0;
	d->driver_features_sel = 0;
	d->driver_features = 0;
	d->queue_sel = 0;
	for (unsigned int i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++)
		virtq_reset(&d->queues[i]);
	if (d->ops->reset)
		d->ops->reset(d->opaque);
}

/* The device runs queues only after DRIVER_OK and until failure or reset. */
bool virtio_mmio_live_locked(const struct virtio_mmio_dev *d)
{
	return (d->status & VIRTIO_STATUS_DRIVER_OK) &&
	       !(d->status & (VIRTIO_STATUS_FAILED | VIRTIO_STATUS_DEVICE_NEEDS_RESET));
}

static void virtio_mmio_notify_locked(struct virtio_mmio_dev *d, uint32_t index)
{
	if (index >= d->ops->num_queues || !virtio_mmio_live_locked(d) || !d->queues[index].ready)
		return;
	if (d->ops->notify(d->opaque, index) < 0) {
		virtio_mmio_needs_reset_locked(d);
		return;
	}
	virtio_mmio_used_locked(d, index);
}

void virtio_mmio_notify(struct virtio_mmio_dev *d, unsigned int index)
{
	pthread_mutex_lock(&d->lock);
	virtio_mmio_notify_locked(d, index);
	pthread_mutex_unlock(&d->lock);
}

static bool virtio_negotiated(uint32_t status, uint64_t driver_features, unsigned int bit)
{
	return (status & VIRTIO_STATUS_FEATURES_OK) && (driver_features & (1ULL << bit));
}

static bool virtio_mmio_negotiated(const struct virtio_mmio_dev *d, unsigned int bit)
{
	return virtio_negotiated(d->status, d->driver_features, bit);
}

static bool virtio_mmio_features_ok(const struct virtio_mmio_dev *d, uint64_t driver_features)
{
	return !(driver_features & ~d->host_features) &&
	       (driver_features & (1ULL << VIRTIO_F_VERSION_1));
}

/* Each step needs the one before it (virtio 1.x 3.1.1); FAILED needs nothing. */
static bool virtio_status_ordered(uint32_t s)
{
	if ((s & VIRTIO_STATUS_DRIVER) && !(s & VIRTIO_STATUS_ACKNOWLEDGE))
		return false;
	if ((s & VIRTIO_STATUS_FEATURES_OK) && !(s & VIRTIO_STATUS_DRIVER))
		return false;
	if ((s & VIRTIO_STATUS_DRIVER_OK) && !(s & VIRTIO_STATUS_FEATURES_OK))
		return false;
	return true;
}

static void virtio_mmio_write_status(struct virtio_mmio_dev *d, uint32_t v)
{
	uint32_t cur = d->status & VIRTIO_STATUS_DRIVER_BITS;
	uint32_t want = v & VIRTIO_STATUS_DRIVER_BITS;

	if (v == 0) {
		virtio_mmio_reset_locked(d);
		return;
	}
	/* Bits only go forward; only a reset clears them. */
	if ((cur & ~want) || !virtio_status_ordered(want))
		return;
	/* A refused negotiation shows as FEATURES_OK not sticking. */
	if ((want & VIRTIO_STATUS_FEATURES_OK) && !(cur & VIRTIO_STATUS_FEATURES_OK) &&
	    !virtio_mmio_features_ok(d, d->driver_features))
		want &= ~(VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	d->status = want | (d->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

static struct virtq *virtio_mmio_sel_queue(struct virtio_mmio_dev *d)
{
	return virtio_mmio_queue(d, d->queue_sel);
}

/*
 * Queue registers change only while the driver sets queues up: after
 * FEATURES_OK (so ring layout features are known) and before DRIVER_OK (so
 * nothing the device uses can change under it).
 */
static struct virtq *virtio_mmio_setup_queue(struct virtio_mmio_dev *d)
{
	const uint32_t closed = VIRTIO_STATUS_DRIVER_OK | VIRTIO_STATUS_FAILED |
				VIRTIO_STATUS_DEVICE_NEEDS_RESET;

	if (!(d->status & VIRTIO_STATUS_FEATURES_OK) || (d->status & closed))
		return NULL;
	return virtio_mmio_sel_queue(d);
}

static void virtio_mmio_set_half(uint64_t *reg, bool high, uint32_t v)
{
	if (high)
		*reg = (*reg & 0xffffffffULL) | ((uint64_t)v << 32);
	else
		*reg = (*reg & ~0xffffffffULL) | v;
}

/* QueueNum and the ring addresses: only for a queue that is not live. */
static void virtio_mmio_write_queue_field(struct virtio_mmio_dev *d, uint64_t offset, uint32_t v)
{
	struct virtq *q = virtio_mmio_setup_queue(d);

	if (!q || q->ready)
		return;
	switch (offset) {
	case VIRTIO_MMIO_QUEUE_NUM:
		/* Out of range becomes 0, which virtq_enable refuses. */
		q->size = v <= d->ops->queue_max ? (uint16_t)v : 0;
		break;
	case VIRTIO_MMIO_QUEUE_DESC_LOW:
	case VIRTIO_MMIO_QUEUE_DESC_HIGH:
		virtio_mmio_set_half(&q->desc_gpa, offset == VIRTIO_MMIO_QUEUE_DESC_HIGH, v);
		break;
	case VIRTIO_MMIO_QUEUE_AVAIL_LOW:
	case VIRTIO_MMIO_QUEUE_AVAIL_HIGH:
		virtio_mmio_set_half(&q->avail_gpa, offset == VIRTIO_MMIO_QUEUE_AVAIL_HIGH, v);
		break;
	case VIRTIO_MMIO_QUEUE_USED_LOW:
	case VIRTIO_MMIO_QUEUE_USED_HIGH:
		virtio_mmio_set_half(&q->used_gpa, offset == VIRTIO_MMIO_QUEUE_USED_HIGH, v);
		break;
	}
}

static void virtio_mmio_write_queue_ready(struct virtio_mmio_dev *d, uint32_t v)
{
	struct virtq *q = virtio_mmio_setup_queue(d);

	if (!q)
		return;
	if (v == 0) {
		q->ready = false;
		return;
	}
	if (v != 1 || q->ready)
		return;
	q->event_idx = virtio_mmio_negotiated(d, VIRTIO_RING_F_EVENT_IDX);
	q->indirect = virtio_mmio_negotiated(d, VIRTIO_RING_F_INDIRECT_DESC);
	virtq_enable(q); /* on failure ready stays 0, which the driver can read back */
}

static void virtio_mmio_write_driver_features(struct virtio_mmio_dev *d, uint32_t v)
{
	/* Fixed once FEATURES_OK is set; words past 1 name no feature we know. */
	if ((d->status & VIRTIO_STATUS_FEATURES_OK) || d->driver_features_sel > 1)
		return;
	virtio_mmio_set_half(&d->driver_features, d->driver_features_sel == 1, v);
}

static void virtio_mmio_write_reg(struct virtio_mmio_dev *d, uint64_t offset, uint32_t v)
{
	switch (offset) {
	case VIRTIO_MMIO_DEVICE_FEATURES_SEL:
		d->device_features_sel = v;
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES:
		virtio_mmio_write_driver_features(d, v);
		break;
	case VIRTIO_MMIO_DRIVER_FEATURES_SEL:
		d->driver_features_sel = v;
		break;
	case VIRTIO_MMIO_QUEUE_SEL:
		d->queue_sel = v; /* checked (unsigned) wherever it is used */
		break;
	case VIRTIO_MMIO_QUEUE_READY:
		virtio_mmio_write_queue_ready(d, v);
		break;
	case VIRTIO_MMIO_QUEUE_NOTIFY:
		if (!d->ioeventfd)
			virtio_mmio_notify_locked(d, v);
		break;
	case VIRTIO_MMIO_INTERRUPT_ACK:
		d->isr &= ~v;
		break;
	case VIRTIO_MMIO_STATUS:
		virtio_mmio_write_status(d, v);
		break;
	default:
		virtio_mmio_write_queue_field(d, offset, v);
		break;
	}
}

static uint32_t virtio_mmio_device_features(const struct virtio_mmio_dev *d)
{
	if (d->device_features_sel == 0)
		return (uint32_t)d->host_features;
	if (d->device_features_sel == 1)
		return (uint32_t)(d->host_features >> 32);
	return 0;
}

static uint32_t virtio_mmio_read_reg(struct virtio_mmio_dev *d, uint64_t offset)
{
	struct virtq *q = virtio_mmio_sel_queue(d);

	switch (offset) {
	case VIRTIO_MMIO_MAGIC_VALUE: return VIRTIO_MMIO_MAGIC;
	case VIRTIO_MMIO_VERSION: return 2;
	case VIRTIO_MMIO_DEVICE_ID: return d->ops->device_id;
	case VIRTIO_MMIO_VENDOR_ID: return VIRTIO_MMIO_VENDOR;
	case VIRTIO_MMIO_DEVICE_FEATURES: return virtio_mmio_device_features(d);
	case VIRTIO_MMIO_QUEUE_NUM_MAX: return q ? d->ops->queue_max : 0;
	case VIRTIO_MMIO_QUEUE_READY: return q ? q->ready : 0;
	case VIRTIO_MMIO_INTERRUPT_STATUS: return d->isr;
	case VIRTIO_MMIO_STATUS: return d->status;
	case VIRTIO_MMIO_CONFIG_GENERATION: return d->config_generation;
	default: return 0; /* write-only and unknown registers */
	}
}

static void virtio_mmio_config_access(struct virtio_mmio_dev *d, uint32_t offset, uint8_t *data,
				      uint32_t len, bool is_write)
{
	if (len != 1 && len != 2 && len != 4 && len != 8)
		return;
	if (is_write && d->ops->config_write)
		d->ops->config_write(d->opaque, offset, data, len);
	else if (!is_write && d->ops->config_read)
		d->ops->config_read(d->opaque, offset, data, len);
}

void virtio_mmio_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct virtio_mmio_dev *d = opaque;
	uint32_t v;

	if (!is_write)
		memset(data, 0, len);
	if (offset >= VIRTIO_MMIO_SIZE || len > VIRTIO_MMIO_SIZE - offset)
		return;
	pthread_mutex_lock(&d->lock);
	if (offset >= VIRTIO_MMIO_CONFIG) {
		virtio_mmio_config_access(d, (uint32_t)(offset - VIRTIO_MMIO_CONFIG), data, len,
					  is_write);
	} else if (len == 4 && offset % 4 == 0) {
		if (is_write) {
			memcpy(&v, data, 4);
			virtio_mmio_write_reg(d, offset, le32toh(v));
		} else {
			v = htole32(virtio_mmio_read_reg(d, offset));
			memcpy(data, &v, 4);
		}
	}
	pthread_mutex_unlock(&d->lock);
}

/* ---- snapshots ---------------------------------------------------------- */

void virtio_mmio_save_locked(const struct virtio_mmio_dev *d, struct snap_w *w)
{
	snap_put_u32(w, d->ops->device_id);
	snap_put_u64(w, d->host_features);
	snap_put_u32(w, d->ops->num_queues);
	snap_put_u32(w, d->status);
	snap_put_u32(w, d->isr);
	snap_put_u32(w, d->config_generation);
	snap_put_u32(w, d->device_features_sel);
	snap_put_u32(w, d->driver_features_sel);
	snap_put_u64(w, d->driver_features);
	snap_put_u32(w, d->queue_sel);
	for (unsigned int i = 0; i < d->ops->num_queues; i++)
		virtq_save(&d->queues[i], w);
}

/*
 * Statuses the register path can produce: driver bits in order, and
 * DEVICE_NEEDS_RESET only on a live device (only serving queues breaks
 * one), whose DRIVER_OK then stays until reset.  Features that FEATURES_OK
 * accepted; before it the driver may have written anything (FEATURES_OK
 * refuses it later).  Interrupts come only from a live device, the
 * configuration one only with DEVICE_NEEDS_RESET.
 */
static bool virtio_mmio_regs_reachable(const struct virtio_mmio_dev *d,
				       const struct virtio_mmio_state *s)
{
	const uint32_t known = VIRTIO_STATUS_DRIVER_BITS | VIRTIO_STATUS_DEVICE_NEEDS_RESET;

	if ((s->status & ~known) || !virtio_status_ordered(s->status & VIRTIO_STATUS_DRIVER_BITS))
		return false;
	if ((s->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET) && !(s->status & VIRTIO_STATUS_DRIVER_OK))
		return false;
	if ((s->status & VIRTIO_STATUS_FEATURES_OK) && !virtio_mmio_features_ok(d, s->driver_features))
		return false;
	if (s->isr & ~(VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG))
		return false;
	if (s->isr && !(s->status & VIRTIO_STATUS_DRIVER_OK))
		return false;
	return !(s->isr & VIRTIO_MMIO_INT_CONFIG) || (s->status & VIRTIO_STATUS_DEVICE_NEEDS_RESET);
}

static bool virtq_pristine(const struct virtq *q)
{
	return !q->size && !q->desc_gpa && !q->avail_gpa && !q->used_gpa && !q->event_idx &&
	       !q->indirect && !q->ready;
}

/*
 * A queue as the register path leaves it: written only after FEATURES_OK
 * (before it, reset's zeroes), QueueNum <= queue_max, the ring flags set
 * from the negotiation at QueueReady = 1 (and kept by QueueReady = 0),
 * and served (indexes moved, broken) only once DRIVER_OK is set.
 */
static bool virtio_mmio_queue_reachable(const struct virtio_mmio_dev *d,
					const struct virtio_mmio_state *s, const struct virtq *q)
{
	bool ev = virtio_negotiated(s->status, s->driver_features, VIRTIO_RING_F_EVENT_IDX);
	bool ind = virtio_negotiated(s->status, s->driver_features, VIRTIO_RING_F_INDIRECT_DESC);
	bool served = q->broken || q->last_avail_idx || q->used_idx || q->signalled_used;

	if (!(s->status & VIRTIO_STATUS_FEATURES_OK))
		return virtq_pristine(q);
	if (q->size > d->ops->queue_max || (q->event_idx && !ev) || (q->indirect && !ind))
		return false;
	if (served && !(s->status & VIRTIO_STATUS_DRIVER_OK))
		return false;
	return !q->ready || (q->event_idx == ev && q->indirect == ind);
}

/* The saved device must be this one: the same id, offered features and queues. */
static bool virtio_mmio_load_identity(const struct virtio_mmio_dev *d, struct snap_r *r)
{
	uint32_t id = snap_get_u32(r);
	uint64_t features = snap_get_u64(r);
	uint32_t nr_queues = snap_get_u32(r);

	return id == d->ops->device_id && features == d->host_features &&
	       nr_queues == d->ops->num_queues;
}

int virtio_mmio_load_locked(const struct virtio_mmio_dev *d, struct snap_r *r,
			    struct virtio_mmio_state *s)
{
	bool same = virtio_mmio_load_identity(d, r);

	s->status = snap_get_u32(r);
	s->isr = snap_get_u32(r);
	s->config_generation = snap_get_u32(r);
	s->device_features_sel = snap_get_u32(r);
	s->driver_features_sel = snap_get_u32(r);
	s->driver_features = snap_get_u64(r);
	s->queue_sel = snap_get_u32(r);
	if (!same || !virtio_mmio_regs_reachable(d, s))
		snap_r_fail(r);
	for (unsigned int i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++)
		virtq_init(&s->queues[i], d->queues[i].gm);
	for (unsigned int i = 0; i < d->ops->num_queues && !r->err; i++)
		if (virtq_load(&s->queues[i], r) < 0 ||
		    !virtio_mmio_queue_reachable(d, s, &s->queues[i]))
			snap_r_fail(r);
	return r->err ? -EINVAL : 0;
}

void virtio_mmio_apply_locked(struct virtio_mmio_dev *d, const struct virtio_mmio_state *s)
{
	d->status = s->status;
	d->isr = s->isr;
	d->config_generation = s->config_generation;
	d->device_features_sel = s->device_features_sel;
	d->driver_features_sel = s->driver_features_sel;
	d->driver_features = s->driver_features;
	d->queue_sel = s->queue_sel;
	memcpy(d->queues, s->queues, sizeof(d->queues));
}
