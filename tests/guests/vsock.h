/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A minimal guest-side virtio-vsock driver (virtio 1.x 5.10) for the
 * freestanding test guests, on top of virtio.h's transport helpers: probe,
 * negotiate, three queues (rx 0, tx 1, event 2) of VSK_QSIZE entries each,
 * driven by polling the used rings, and a small table of stream connections
 * with the credit bookkeeping a peer owes the device.
 *
 * Like virtio.h it is written from the specification (and Linux's
 * virtio_transport_common.c behaviour), not from devices/: the constants the
 * hostile guest aims at (the device's limits) are restated here on purpose.
 *
 * Model: one guest thread does everything.  vsk_pump() takes what the
 * device used (tx chains back, rx packets in, event buffers) and updates
 * the connections; vsk_service() pumps and then sends what the driver owes
 * (RESPONSEs to accepted REQUESTs, RSTs to refused ones, CREDIT_UPDATEs).
 * VSK_WAIT() services until a condition holds, with a TSC deadline and an
 * eye on DEVICE_NEEDS_RESET.  No interrupts: the guests run with IF clear,
 * so the device's interrupt line is simply never looked at.
 *
 * Every rx buffer is one device-writable descriptor of VSK_RX_BUF bytes
 * (header, then payload); every tx packet is descriptor 2k (the 44-byte
 * header) plus, with a payload, descriptor 2k + 1, for tx slot k.  Data the
 * driver receives is consumed at once (checked against the connection's
 * expected pattern, then dropped), so fwd_cnt == rx_cnt.
 */
#ifndef MSVMM_TEST_VSOCK_H
#define MSVMM_TEST_VSOCK_H

#include "virtio.h"

#define VIRTIO_DEV_VSOCK 19

#define VSK_Q_RX 0
#define VSK_Q_TX 1
#define VSK_Q_EVENT 2
#define VSK_NR_QUEUES 3

#define VSK_HOST_CID 2
#define VSK_HDR 44
#define VSK_TYPE_STREAM 1
#define VSK_TYPE_SEQPACKET 2

#define VSK_OP_INVALID 0
#define VSK_OP_REQUEST 1
#define VSK_OP_RESPONSE 2
#define VSK_OP_RST 3
#define VSK_OP_SHUTDOWN 4
#define VSK_OP_RW 5
#define VSK_OP_CREDIT_UPDATE 6
#define VSK_OP_CREDIT_REQUEST 7

#define VSK_SHUT_RCV 1U
#define VSK_SHUT_SEND 2U

/* The device's limits, as devices/virtio_vsock.h documents them. */
#define VSK_DEV_BUF (64U * 1024)    /* VSOCK_CONN_BUF: its buf_alloc */
#define VSK_DEV_MAX_CONNS 128       /* VSOCK_MAX_CONNS */
#define VSK_DEV_MAX_BACKLOG 16      /* VSOCK_MAX_BACKLOG */

/* This driver. */
#define VSK_QSIZE 16
#define VSK_RX_BUF 4096                 /* header + up to 4052 payload bytes */
#define VSK_TX_SLOTS (VSK_QSIZE / 2)    /* slot k: descriptors 2k and 2k + 1 */
#define VSK_TX_DATA 4096                /* largest payload one tx packet carries */
#define VSK_EVENT_BUFS 4
#define VSK_BUF_ALLOC (64U * 1024)      /* the receive space we advertise */
#define VSK_CREDIT_EVERY (16U * 1024)   /* CREDIT_UPDATE after consuming this much */
#define VSK_CONNS 160
#define VSK_STRAYS 256
#define VSK_OWED_RSTS 16

/* vsk_* results beyond virtio.h's VIO_*. */
#define VSK_E_RESET 100   /* the connection was reset */
#define VSK_E_NO_SLOT 101 /* no free connection slot */

/* The packet header (little-endian on the wire, as x86 is). */
struct vsk_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port;
	uint32_t len;
	uint16_t type, op;
	uint32_t flags;
	uint32_t buf_alloc, fwd_cnt;
} __attribute__((packed));

_Static_assert(sizeof(struct vsk_hdr) == VSK_HDR, "virtio-vsock header is 44 bytes");

enum vsk_state {
	VSK_FREE = 0,
	VSK_CONNECTING,  /* our REQUEST is out */
	VSK_ESTABLISHED,
	VSK_CLOSED,      /* reset (either side), kept to catch late packets */
};

struct vsk_conn {
	enum vsk_state state;
	uint32_t local_port, peer_port;
	bool rst;             /* the device sent RST */
	bool refused;         /* ... in answer to our REQUEST */
	bool credit_due;      /* send CREDIT_UPDATE */
	bool response_due;    /* send RESPONSE (an accepted host REQUEST) */
	bool credit_overrun;  /* the device sent more than our credit allowed */
	uint32_t peer_shutdown; /* VSK_SHUT_* the device sent */
	uint32_t tx_cnt;      /* payload bytes we sent */
	uint32_t peer_buf_alloc, peer_fwd_cnt; /* the device's, from its last header */
	uint32_t rx_cnt;      /* payload bytes received (and consumed: our fwd_cnt) */
	uint32_t fwd_told;    /* the fwd_cnt of our last packet */
	uint8_t (*expect)(uint32_t off); /* the byte expected at stream offset off; NULL: any */
	uint32_t rx_bad;      /* received bytes that differed from expect() */
	uint32_t rx_first_bad;
	uint32_t nr_odd;      /* packets out of place for the connection's state */
};

/* A packet for no connection we track, as it came. */
struct vsk_stray {
	uint16_t op;
	uint32_t src_port, dst_port, flags;
};

struct vsk_queue {
	uint16_t index, size;
	struct vq_rings *rings;
	uint16_t avail_idx;  /* next avail idx the driver publishes */
	uint16_t used_seen;  /* used entries consumed */
};

/* Buffers the device reads and writes; not cleared by vsk_init(). */
struct vsk_bufs {
	struct vq_rings rings[VSK_NR_QUEUES];
	uint8_t rx[VSK_QSIZE][VSK_RX_BUF] __attribute__((aligned(4096)));
	uint8_t tx_hdr[VSK_TX_SLOTS][64] __attribute__((aligned(64)));
	uint8_t tx_data[VSK_TX_SLOTS][VSK_TX_DATA] __attribute__((aligned(4096)));
	uint8_t event[VSK_EVENT_BUFS][8] __attribute__((aligned(8)));
	uint8_t scratch[VSK_TX_DATA];
};

struct vsk {
	struct vdev d;        /* base, features, timeout_ticks; its queue fields are unused */
	uint64_t cid;         /* from config space */
	struct vsk_queue q[VSK_NR_QUEUES];
	bool tx_busy[VSK_TX_SLOTS];
	bool rx_posted[VSK_QSIZE];   /* posted by vsk_init (and reposted on every return) */
	unsigned int tx_inflight;
	/* Host REQUESTs to listen_port are accepted (RESPONSE), others refused (RST). */
	uint32_t listen_port;
	uint8_t (*listen_expect)(uint32_t off);
	struct vsk_conn *accepted; /* the latest accepted connection */
	unsigned int nr_accepted;
	struct { uint32_t local_port, peer_port; } owed_rst[VSK_OWED_RSTS];
	unsigned int nr_owed_rst, nr_owed_dropped;
	bool ctl_due;         /* some connection has credit_due or response_due */
	struct vsk_conn conns[VSK_CONNS];
	struct vsk_stray stray[VSK_STRAYS];
	uint32_t nr_stray;    /* total; the ring keeps the last VSK_STRAYS */
	uint32_t nr_rx, nr_events;
	uint32_t nr_bad;      /* malformed packets or used entries from the device */
	uint32_t nr_odd;      /* packets out of place for their connection (sum) */
	const char *first_bad;
	struct vsk_bufs b;    /* last: vsk_init() clears everything before it */
};

static inline const char *vsk_strerror(int e)
{
	if (e == VSK_E_RESET)
		return "connection reset";
	if (e == VSK_E_NO_SLOT)
		return "no free connection slot";
	return vio_strerror(e);
}

static inline uint64_t vsk_addr(const void *p)
{
	return (uint64_t)(uintptr_t)p;
}

/* ---- queues ---- */

/* Point queue qi at its rings and enable it (vio_queue_setup, for any queue). */
static inline int vsk_queue_setup(struct vsk *v, uint16_t qi)
{
	struct vsk_queue *q = &v->q[qi];
	struct vq_rings *r = &v->b.rings[qi];
	uint64_t desc = vsk_addr(r->desc), avail = vsk_addr(&r->avail), used = vsk_addr(&r->used);

	memset(r, 0, sizeof(*r));
	*q = (struct vsk_queue){ .index = qi, .size = VSK_QSIZE, .rings = r };
	vio_write(&v->d, VIO_QUEUE_SEL, qi);
	if (vio_read(&v->d, VIO_QUEUE_READY) != 0)
		return VIO_E_QUEUE;
	if (vio_read(&v->d, VIO_QUEUE_NUM_MAX) < VSK_QSIZE)
		return VIO_E_QUEUE;
	vio_write(&v->d, VIO_QUEUE_NUM, VSK_QSIZE);
	vio_write(&v->d, VIO_QUEUE_DESC_LOW, (uint32_t)desc);
	vio_write(&v->d, VIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	vio_write(&v->d, VIO_QUEUE_AVAIL_LOW, (uint32_t)avail);
	vio_write(&v->d, VIO_QUEUE_AVAIL_HIGH, (uint32_t)(avail >> 32));
	vio_write(&v->d, VIO_QUEUE_USED_LOW, (uint32_t)used);
	vio_write(&v->d, VIO_QUEUE_USED_HIGH, (uint32_t)(used >> 32));
	vio_write(&v->d, VIO_QUEUE_READY, 1);
	return vio_read(&v->d, VIO_QUEUE_READY) == 1 ? VIO_OK : VIO_E_QUEUE;
}

static inline void vsk_set_desc(struct vsk_queue *q, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
				uint16_t next)
{
	q->rings->desc[i] = (struct vq_desc){ .addr = addr, .len = len, .flags = flags, .next = next };
}

/* vq_publish for queue q; 'notify' kicks it. */
static inline void vsk_publish(struct vsk *v, struct vsk_queue *q, uint16_t head, bool notify)
{
	q->rings->avail.ring[q->avail_idx % q->size] = head;
	vio_barrier(); /* the entry before the idx that exposes it */
	q->avail_idx++;
	*(volatile uint16_t *)&q->rings->avail.idx = q->avail_idx;
	vio_barrier();
	if (notify)
		vio_write(&v->d, VIO_QUEUE_NOTIFY, q->index);
}

static inline uint16_t vsk_used_idx(const struct vsk_queue *q)
{
	return *(volatile uint16_t *)&q->rings->used.idx;
}

/* vq_poll for queue q. */
static inline bool vsk_used(struct vsk_queue *q, struct vq_used_elem *e)
{
	if (vsk_used_idx(q) == q->used_seen)
		return false;
	vio_barrier(); /* the element after the idx that covers it */
	*e = *(volatile struct vq_used_elem *)&q->rings->used.ring[q->used_seen % q->size];
	q->used_seen++;
	return true;
}

/* ---- bring-up ---- */

/* The base of the vsock device: the last virtio_mmio.device= slot that probes as one; 0 if none. */
static inline uint64_t vsk_find(const char *cl, bool *is_last)
{
	uint64_t found = 0, base, last = 0;

	for (unsigned int n = 0; (base = vio_cmdline_device(cl, n)) != 0; n++) {
		last = base;
		if (vio_probe(base, VIRTIO_DEV_VSOCK) == VIO_OK)
			found = base;
	}
	if (is_last)
		*is_last = found && found == last;
	return found;
}

/*
 * Reset and bring up the device at base from scratch (every connection of
 * ours is forgotten): VERSION_1 only, three queues, DRIVER_OK, then every rx
 * and event buffer posted and kicked.
 */
static inline int vsk_init(struct vsk *v, uint64_t base)
{
	uint64_t ticks = v->d.timeout_ticks ? v->d.timeout_ticks : VIO_DEFAULT_TIMEOUT_TICKS;
	struct vsk_queue *rx = &v->q[VSK_Q_RX], *ev = &v->q[VSK_Q_EVENT];
	int r;

	memset(v, 0, __builtin_offsetof(struct vsk, b));
	v->d.base = base;
	v->d.timeout_ticks = ticks;
	r = vio_probe(base, VIRTIO_DEV_VSOCK);
	if (!r)
		r = vio_negotiate(&v->d, 0);
	for (uint16_t qi = 0; qi < VSK_NR_QUEUES && !r; qi++)
		r = vsk_queue_setup(v, qi);
	if (r)
		return r;
	/* le64 guest_cid, in two 32-bit reads like vblk_cfg64. */
	v->cid = (uint64_t)mmio_read32(base + VIO_CONFIG + 4) << 32 | mmio_read32(base + VIO_CONFIG);
	if (!vio_add_status(&v->d, VIO_S_DRIVER_OK))
		return VIO_E_DRIVER_OK;
	for (uint16_t i = 0; i < VSK_QSIZE; i++) {
		vsk_set_desc(rx, i, vsk_addr(v->b.rx[i]), VSK_RX_BUF, VQ_DESC_F_WRITE, 0);
		v->rx_posted[i] = true;
		vsk_publish(v, rx, i, i + 1 == VSK_QSIZE);
	}
	for (uint16_t i = 0; i < VSK_EVENT_BUFS; i++) {
		vsk_set_desc(ev, i, vsk_addr(v->b.event[i]), sizeof(v->b.event[i]), VQ_DESC_F_WRITE, 0);
		vsk_publish(v, ev, i, i + 1 == VSK_EVENT_BUFS);
	}
	return VIO_OK;
}

/* ---- connections ---- */

static inline struct vsk_conn *vsk_conn_find(struct vsk *v, uint32_t local_port, uint32_t peer_port)
{
	for (unsigned int i = 0; i < VSK_CONNS; i++) {
		struct vsk_conn *c = &v->conns[i];

		if (c->state != VSK_FREE && c->local_port == local_port && c->peer_port == peer_port)
			return c;
	}
	return NULL;
}

static inline struct vsk_conn *vsk_conn_new(struct vsk *v, uint32_t local_port, uint32_t peer_port,
					    uint8_t (*expect)(uint32_t))
{
	for (unsigned int i = 0; i < VSK_CONNS; i++) {
		struct vsk_conn *c = &v->conns[i];

		if (c->state == VSK_FREE) {
			*c = (struct vsk_conn){ .state = VSK_CONNECTING, .local_port = local_port,
						.peer_port = peer_port, .expect = expect };
			return c;
		}
	}
	return NULL;
}

static inline void vsk_conn_free(struct vsk_conn *c)
{
	c->state = VSK_FREE;
}

/* What the device lets us send now: its buf_alloc less what it has not forwarded yet. */
static inline uint32_t vsk_credit(const struct vsk_conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

	return in_flight > c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

static inline void vsk_bad(struct vsk *v, const char *why)
{
	if (v->nr_bad++ < 8) {
		serial_puts("vsock: the device sent ");
		serial_puts(why);
		serial_puts("\n");
	}
	if (!v->first_bad)
		v->first_bad = why;
}

static inline void vsk_odd(struct vsk *v, struct vsk_conn *c, const char *why)
{
	c->nr_odd++;
	if (v->nr_odd++ < 8) {
		serial_puts("vsock: port ");
		serial_putdec(c->local_port);
		serial_puts(": ");
		serial_puts(why);
		serial_puts("\n");
	}
}

static inline void vsk_owe_rst(struct vsk *v, uint32_t local_port, uint32_t peer_port)
{
	if (v->nr_owed_rst == VSK_OWED_RSTS) {
		v->nr_owed_dropped++;
		return;
	}
	v->owed_rst[v->nr_owed_rst].local_port = local_port;
	v->owed_rst[v->nr_owed_rst].peer_port = peer_port;
	v->nr_owed_rst++;
}

/* A packet for a connection we track. */
static inline void vsk_conn_rx(struct vsk *v, struct vsk_conn *c, const struct vsk_hdr *h, const uint8_t *data)
{
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	if ((int32_t)(c->tx_cnt - h->fwd_cnt) < 0)
		vsk_odd(v, c, "fwd_cnt beyond what we sent");
	switch (h->op) {
	case VSK_OP_RESPONSE:
		if (c->state == VSK_CONNECTING)
			c->state = VSK_ESTABLISHED;
		else
			vsk_odd(v, c, "RESPONSE on a connection not connecting");
		break;
	case VSK_OP_RST:
		if (c->state == VSK_CONNECTING)
			c->refused = true;
		c->rst = true;
		c->state = VSK_CLOSED;
		break;
	case VSK_OP_SHUTDOWN:
		if (c->state != VSK_ESTABLISHED)
			vsk_odd(v, c, "SHUTDOWN on a connection not established");
		if (!h->flags || (h->flags & ~(VSK_SHUT_RCV | VSK_SHUT_SEND)))
			vsk_odd(v, c, "SHUTDOWN with bad flags");
		c->peer_shutdown |= h->flags & (VSK_SHUT_RCV | VSK_SHUT_SEND);
		break;
	case VSK_OP_RW:
		if (c->state != VSK_ESTABLISHED)
			vsk_odd(v, c, "RW on a connection not established");
		if (c->peer_shutdown & VSK_SHUT_SEND)
			vsk_odd(v, c, "RW after the device's SHUTDOWN(SEND)");
		if (!h->len)
			vsk_odd(v, c, "RW without data");
		/* The device heard fwd_told (or less): it may have VSK_BUF_ALLOC unforwarded bytes in flight, no more. */
		if (c->rx_cnt + h->len - c->fwd_told > VSK_BUF_ALLOC)
			c->credit_overrun = true;
		for (uint32_t i = 0; c->expect && i < h->len; i++)
			if (data[i] != c->expect(c->rx_cnt + i) && !c->rx_bad++)
				c->rx_first_bad = c->rx_cnt + i;
		c->rx_cnt += h->len;
		if (c->rx_cnt - c->fwd_told >= VSK_CREDIT_EVERY && c->state == VSK_ESTABLISHED)
			c->credit_due = v->ctl_due = true;
		break;
	case VSK_OP_CREDIT_UPDATE:
		break; /* recorded above */
	case VSK_OP_CREDIT_REQUEST:
		if (c->state == VSK_ESTABLISHED)
			c->credit_due = v->ctl_due = true;
		break;
	default:
		vsk_odd(v, c, "REQUEST or unknown op on a known connection");
		break;
	}
}

/* A packet for no connection: logged; a host REQUEST is accepted on listen_port, else refused. */
static inline void vsk_stray_rx(struct vsk *v, const struct vsk_hdr *h)
{
	struct vsk_conn *c;

	v->stray[v->nr_stray % VSK_STRAYS] =
		(struct vsk_stray){ .op = h->op, .src_port = h->src_port, .dst_port = h->dst_port, .flags = h->flags };
	v->nr_stray++;
	if (h->op != VSK_OP_REQUEST)
		return; /* RSTs for what we sent; never answer one */
	if (v->listen_port && h->dst_port == v->listen_port &&
	    (c = vsk_conn_new(v, h->dst_port, h->src_port, v->listen_expect)) != NULL) {
		c->state = VSK_ESTABLISHED;
		c->peer_buf_alloc = h->buf_alloc;
		c->peer_fwd_cnt = h->fwd_cnt;
		c->response_due = v->ctl_due = true;
		v->accepted = c;
		v->nr_accepted++;
		return;
	}
	vsk_owe_rst(v, h->dst_port, h->src_port);
}

/* One rx buffer the device filled with used_len bytes. */
static inline void vsk_rx_packet(struct vsk *v, const uint8_t *buf, uint32_t used_len)
{
	struct vsk_hdr h;
	struct vsk_conn *c;

	if (used_len < VSK_HDR || used_len > VSK_RX_BUF) {
		vsk_bad(v, "an rx used.len outside header..buffer");
		return;
	}
	memcpy(&h, buf, VSK_HDR);
	if (h.len != used_len - VSK_HDR) {
		vsk_bad(v, "a header len that is not used.len - 44");
		return;
	}
	if (h.src_cid != VSK_HOST_CID || h.dst_cid != v->cid) {
		vsk_bad(v, "a packet not from CID 2 to our CID");
		return;
	}
	if (h.type != VSK_TYPE_STREAM) {
		vsk_bad(v, "a packet that is not STREAM");
		return;
	}
	if (h.len && h.op != VSK_OP_RW) {
		vsk_bad(v, "payload on a control packet");
		return;
	}
	v->nr_rx++;
	c = vsk_conn_find(v, h.dst_port, h.src_port);
	if (c)
		vsk_conn_rx(v, c, &h, buf + VSK_HDR);
	else
		vsk_stray_rx(v, &h);
}

/* Take everything the device used; true if there was anything. */
static inline bool vsk_pump(struct vsk *v)
{
	struct vsk_queue *rx = &v->q[VSK_Q_RX], *tx = &v->q[VSK_Q_TX], *ev = &v->q[VSK_Q_EVENT];
	struct vq_used_elem e;
	bool any = false, reposted = false;

	while (vsk_used(tx, &e)) {
		uint32_t slot = e.id / 2;

		any = true;
		if (e.id % 2 || slot >= VSK_TX_SLOTS || !v->tx_busy[slot]) {
			vsk_bad(v, "a tx used entry we did not post");
			continue;
		}
		if (e.len)
			vsk_bad(v, "a tx used.len that is not 0");
		v->tx_busy[slot] = false;
		v->tx_inflight--;
	}
	while (vsk_used(rx, &e)) {
		any = true;
		if (e.id >= VSK_QSIZE || !v->rx_posted[e.id]) {
			vsk_bad(v, "an rx used entry we did not post");
			continue;
		}
		vsk_rx_packet(v, v->b.rx[e.id], e.len);
		vsk_publish(v, rx, (uint16_t)e.id, false);
		reposted = true;
	}
	if (reposted)
		vio_write(&v->d, VIO_QUEUE_NOTIFY, VSK_Q_RX);
	while (vsk_used(ev, &e)) {
		any = true;
		v->nr_events++;
		if (e.id < VSK_EVENT_BUFS)
			vsk_publish(v, ev, (uint16_t)e.id, true);
	}
	return any;
}

/* ---- sending ---- */

static inline int vsk_free_slot(const struct vsk *v)
{
	for (int k = 0; k < VSK_TX_SLOTS; k++)
		if (!v->tx_busy[k])
			return k;
	return -1;
}

/*
 * Put a chain of n (1 or 2) buffers on the tx queue in a free slot and kick
 * it; false if no slot is free.  The buffers must stay put until the slot
 * comes back (vsk_pump): hostile guests pass malformed chains here.
 */
static inline bool vsk_tx_chain(struct vsk *v, const struct vq_buf *b, unsigned int n)
{
	struct vsk_queue *q = &v->q[VSK_Q_TX];
	int k = vsk_free_slot(v);
	uint16_t d0;

	if (k < 0 || n < 1 || n > 2)
		return false;
	d0 = (uint16_t)(2 * k);
	for (unsigned int i = 0; i < n; i++)
		vsk_set_desc(q, (uint16_t)(d0 + i), vsk_addr(b[i].addr), b[i].len,
			     (uint16_t)((b[i].writable ? VQ_DESC_F_WRITE : 0) | (i + 1 < n ? VQ_DESC_F_NEXT : 0)),
			     (uint16_t)(i + 1 < n ? d0 + i + 1 : 0));
	v->tx_busy[k] = true;
	v->tx_inflight++;
	vsk_publish(v, q, d0, true);
	return true;
}

/* A well-formed packet: header, and the payload (copied) in a second descriptor.  false if no slot. */
static inline bool vsk_tx_try(struct vsk *v, const struct vsk_hdr *h, const void *data, uint32_t len)
{
	int k = vsk_free_slot(v);
	struct vq_buf b[2];

	if (k < 0 || len > VSK_TX_DATA)
		return false;
	memcpy(v->b.tx_hdr[k], h, VSK_HDR);
	if (len)
		memcpy(v->b.tx_data[k], data, len);
	b[0] = (struct vq_buf){ v->b.tx_hdr[k], VSK_HDR, false };
	b[1] = (struct vq_buf){ v->b.tx_data[k], len, false };
	return vsk_tx_chain(v, b, len ? 2 : 1);
}

/* Pump until a tx slot is free (at once if one is). */
static inline int vsk_wait_slot(struct vsk *v)
{
	uint64_t start = rdtsc();

	for (unsigned int spin = 0;; spin++) {
		if (vsk_free_slot(v) >= 0)
			return VIO_OK;
		vsk_pump(v);
		if (!(spin & 63)) {
			if (vio_status(&v->d) & VIO_S_NEEDS_RESET)
				return VIO_E_BROKEN;
			if (rdtsc() - start > v->d.timeout_ticks)
				return VIO_E_TIMEOUT;
		}
		__asm__ volatile("pause");
	}
}

/* Any header (hostile guests), waiting for a slot. */
static inline int vsk_send_hdr(struct vsk *v, const struct vsk_hdr *h, const void *data, uint32_t len)
{
	int r = vsk_wait_slot(v);

	if (r)
		return r;
	return vsk_tx_try(v, h, data, len) ? VIO_OK : VIO_E_QUEUE;
}

/* The header of a packet of ours on (local_port, peer_port). */
static inline struct vsk_hdr vsk_hdr_make(const struct vsk *v, uint32_t local_port, uint32_t peer_port, uint16_t op,
					  uint32_t flags, uint32_t len, uint32_t fwd_cnt)
{
	return (struct vsk_hdr){ .src_cid = v->cid, .dst_cid = VSK_HOST_CID, .src_port = local_port,
				 .dst_port = peer_port, .len = len, .type = VSK_TYPE_STREAM, .op = op,
				 .flags = flags, .buf_alloc = VSK_BUF_ALLOC, .fwd_cnt = fwd_cnt };
}

/* A packet on c with our current credit figures; RW advances tx_cnt.  Ignores the device's credit. */
static inline int vsk_conn_send(struct vsk *v, struct vsk_conn *c, uint16_t op, uint32_t flags, const void *data,
				uint32_t len)
{
	struct vsk_hdr h;
	int r = vsk_wait_slot(v);

	if (r)
		return r;
	/* Built after the wait: pumping may have moved rx_cnt. */
	h = vsk_hdr_make(v, c->local_port, c->peer_port, op, flags, len, c->rx_cnt);
	if (!vsk_tx_try(v, &h, data, len))
		return VIO_E_QUEUE;
	c->fwd_told = c->rx_cnt;
	c->credit_due = false;
	if (op == VSK_OP_RW)
		c->tx_cnt += len;
	if (op == VSK_OP_RESPONSE)
		c->response_due = false;
	return VIO_OK;
}

/* Pump, then send what we owe as far as free tx slots allow. */
static inline void vsk_service(struct vsk *v)
{
	vsk_pump(v);
	while (v->nr_owed_rst && vsk_free_slot(v) >= 0) {
		struct vsk_hdr h;

		v->nr_owed_rst--;
		h = vsk_hdr_make(v, v->owed_rst[v->nr_owed_rst].local_port, v->owed_rst[v->nr_owed_rst].peer_port,
				 VSK_OP_RST, 0, 0, 0);
		vsk_tx_try(v, &h, NULL, 0);
	}
	if (!v->ctl_due)
		return;
	v->ctl_due = false;
	for (unsigned int i = 0; i < VSK_CONNS; i++) {
		struct vsk_conn *c = &v->conns[i];

		if (c->state == VSK_FREE || !(c->response_due || c->credit_due))
			continue;
		if (vsk_free_slot(v) < 0) {
			v->ctl_due = true; /* the rest next time */
			return;
		}
		/* RESPONSE carries our credit too: it settles a credit_due as well. */
		vsk_conn_send(v, c, c->response_due ? VSK_OP_RESPONSE : VSK_OP_CREDIT_UPDATE, 0, NULL, 0);
	}
}

/*
 * Service the device until 'cond' holds; *rp gets VIO_OK, or VIO_E_TIMEOUT
 * after 'ticks', or VIO_E_BROKEN once the device sets DEVICE_NEEDS_RESET.
 */
#define VSK_WAIT(v, cond, ticks, rp)                                                       \
	do {                                                                               \
		uint64_t vsk_t0_ = rdtsc();                                                \
		*(rp) = VIO_OK;                                                            \
		for (unsigned int vsk_s_ = 0; !(cond); vsk_s_++) {                         \
			vsk_service(v);                                                    \
			if (!(vsk_s_ & 63)) {                                              \
				if (vio_status(&(v)->d) & VIO_S_NEEDS_RESET) {             \
					*(rp) = VIO_E_BROKEN;                              \
					break;                                             \
				}                                                          \
				if (rdtsc() - vsk_t0_ > (ticks)) {                         \
					*(rp) = VIO_E_TIMEOUT;                             \
					break;                                             \
				}                                                          \
			}                                                                  \
			__asm__ volatile("pause");                                         \
		}                                                                          \
	} while (0)

/* Service for 'ticks' regardless (a quiet period for things that must not happen). */
static inline void vsk_idle(struct vsk *v, uint64_t ticks)
{
	uint64_t t0 = rdtsc();

	while (rdtsc() - t0 < ticks) {
		vsk_service(v);
		__asm__ volatile("pause");
	}
}

/*
 * REQUEST from local_port to host port peer_port and wait for the answer.
 * The connection (ESTABLISHED, or CLOSED + refused), or NULL with *rp set
 * (and no connection kept).
 */
static inline struct vsk_conn *vsk_connect(struct vsk *v, uint32_t local_port, uint32_t peer_port,
					   uint8_t (*expect)(uint32_t), int *rp)
{
	struct vsk_conn *c = vsk_conn_new(v, local_port, peer_port, expect);

	if (!c) {
		*rp = VSK_E_NO_SLOT;
		return NULL;
	}
	*rp = vsk_conn_send(v, c, VSK_OP_REQUEST, 0, NULL, 0);
	if (!*rp)
		VSK_WAIT(v, c->state != VSK_CONNECTING, v->d.timeout_ticks, rp);
	if (*rp) {
		vsk_conn_free(c); /* a late answer is a stray */
		return NULL;
	}
	return c;
}

/* Send 'total' more bytes of gen(stream offset) on c, never beyond the device's credit. */
static inline int vsk_write_pattern(struct vsk *v, struct vsk_conn *c, uint8_t (*gen)(uint32_t), uint32_t total)
{
	uint32_t end = c->tx_cnt + total;
	int r;

	while (c->tx_cnt != end) {
		uint32_t n = end - c->tx_cnt, credit;

		VSK_WAIT(v, c->state != VSK_ESTABLISHED || vsk_credit(c) > 0, v->d.timeout_ticks, &r);
		if (r)
			return r;
		if (c->state != VSK_ESTABLISHED)
			return VSK_E_RESET;
		credit = vsk_credit(c);
		if (n > credit)
			n = credit;
		if (n > VSK_TX_DATA)
			n = VSK_TX_DATA;
		for (uint32_t i = 0; i < n; i++)
			v->b.scratch[i] = gen(c->tx_cnt + i);
		r = vsk_conn_send(v, c, VSK_OP_RW, 0, v->b.scratch, n);
		if (r)
			return r;
	}
	return VIO_OK;
}

/* Strays since index 'from' with this op and ports (host_port = their src, guest_port = their dst). */
static inline unsigned int vsk_strays(const struct vsk *v, uint32_t from, int op, uint32_t host_port,
				      uint32_t guest_port)
{
	unsigned int n = 0;

	if (v->nr_stray - from > VSK_STRAYS)
		from = v->nr_stray - VSK_STRAYS;
	for (uint32_t i = from; i != v->nr_stray; i++) {
		const struct vsk_stray *s = &v->stray[i % VSK_STRAYS];

		if ((op < 0 || s->op == op) && s->src_port == host_port && s->dst_port == guest_port)
			n++;
	}
	return n;
}

#endif
