// SPDX-License-Identifier: Apache-2.0
#include "virtqueue.h"

#include <endian.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>

#include "snap_io.h"

/* Ring layouts (virtio 1.x 2.7): offsets of the fields the device touches. */
#define VIRTQ_AVAIL_FLAGS 0
#define VIRTQ_AVAIL_IDX 2
#define VIRTQ_AVAIL_RING 4
#define VIRTQ_USED_IDX 2
#define VIRTQ_USED_RING 4

/* One descriptor, decoded from a private snapshot of guest memory. */
struct virtq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

/* Where a chain walk is: which table, and what it has seen so far. */
struct virtq_walk {
	const uint8_t *table;
	unsigned int table_size;
	bool in_indirect;
	bool seen_writable;
	unsigned int hops;
};

void virtq_init(struct virtq *q, const struct guest_mem *gm)
{
	*q = (struct virtq){ .gm = gm };
}

void virtq_reset(struct virtq *q)
{
	virtq_init(q, q->gm);
}

/* Ring sizes; the event fields exist only when event idx was negotiated. */
static uint64_t virtq_desc_bytes(const struct virtq *q)
{
	return (uint64_t)VIRTQ_DESC_SIZE * q->size;
}

static uint64_t virtq_avail_bytes(const struct virtq *q)
{
	return VIRTQ_AVAIL_RING + 2ULL * q->size + (q->event_idx ? 2 : 0);
}

static uint64_t virtq_used_bytes(const struct virtq *q)
{
	return VIRTQ_USED_RING + (uint64_t)VIRTQ_USED_ELEM_SIZE * q->size + (q->event_idx ? 2 : 0);
}

/*
 * Host pointer to a whole ring, or NULL.  The host side must be aligned too,
 * because ring indexes are accessed with atomics.
 */
static uint8_t *virtq_ring(const struct virtq *q, uint64_t gpa, uint64_t len, uint64_t align)
{
	uint8_t *p;

	if (gpa % align)
		return NULL;
	p = guest_mem_ptr(q->gm, gpa, len);
	if (!p || (uintptr_t)p % align)
		return NULL;
	return p;
}

/* Re-translated on every use: cheap, and never trusts a stale host pointer. */
static uint8_t *virtq_desc_table(const struct virtq *q)
{
	return virtq_ring(q, q->desc_gpa, virtq_desc_bytes(q), 16);
}

static uint8_t *virtq_avail_ring(const struct virtq *q)
{
	return virtq_ring(q, q->avail_gpa, virtq_avail_bytes(q), 2);
}

static uint8_t *virtq_used_ring(const struct virtq *q)
{
	return virtq_ring(q, q->used_gpa, virtq_used_bytes(q), 4);
}

int virtq_enable(struct virtq *q)
{
	if (q->size == 0 || q->size > VIRTQ_MAX_SIZE || (q->size & (q->size - 1)))
		return -1;
	if (!virtq_desc_table(q) || !virtq_avail_ring(q) || !virtq_used_ring(q))
		return -1;
	q->last_avail_idx = 0;
	q->used_idx = 0;
	q->signalled_used = 0;
	q->broken = false;
	q->ready = true;
	return 0;
}

void virtq_save(const struct virtq *q, struct snap_w *w)
{
	snap_put_u16(w, q->size);
	snap_put_u64(w, q->desc_gpa);
	snap_put_u64(w, q->avail_gpa);
	snap_put_u64(w, q->used_gpa);
	snap_put_u8(w, q->event_idx);
	snap_put_u8(w, q->indirect);
	snap_put_u8(w, q->ready);
	snap_put_u8(w, q->broken);
	snap_put_u16(w, q->last_avail_idx);
	snap_put_u16(w, q->used_idx);
	snap_put_u16(w, q->signalled_used);
}

/*
 * Only pop/push/unpop move the indexes and only a served queue breaks, and
 * all of them need a ready queue; QueueReady = 0 is refused once the device
 * serves queues, so a queue that is not ready still has virtq_enable()'s
 * zeroes.  A ready queue must pass virtq_enable() again (on a copy, which
 * keeps the saved indexes), so the pop/push paths can rely on it as before.
 */
static bool virtq_state_valid(const struct virtq *q)
{
	struct virtq probe = *q;

	if (!q->ready)
		return !q->broken && !q->last_avail_idx && !q->used_idx && !q->signalled_used;
	return virtq_enable(&probe) == 0 && (uint16_t)(q->last_avail_idx - q->used_idx) <= q->size;
}

int virtq_load(struct virtq *q, struct snap_r *r)
{
	q->size = snap_get_u16(r);
	q->desc_gpa = snap_get_u64(r);
	q->avail_gpa = snap_get_u64(r);
	q->used_gpa = snap_get_u64(r);
	q->event_idx = snap_get_bool(r);
	q->indirect = snap_get_bool(r);
	q->ready = snap_get_bool(r);
	q->broken = snap_get_bool(r);
	q->last_avail_idx = snap_get_u16(r);
	q->used_idx = snap_get_u16(r);
	q->signalled_used = snap_get_u16(r);
	if (r->err || !virtq_state_valid(q)) {
		snap_r_fail(r);
		return -1;
	}
	return 0;
}

static int virtq_fail(struct virtq *q)
{
	q->broken = true;
	return -1;
}

static uint16_t virtq_load16_acquire(const uint8_t *p)
{
	return le16toh(__atomic_load_n((const uint16_t *)p, __ATOMIC_ACQUIRE));
}

static uint16_t virtq_load16(const uint8_t *p)
{
	return le16toh(__atomic_load_n((const uint16_t *)p, __ATOMIC_RELAXED));
}

static void virtq_store16(uint8_t *p, uint16_t v)
{
	__atomic_store_n((uint16_t *)p, htole16(v), __ATOMIC_RELAXED);
}

static void virtq_store32(uint8_t *p, uint32_t v)
{
	__atomic_store_n((uint32_t *)p, htole32(v), __ATOMIC_RELAXED);
}

/*
 * Read descriptor i of 'table' exactly once.  The guest may rewrite the
 * table while we work; the compiler barrier stops the checks and uses that
 * follow from re-reading guest memory instead of this snapshot.
 */
static void virtq_read_desc(const uint8_t *table, unsigned int i, struct virtq_desc *d)
{
	uint8_t raw[VIRTQ_DESC_SIZE];
	uint64_t addr;
	uint32_t len;
	uint16_t flags, next;

	memcpy(raw, table + (size_t)i * VIRTQ_DESC_SIZE, sizeof(raw));
	__atomic_signal_fence(__ATOMIC_SEQ_CST);
	memcpy(&addr, raw, 8);
	memcpy(&len, raw + 8, 4);
	memcpy(&flags, raw + 12, 2);
	memcpy(&next, raw + 14, 2);
	*d = (struct virtq_desc){ le64toh(addr), le32toh(len), le16toh(flags), le16toh(next) };
}

/* Switch the walk to the indirect table that 'd' names, after checking it. */
static int virtq_enter_indirect(const struct virtq *q, const struct virtq_desc *d,
				struct virtq_walk *w)
{
	const uint8_t *table;

	if (!q->indirect || w->in_indirect || (d->flags & VIRTQ_DESC_F_NEXT))
		return -1;
	if (d->len == 0 || d->len % VIRTQ_DESC_SIZE || d->len / VIRTQ_DESC_SIZE > q->size)
		return -1;
	table = guest_mem_ptr(q->gm, d->addr, d->len);
	if (!table)
		return -1;
	w->table = table;
	w->table_size = d->len / VIRTQ_DESC_SIZE;
	w->in_indirect = true;
	return 0;
}

/* Append one buffer descriptor to the chain, enforcing direction and caps. */
static int virtq_add_seg(const struct virtq *q, const struct virtq_desc *d, struct virtq_walk *w,
			 struct virtq_chain *c)
{
	bool writable = d->flags & VIRTQ_DESC_F_WRITE;
	unsigned int n = c->nr_readable + c->nr_writable;
	void *p;

	if (writable)
		w->seen_writable = true;
	else if (w->seen_writable)
		return -1; /* readable after writable */
	if (d->len == 0)
		return 0;
	if (d->len > VIRTQ_MAX_CHAIN_BYTES - (c->readable_len + c->writable_len))
		return -1;
	/* guest_mem_ptr is overflow-safe: addr + len past 2^64 comes back NULL. */
	p = guest_mem_ptr(q->gm, d->addr, d->len);
	if (!p || n >= VIRTQ_MAX_SEGS)
		return -1;
	c->iov[n] = (struct iovec){ .iov_base = p, .iov_len = d->len };
	if (writable) {
		c->nr_writable++;
		c->writable_len += d->len;
	} else {
		c->nr_readable++;
		c->readable_len += d->len;
	}
	return 0;
}

/*
 * Follow the chain from 'head'.  Terminates: the indirect switch happens at
 * most once and every other step uses one of at most q->size hops.
 */
static int virtq_walk_chain(const struct virtq *q, const uint8_t *desc, uint16_t head,
			    struct virtq_chain *c)
{
	struct virtq_walk w = { .table = desc, .table_size = q->size };
	unsigned int idx = head;
	struct virtq_desc d;

	c->head = head;
	c->nr_readable = c->nr_writable = 0;
	c->readable_len = c->writable_len = 0;
	for (;;) {
		virtq_read_desc(w.table, idx, &d);
		if (d.flags & VIRTQ_DESC_F_INDIRECT) {
			if (virtq_enter_indirect(q, &d, &w) < 0)
				return -1;
			idx = 0;
			continue;
		}
		if (++w.hops > q->size)
			return -1;
		if (virtq_add_seg(q, &d, &w, c) < 0)
			return -1;
		if (!(d.flags & VIRTQ_DESC_F_NEXT))
			return 0;
		if (d.next >= w.table_size)
			return -1;
		idx = d.next;
	}
}

/*
 * The ring looks empty.  With event idx, ask to be notified for the next
 * entry, then look again: a buffer added before the driver could see our
 * avail_event would otherwise never be notified.  Returns the fresh idx.
 */
static uint16_t virtq_arm_and_recheck(struct virtq *q, const uint8_t *avail, uint8_t *used,
				      uint16_t avail_idx)
{
	if (!q->event_idx)
		return avail_idx;
	virtq_store16(used + VIRTQ_USED_RING + (size_t)VIRTQ_USED_ELEM_SIZE * q->size,
		      q->last_avail_idx);
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	return virtq_load16_acquire(avail + VIRTQ_AVAIL_IDX);
}

int virtq_pop(struct virtq *q, struct virtq_chain *c)
{
	const uint8_t *desc, *avail;
	uint8_t *used;
	uint16_t avail_idx, head, slot;

	if (q->broken)
		return -1;
	if (!q->ready)
		return 0;
	desc = virtq_desc_table(q);
	avail = virtq_avail_ring(q);
	used = virtq_used_ring(q);
	if (!desc || !avail || !used)
		return virtq_fail(q);
	/* Acquire: the ring entries and descriptors are read after the idx. */
	avail_idx = virtq_load16_acquire(avail + VIRTQ_AVAIL_IDX);
	if (avail_idx == q->last_avail_idx) {
		avail_idx = virtq_arm_and_recheck(q, avail, used, avail_idx);
		if (avail_idx == q->last_avail_idx)
			return 0;
	}
	/* More than a ring's worth outstanding is impossible for a sane driver. */
	if ((uint16_t)(avail_idx - q->last_avail_idx) > q->size)
		return virtq_fail(q);
	slot = q->last_avail_idx & (q->size - 1);
	head = virtq_load16(avail + VIRTQ_AVAIL_RING + 2 * (size_t)slot);
	if (head >= q->size || virtq_walk_chain(q, desc, head, c) < 0)
		return virtq_fail(q);
	q->last_avail_idx++;
	return 1;
}

void virtq_unpop(struct virtq *q)
{
	q->last_avail_idx--;
}

int virtq_push(struct virtq *q, uint16_t head, uint32_t written)
{
	uint8_t *used, *elem;
	uint16_t slot;

	if (q->broken || !q->ready || head >= q->size)
		return -1;
	used = virtq_used_ring(q);
	if (!used)
		return virtq_fail(q);
	slot = q->used_idx & (q->size - 1);
	elem = used + VIRTQ_USED_RING + (size_t)VIRTQ_USED_ELEM_SIZE * slot;
	virtq_store32(elem, head);
	virtq_store32(elem + 4, written);
	q->used_idx++;
	/* Release: the element is visible before the driver can see the new idx. */
	__atomic_store_n((uint16_t *)(used + VIRTQ_USED_IDX), htole16(q->used_idx),
			 __ATOMIC_RELEASE);
	return 0;
}

bool virtq_needs_interrupt(struct virtq *q)
{
	uint16_t old = q->signalled_used, now = q->used_idx, event;
	const uint8_t *avail;

	if (!q->ready || old == now)
		return false;
	q->signalled_used = now;
	/* Our used idx store must be globally visible before we read the driver's wishes. */
	__atomic_thread_fence(__ATOMIC_SEQ_CST);
	avail = virtq_avail_ring(q);
	if (!avail)
		return true; /* cannot happen after enable; an extra interrupt is harmless */
	if (q->event_idx) {
		event = virtq_load16(avail + VIRTQ_AVAIL_RING + 2 * (size_t)q->size);
		/* vring_need_event: did 'now' step past event since 'old'? */
		return (uint16_t)(now - event - 1) < (uint16_t)(now - old);
	}
	return !(virtq_load16(avail + VIRTQ_AVAIL_FLAGS) & VIRTQ_AVAIL_F_NO_INTERRUPT);
}

/* First segment index and count of one part of the chain. */
static void virtq_chain_part(const struct virtq_chain *c, bool writable, unsigned int *first,
			     unsigned int *n)
{
	*first = writable ? c->nr_readable : 0;
	*n = writable ? c->nr_writable : c->nr_readable;
}

static uint64_t virtq_chain_copy(const struct virtq_chain *c, bool writable, uint64_t offset,
				 uint8_t *buf, uint64_t len)
{
	unsigned int first, n;
	uint64_t done = 0;

	virtq_chain_part(c, writable, &first, &n);
	for (unsigned int i = first; i < first + n && done < len; i++) {
		uint8_t *base = c->iov[i].iov_base;
		uint64_t seg = c->iov[i].iov_len, chunk;

		if (offset >= seg) {
			offset -= seg;
			continue;
		}
		chunk = seg - offset < len - done ? seg - offset : len - done;
		if (writable)
			memcpy(base + offset, buf + done, chunk);
		else
			memcpy(buf + done, base + offset, chunk);
		done += chunk;
		offset = 0;
	}
	return done;
}

uint64_t virtq_chain_read(const struct virtq_chain *c, uint64_t offset, void *dst, uint64_t len)
{
	return virtq_chain_copy(c, false, offset, dst, len);
}

uint64_t virtq_chain_write(const struct virtq_chain *c, uint64_t offset, const void *src,
			   uint64_t len)
{
	/* The copy only reads 'src' when writing to the guest. */
	return virtq_chain_copy(c, true, offset, (uint8_t *)src, len);
}

int virtq_chain_slice(const struct virtq_chain *c, bool writable, uint64_t offset, uint64_t len,
		      struct iovec *out, unsigned int max)
{
	uint64_t part = writable ? c->writable_len : c->readable_len;
	unsigned int first, n, count = 0;

	if (offset > part || len > part - offset)
		return -1;
	virtq_chain_part(c, writable, &first, &n);
	for (unsigned int i = first; i < first + n && len; i++) {
		uint64_t seg = c->iov[i].iov_len, chunk;

		if (offset >= seg) {
			offset -= seg;
			continue;
		}
		if (count == max)
			return -1;
		chunk = seg - offset < len ? seg - offset : len;
		out[count++] = (struct iovec){
			.iov_base = (uint8_t *)c->iov[i].iov_base + offset, .iov_len = chunk,
		};
		len -= chunk;
		offset = 0;
	}
	return (int)count;
}

/* snprintf at buf + n, for as long as there is room; returns the new n (as snprintf counts). */
__attribute__((format(printf, 4, 5))) static int virtq_describe_add(char *buf, size_t len, int n, const char *fmt, ...)
{
	va_list ap;
	int m;

	if (n < 0 || (size_t)n >= len)
		return n;
	va_start(ap, fmt);
	m = vsnprintf(buf + n, len - (size_t)n, fmt, ap);
	va_end(ap);
	return m < 0 ? m : n + m;
}

int virtq_describe(const struct virtq *q, char *buf, size_t len)
{
	const uint8_t *avail, *used;
	int n;

	n = snprintf(buf, len, "size %u ready %d broken %d event_idx %d last_avail %u used %u signalled %u",
		     q->size, q->ready, q->broken, q->event_idx, q->last_avail_idx, q->used_idx,
		     q->signalled_used);
	if (!q->ready)
		return n;
	avail = virtq_avail_ring(q);
	used = virtq_used_ring(q);
	if (!avail || !used)
		return virtq_describe_add(buf, len, n, " (rings outside RAM)");
	n = virtq_describe_add(buf, len, n, " | avail flags %#x idx %u", virtq_load16(avail + VIRTQ_AVAIL_FLAGS),
			       virtq_load16_acquire(avail + VIRTQ_AVAIL_IDX));
	if (q->event_idx)
		n = virtq_describe_add(buf, len, n, " used_event %u",
				       virtq_load16(avail + VIRTQ_AVAIL_RING + 2 * (size_t)q->size));
	n = virtq_describe_add(buf, len, n, " | used flags %#x idx %u", virtq_load16(used + 0),
			       virtq_load16(used + VIRTQ_USED_IDX));
	if (q->event_idx)
		n = virtq_describe_add(buf, len, n, " avail_event %u",
				       virtq_load16(used + VIRTQ_USED_RING + (size_t)VIRTQ_USED_ELEM_SIZE * q->size));
	return n;
}
