// SPDX-License-Identifier: Apache-2.0
/*
 * devices/virtio_vsock: the device driven through the virtio-mmio registers
 * by a small guest driver written here over fake guest RAM.  The guest side
 * is a miniature vsock stack (rx/tx/event queues, packet headers encoded
 * and decoded by the test itself, per-connection credit); the host side is
 * the library API (listen/accept, connect, the Firecracker-style Unix
 * socket) and the host fds it hands out.
 *
 * Covered: config space and features; guest -> host and host -> guest
 * connections with byte-exact data both ways over both rx buffer layouts;
 * credit in both directions (the device never sends more than the guest
 * allows, answers CREDIT_REQUEST, tells the guest when it drained); every
 * half close and reset from either side; the Unix-socket handshake (also
 * split over several writes, and with data right behind the line); then a
 * hostile guest: malformed chains (DEVICE_NEEDS_RESET, connections reset,
 * recovery after a reset), wrong cids, unknown ops and types, credit
 * violations, ordering behind bytes the device had to hold, backlog,
 * connection and RST floods; 50 connections moving 1 MiB each way; destroy,
 * close_all and TRANSPORT_RESET with open connections (with and without an
 * event buffer); credit for a guest with a small buffer and after the host
 * end is gone, RSTs owed while rx is full, no data after SHUTDOWN(RCV), and
 * CREDIT_REQUEST while closing.
 *
 * Nothing here depends on timing except the host connect timeout (2 s):
 * host fds are socketpairs, so what the device writes is readable at once,
 * and every wait is a bounded loop that only guards against a hang.
 */
#include "virtio_vsock.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "vsock_driver.h"

/* Guest RAM layout. */
#define RAM_SIZE (16u << 20)
#define RX_DESC 0x10000ULL
#define RX_AVAIL 0x11000ULL
#define RX_USED 0x12000ULL
#define TX_DESC 0x20000ULL
#define TX_AVAIL 0x21000ULL
#define TX_USED 0x22000ULL
#define EV_DESC 0x30000ULL
#define EV_AVAIL 0x31000ULL
#define EV_USED 0x32000ULL
#define EV_BUF 0x33000ULL
#define RX_BUF 0x100000ULL
#define RX_BUF_STRIDE 0x2000ULL /* header at +0 (Linux layout), data at +0x100 */
#define RX_DATA_OFF 0x100ULL
#define TX_BUF 0x400000ULL
#define TX_BUF_STRIDE 0x11000ULL /* header at +0, payload at +0x40 */
#define TX_PAYLOAD_OFF 0x40ULL
#define TX_PAYLOAD_MAX (TX_BUF_STRIDE - TX_PAYLOAD_OFF)
#define SCRATCH 0xd00000ULL /* hand-built hostile buffers */

#define QSIZE 256
#define EV_QSIZE 16
#define NR_EV_BUFS 4
#define TX_SLOTS 120     /* tx descriptors 2s, 2s + 1 */
#define HOSTILE_DESC 248 /* descriptors 248..255 of a queue: hand-built chains */
#define RX_DATA 4096

#define GUEST_CID 42
#define MAX_GCONNS 256

#define ACK VIRTIO_STATUS_ACKNOWLEDGE
#define DRV VIRTIO_STATUS_DRIVER
#define FOK VIRTIO_STATUS_FEATURES_OK
#define DOK VIRTIO_STATUS_DRIVER_OK
#define BIT(n) (1ULL << (n))
#define SHUT_BOTH (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND)

enum rx_layout {
	LAYOUT_LINUX,  /* 44-byte header descriptor + 4096-byte data descriptor */
	LAYOUT_SINGLE, /* one descriptor of 44 + data bytes */
};

struct pkt {
	struct vsock_hdr h;
	uint8_t data[RX_DATA];
};

/* The guest's view of one connection. */
struct gconn {
	uint32_t gport, hport;
	uint32_t buf_alloc;      /* what the guest advertises */
	uint32_t fwd_cnt;        /* bytes the guest application consumed */
	uint32_t rx_cnt;         /* bytes received */
	uint32_t tx_cnt;         /* bytes sent */
	uint32_t adv_buf_alloc, adv_fwd_cnt; /* in the last packet the guest sent */
	uint32_t peer_buf_alloc, peer_fwd_cnt; /* in the last packet the device sent */
	bool hold;               /* the application does not read: fwd_cnt stays */
	bool keep;               /* keep received bytes in rxdata */
	uint8_t *rxdata;
	size_t rxlen, rxcap;
	uint64_t rx_hash;
	uint32_t peer_shutdown;
	uint32_t rx_cnt_at_shutdown;
	unsigned int nr_rst, nr_shutdown, nr_response, nr_credit_update;
};

struct vt {
	struct virtio_vsock *v;
	uint8_t *ram;
	struct guest_mem gm;
	atomic_int irqs;
	enum rx_layout layout;
	bool tx_single;          /* header and payload in one descriptor */
	uint32_t rx_data_len;    /* data bytes per rx buffer */
	unsigned int rx_slots;
	bool rx_posted[QSIZE];
	bool rx_repost;
	uint16_t rx_avail, rx_used_seen;
	uint16_t tx_avail, tx_used_seen;
	bool tx_busy[TX_SLOTS];
	unsigned int tx_next;
	uint16_t ev_avail, ev_used_seen;
	/* Received packets, oldest first. */
	struct pkt *pkts;
	size_t npkts, pkt_head, pkt_cap;
	bool fifo_off;
	uint64_t nr_collected;
	struct gconn *conns[MAX_GCONNS];
	unsigned int nr_gconns;
	char dir[64];
	bool destroyed;
};

/* ---- wire format and registers: tests/unit/vsock_driver.h ---- */

/* ---- small utilities ---- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static uint64_t fnv(uint64_t h, const uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		h = (h ^ p[i]) * 1099511628211ULL;
	return h;
}

#define FNV_INIT 14695981039346656037ULL

/* Byte 'off' of stream 'seed': not periodic at any buffer size used here. */
static void pattern(uint32_t seed, uint64_t off, uint8_t *p, size_t n)
{
	for (size_t i = 0; i < n; i++) {
		uint32_t x = (uint32_t)(off + i) * 2654435761u + seed * 40503u;

		p[i] = (uint8_t)((x >> 24) ^ (x >> 11));
	}
}

static uint64_t pattern_hash(uint32_t seed, uint64_t len)
{
	uint8_t buf[4096];
	uint64_t h = FNV_INIT;

	for (uint64_t off = 0; off < len; off += sizeof(buf)) {
		size_t n = len - off < sizeof(buf) ? (size_t)(len - off) : sizeof(buf);

		pattern(seed, off, buf, n);
		h = fnv(h, buf, n);
	}
	return h;
}

static void set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	ck_assert_int_ge(fl, 0);
	ck_assert_int_eq(fcntl(fd, F_SETFL, fl | O_NONBLOCK), 0);
}

static void count_irq(void *opaque)
{
	atomic_fetch_add(&((struct vt *)opaque)->irqs, 1);
}

/* ---- registers ---- */

static uint32_t rd(struct vt *t, uint64_t off)
{
	return vd_rd(t->v, off);
}

static void wr(struct vt *t, uint64_t off, uint32_t v)
{
	vd_wr(t->v, off, v);
}

static uint64_t device_features(struct vt *t)
{
	return vd_device_features(t->v);
}

static void queue_setup(struct vt *t, unsigned int q, uint16_t size, uint64_t desc, uint64_t avail,
			uint64_t used)
{
	ck_assert(vd_queue_setup(t->v, q, size, desc, avail, used));
}

/* ---- rings ---- */

static void put_desc(struct vt *t, uint64_t table, unsigned int i, uint64_t gpa, uint32_t len,
		     uint16_t flags, uint16_t next)
{
	vd_put_desc(t->ram, table, i, gpa, len, flags, next);
}

static void avail_push(struct vt *t, uint64_t avail, uint16_t size, uint16_t *idx, uint16_t head)
{
	vd_avail_push(t->ram, avail, size, idx, head);
}

static uint16_t used_idx(struct vt *t, uint64_t used)
{
	return vd_used_idx(t->ram, used);
}

static void rx_post(struct vt *t, unsigned int slot)
{
	uint64_t base = RX_BUF + slot * RX_BUF_STRIDE;
	uint16_t head;

	ck_assert(!t->rx_posted[slot]);
	memset(t->ram + base, 0xa5, RX_DATA_OFF + RX_DATA);
	if (t->layout == LAYOUT_LINUX) {
		head = (uint16_t)(2 * slot);
		put_desc(t, RX_DESC, head, base, VSOCK_HDR_SIZE,
			 VIRTQ_DESC_F_WRITE | VIRTQ_DESC_F_NEXT, (uint16_t)(head + 1));
		put_desc(t, RX_DESC, head + 1, base + RX_DATA_OFF, t->rx_data_len,
			 VIRTQ_DESC_F_WRITE, 0);
	} else {
		head = (uint16_t)slot;
		put_desc(t, RX_DESC, head, base, VSOCK_HDR_SIZE + t->rx_data_len,
			 VIRTQ_DESC_F_WRITE, 0);
	}
	t->rx_posted[slot] = true;
	avail_push(t, RX_AVAIL, QSIZE, &t->rx_avail, head);
}

static void rx_post_n(struct vt *t, unsigned int n)
{
	for (unsigned int s = 0; s < t->rx_slots && n; s++) {
		if (!t->rx_posted[s]) {
			rx_post(t, s);
			n--;
		}
	}
}

static void rx_kick(struct vt *t)
{
	virtio_mmio_notify(&t->v->mmio, VSOCK_QUEUE_RX);
}

static struct gconn *gc_find(struct vt *t, uint32_t gport, uint32_t hport)
{
	for (unsigned int i = 0; i < t->nr_gconns; i++)
		if (t->conns[i]->gport == gport && t->conns[i]->hport == hport)
			return t->conns[i];
	return NULL;
}

/* What the guest stack does with each packet it receives. */
static void gc_account(struct gconn *c, const struct pkt *p)
{
	c->peer_buf_alloc = p->h.buf_alloc;
	c->peer_fwd_cnt = p->h.fwd_cnt;
	switch (p->h.op) {
	case VSOCK_OP_RW:
		c->rx_cnt += p->h.len;
		/* The device never sends more than the credit the guest gave. */
		ck_assert_msg(c->rx_cnt - c->adv_fwd_cnt <= c->adv_buf_alloc,
			      "device overran guest credit: rx_cnt %u fwd_cnt %u buf_alloc %u",
			      c->rx_cnt, c->adv_fwd_cnt, c->adv_buf_alloc);
		ck_assert_msg(!(c->peer_shutdown & VSOCK_SHUTDOWN_SEND), "data after SHUTDOWN(SEND)");
		if (!c->hold)
			c->fwd_cnt = c->rx_cnt;
		c->rx_hash = fnv(c->rx_hash, p->data, p->h.len);
		if (c->keep) {
			if (c->rxlen + p->h.len > c->rxcap) {
				c->rxcap = (c->rxlen + p->h.len) * 2;
				c->rxdata = realloc(c->rxdata, c->rxcap);
				ck_assert_ptr_nonnull(c->rxdata);
			}
			memcpy(c->rxdata + c->rxlen, p->data, p->h.len);
			c->rxlen += p->h.len;
		}
		break;
	case VSOCK_OP_SHUTDOWN:
		c->peer_shutdown |= p->h.flags;
		c->rx_cnt_at_shutdown = c->rx_cnt;
		c->nr_shutdown++;
		break;
	case VSOCK_OP_RST:
		c->nr_rst++;
		break;
	case VSOCK_OP_RESPONSE:
		c->nr_response++;
		break;
	case VSOCK_OP_CREDIT_UPDATE:
		c->nr_credit_update++;
		break;
	}
}

/* Read every used rx buffer: check it, account it, queue it, repost it. */
static void rx_collect(struct vt *t)
{
	uint16_t used = used_idx(t, RX_USED);

	while (t->rx_used_seen != used) {
		uint8_t *e = t->ram + RX_USED + 4 + 8 * (t->rx_used_seen % QSIZE);
		uint32_t id = tu_get32(e), len = tu_get32(e + 4);
		unsigned int slot = t->layout == LAYOUT_LINUX ? id / 2 : id;
		uint64_t base = RX_BUF + slot * RX_BUF_STRIDE;
		const uint8_t *data;
		struct pkt p;
		struct gconn *c;

		ck_assert_msg(id < QSIZE && (t->layout != LAYOUT_LINUX || id % 2 == 0) &&
				      slot < t->rx_slots && t->rx_posted[slot],
			      "device used rx head %u that is not a posted buffer", id);
		t->rx_posted[slot] = false;
		ck_assert_uint_ge(len, VSOCK_HDR_SIZE);
		vd_hdr_get(t->ram + base, &p.h);
		data = t->ram + base + (t->layout == LAYOUT_LINUX ? RX_DATA_OFF : VSOCK_HDR_SIZE);
		ck_assert_uint_le(p.h.len, t->rx_data_len);
		ck_assert_uint_eq(len, VSOCK_HDR_SIZE + p.h.len);
		ck_assert_uint_eq(p.h.src_cid, VSOCK_HOST_CID);
		ck_assert_uint_eq(p.h.dst_cid, GUEST_CID);
		ck_assert_uint_eq(p.h.type, VSOCK_TYPE_STREAM);
		if (p.h.op != VSOCK_OP_RW)
			ck_assert_uint_eq(p.h.len, 0);
		memcpy(p.data, data, p.h.len);
		t->nr_collected++;
		t->rx_used_seen++;
		c = gc_find(t, p.h.dst_port, p.h.src_port);
		if (c)
			gc_account(c, &p);
		if (!t->fifo_off) {
			if (t->npkts == t->pkt_cap) {
				t->pkt_cap = t->pkt_cap ? t->pkt_cap * 2 : 64;
				t->pkts = realloc(t->pkts, t->pkt_cap * sizeof(*t->pkts));
				ck_assert_ptr_nonnull(t->pkts);
			}
			t->pkts[t->npkts++] = p;
		}
		if (t->rx_repost)
			rx_post(t, slot);
		used = used_idx(t, RX_USED);
	}
}

static void tx_reap(struct vt *t)
{
	uint16_t used = used_idx(t, TX_USED);

	while (t->tx_used_seen != used) {
		uint8_t *e = t->ram + TX_USED + 4 + 8 * (t->tx_used_seen % QSIZE);
		uint32_t id = tu_get32(e);

		if (id < HOSTILE_DESC) {
			ck_assert_msg(id % 2 == 0 && id / 2 < TX_SLOTS && t->tx_busy[id / 2],
				      "device used tx head %u that is not in flight", id);
			t->tx_busy[id / 2] = false;
		}
		t->tx_used_seen++;
	}
}

static void tx_kick(struct vt *t)
{
	virtio_mmio_notify(&t->v->mmio, VSOCK_QUEUE_TX);
	tx_reap(t);
}

static unsigned int tx_slot(struct vt *t)
{
	for (int round = 0; round < 2; round++) {
		tx_reap(t);
		for (unsigned int i = 0; i < TX_SLOTS; i++) {
			unsigned int s = (t->tx_next + i) % TX_SLOTS;

			if (!t->tx_busy[s]) {
				t->tx_next = s + 1;
				t->tx_busy[s] = true;
				return s;
			}
		}
		tx_kick(t);
	}
	ck_abort_msg("device keeps every tx buffer");
	return 0;
}

/* Queue one packet on tx (header descriptor + payload descriptor); no kick. */
static void tx_post(struct vt *t, const struct vsock_hdr *h, const void *payload, uint32_t plen)
{
	unsigned int s = tx_slot(t);
	uint64_t base = TX_BUF + s * TX_BUF_STRIDE;
	uint16_t head = (uint16_t)(2 * s);

	ck_assert_uint_le(plen, TX_PAYLOAD_MAX);
	if (t->tx_single) {
		vd_hdr_put(t->ram + base, h);
		if (plen)
			memcpy(t->ram + base + VSOCK_HDR_SIZE, payload, plen);
		put_desc(t, TX_DESC, head, base, VSOCK_HDR_SIZE + plen, 0, 0);
	} else {
		vd_hdr_put(t->ram + base, h);
		if (plen)
			memcpy(t->ram + base + TX_PAYLOAD_OFF, payload, plen);
		put_desc(t, TX_DESC, head, base, VSOCK_HDR_SIZE, plen ? VIRTQ_DESC_F_NEXT : 0,
			 (uint16_t)(head + 1));
		put_desc(t, TX_DESC, head + 1, base + TX_PAYLOAD_OFF, plen, 0, 0);
	}
	avail_push(t, TX_AVAIL, QSIZE, &t->tx_avail, head);
}

static void send_pkt(struct vt *t, const struct vsock_hdr *h, const void *payload, uint32_t plen)
{
	tx_post(t, h, payload, plen);
	tx_kick(t);
}

/* A hand-built tx chain from descriptors HOSTILE_DESC.. */
struct seg {
	uint64_t gpa;
	uint32_t len;
	bool writable;
};

static void post_chain(struct vt *t, uint64_t table, uint64_t avail, uint16_t *idx,
		       const struct seg *segs, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		put_desc(t, table, HOSTILE_DESC + i, segs[i].gpa, segs[i].len,
			 (uint16_t)((segs[i].writable ? VIRTQ_DESC_F_WRITE : 0) |
				    (i + 1 < n ? VIRTQ_DESC_F_NEXT : 0)),
			 (uint16_t)(HOSTILE_DESC + i + 1));
	avail_push(t, avail, QSIZE, idx, HOSTILE_DESC);
}

/* ---- device lifecycle ---- */

/* What Linux's probe does, in register writes; then rx buffers and event buffers. */
static void bring_up(struct vt *t, unsigned int nr_rx)
{
	uint64_t want = device_features(t) & ~BIT(VIRTIO_RING_F_EVENT_IDX);

	wr(t, VIRTIO_MMIO_STATUS, 0);
	ck_assert_uint_eq(rd(t, VIRTIO_MMIO_STATUS), 0);
	ck_assert_uint_eq(rd(t, VIRTIO_MMIO_MAGIC_VALUE), VIRTIO_MMIO_MAGIC);
	ck_assert_uint_eq(rd(t, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_VSOCK);
	wr(t, VIRTIO_MMIO_STATUS, ACK);
	wr(t, VIRTIO_MMIO_STATUS, ACK | DRV);
	wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)want);
	wr(t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)(want >> 32));
	wr(t, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	ck_assert_uint_eq(rd(t, VIRTIO_MMIO_STATUS), ACK | DRV | FOK);
	memset(t->ram + RX_DESC, 0, 0x30000);
	memset(t->ram + EV_DESC, 0, 0x4000);
	queue_setup(t, VSOCK_QUEUE_RX, QSIZE, RX_DESC, RX_AVAIL, RX_USED);
	queue_setup(t, VSOCK_QUEUE_TX, QSIZE, TX_DESC, TX_AVAIL, TX_USED);
	queue_setup(t, VSOCK_QUEUE_EVENT, EV_QSIZE, EV_DESC, EV_AVAIL, EV_USED);
	wr(t, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
	ck_assert_uint_eq(rd(t, VIRTIO_MMIO_STATUS), ACK | DRV | FOK | DOK);

	t->rx_avail = t->rx_used_seen = 0;
	t->tx_avail = t->tx_used_seen = 0;
	t->ev_avail = t->ev_used_seen = 0;
	memset(t->rx_posted, 0, sizeof(t->rx_posted));
	memset(t->tx_busy, 0, sizeof(t->tx_busy));
	t->tx_next = 0;
	t->npkts = t->pkt_head = 0;
	t->nr_gconns = 0;
	t->rx_slots = t->layout == LAYOUT_LINUX ? QSIZE / 2 : QSIZE;

	/* Event buffers: struct virtio_vsock_event is one le32. */
	for (unsigned int i = 0; i < NR_EV_BUFS; i++) {
		vd_put_le(t->ram + EV_BUF + 8 * i, 0xffffffffu, 4);
		put_desc(t, EV_DESC, i, EV_BUF + 8 * i, 4, VIRTQ_DESC_F_WRITE, 0);
		avail_push(t, EV_AVAIL, EV_QSIZE, &t->ev_avail, (uint16_t)i);
	}
	virtio_mmio_notify(&t->v->mmio, VSOCK_QUEUE_EVENT);
	ck_assert_uint_eq(used_idx(t, EV_USED), 0); /* held, not used */
	rx_post_n(t, nr_rx);
	rx_kick(t);
}

static void vt_init_ex(struct vt *t, enum rx_layout layout, bool tx_single, unsigned int nr_rx)
{
	memset(t, 0, sizeof(*t));
	t->ram = calloc(1, RAM_SIZE);
	t->v = calloc(1, sizeof(*t->v));
	ck_assert_ptr_nonnull(t->ram);
	ck_assert_ptr_nonnull(t->v);
	t->layout = layout;
	t->tx_single = tx_single;
	t->rx_data_len = RX_DATA;
	t->rx_repost = true;
	guest_mem_init_from(&t->gm, t->ram, RAM_SIZE);
	ck_assert_int_eq(virtio_vsock_init(t->v, &t->gm, GUEST_CID), 0);
	ck_assert_int_ge(virtio_vsock_fd(t->v), 0);
	virtio_mmio_set_irq(&t->v->mmio, count_irq, t);
	bring_up(t, nr_rx);
}

static void vt_init(struct vt *t)
{
	vt_init_ex(t, LAYOUT_LINUX, false, QSIZE);
}

static void vt_destroy(struct vt *t)
{
	ck_assert(!t->destroyed);
	virtio_vsock_destroy(t->v);
	t->destroyed = true;
}

static void vt_fini(struct vt *t)
{
	if (!t->destroyed)
		vt_destroy(t);
	free(t->v);
	free(t->ram);
	free(t->pkts);
	if (t->dir[0]) {
		DIR *d = opendir(t->dir);
		struct dirent *de;
		char p[512];

		while (d && (de = readdir(d))) {
			if (de->d_name[0] == '.')
				continue;
			snprintf(p, sizeof(p), "%s/%s", t->dir, de->d_name);
			unlink(p);
		}
		if (d)
			closedir(d);
		rmdir(t->dir);
	}
}

static void mk_dir(struct vt *t)
{
	strcpy(t->dir, "/tmp/msvmm-vsock-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(t->dir));
}

/* ---- driving the device ---- */

/* Serve host events, kick rx, read what arrived; until two quiet rounds. */
static void pump(struct vt *t)
{
	unsigned int quiet = 0;

	for (int i = 0; i < 500 && quiet < 2; i++) {
		uint64_t before = t->nr_collected;

		virtio_vsock_poll(t->v);
		rx_kick(t);
		rx_collect(t);
		tx_reap(t);
		quiet = t->nr_collected == before ? quiet + 1 : 0;
	}
}

/* Wait up to 'ms' for the device's fd, then serve it and read rx. */
static void vpoll(struct vt *t, int ms)
{
	struct pollfd p = { .fd = virtio_vsock_fd(t->v), .events = POLLIN };

	poll(&p, 1, ms);
	pump(t);
}

/* The next packet that is not a CREDIT_UPDATE (those are only accounted). */
static bool next_pkt_ex(struct vt *t, struct pkt *out, bool raw)
{
	for (int pass = 0; pass < 2; pass++) {
		while (t->pkt_head < t->npkts) {
			struct pkt *p = &t->pkts[t->pkt_head++];

			if (!raw && p->h.op == VSOCK_OP_CREDIT_UPDATE)
				continue;
			*out = *p;
			return true;
		}
		t->npkts = t->pkt_head = 0;
		pump(t);
	}
	return false;
}

static bool next_pkt(struct vt *t, struct pkt *out)
{
	return next_pkt_ex(t, out, false);
}

static void drain_fifo(struct vt *t)
{
	pump(t);
	t->npkts = t->pkt_head = 0;
}

/* Packets other than CREDIT_UPDATE that arrived (after pumping); drops them. */
static unsigned int count_pkts(struct vt *t, uint16_t op)
{
	struct pkt p;
	unsigned int n = 0;

	while (next_pkt(t, &p))
		if (op == 0xffff || p.h.op == op)
			n++;
	return n;
}

static void expect_quiet(struct vt *t)
{
	struct pkt p;

	if (next_pkt(t, &p))
		ck_abort_msg("unexpected packet op %u %u -> %u flags %u", p.h.op, p.h.src_port,
			     p.h.dst_port, p.h.flags);
}

static struct pkt expect_pkt(struct vt *t, uint16_t op, uint32_t src_port, uint32_t dst_port)
{
	struct pkt p;

	ck_assert_msg(next_pkt(t, &p), "no packet; expected op %u", op);
	ck_assert_msg(p.h.op == op && p.h.src_port == src_port && p.h.dst_port == dst_port,
		      "got op %u %u -> %u, expected op %u %u -> %u", p.h.op, p.h.src_port,
		      p.h.dst_port, op, src_port, dst_port);
	return p;
}

static struct vsock_hdr mk_hdr(uint32_t gport, uint32_t hport, uint16_t op, uint32_t flags,
			       uint32_t len)
{
	return (struct vsock_hdr){
		.src_cid = GUEST_CID, .dst_cid = VSOCK_HOST_CID,
		.src_port = gport, .dst_port = hport, .len = len,
		.type = VSOCK_TYPE_STREAM, .op = op, .flags = flags,
		.buf_alloc = 65536, .fwd_cnt = 0,
	};
}

/* A bare packet from the guest (no connection bookkeeping). */
static void send_raw(struct vt *t, uint32_t gport, uint32_t hport, uint16_t op, uint32_t flags,
		     const void *data, uint32_t len)
{
	struct vsock_hdr h = mk_hdr(gport, hport, op, flags, len);

	send_pkt(t, &h, data, len);
}

/* ---- guest connections ---- */

static void gc_init(struct vt *t, struct gconn *c, uint32_t gport, uint32_t hport,
		    uint32_t buf_alloc)
{
	memset(c, 0, sizeof(*c));
	c->gport = gport;
	c->hport = hport;
	c->buf_alloc = buf_alloc;
	c->keep = true;
	c->rx_hash = FNV_INIT;
	ck_assert_uint_lt(t->nr_gconns, MAX_GCONNS);
	t->conns[t->nr_gconns++] = c;
}

static void gc_free(struct gconn *c)
{
	free(c->rxdata);
	c->rxdata = NULL;
}

static uint32_t gc_credit(const struct gconn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

	return in_flight > c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

static void gc_post(struct vt *t, struct gconn *c, uint16_t op, uint32_t flags, const void *data,
		    uint32_t len)
{
	struct vsock_hdr h = mk_hdr(c->gport, c->hport, op, flags, len);

	h.buf_alloc = c->buf_alloc;
	h.fwd_cnt = c->fwd_cnt;
	c->adv_buf_alloc = c->buf_alloc;
	c->adv_fwd_cnt = c->fwd_cnt;
	if (op == VSOCK_OP_RW)
		c->tx_cnt += len;
	tx_post(t, &h, data, len);
}

static void gc_send(struct vt *t, struct gconn *c, uint16_t op, uint32_t flags, const void *data,
		    uint32_t len)
{
	gc_post(t, c, op, flags, data, len);
	tx_kick(t);
}

/* Send 'len' bytes of pattern 'seed' from offset 'off' in packets of at most 'chunk'. */
static void gc_send_pattern(struct vt *t, struct gconn *c, uint32_t seed, uint64_t off,
			    uint32_t len, uint32_t chunk)
{
	static uint8_t buf[VSOCK_MAX_PKT];

	for (uint32_t done = 0; done < len;) {
		uint32_t n = len - done < chunk ? len - done : chunk;

		pattern(seed, off + done, buf, n);
		gc_send(t, c, VSOCK_OP_RW, 0, buf, n);
		done += n;
	}
}

static void check_response(const struct pkt *p, uint32_t gport, uint32_t hport)
{
	ck_assert_uint_eq(p->h.src_cid, VSOCK_HOST_CID);
	ck_assert_uint_eq(p->h.dst_cid, GUEST_CID);
	ck_assert_uint_eq(p->h.src_port, hport);
	ck_assert_uint_eq(p->h.dst_port, gport);
	ck_assert_uint_eq(p->h.op, VSOCK_OP_RESPONSE);
	ck_assert_uint_eq(p->h.type, VSOCK_TYPE_STREAM);
	ck_assert_uint_eq(p->h.len, 0);
	ck_assert_uint_eq(p->h.buf_alloc, VSOCK_CONN_BUF);
	ck_assert_uint_eq(p->h.fwd_cnt, 0);
}

/* Guest connects to a listened host port; returns the accepted host fd. */
static int establish(struct vt *t, struct gconn *c, uint32_t gport, uint32_t hport,
		     uint32_t buf_alloc)
{
	struct pkt p;
	int fd;

	gc_init(t, c, gport, hport, buf_alloc);
	gc_send(t, c, VSOCK_OP_REQUEST, 0, NULL, 0);
	p = expect_pkt(t, VSOCK_OP_RESPONSE, hport, gport);
	check_response(&p, gport, hport);
	fd = virtio_vsock_accept(t->v, hport, 1000);
	ck_assert_int_ge(fd, 0);
	return fd;
}

/* ---- host fds ---- */

static void host_write(int fd, const void *buf, size_t n)
{
	ck_assert_int_eq(send(fd, buf, n, MSG_NOSIGNAL), (ssize_t)n);
}

/* Exactly n bytes from a host fd, pumping the device meanwhile (it may be flushing). */
static void read_exact(struct vt *t, int fd, void *buf, size_t n)
{
	size_t got = 0;

	for (int i = 0; i < 1000 && got < n; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 2) != 1) {
			if (t)
				pump(t);
			continue;
		}
		r = recv(fd, (uint8_t *)buf + got, n - got, MSG_DONTWAIT);
		if (r < 0 && errno == EAGAIN)
			continue;
		ck_assert_msg(r > 0, "host fd: read %zd (%s) after %zu of %zu bytes", r,
			      r < 0 ? strerror(errno) : "EOF", got, n);
		got += (size_t)r;
		i = 0;
	}
	ck_assert_msg(got == n, "host fd: %zu of %zu bytes", got, n);
}

static bool fd_readable(int fd)
{
	struct pollfd p = { .fd = fd, .events = POLLIN };

	return poll(&p, 1, 0) == 1;
}

/*
 * The host fd reaches EOF (0) or ECONNRESET, pumping the device meanwhile;
 * returns how many data bytes came before.
 */
static size_t host_eof(struct vt *t, int fd)
{
	uint8_t buf[65536];
	size_t total = 0;

	for (int i = 0; i < 400; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 5) == 1) {
			r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT);
			if (r == 0 || (r < 0 && errno == ECONNRESET))
				return total;
			if (r > 0) {
				total += (size_t)r;
				continue;
			}
			ck_assert_int_eq(errno, EAGAIN);
		}
		if (t && !t->destroyed)
			pump(t);
	}
	ck_abort_msg("host fd %d did not see EOF", fd);
	return 0;
}

static int unix_connect(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	ck_assert_uint_lt(strlen(path), sizeof(a.sun_path));
	strcpy(a.sun_path, path);
	ck_assert_int_eq(connect(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	return fd;
}

static int unix_listen(const char *path)
{
	struct sockaddr_un a = { .sun_family = AF_UNIX };
	int fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);

	ck_assert_int_ge(fd, 0);
	strcpy(a.sun_path, path);
	ck_assert_int_eq(bind(fd, (struct sockaddr *)&a, sizeof(a)), 0);
	ck_assert_int_eq(listen(fd, 8), 0);
	return fd;
}

/* One line from a Unix client, pumping the device meanwhile; -1 on EOF/reset. */
static int read_line(struct vt *t, int fd, char *buf, size_t max)
{
	size_t n = 0;

	for (int i = 0; i < 400 && n + 1 < max; i++) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		if (poll(&p, 1, 5) != 1) {
			pump(t);
			continue;
		}
		r = recv(fd, buf + n, 1, MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			return -1;
		if (r < 0)
			continue;
		if (buf[n++] == '\n') {
			buf[n] = 0;
			return (int)n;
		}
	}
	ck_abort_msg("no line from the device");
	return -1;
}

/* ---- host-initiated connect in a thread ---- */

struct cthr {
	struct virtio_vsock *v;
	uint32_t port;
	unsigned int timeout_ms;
	int ret;
	atomic_bool done;
	pthread_t th;
	uint64_t start_ms, end_ms;
};

static void *cthr_main(void *arg)
{
	struct cthr *c = arg;

	c->start_ms = now_ms();
	c->ret = virtio_vsock_connect(c->v, c->port, c->timeout_ms);
	c->end_ms = now_ms();
	atomic_store(&c->done, true);
	return NULL;
}

static void cthr_start(struct cthr *c, struct vt *t, uint32_t port, unsigned int timeout_ms)
{
	memset(c, 0, sizeof(*c));
	c->v = t->v;
	c->port = port;
	c->timeout_ms = timeout_ms;
	ck_assert_int_eq(pthread_create(&c->th, NULL, cthr_main, c), 0);
}

/* Drive the device until the thread returns; its result. */
static int cthr_finish(struct cthr *c, struct vt *t, unsigned int max_ms)
{
	uint64_t end = now_ms() + max_ms;

	while (!atomic_load(&c->done) && now_ms() < end)
		vpoll(t, 10);
	ck_assert_msg(atomic_load(&c->done), "connect() did not return");
	pthread_join(c->th, NULL);
	return c->ret;
}

/* Drive the device until a packet with 'op' arrives (others are kept in order). */
static bool wait_for_op(struct vt *t, uint16_t op, struct pkt *out, unsigned int max_ms)
{
	uint64_t end = now_ms() + max_ms;

	do {
		for (size_t i = t->pkt_head; i < t->npkts; i++) {
			if (t->pkts[i].h.op == op) {
				*out = t->pkts[i];
				memmove(&t->pkts[i], &t->pkts[i + 1],
					(t->npkts - i - 1) * sizeof(*t->pkts));
				t->npkts--;
				return true;
			}
		}
		vpoll(t, 10);
	} while (now_ms() < end);
	return false;
}

/* A host -> guest REQUEST arrived: check it and return the device's port. */
static uint32_t check_request(const struct pkt *p, uint32_t gport)
{
	ck_assert_uint_eq(p->h.op, VSOCK_OP_REQUEST);
	ck_assert_uint_eq(p->h.dst_port, gport);
	ck_assert_uint_ge(p->h.src_port, VSOCK_LOCAL_PORT_BASE);
	ck_assert_uint_lt(p->h.src_port, 1u << 31);
	ck_assert_uint_eq(p->h.len, 0);
	ck_assert_uint_eq(p->h.buf_alloc, VSOCK_CONN_BUF);
	return p->h.src_port;
}

/* ======================================================================== */

START_TEST(test_hdr_codec)
{
	struct vsock_hdr h = {
		.src_cid = 0x0102030405060708ULL, .dst_cid = 0x1112131415161718ULL,
		.src_port = 0x21222324, .dst_port = 0x31323334, .len = 0x41424344,
		.type = 0x5152, .op = 0x6162, .flags = 0x71727374,
		.buf_alloc = 0x81828384, .fwd_cnt = 0x91929394,
	}, back;
	uint8_t mine[VSOCK_HDR_SIZE], theirs[VSOCK_HDR_SIZE];

	vd_hdr_put(mine, &h);
	memset(theirs, 0xee, sizeof(theirs));
	vsock_hdr_encode(&h, theirs);
	ck_assert_mem_eq(theirs, mine, VSOCK_HDR_SIZE);
	memset(&back, 0, sizeof(back));
	vsock_hdr_decode(mine, &back);
	ck_assert_uint_eq(back.src_cid, h.src_cid);
	ck_assert_uint_eq(back.dst_cid, h.dst_cid);
	ck_assert_uint_eq(back.src_port, h.src_port);
	ck_assert_uint_eq(back.dst_port, h.dst_port);
	ck_assert_uint_eq(back.len, h.len);
	ck_assert_uint_eq(back.type, h.type);
	ck_assert_uint_eq(back.op, h.op);
	ck_assert_uint_eq(back.flags, h.flags);
	ck_assert_uint_eq(back.buf_alloc, h.buf_alloc);
	ck_assert_uint_eq(back.fwd_cnt, h.fwd_cnt);
	/* Spot-check the spec's offsets: op at 30, buf_alloc at 36. */
	ck_assert_uint_eq(mine[30], 0x62);
	ck_assert_uint_eq(mine[36], 0x84);
}
END_TEST

START_TEST(test_config_and_features)
{
	struct vt t;
	struct virtio_vsock *bad = calloc(1, sizeof(*bad));
	uint8_t b[8], junk[8];
	uint64_t f;

	vt_init(&t);
	ck_assert_uint_eq(rd(&t, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_VSOCK);
	ck_assert_uint_eq(rd(&t, VIRTIO_MMIO_VERSION), 2);
	f = device_features(&t);
	ck_assert(f & BIT(VIRTIO_F_VERSION_1));
	ck_assert(!(f & BIT(1))); /* no VIRTIO_VSOCK_F_SEQPACKET */
	/* le64 guest_cid. */
	virtio_mmio_access(&t.v->mmio, VIRTIO_MMIO_CONFIG, b, 8, false);
	ck_assert_uint_eq(tu_get64(b), GUEST_CID);
	ck_assert_uint_eq(vd_get_le(b, 8), GUEST_CID);
	ck_assert_uint_eq(rd(&t, VIRTIO_MMIO_CONFIG), GUEST_CID);
	ck_assert_uint_eq(rd(&t, VIRTIO_MMIO_CONFIG + 4), 0);
	virtio_mmio_access(&t.v->mmio, VIRTIO_MMIO_CONFIG, b, 1, false);
	ck_assert_uint_eq(b[0], GUEST_CID);
	/* Writes are ignored. */
	memset(junk, 0x77, sizeof(junk));
	virtio_mmio_access(&t.v->mmio, VIRTIO_MMIO_CONFIG, junk, 8, true);
	wr(&t, VIRTIO_MMIO_CONFIG, 7);
	virtio_mmio_access(&t.v->mmio, VIRTIO_MMIO_CONFIG, b, 8, false);
	ck_assert_uint_eq(tu_get64(b), GUEST_CID);
	ck_assert_uint_eq(t.v->guest_cid, GUEST_CID);

	/* VERSION_1 is required: FEATURES_OK does not stick without it. */
	wr(&t, VIRTIO_MMIO_STATUS, 0);
	wr(&t, VIRTIO_MMIO_STATUS, ACK);
	wr(&t, VIRTIO_MMIO_STATUS, ACK | DRV);
	wr(&t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 0);
	wr(&t, VIRTIO_MMIO_DRIVER_FEATURES, (uint32_t)f);
	wr(&t, VIRTIO_MMIO_DRIVER_FEATURES_SEL, 1);
	wr(&t, VIRTIO_MMIO_DRIVER_FEATURES, 0);
	wr(&t, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	ck_assert_uint_eq(rd(&t, VIRTIO_MMIO_STATUS) & FOK, 0);
	/* And the full bring-up works afterwards. */
	bring_up(&t, QSIZE);
	vt_fini(&t);

	/* Reserved cids. */
	guest_mem_init_from(&t.gm, (uint8_t *)junk, sizeof(junk));
	for (uint64_t cid = 0; cid < 3; cid++)
		ck_assert_int_lt(virtio_vsock_init(bad, &t.gm, cid), 0);
	free(bad);
}
END_TEST

/* Loop index: bit 0 single-descriptor rx buffers, bit 1 single-descriptor tx packets. */
START_TEST(test_guest_connect_and_data)
{
	struct vt t;
	struct gconn c;
	uint8_t buf[10000], got[10000];
	int fd;

	vt_init_ex(&t, (_i & 1) ? LAYOUT_SINGLE : LAYOUT_LINUX, (_i & 2) != 0, QSIZE);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 1024), 0);
	ck_assert_int_eq(virtio_vsock_accept(t.v, 1024, 0), -ETIMEDOUT);
	ck_assert_int_eq(virtio_vsock_accept(t.v, 1025, 0), -EINVAL);
	fd = establish(&t, &c, 5000, 1024, 256 * 1024);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 1);
	ck_assert_int_gt(atomic_load(&t.irqs), 0);

	/* guest -> host */
	gc_send(&t, &c, VSOCK_OP_RW, 0, "hello, host", 11);
	read_exact(&t, fd, got, 11);
	ck_assert_mem_eq(got, "hello, host", 11);
	gc_send_pattern(&t, &c, 1, 0, sizeof(buf), 3333);
	pattern(1, 0, buf, sizeof(buf));
	read_exact(&t, fd, got, sizeof(buf));
	ck_assert_mem_eq(got, buf, sizeof(buf));
	pump(&t);
	ck_assert(!fd_readable(fd));

	/* host -> guest, after poll */
	pattern(2, 0, buf, sizeof(buf));
	host_write(fd, buf, sizeof(buf));
	vpoll(&t, 100);
	ck_assert_uint_eq(c.rxlen, sizeof(buf));
	ck_assert_mem_eq(c.rxdata, buf, sizeof(buf));
	host_write(fd, "z", 1);
	vpoll(&t, 100);
	ck_assert_uint_eq(c.rxlen, sizeof(buf) + 1);
	ck_assert_uint_eq(c.rxdata[sizeof(buf)], 'z');
	ck_assert_uint_eq(c.nr_rst + c.nr_shutdown, 0);
	ck_assert_uint_eq(t.v->nr_credit_violations, 0);
	close(fd);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

/* The diagnostics name the live connection with its counters. */
START_TEST(test_describe)
{
	char buf[4096], want[128];
	struct vt t;
	struct gconn c;
	ssize_t n;
	int fd, mfd;

	vt_init_ex(&t, LAYOUT_LINUX, false, QSIZE);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 1024), 0);
	fd = establish(&t, &c, 5000, 1024, 256 * 1024);
	gc_send(&t, &c, VSOCK_OP_RW, 0, "hello, host", 11);
	mfd = memfd_create("describe", MFD_CLOEXEC);
	ck_assert_int_ge(mfd, 0);
	virtio_vsock_describe(t.v, mfd);
	n = pread(mfd, buf, sizeof(buf) - 1, 0);
	ck_assert_int_gt(n, 0);
	buf[n] = '\0';
	snprintf(want, sizeof(want), "state %d host 1024 guest 5000 ", VSOCK_CONN_ESTABLISHED);
	ck_assert_msg(strstr(buf, want), "no '%s' in: %s", want, buf);
	ck_assert_msg(strstr(buf, " rx 11 fwd 11 "), "no ' rx 11 fwd 11 ' in: %s", buf);
	ck_assert_msg(strstr(buf, "credit violations 0"), "%s", buf);
	close(mfd);
	close(fd);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

START_TEST(test_credit_limits_device)
{
	struct vt t;
	struct gconn c;
	uint8_t buf[5000];
	int fd;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 1024), 0);
	fd = establish(&t, &c, 5001, 1024, 1000);
	c.hold = true;
	pattern(3, 0, buf, sizeof(buf));
	host_write(fd, buf, sizeof(buf));
	ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
	vpoll(&t, 100);
	ck_assert_uint_eq(c.rx_cnt, 1000);
	vpoll(&t, 10);
	pump(&t);
	ck_assert_uint_eq(c.rx_cnt, 1000);
	/* The data was not all sent: no EOF yet. */
	ck_assert_uint_eq(c.nr_shutdown, 0);

	for (uint32_t want = 2000; want <= 5000; want += 1000) {
		c.fwd_cnt = c.rx_cnt;
		gc_send(&t, &c, VSOCK_OP_CREDIT_UPDATE, 0, NULL, 0);
		pump(&t);
		ck_assert_uint_eq(c.rx_cnt, want);
		ck_assert_uint_eq(c.nr_shutdown, 0);
	}
	ck_assert_mem_eq(c.rxdata, buf, sizeof(buf));
	/* Everything delivered: now the EOF. */
	c.fwd_cnt = c.rx_cnt;
	gc_send(&t, &c, VSOCK_OP_CREDIT_UPDATE, 0, NULL, 0);
	pump(&t);
	ck_assert_uint_eq(c.nr_shutdown, 1);
	ck_assert_uint_eq(c.peer_shutdown, VSOCK_SHUTDOWN_SEND);
	ck_assert_uint_eq(c.rx_cnt_at_shutdown, 5000);
	ck_assert_uint_eq(c.nr_rst, 0);
	close(fd);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

START_TEST(test_credit_inconsistent_counts_as_zero)
{
	struct vt t;
	struct gconn c;
	uint8_t buf[3000];
	int fd;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 1024), 0);
	fd = establish(&t, &c, 5002, 1024, 1000);
	c.hold = true;
	pattern(4, 0, buf, sizeof(buf));
	host_write(fd, buf, sizeof(buf));
	vpoll(&t, 100);
	ck_assert_uint_eq(c.rx_cnt, 1000);
	/* fwd_cnt ahead of what the device sent: no credit at all. */
	c.fwd_cnt = 1000 + 5000;
	gc_send(&t, &c, VSOCK_OP_CREDIT_UPDATE, 0, NULL, 0);
	pump(&t);
	ck_assert_uint_eq(c.rx_cnt, 1000);
	/* Honest again. */
	c.fwd_cnt = 1000;
	gc_send(&t, &c, VSOCK_OP_CREDIT_UPDATE, 0, NULL, 0);
	pump(&t);
	ck_assert_uint_eq(c.rx_cnt, 2000);
	/* A bigger buffer in a plain packet counts too. */
	c.buf_alloc = 1u << 20;
	gc_send(&t, &c, VSOCK_OP_CREDIT_UPDATE, 0, NULL, 0);
	pump(&t);
	ck_assert_uint_eq(c.rx_cnt, 3000);
	ck_assert_mem_eq(c.rxdata, buf, sizeof(buf));
	ck_assert_uint_eq(c.nr_rst, 0);
	close(fd);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

START_TEST(test_credit_request)
{
	struct vt t;
	struct gconn c;
	struct pkt p;
	uint8_t buf[300];
	int fd;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 1024), 0);
	fd = establish(&t, &c, 5003, 1024, 4096);
	pattern(5, 0, buf, sizeof(buf));
	gc_send(&t, &c, VSOCK_OP_RW, 0, buf, sizeof(buf));
	drain_fifo(&t);
	gc_send(&t, &c, VSOCK_OP_CREDIT_REQUEST, 0, NULL, 0);
	ck_assert(next_pkt_ex(&t, &p, true));
	ck_assert_uint_eq(p.h.op, VSOCK_OP_CREDIT_UPDATE);
	ck_assert_uint_eq(p.h.src_port, 1024);
	ck_assert_uint_eq(p.h.dst_port, 5003);
	ck_assert_uint_eq(p.h.len, 0);
	ck_assert_uint_eq(p.h.buf_alloc, VSOCK_CONN_BUF);
	ck_assert_uint_eq(p.h.fwd_cnt, sizeof(buf));
	read_exact(&t, fd, buf, sizeof(buf));
	close(fd);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

/* An honest guest that used all its credit hears about the drained buffer unasked. */
START_TEST(test_credit_update_unasked)
{
	struct vt t;
	struct gconn c;
	static uint8_t got[2 * VSOCK_CONN_BUF], want[2 * VSOCK_CONN_BUF];
	int fd;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 1024), 0);
	fd = establish(&t, &c, 5004, 1024, 256 * 1024);
	ck_assert_uint_eq(gc_credit(&c), VSOCK_CONN_BUF);
	gc_send_pattern(&t, &c, 6, 0, VSOCK_CONN_BUF, 4096);
	read_exact(&t, fd, got, VSOCK_CONN_BUF);
	vpoll(&t, 10);
	ck_assert_msg(gc_credit(&c) > 0, "no credit for the guest after the host drained: "
		      "peer fwd_cnt %u", c.peer_fwd_cnt);
	/* Keep going on what the device says. */
	for (uint32_t sent = VSOCK_CONN_BUF; sent < 2 * VSOCK_CONN_BUF;) {
		uint32_t n = gc_credit(&c);

		ck_assert_uint_gt(n, 0);
		if (n > 2 * VSOCK_CONN_BUF - sent)
			n = 2 * VSOCK_CONN_BUF - sent;
		if (n > 4096)
			n = 4096;
		gc_send_pattern(&t, &c, 6, sent, n, 4096);
		sent += n;
		read_exact(&t, fd, got + sent - n, n);
		pump(&t);
	}
	pattern(6, 0, want, sizeof(want));
	ck_assert_mem_eq(got, want, sizeof(want));
	ck_assert_uint_eq(t.v->nr_credit_violations, 0);
	ck_assert_uint_eq(c.nr_rst, 0);
	close(fd);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

START_TEST(test_host_shutdown_wr)
{
	struct vt t;
	struct gconn c;
	struct pkt p;
	char got[8];
	int fd;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 1024), 0);
	fd = establish(&t, &c, 5005, 1024, 65536);
	host_write(fd, "last", 4);
	ck_assert_int_eq(shutdown(fd, SHUT_WR), 0);
	vpoll(&t, 100);
	p = expect_pkt(&t, VSOCK_OP_RW, 1024, 5005);
	ck_assert_uint_eq(p.h.len, 4);
	ck_assert_mem_eq(p.data, "last", 4);
	p = expect_pkt(&t, VSOCK_OP_SHUTDOWN, 1024, 5005);
	ck_assert_uint_eq(p.h.flags, VSOCK_SHUTDOWN_SEND);
	expect_quiet(&t);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 1);
	/* Half close: the guest can still talk. */
	gc_send(&t, &c, VSOCK_OP_RW, 0, "still", 5);
	read_exact(&t, fd, got, 5);
	ck_assert_mem_eq(got, "still", 5);
	/* Host closes: the guest is told, answers RST, the connection is gone. */
	close(fd);
	vpoll(&t, 10);
	p = expect_pkt(&t, VSOCK_OP_SHUTDOWN, 1024, 5005);
	ck_assert_uint_eq(p.h.flags, SHUT_BOTH);
	gc_send(&t, &c, VSOCK_OP_RST, 0, NULL, 0);
	expect_quiet(&t);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

START_TEST(test_host_close)
{
	struct vt t;
	struct gconn c;
	struct pkt p;
	int fd;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 1024), 0);
	fd = establish(&t, &c, 5006, 1024, 65536);
	host_write(fd, "bye", 3);
	close(fd);
	vpoll(&t, 10);
	/* Data first, then SHUTDOWN(RCV|SEND). */
	p = expect_pkt(&t, VSOCK_OP_RW, 1024, 5006);
	ck_assert_uint_eq(p.h.len, 3);
	ck_assert_mem_eq(p.data, "bye", 3);
	p = expect_pkt(&t, VSOCK_OP_SHUTDOWN, 1024, 5006);
	ck_assert_uint_eq(p.h.flags, SHUT_BOTH);
	expect_quiet(&t);
	/* CLOSING until the guest's RST. */
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 1);
	gc_send(&t, &c, VSOCK_OP_RST, 0, NULL, 0);
	expect_quiet(&t);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

START_TEST(test_guest_shutdown_send)
{
	struct vt t;
	struct gconn c;
	struct pkt p;
	char got[8];
	int fd;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 1024), 0);
	fd = establish(&t, &c, 5007, 1024, 65536);
	gc_send(&t, &c, VSOCK_OP_RW, 0, "abc", 3);
	gc_send(&t, &c, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_SEND, NULL, 0);
	read_exact(&t, fd, got, 3);
	ck_assert_mem_eq(got, "abc", 3);
	ck_assert_uint_eq(host_eof(&t, fd), 0);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 1);
	/* The other direction still works. */
	host_write(fd, "xyz", 3);
	vpoll(&t, 100);
	p = expect_pkt(&t, VSOCK_OP_RW, 1024, 5007);
	ck_assert_uint_eq(p.h.len, 3);
	ck_assert_mem_eq(p.data, "xyz", 3);
	/* Now both: the device answers RST and lets go. */
	gc_send(&t, &c, VSOCK_OP_SHUTDOWN, SHUT_BOTH, NULL, 0);
	expect_pkt(&t, VSOCK_OP_RST, 1024, 5007);
	expect_quiet(&t);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	close(fd);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

START_TEST(test_guest_shutdown_both)
{
	struct vt t;
	struct gconn c;
	char got[4];
	int fd;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 1024), 0);
	fd = establish(&t, &c, 5008, 1024, 65536);
	gc_send(&t, &c, VSOCK_OP_RW, 0, "end", 3);
	gc_send(&t, &c, VSOCK_OP_SHUTDOWN, SHUT_BOTH, NULL, 0);
	expect_pkt(&t, VSOCK_OP_RST, 1024, 5008);
	expect_quiet(&t);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	read_exact(&t, fd, got, 3);
	ck_assert_mem_eq(got, "end", 3);
	host_eof(&t, fd);
	close(fd);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

START_TEST(test_guest_rst)
{
	struct vt t;
	struct gconn c;
	int fd;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 1024), 0);
	fd = establish(&t, &c, 5009, 1024, 65536);
	gc_send(&t, &c, VSOCK_OP_RST, 0, NULL, 0);
	expect_quiet(&t); /* never a reply to a RST */
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	host_eof(&t, fd);
	close(fd);
	/* The same ports can connect again. */
	fd = establish(&t, &c, 5009, 1024, 65536);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 1);
	close(fd);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

START_TEST(test_request_refused)
{
	struct vt t;
	struct pkt p;

	vt_init(&t);
	send_raw(&t, 5010, 999, VSOCK_OP_REQUEST, 0, NULL, 0);
	p = expect_pkt(&t, VSOCK_OP_RST, 999, 5010);
	ck_assert_uint_eq(p.h.len, 0);
	expect_quiet(&t);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	ck_assert_uint_ge(t.v->nr_rst_sent, 1);
	/* listen() checks its port. */
	ck_assert_int_lt(virtio_vsock_listen(t.v, 0), 0);
	ck_assert_int_lt(virtio_vsock_listen(t.v, VSOCK_LOCAL_PORT_BASE), 0);
	vt_fini(&t);
}
END_TEST

START_TEST(test_host_connect)
{
	struct vt t;
	struct gconn c;
	struct cthr th;
	struct pkt p;
	uint32_t port, port2;
	char got[8];
	int fd;

	vt_init(&t);
	cthr_start(&th, &t, 7000, 10000);
	ck_assert(wait_for_op(&t, VSOCK_OP_REQUEST, &p, 5000));
	port = check_request(&p, 7000);
	ck_assert(!atomic_load(&th.done));
	gc_init(&t, &c, 7000, port, 65536);
	gc_send(&t, &c, VSOCK_OP_RESPONSE, 0, NULL, 0);
	fd = cthr_finish(&th, &t, 5000);
	ck_assert_int_ge(fd, 0);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 1);
	host_write(fd, "ping", 4);
	vpoll(&t, 100);
	p = expect_pkt(&t, VSOCK_OP_RW, port, 7000);
	ck_assert_mem_eq(p.data, "ping", 4);
	gc_send(&t, &c, VSOCK_OP_RW, 0, "pong", 4);
	read_exact(&t, fd, got, 4);
	ck_assert_mem_eq(got, "pong", 4);

	/* A second one gets its own port. */
	cthr_start(&th, &t, 7000, 10000);
	ck_assert(wait_for_op(&t, VSOCK_OP_REQUEST, &p, 5000));
	port2 = check_request(&p, 7000);
	ck_assert_uint_ne(port2, port);
	send_raw(&t, 7000, port2, VSOCK_OP_RESPONSE, 0, NULL, 0);
	ck_assert_int_ge(cthr_finish(&th, &t, 5000), 0);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 2);
	close(th.ret);
	close(fd);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

START_TEST(test_host_connect_refused)
{
	struct vt t;
	struct cthr th;
	struct pkt p;
	uint32_t port;

	vt_init(&t);
	cthr_start(&th, &t, 7001, 10000);
	ck_assert(wait_for_op(&t, VSOCK_OP_REQUEST, &p, 5000));
	port = check_request(&p, 7001);
	send_raw(&t, 7001, port, VSOCK_OP_RST, 0, NULL, 0);
	ck_assert_int_eq(cthr_finish(&th, &t, 5000), -ECONNREFUSED);
	expect_quiet(&t);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	vt_fini(&t);
}
END_TEST

START_TEST(test_host_connect_timeout)
{
	struct vt t;
	struct cthr th;
	struct pkt p;
	uint32_t port;

	vt_init(&t);
	cthr_start(&th, &t, 7002, VSOCK_CONNECT_TIMEOUT_MS);
	ck_assert(wait_for_op(&t, VSOCK_OP_REQUEST, &p, 1000));
	port = check_request(&p, 7002);
	ck_assert_int_eq(cthr_finish(&th, &t, VSOCK_CONNECT_TIMEOUT_MS + 4000), -ETIMEDOUT);
	ck_assert_uint_ge(th.end_ms - th.start_ms, VSOCK_CONNECT_TIMEOUT_MS - 100);
	ck_assert_uint_lt(th.end_ms - th.start_ms, VSOCK_CONNECT_TIMEOUT_MS + 3000);
	vpoll(&t, 10);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	/* The device reset the guest's half-open connection... */
	ck_assert(wait_for_op(&t, VSOCK_OP_RST, &p, 500));
	ck_assert_uint_eq(p.h.src_port, port);
	ck_assert_uint_eq(p.h.dst_port, 7002);
	/* ... and a late answer is refused. */
	drain_fifo(&t);
	send_raw(&t, 7002, port, VSOCK_OP_RESPONSE, 0, NULL, 0);
	expect_pkt(&t, VSOCK_OP_RST, port, 7002);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	vt_fini(&t);
}
END_TEST

/* A connect made before the driver is up (the guest still boots) waits for it. */
START_TEST(test_host_connect_before_driver)
{
	struct vt t;
	struct cthr th;
	struct pkt p;
	uint32_t port;

	vt_init(&t);
	wr(&t, VIRTIO_MMIO_STATUS, 0);
	cthr_start(&th, &t, 7003, 10000);
	vpoll(&t, 200);
	ck_assert(!atomic_load(&th.done));
	/* The probe resets the device again, then brings it up. */
	bring_up(&t, QSIZE);
	ck_assert(wait_for_op(&t, VSOCK_OP_REQUEST, &p, 5000));
	port = check_request(&p, 7003);
	send_raw(&t, 7003, port, VSOCK_OP_RESPONSE, 0, NULL, 0);
	ck_assert_int_ge(cthr_finish(&th, &t, 5000), 0);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 1);
	close(th.ret);
	vt_fini(&t);
}
END_TEST

/* ---- Unix socket (Firecracker hybrid vsock) ---- */

static void uds_path(const struct vt *t, char *out, size_t n, const char *suffix)
{
	snprintf(out, n, "%s/v.sock%s", t->dir, suffix);
}

/* A client's CONNECT reaches the guest as a REQUEST: returns the device's port. */
static uint32_t uds_request(struct vt *t, int cfd, const char *line, uint32_t gport)
{
	struct pkt p;

	host_write(cfd, line, strlen(line));
	ck_assert_msg(wait_for_op(t, VSOCK_OP_REQUEST, &p, 2000), "no REQUEST for '%s'", line);
	return check_request(&p, gport);
}

START_TEST(test_uds_connect)
{
	struct vt t;
	struct gconn c;
	struct pkt p;
	char path[128], line[64], want[64], got[8];
	uint32_t port;
	int cfd;

	vt_init(&t);
	mk_dir(&t);
	uds_path(&t, path, sizeof(path), "");
	ck_assert_int_eq(virtio_vsock_set_uds(t.v, path), 0);
	cfd = unix_connect(path);
	port = uds_request(&t, cfd, "CONNECT 5000\n", 5000);
	ck_assert(!fd_readable(cfd)); /* no OK before the guest accepted */
	gc_init(&t, &c, 5000, port, 65536);
	gc_send(&t, &c, VSOCK_OP_RESPONSE, 0, NULL, 0);
	ck_assert_int_gt(read_line(&t, cfd, line, sizeof(line)), 0);
	snprintf(want, sizeof(want), "OK %u\n", port);
	ck_assert_str_eq(line, want);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 1);
	/* Data both ways. */
	host_write(cfd, "ping", 4);
	vpoll(&t, 100);
	p = expect_pkt(&t, VSOCK_OP_RW, port, 5000);
	ck_assert_uint_eq(p.h.len, 4);
	ck_assert_mem_eq(p.data, "ping", 4);
	gc_send(&t, &c, VSOCK_OP_RW, 0, "pong", 4);
	read_exact(&t, cfd, got, 4);
	ck_assert_mem_eq(got, "pong", 4);
	/* Client goes away: the guest hears SHUTDOWN(RCV|SEND). */
	close(cfd);
	vpoll(&t, 10);
	p = expect_pkt(&t, VSOCK_OP_SHUTDOWN, port, 5000);
	ck_assert_uint_eq(p.h.flags, SHUT_BOTH);
	gc_send(&t, &c, VSOCK_OP_RST, 0, NULL, 0);
	pump(&t);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

START_TEST(test_uds_lowercase_and_refused)
{
	struct vt t;
	char path[128], line[64];
	uint32_t port;
	int cfd;

	vt_init(&t);
	mk_dir(&t);
	uds_path(&t, path, sizeof(path), "");
	ck_assert_int_eq(virtio_vsock_set_uds(t.v, path), 0);
	ck_assert_int_lt(virtio_vsock_set_uds(t.v, path), 0); /* exists / already set */
	cfd = unix_connect(path);
	port = uds_request(&t, cfd, "connect 5\n", 5);
	/* The guest refuses: the client is closed without an OK. */
	send_raw(&t, 5, port, VSOCK_OP_RST, 0, NULL, 0);
	ck_assert_int_eq(read_line(&t, cfd, line, sizeof(line)), -1);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	close(cfd);
	vt_fini(&t);
}
END_TEST

START_TEST(test_uds_pipelined_data)
{
	struct vt t;
	struct gconn c;
	char path[128], line[64];
	uint32_t port;
	int cfd;

	/* Bytes right behind the CONNECT line belong to the connection. */
	vt_init(&t);
	mk_dir(&t);
	uds_path(&t, path, sizeof(path), "");
	ck_assert_int_eq(virtio_vsock_set_uds(t.v, path), 0);
	cfd = unix_connect(path);
	port = uds_request(&t, cfd, "CONNECT 5001\nearly bytes", 5001);
	gc_init(&t, &c, 5001, port, 65536);
	gc_send(&t, &c, VSOCK_OP_RESPONSE, 0, NULL, 0);
	ck_assert_int_gt(read_line(&t, cfd, line, sizeof(line)), 0);
	ck_assert_uint_eq(strncmp(line, "OK ", 3), 0);
	vpoll(&t, 50);
	ck_assert_uint_eq(c.rxlen, 11);
	ck_assert_mem_eq(c.rxdata, "early bytes", 11);
	close(cfd);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

START_TEST(test_uds_bad_handshake)
{
	static const char *const bad[] = {
		"HELLO 5000\n",
		"CONNECT abc\n",
		"CONNECT\n",
		"CONNECT 99999999999\n",
		"CONNECT 5000 AAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAAA", /* > 32 bytes, no newline */
	};
	struct vt t;
	char path[128];

	vt_init(&t);
	mk_dir(&t);
	uds_path(&t, path, sizeof(path), "");
	ck_assert_int_eq(virtio_vsock_set_uds(t.v, path), 0);
	for (unsigned int i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		int cfd = unix_connect(path);

		host_write(cfd, bad[i], strlen(bad[i]));
		ck_assert_uint_eq(host_eof(&t, cfd), 0);
		close(cfd);
		ck_assert_msg(count_pkts(&t, VSOCK_OP_REQUEST) == 0, "REQUEST for '%s'", bad[i]);
	}
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	/* And a good one still works. */
	{
		int cfd = unix_connect(path);
		uint32_t port = uds_request(&t, cfd, "Connect 77\n", 77);
		char line[64], want[64];

		send_raw(&t, 77, port, VSOCK_OP_RESPONSE, 0, NULL, 0);
		ck_assert_int_gt(read_line(&t, cfd, line, sizeof(line)), 0);
		snprintf(want, sizeof(want), "OK %u\n", port);
		ck_assert_str_eq(line, want);
		close(cfd);
	}
	vt_fini(&t);
}
END_TEST

/* A client that sends its line in pieces is waited for, without busy polling. */
START_TEST(test_uds_partial_handshake)
{
	struct vt t;
	char path[128], line[64], want[64];
	unsigned int readable = 0;
	uint64_t start;
	uint32_t port;
	int cfd;

	vt_init(&t);
	mk_dir(&t);
	uds_path(&t, path, sizeof(path), "");
	ck_assert_int_eq(virtio_vsock_set_uds(t.v, path), 0);
	cfd = unix_connect(path);
	host_write(cfd, "CONN", 4);
	vpoll(&t, 10);
	/*
	 * Nothing to do until more bytes come: the fd is not readable on every
	 * look (the device's deadline timer may tick in between, that is all).
	 */
	start = now_ms();
	for (int i = 0; i < 20; i++) {
		struct pollfd p = { .fd = virtio_vsock_fd(t.v), .events = POLLIN };

		readable += poll(&p, 1, 1) == 1;
		virtio_vsock_poll(t.v);
	}
	ck_assert_uint_le(readable, 2 + (now_ms() - start) / 200);
	ck_assert_uint_eq(count_pkts(&t, VSOCK_OP_REQUEST), 0);
	port = uds_request(&t, cfd, "ECT 8\n", 8);
	send_raw(&t, 8, port, VSOCK_OP_RESPONSE, 0, NULL, 0);
	ck_assert_int_gt(read_line(&t, cfd, line, sizeof(line)), 0);
	snprintf(want, sizeof(want), "OK %u\n", port);
	ck_assert_str_eq(line, want);
	close(cfd);
	vt_fini(&t);
}
END_TEST

START_TEST(test_uds_guest_to_host)
{
	struct vt t;
	struct gconn c;
	struct pkt p;
	char path[128], lpath[140], got[16];
	int lfd, sfd;

	vt_init(&t);
	mk_dir(&t);
	uds_path(&t, path, sizeof(path), "");
	uds_path(&t, lpath, sizeof(lpath), "_6000");
	ck_assert_int_eq(virtio_vsock_set_uds(t.v, path), 0);
	lfd = unix_listen(lpath);
	gc_init(&t, &c, 5100, 6000, 65536);
	gc_send(&t, &c, VSOCK_OP_REQUEST, 0, NULL, 0);
	vpoll(&t, 10);
	p = expect_pkt(&t, VSOCK_OP_RESPONSE, 6000, 5100);
	check_response(&p, 5100, 6000);
	sfd = accept(lfd, NULL, NULL);
	ck_assert_int_ge(sfd, 0);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 1);
	gc_send(&t, &c, VSOCK_OP_RW, 0, "to-uds", 6);
	read_exact(&t, sfd, got, 6);
	ck_assert_mem_eq(got, "to-uds", 6);
	host_write(sfd, "from-uds", 8);
	vpoll(&t, 100);
	ck_assert_uint_eq(c.rxlen, 8);
	ck_assert_mem_eq(c.rxdata, "from-uds", 8);
	/* Nobody at <path>_6001: refused. */
	drain_fifo(&t);
	send_raw(&t, 5101, 6001, VSOCK_OP_REQUEST, 0, NULL, 0);
	vpoll(&t, 10);
	expect_pkt(&t, VSOCK_OP_RST, 6001, 5101);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 1);
	close(sfd);
	close(lfd);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

/* ---- hostile guest ---- */

static void expect_needs_reset(struct vt *t, int fd)
{
	ck_assert_uint_ne(rd(t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
	ck_assert_uint_ne(rd(t, VIRTIO_MMIO_INTERRUPT_STATUS) & VIRTIO_MMIO_INT_CONFIG, 0);
	host_eof(t, fd);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t->v), 0);
}

/* After a reset the device serves the same listener again. */
static void expect_recovers(struct vt *t, uint32_t gport)
{
	struct gconn c;
	char got[2];
	int fd;

	bring_up(t, QSIZE);
	ck_assert_uint_eq(rd(t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
	fd = establish(t, &c, gport, 2000, 65536);
	gc_send(t, &c, VSOCK_OP_RW, 0, "ok", 2);
	read_exact(t, fd, got, 2);
	ck_assert_mem_eq(got, "ok", 2);
	host_write(fd, "ko", 2);
	vpoll(t, 100);
	ck_assert_uint_eq(c.rxlen, 2);
	ck_assert_mem_eq(c.rxdata, "ko", 2);
	close(fd);
	gc_free(&c);
}

/* Loop index: which malformed tx chain. */
START_TEST(test_bad_tx_chain)
{
	struct vt t;
	struct gconn c;
	struct vsock_hdr h;
	struct seg segs[3];
	unsigned int n = 0;
	uint16_t before;
	int fd;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 2000), 0);
	fd = establish(&t, &c, 5200, 2000, 65536);
	drain_fifo(&t);
	h = mk_hdr(5200, 2000, VSOCK_OP_RW, 0, 0);
	memset(t.ram + SCRATCH, 'q', 0x20000);
	switch (_i) {
	case 0: /* shorter than the header */
		vd_hdr_put(t.ram + SCRATCH, &h);
		segs[n++] = (struct seg){ SCRATCH, 20, false };
		break;
	case 1: /* header split short: 20 + 20 bytes */
		vd_hdr_put(t.ram + SCRATCH, &h);
		segs[n++] = (struct seg){ SCRATCH, 20, false };
		segs[n++] = (struct seg){ SCRATCH + 20, 20, false };
		break;
	case 2: /* hdr.len larger than the payload present */
		h.len = 100;
		vd_hdr_put(t.ram + SCRATCH, &h);
		segs[n++] = (struct seg){ SCRATCH, VSOCK_HDR_SIZE, false };
		segs[n++] = (struct seg){ SCRATCH + 0x100, 50, false };
		break;
	case 3: /* hdr.len > 64 KiB, all of it present */
		h.len = VSOCK_MAX_PKT + 1;
		vd_hdr_put(t.ram + SCRATCH, &h);
		segs[n++] = (struct seg){ SCRATCH, VSOCK_HDR_SIZE, false };
		segs[n++] = (struct seg){ SCRATCH + 0x100, VSOCK_MAX_PKT + 1, false };
		break;
	case 4: /* a writable descriptor in a tx chain */
		h.op = VSOCK_OP_CREDIT_REQUEST;
		vd_hdr_put(t.ram + SCRATCH, &h);
		segs[n++] = (struct seg){ SCRATCH, VSOCK_HDR_SIZE, false };
		segs[n++] = (struct seg){ SCRATCH + 0x100, 4096, true };
		break;
	case 5: /* only writable descriptors */
		h.op = VSOCK_OP_CREDIT_REQUEST;
		vd_hdr_put(t.ram + SCRATCH, &h);
		segs[n++] = (struct seg){ SCRATCH, VSOCK_HDR_SIZE, true };
		break;
	case 6: /* a descriptor outside guest RAM */
		h.len = 100;
		vd_hdr_put(t.ram + SCRATCH, &h);
		segs[n++] = (struct seg){ SCRATCH, VSOCK_HDR_SIZE, false };
		segs[n++] = (struct seg){ RAM_SIZE - 50, 100, false };
		break;
	}
	before = used_idx(&t, RX_USED);
	post_chain(&t, TX_DESC, TX_AVAIL, &t.tx_avail, segs, n);
	tx_kick(&t);
	expect_needs_reset(&t, fd);
	/* Stopped: nothing more is delivered, the host got none of it. */
	ck_assert_uint_eq(used_idx(&t, RX_USED), before);
	close(fd);
	gc_free(&c);
	expect_recovers(&t, 5201);
	vt_fini(&t);
}
END_TEST

/* Loop index: which malformed rx chain. */
START_TEST(test_bad_rx_chain)
{
	struct vt t;
	struct gconn c;
	struct seg segs[2];
	unsigned int n = 0;
	int fd;

	/* One rx buffer, for the RESPONSE; then only the bad chain. */
	vt_init_ex(&t, LAYOUT_LINUX, false, 1);
	t.rx_repost = false;
	ck_assert_int_eq(virtio_vsock_listen(t.v, 2000), 0);
	fd = establish(&t, &c, 5300, 2000, 65536);
	switch (_i) {
	case 0: /* a readable descriptor */
		segs[n++] = (struct seg){ SCRATCH, VSOCK_HDR_SIZE, false };
		segs[n++] = (struct seg){ SCRATCH + 0x100, 4096, true };
		break;
	case 1: /* 44 writable bytes */
		segs[n++] = (struct seg){ SCRATCH, VSOCK_HDR_SIZE, true };
		break;
	case 2: /* 20 + 24 writable bytes */
		segs[n++] = (struct seg){ SCRATCH, 20, true };
		segs[n++] = (struct seg){ SCRATCH + 0x100, 24, true };
		break;
	}
	memset(t.ram + SCRATCH, 0x5a, 0x2000);
	post_chain(&t, RX_DESC, RX_AVAIL, &t.rx_avail, segs, n);
	rx_kick(&t);
	/*
	 * Give the device something to deliver (it may already have found the
	 * chain at the kick, and reset the connection: then the write fails).
	 */
	(void)!send(fd, "x", 1, MSG_NOSIGNAL | MSG_DONTWAIT);
	vpoll(&t, 100);
	expect_needs_reset(&t, fd);
	ck_assert_uint_eq(t.ram[SCRATCH], 0x5a);
	ck_assert_uint_eq(t.ram[SCRATCH + 0x100], 0x5a);
	close(fd);
	gc_free(&c);
	t.rx_repost = true;
	expect_recovers(&t, 5301);
	vt_fini(&t);
}
END_TEST

/* Legal but unusual layouts are served. */
START_TEST(test_odd_but_valid_chains)
{
	struct vt t;
	struct gconn c;
	struct vsock_hdr h;
	struct seg segs[3];
	struct pkt p;
	char got[8];
	int fd;

	vt_init_ex(&t, LAYOUT_SINGLE, false, QSIZE);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 2000), 0);
	fd = establish(&t, &c, 5400, 2000, 65536);
	drain_fifo(&t);
	/* Header split over two descriptors, payload after it in a third. */
	h = mk_hdr(5400, 2000, VSOCK_OP_RW, 0, 3);
	h.buf_alloc = 65536;
	vd_hdr_put(t.ram + SCRATCH, &h);
	memcpy(t.ram + SCRATCH + 0x100, "abc", 3);
	segs[0] = (struct seg){ SCRATCH, 20, false };
	segs[1] = (struct seg){ SCRATCH + 20, 24, false };
	segs[2] = (struct seg){ SCRATCH + 0x100, 3, false };
	post_chain(&t, TX_DESC, TX_AVAIL, &t.tx_avail, segs, 3);
	tx_kick(&t);
	c.tx_cnt += 3;
	read_exact(&t, fd, got, 3);
	ck_assert_mem_eq(got, "abc", 3);
	/* More payload present than hdr.len: only hdr.len bytes count. */
	h.len = 2;
	vd_hdr_put(t.ram + SCRATCH, &h);
	memcpy(t.ram + SCRATCH + 0x100, "defgh", 5);
	segs[0] = (struct seg){ SCRATCH, VSOCK_HDR_SIZE, false };
	segs[1] = (struct seg){ SCRATCH + 0x100, 5, false };
	post_chain(&t, TX_DESC, TX_AVAIL, &t.tx_avail, segs, 2);
	tx_kick(&t);
	c.tx_cnt += 2;
	read_exact(&t, fd, got, 2);
	ck_assert_mem_eq(got, "de", 2);
	pump(&t);
	ck_assert(!fd_readable(fd));
	/* Exactly VSOCK_MAX_PKT in one packet, once the guest knows it has the credit. */
	gc_send(&t, &c, VSOCK_OP_CREDIT_REQUEST, 0, NULL, 0);
	pump(&t);
	ck_assert_uint_eq(gc_credit(&c), VSOCK_MAX_PKT);
	gc_send_pattern(&t, &c, 9, 0, VSOCK_MAX_PKT, VSOCK_MAX_PKT);
	{
		static uint8_t big[VSOCK_MAX_PKT], want[VSOCK_MAX_PKT];

		read_exact(&t, fd, big, sizeof(big));
		pattern(9, 0, want, sizeof(want));
		ck_assert_mem_eq(big, want, sizeof(want));
	}
	ck_assert_uint_eq(rd(&t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
	/* Minimal rx buffers (45 bytes): one byte per packet. */
	t.rx_data_len = 1;
	wr(&t, VIRTIO_MMIO_STATUS, 0);
	host_eof(&t, fd);
	close(fd);
	gc_free(&c);
	bring_up(&t, QSIZE);
	fd = establish(&t, &c, 5401, 2000, 65536);
	host_write(fd, "xyz", 3);
	vpoll(&t, 100);
	for (int i = 0; i < 3; i++) {
		p = expect_pkt(&t, VSOCK_OP_RW, 2000, 5401);
		ck_assert_uint_eq(p.h.len, 1);
		ck_assert_uint_eq(p.data[0], (uint8_t)"xyz"[i]);
	}
	ck_assert_uint_eq(rd(&t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
	close(fd);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

START_TEST(test_device_reset_resets_connections)
{
	struct vt t;
	struct gconn c;
	int fd;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 2000), 0);
	fd = establish(&t, &c, 5500, 2000, 65536);
	wr(&t, VIRTIO_MMIO_STATUS, 0);
	host_eof(&t, fd);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	close(fd);
	gc_free(&c);
	expect_recovers(&t, 5500);
	vt_fini(&t);
}
END_TEST

START_TEST(test_wrong_cids_dropped)
{
	struct vt t;
	struct gconn c;
	struct vsock_hdr h;
	char got[8];
	int fd;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 2000), 0);
	fd = establish(&t, &c, 5600, 2000, 65536);
	drain_fifo(&t);
	/* Data from / to the wrong cid on an open connection's ports. */
	h = mk_hdr(5600, 2000, VSOCK_OP_RW, 0, 4);
	h.src_cid = GUEST_CID + 1;
	send_pkt(&t, &h, "evil", 4);
	h = mk_hdr(5600, 2000, VSOCK_OP_RW, 0, 4);
	h.dst_cid = 3;
	send_pkt(&t, &h, "evil", 4);
	h = mk_hdr(5600, 2000, VSOCK_OP_RW, 0, 4);
	h.src_cid = GUEST_CID | (1ULL << 32);
	send_pkt(&t, &h, "evil", 4);
	/* Requests from / to the wrong cid. */
	h = mk_hdr(5601, 2000, VSOCK_OP_REQUEST, 0, 0);
	h.src_cid = VSOCK_HOST_CID;
	send_pkt(&t, &h, NULL, 0);
	h = mk_hdr(5602, 2000, VSOCK_OP_REQUEST, 0, 0);
	h.dst_cid = GUEST_CID;
	send_pkt(&t, &h, NULL, 0);
	/* Unknown ports too: dropped, not answered. */
	h = mk_hdr(5603, 9999, VSOCK_OP_RW, 0, 4);
	h.src_cid = 1000;
	send_pkt(&t, &h, "evil", 4);
	expect_quiet(&t);
	ck_assert_int_eq(virtio_vsock_accept(t.v, 2000, 0), -ETIMEDOUT);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 1);
	ck_assert(!fd_readable(fd));
	ck_assert_uint_eq(rd(&t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
	gc_send(&t, &c, VSOCK_OP_RW, 0, "good", 4);
	read_exact(&t, fd, got, 4);
	ck_assert_mem_eq(got, "good", 4);
	ck_assert(!fd_readable(fd));
	close(fd);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

START_TEST(test_unknown_packets_get_rst)
{
	static const struct {
		uint16_t op, type;
		uint32_t hport;
	} cases[] = {
		{ VSOCK_OP_REQUEST, 2, 3000 },    /* SEQPACKET to a listened port */
		{ VSOCK_OP_REQUEST, 3, 3000 },
		{ VSOCK_OP_INVALID, VSOCK_TYPE_STREAM, 3000 },
		{ 99, VSOCK_TYPE_STREAM, 3000 },
		{ 0xffff, VSOCK_TYPE_STREAM, 3001 },
		{ VSOCK_OP_RW, VSOCK_TYPE_STREAM, 3000 },  /* no such connection */
		{ VSOCK_OP_SHUTDOWN, VSOCK_TYPE_STREAM, 3000 },
		{ VSOCK_OP_CREDIT_UPDATE, VSOCK_TYPE_STREAM, 3000 },
		{ VSOCK_OP_CREDIT_REQUEST, VSOCK_TYPE_STREAM, 3000 },
		{ VSOCK_OP_RESPONSE, VSOCK_TYPE_STREAM, 3000 },
		{ VSOCK_OP_RW, VSOCK_TYPE_STREAM, 4242 },
	};
	struct vt t;
	struct pkt p;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 3000), 0);
	for (unsigned int i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct vsock_hdr h = mk_hdr(5700 + i, cases[i].hport, cases[i].op, 0,
					    cases[i].op == VSOCK_OP_RW ? 5 : 0);

		h.type = cases[i].type;
		send_pkt(&t, &h, "hello", h.len);
		ck_assert_msg(next_pkt(&t, &p), "case %u: no answer", i);
		ck_assert_msg(p.h.op == VSOCK_OP_RST && p.h.src_port == cases[i].hport &&
				      p.h.dst_port == 5700 + i,
			      "case %u: op %u %u -> %u", i, p.h.op, p.h.src_port, p.h.dst_port);
		expect_quiet(&t);
	}
	/* RST for nothing: silence. */
	send_raw(&t, 5799, 3000, VSOCK_OP_RST, 0, NULL, 0);
	expect_quiet(&t);
	ck_assert_int_eq(virtio_vsock_accept(t.v, 3000, 0), -ETIMEDOUT);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	ck_assert_uint_eq(rd(&t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
	vt_fini(&t);
}
END_TEST

START_TEST(test_unknown_op_on_connection)
{
	struct vt t;
	struct gconn c;
	int fd;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 3000), 0);
	fd = establish(&t, &c, 5800, 3000, 65536);
	drain_fifo(&t);
	gc_send(&t, &c, 42, 0, NULL, 0);
	expect_pkt(&t, VSOCK_OP_RST, 3000, 5800);
	expect_quiet(&t);
	host_eof(&t, fd);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	close(fd);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

static size_t max_conn_buf(struct virtio_vsock *v)
{
	size_t m = 0;

	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++)
		if (v->conns[i].state != VSOCK_CONN_FREE && v->conns[i].buf_len > m)
			m = v->conns[i].buf_len;
	return m;
}

START_TEST(test_lying_credit_resets)
{
	struct vt t;
	struct gconn c;
	static uint8_t got[8u << 20], want[8u << 20];
	uint32_t sent = 0;
	size_t n = 0;
	int fd;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 3100), 0);
	fd = establish(&t, &c, 5900, 3100, 65536);
	/* The host does not read; the guest ignores its credit. */
	for (int i = 0; i < 128 && !c.nr_rst; i++) {
		gc_send_pattern(&t, &c, 10, sent, VSOCK_MAX_PKT, VSOCK_MAX_PKT);
		sent += VSOCK_MAX_PKT;
		ck_assert_uint_le(max_conn_buf(t.v), VSOCK_CONN_BUF);
		pump(&t);
	}
	ck_assert_msg(c.nr_rst == 1, "no RST after %u bytes over credit", sent);
	ck_assert_uint_eq(t.v->nr_credit_violations, 1);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	/* What reached the host is an exact prefix, then EOF. */
	for (;;) {
		struct pollfd p = { .fd = fd, .events = POLLIN };
		ssize_t r;

		ck_assert_int_eq(poll(&p, 1, 2000), 1);
		r = recv(fd, got + n, sizeof(got) - n, MSG_DONTWAIT);
		if (r == 0 || (r < 0 && errno == ECONNRESET))
			break;
		ck_assert_int_gt(r, 0);
		n += (size_t)r;
	}
	ck_assert_uint_lt(n, sent);
	pattern(10, 0, want, n);
	ck_assert_mem_eq(got, want, n);
	close(fd);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

/* A guest that keeps to its credit is never reset, however slow the host. */
START_TEST(test_honest_guest_slow_host)
{
	struct vt t;
	struct gconn c;
	static uint8_t got[4u << 20], want[4u << 20];
	uint32_t sent = 0;
	int fd, stalls = 0;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 3100), 0);
	fd = establish(&t, &c, 5901, 3100, 65536);
	while (stalls < 3 && sent < sizeof(got)) {
		uint32_t n = gc_credit(&c);

		if (!n) {
			gc_send(&t, &c, VSOCK_OP_CREDIT_REQUEST, 0, NULL, 0);
			pump(&t);
			stalls++;
			continue;
		}
		stalls = 0;
		if (n > 16384)
			n = 16384;
		gc_send_pattern(&t, &c, 11, sent, n, n);
		sent += n;
		ck_assert_uint_le(max_conn_buf(t.v), VSOCK_CONN_BUF);
		pump(&t);
	}
	ck_assert_uint_lt(sent, sizeof(got)); /* the host's socket did fill up */
	ck_assert_uint_eq(c.nr_rst, 0);
	ck_assert_uint_eq(t.v->nr_credit_violations, 0);
	/* The host reads it all; the device flushes what it held. */
	read_exact(&t, fd, got, sent);
	pattern(11, 0, want, sent);
	ck_assert_mem_eq(got, want, sent);
	pump(&t);
	ck_assert(gc_credit(&c) > 0);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 1);
	close(fd);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

/* Bytes the device had to hold back stay ahead of bytes the guest sends later. */
START_TEST(test_order_kept_behind_held_bytes)
{
	struct vt t;
	struct gconn c;
	static uint8_t got[2u << 20], want[2u << 20];
	uint32_t sent = 0;
	size_t n = 0;
	int fd;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 3100), 0);
	fd = establish(&t, &c, 5902, 3100, 65536);
	/* Fill the host socket until the device holds some bytes itself. */
	while (!max_conn_buf(t.v)) {
		ck_assert_uint_lt(sent, sizeof(got) / 2);
		ck_assert_uint_ge(gc_credit(&c), 16384);
		gc_send_pattern(&t, &c, 12, sent, 16384, 16384);
		sent += 16384;
		gc_send(&t, &c, VSOCK_OP_CREDIT_REQUEST, 0, NULL, 0);
		pump(&t);
	}
	/* The host makes room, and before the device hears of it the guest sends more. */
	while (n < 65536) {
		ssize_t r = recv(fd, got + n, 65536 - n, MSG_DONTWAIT);

		ck_assert_int_gt(r, 0);
		n += (size_t)r;
	}
	ck_assert_uint_ge(gc_credit(&c), 1000);
	gc_send_pattern(&t, &c, 12, sent, 1000, 1000);
	sent += 1000;
	/* The guest's EOF waits behind the held bytes too. */
	gc_send(&t, &c, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_SEND, NULL, 0);
	ck_assert_uint_gt(max_conn_buf(t.v), 0);
	read_exact(&t, fd, got + n, sent - n);
	pattern(12, 0, want, sent);
	ck_assert_mem_eq(got, want, sent);
	ck_assert_uint_eq(host_eof(&t, fd), 0);
	ck_assert_uint_eq(c.nr_rst, 0);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 1);
	close(fd);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

START_TEST(test_backlog_limit)
{
	struct vt t;
	unsigned int responses = 0, rsts = 0;
	struct pkt p;
	int fds[VSOCK_MAX_BACKLOG];

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 3200), 0);
	for (unsigned int i = 0; i < VSOCK_MAX_BACKLOG + 4; i++)
		send_raw(&t, 10000 + i, 3200, VSOCK_OP_REQUEST, 0, NULL, 0);
	while (next_pkt(&t, &p)) {
		ck_assert_uint_eq(p.h.src_port, 3200);
		if (p.h.op == VSOCK_OP_RESPONSE) {
			ck_assert_uint_lt(p.h.dst_port, 10000 + VSOCK_MAX_BACKLOG);
			responses++;
		} else if (p.h.op == VSOCK_OP_RST) {
			ck_assert_uint_ge(p.h.dst_port, 10000 + VSOCK_MAX_BACKLOG);
			rsts++;
		} else {
			ck_abort_msg("op %u", p.h.op);
		}
	}
	ck_assert_uint_eq(responses, VSOCK_MAX_BACKLOG);
	ck_assert_uint_eq(rsts, 4);
	for (unsigned int i = 0; i < VSOCK_MAX_BACKLOG; i++) {
		fds[i] = virtio_vsock_accept(t.v, 3200, 0);
		ck_assert_int_ge(fds[i], 0);
	}
	ck_assert_int_eq(virtio_vsock_accept(t.v, 3200, 0), -ETIMEDOUT);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), VSOCK_MAX_BACKLOG);
	/* The accepted fds belong to the right connections, in order. */
	for (unsigned int i = 0; i < VSOCK_MAX_BACKLOG; i++) {
		char got[4];

		send_raw(&t, 10000 + i, 3200, VSOCK_OP_RW, 0, &i, 4);
		read_exact(&t, fds[i], got, 4);
		ck_assert_mem_eq(got, &i, 4);
		close(fds[i]);
	}
	vt_fini(&t);
}
END_TEST

/* Connections the guest resets before accept() leave the backlog: they cannot fill it for good. */
START_TEST(test_backlog_drops_dead)
{
	struct vt t;
	struct pkt p;
	int fd;
	char got[4];

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 3300), 0);
	for (unsigned int round = 0; round < 3; round++) {
		for (unsigned int i = 0; i < VSOCK_MAX_BACKLOG; i++) {
			send_raw(&t, 11000 + i, 3300, VSOCK_OP_REQUEST, 0, NULL, 0);
			expect_pkt(&t, VSOCK_OP_RESPONSE, 3300, 11000 + i);
		}
		for (unsigned int i = 0; i < VSOCK_MAX_BACKLOG; i++)
			send_raw(&t, 11000 + i, 3300, VSOCK_OP_RST, 0, NULL, 0);
		expect_quiet(&t);
		ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	}
	ck_assert_int_eq(virtio_vsock_accept(t.v, 3300, 0), -ETIMEDOUT);
	/* A live one still gets in, and is the one accept() returns. */
	send_raw(&t, 12000, 3300, VSOCK_OP_REQUEST, 0, NULL, 0);
	expect_pkt(&t, VSOCK_OP_RESPONSE, 3300, 12000);
	fd = virtio_vsock_accept(t.v, 3300, 0);
	ck_assert_int_ge(fd, 0);
	send_raw(&t, 12000, 3300, VSOCK_OP_RW, 0, "live", 4);
	read_exact(&t, fd, got, 4);
	ck_assert_mem_eq(got, "live", 4);
	/* Once accepted, the fd is the caller's: a reset shows as EOF, it is not closed under them. */
	send_raw(&t, 12000, 3300, VSOCK_OP_RST, 0, NULL, 0);
	ck_assert_uint_eq(host_eof(&t, fd), 0);
	ck_assert_int_ge(fcntl(fd, F_GETFD), 0);
	close(fd);
	while (next_pkt(&t, &p))
		;
	vt_fini(&t);
}
END_TEST

START_TEST(test_connection_flood)
{
	struct vt t;
	static int fds[VSOCK_MAX_CONNS + 50];
	unsigned int responses = 0, rsts = 0, nfds = 0;
	struct pkt p;
	int fd;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 3300), 0);
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS + 50; i++) {
		send_raw(&t, 20000 + i, 3300, VSOCK_OP_REQUEST, 0, NULL, 0);
		while (next_pkt(&t, &p)) {
			ck_assert_uint_eq(p.h.dst_port, 20000 + i);
			if (p.h.op == VSOCK_OP_RESPONSE)
				responses++;
			else if (p.h.op == VSOCK_OP_RST)
				rsts++;
			else
				ck_abort_msg("op %u", p.h.op);
		}
		while ((fd = virtio_vsock_accept(t.v, 3300, 0)) >= 0)
			fds[nfds++] = fd;
		ck_assert_int_eq(fd, -ETIMEDOUT);
	}
	ck_assert_uint_eq(responses, VSOCK_MAX_CONNS);
	ck_assert_uint_eq(rsts, 50);
	ck_assert_uint_eq(nfds, VSOCK_MAX_CONNS);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), VSOCK_MAX_CONNS);
	/* The host is out of slots too. */
	ck_assert_int_eq(virtio_vsock_connect(t.v, 1, 100), -EAGAIN);
	/* Free one: a new connection fits again. */
	send_raw(&t, 20000, 3300, VSOCK_OP_RST, 0, NULL, 0);
	host_eof(&t, fds[0]);
	close(fds[0]);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), VSOCK_MAX_CONNS - 1);
	drain_fifo(&t);
	send_raw(&t, 30000, 3300, VSOCK_OP_REQUEST, 0, NULL, 0);
	expect_pkt(&t, VSOCK_OP_RESPONSE, 3300, 30000);
	fds[0] = virtio_vsock_accept(t.v, 3300, 0);
	ck_assert_int_ge(fds[0], 0);
	for (unsigned int i = 0; i < nfds; i++)
		close(fds[i]);
	vt_fini(&t);
}
END_TEST

START_TEST(test_rst_flood_bounded)
{
	struct vt t;
	struct gconn c;
	unsigned int rsts;
	char got[4];
	int fd;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 3400), 0);
	/* No rx buffers at all while the guest floods. */
	bring_up(&t, 0);
	for (unsigned int i = 0; i < 1000; i++) {
		struct vsock_hdr h = mk_hdr(40000 + i, 3400 + (i % 7), VSOCK_OP_RW, 0, 4);

		tx_post(&t, &h, "junk", 4);
		if (i % 64 == 63)
			tx_kick(&t);
	}
	tx_kick(&t);
	ck_assert_uint_eq(t.tx_used_seen, t.tx_avail); /* tx is never held up */
	ck_assert_uint_eq(rd(&t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
	ck_assert_uint_ge(t.v->nr_dropped, 1000 - VSOCK_MAX_PENDING_RST);
	rx_post_n(&t, QSIZE);
	rsts = count_pkts(&t, VSOCK_OP_RST);
	ck_assert_uint_eq(rsts, VSOCK_MAX_PENDING_RST);
	/* Still serving. */
	fd = establish(&t, &c, 50000, 3400, 65536);
	gc_send(&t, &c, VSOCK_OP_RW, 0, "live", 4);
	read_exact(&t, fd, got, 4);
	ck_assert_mem_eq(got, "live", 4);
	close(fd);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

/* ---- many connections, lots of data ---- */

#define NCONN 50
#define XFER (1u << 20)

struct bulk {
	struct gconn c;
	int fd;
	uint32_t g_sent, h_sent, h_recv;
	uint64_t h_hash;
	bool g_shut, h_shut, h_eof;
};

START_TEST(test_bulk_concurrent)
{
	struct vt t;
	static struct bulk b[NCONN];
	static uint8_t buf[65536];
	unsigned int iters = 0, stalls = 0;
	bool done = false;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 4000), 0);
	for (unsigned int i = 0; i < NCONN; i++) {
		memset(&b[i], 0, sizeof(b[i]));
		b[i].fd = establish(&t, &b[i].c, 60000 + i, 4000, 256 * 1024);
		b[i].c.keep = false;
		b[i].h_hash = FNV_INIT;
		set_nonblock(b[i].fd);
	}
	t.fifo_off = true;
	drain_fifo(&t);

	while (!done) {
		uint64_t progress = 0;

		ck_assert_uint_lt(++iters, 200000);
		/* Guest transmits within its credit, batching many packets per kick. */
		for (unsigned int i = 0; i < NCONN; i++) {
			struct bulk *x = &b[i];
			uint32_t n = gc_credit(&x->c);

			if (n > XFER - x->g_sent)
				n = XFER - x->g_sent;
			if (n > 32768)
				n = 32768;
			if (n) {
				pattern(100 + i, x->g_sent, buf, n);
				gc_post(&t, &x->c, VSOCK_OP_RW, 0, buf, n);
				x->g_sent += n;
				progress += n;
			} else if (x->g_sent == XFER && !x->g_shut) {
				gc_post(&t, &x->c, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_SEND, NULL, 0);
				x->g_shut = true;
				progress++;
			}
			/* Tell the device what the guest consumed. */
			if (x->c.fwd_cnt - x->c.adv_fwd_cnt >= x->c.buf_alloc / 4) {
				gc_post(&t, &x->c, VSOCK_OP_CREDIT_UPDATE, 0, NULL, 0);
				progress++;
			}
		}
		tx_kick(&t);
		/* Host reads and writes its non-blocking fds. */
		for (unsigned int i = 0; i < NCONN; i++) {
			struct bulk *x = &b[i];
			ssize_t r;

			while (x->h_sent < XFER) {
				size_t n = XFER - x->h_sent < sizeof(buf) ? XFER - x->h_sent : sizeof(buf);

				pattern(200 + i, x->h_sent, buf, n);
				r = send(x->fd, buf, n, MSG_DONTWAIT | MSG_NOSIGNAL);
				if (r < 0) {
					ck_assert_int_eq(errno, EAGAIN);
					break;
				}
				x->h_sent += (uint32_t)r;
				progress += (uint64_t)r;
			}
			if (x->h_sent == XFER && !x->h_shut) {
				ck_assert_int_eq(shutdown(x->fd, SHUT_WR), 0);
				x->h_shut = true;
			}
			while (!x->h_eof) {
				r = recv(x->fd, buf, sizeof(buf), MSG_DONTWAIT);
				if (r == 0) {
					x->h_eof = true;
					progress++;
					break;
				}
				if (r < 0) {
					ck_assert_int_eq(errno, EAGAIN);
					break;
				}
				x->h_hash = fnv(x->h_hash, buf, (size_t)r);
				x->h_recv += (uint32_t)r;
				progress += (uint64_t)r;
			}
		}
		/* Device: host events, rx delivery. */
		{
			uint64_t before = t.nr_collected;

			virtio_vsock_poll(t.v);
			rx_kick(&t);
			rx_collect(&t);
			progress += t.nr_collected - before;
		}
		done = true;
		for (unsigned int i = 0; i < NCONN; i++) {
			struct bulk *x = &b[i];

			ck_assert_uint_eq(x->c.nr_rst, 0);
			if (!x->h_eof || !(x->c.peer_shutdown & VSOCK_SHUTDOWN_SEND))
				done = false;
		}
		if (progress) {
			stalls = 0;
			continue;
		}
		/* Nothing moved: ask for credit where the guest has none. */
		ck_assert_msg(++stalls < 100, "transfer stalled");
		for (unsigned int i = 0; i < NCONN; i++)
			if (b[i].g_sent < XFER && !gc_credit(&b[i].c))
				gc_post(&t, &b[i].c, VSOCK_OP_CREDIT_REQUEST, 0, NULL, 0);
		tx_kick(&t);
	}
	for (unsigned int i = 0; i < NCONN; i++) {
		struct bulk *x = &b[i];

		ck_assert_uint_eq(x->h_recv, XFER);
		ck_assert_uint_eq(x->h_hash, pattern_hash(100 + i, XFER));
		ck_assert_uint_eq(x->c.rx_cnt, XFER);
		ck_assert_uint_eq(x->c.rx_cnt_at_shutdown, XFER);
		ck_assert_uint_eq(x->c.rx_hash, pattern_hash(200 + i, XFER));
	}
	ck_assert_uint_eq(t.v->nr_credit_violations, 0);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), NCONN);
	/* Tear down: host closes, guest resets. */
	t.fifo_off = false;
	for (unsigned int i = 0; i < NCONN; i++)
		close(b[i].fd);
	vpoll(&t, 10);
	for (unsigned int i = 0; i < NCONN; i++)
		gc_post(&t, &b[i].c, VSOCK_OP_RST, 0, NULL, 0);
	tx_kick(&t);
	pump(&t);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	vt_fini(&t);
}
END_TEST

/* ---- teardown paths ---- */

START_TEST(test_destroy_closes_everything)
{
	struct vt t;
	struct gconn c, u;
	char path[128], line[64];
	uint32_t port;
	int fd, cfd, hfd;
	struct cthr th;
	struct pkt p;

	vt_init(&t);
	mk_dir(&t);
	uds_path(&t, path, sizeof(path), "");
	ck_assert_int_eq(virtio_vsock_listen(t.v, 4100), 0);
	ck_assert_int_eq(virtio_vsock_set_uds(t.v, path), 0);
	fd = establish(&t, &c, 6100, 4100, 65536);
	/* One through the Unix socket. */
	cfd = unix_connect(path);
	port = uds_request(&t, cfd, "CONNECT 6101\n", 6101);
	gc_init(&t, &u, 6101, port, 65536);
	gc_send(&t, &u, VSOCK_OP_RESPONSE, 0, NULL, 0);
	ck_assert_int_gt(read_line(&t, cfd, line, sizeof(line)), 0);
	/* One host-initiated. */
	cthr_start(&th, &t, 6102, 10000);
	ck_assert(wait_for_op(&t, VSOCK_OP_REQUEST, &p, 5000));
	send_raw(&t, 6102, check_request(&p, 6102), VSOCK_OP_RESPONSE, 0, NULL, 0);
	hfd = cthr_finish(&th, &t, 5000);
	ck_assert_int_ge(hfd, 0);
	/* One accepted by the device but never taken by accept(). */
	send_raw(&t, 6103, 4100, VSOCK_OP_REQUEST, 0, NULL, 0);
	expect_pkt(&t, VSOCK_OP_RESPONSE, 4100, 6103);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 4);
	ck_assert_int_eq(access(path, F_OK), 0);

	vt_destroy(&t);
	host_eof(NULL, fd);
	host_eof(NULL, cfd);
	host_eof(NULL, hfd);
	ck_assert_int_eq(access(path, F_OK), -1);
	ck_assert_int_eq(errno, ENOENT);
	close(fd);
	close(cfd);
	close(hfd);
	gc_free(&c);
	gc_free(&u);
	vt_fini(&t);
}
END_TEST

START_TEST(test_close_all)
{
	struct vt t;
	struct gconn c;
	int fd, fd2;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 4300), 0);
	fd = establish(&t, &c, 6300, 4300, 65536);
	fd2 = establish(&t, &c, 6301, 4300, 65536);
	/* And one still in the backlog. */
	send_raw(&t, 6302, 4300, VSOCK_OP_REQUEST, 0, NULL, 0);
	expect_pkt(&t, VSOCK_OP_RESPONSE, 4300, 6302);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 3);
	virtio_vsock_close_all(t.v);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	ck_assert_int_eq(virtio_vsock_accept(t.v, 4300, 0), -ETIMEDOUT);
	host_eof(&t, fd);
	host_eof(&t, fd2);
	close(fd);
	close(fd2);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

START_TEST(test_transport_reset)
{
	struct vt t;
	struct gconn c;
	uint8_t *e;
	int fd;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 4200), 0);
	fd = establish(&t, &c, 6200, 4200, 65536);
	ck_assert_int_eq(virtio_vsock_transport_reset(t.v), 0);
	ck_assert_uint_eq(used_idx(&t, EV_USED), 1);
	e = t.ram + EV_USED + 4;
	ck_assert_uint_lt(tu_get32(e), NR_EV_BUFS);
	ck_assert_uint_eq(tu_get32(e + 4), 4);
	ck_assert_uint_eq(vd_get_le(t.ram + EV_BUF + 8 * tu_get32(e), 4), VSOCK_EVENT_TRANSPORT_RESET);
	host_eof(&t, fd);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	close(fd);
	/* The guest reconnects. */
	fd = establish(&t, &c, 6201, 4200, 65536);
	close(fd);
	/* Out of event buffers: -1. */
	for (unsigned int i = 1; i < NR_EV_BUFS; i++)
		ck_assert_int_eq(virtio_vsock_transport_reset(t.v), 0);
	ck_assert_int_eq(virtio_vsock_transport_reset(t.v), -1);
	ck_assert_uint_eq(used_idx(&t, EV_USED), NR_EV_BUFS);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

/* ---- after the interop review ---- */

/*
 * A guest with a small buffer (Linux sends at most min(our buf_alloc, its
 * own) unacknowledged bytes): the device must tell it about drained bytes
 * well before 8 KiB are in flight, unasked, or the upload stalls.
 */
START_TEST(test_credit_small_guest_buffer)
{
	struct vt t;
	struct gconn c;
	static uint8_t buf[65536];
	uint64_t h_hash = FNV_INIT;
	uint32_t sent = 0, h_recv = 0;
	unsigned int stalls = 0;
	int fd;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 1024), 0);
	fd = establish(&t, &c, 5020, 1024, 8192);
	t.fifo_off = true;
	drain_fifo(&t);
	while (h_recv < XFER) {
		uint32_t win = c.peer_buf_alloc < c.buf_alloc ? c.peer_buf_alloc : c.buf_alloc;
		uint32_t in_flight = c.tx_cnt - c.peer_fwd_cnt;
		uint32_t n = in_flight > win ? 0 : win - in_flight;
		bool progress = false;
		ssize_t r;

		ck_assert_uint_le(in_flight, 8192);
		if (n > XFER - sent)
			n = XFER - sent;
		if (n > 3000)
			n = 3000;
		if (n) {
			pattern(20, sent, buf, n);
			gc_send(&t, &c, VSOCK_OP_RW, 0, buf, n);
			sent += n;
			progress = true;
		}
		while ((r = recv(fd, buf, sizeof(buf), MSG_DONTWAIT)) > 0) {
			h_hash = fnv(h_hash, buf, (size_t)r);
			h_recv += (uint32_t)r;
			progress = true;
		}
		ck_assert_msg(r < 0 && errno == EAGAIN, "host fd: %zd", r);
		pump(&t);
		if (progress) {
			stalls = 0;
			continue;
		}
		ck_assert_msg(++stalls < 50,
			      "upload stalled at %u bytes: tx_cnt %u, device fwd_cnt %u, %u credit updates",
			      sent, c.tx_cnt, c.peer_fwd_cnt, c.nr_credit_update);
	}
	ck_assert_uint_eq(sent, XFER);
	ck_assert_uint_eq(h_hash, pattern_hash(20, XFER));
	ck_assert_uint_gt(c.nr_credit_update, 0);
	ck_assert_uint_eq(c.rx_cnt, 0); /* no host -> guest data carried the credit */
	ck_assert_uint_eq(c.nr_rst + c.nr_shutdown, 0);
	ck_assert_uint_eq(t.v->nr_credit_violations, 0);
	close(fd);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

/*
 * The host end is gone while the guest, which never reads, keeps sending:
 * the device drops the bytes but keeps the credit flowing, so an honest
 * guest is neither stalled nor reset.  The SHUTDOWN(RCV|SEND) comes once
 * the guest has read what the host wrote before it closed.
 */
START_TEST(test_host_gone_credit_flows)
{
	struct vt t;
	struct gconn c;
	static uint8_t hbuf[20000], buf[16384];
	uint32_t sent = 0;
	unsigned int stalls = 0;
	int fd;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 1024), 0);
	fd = establish(&t, &c, 5021, 1024, 4096);
	c.hold = true;
	/* More than the guest's buffer: the device cannot reach the host's EOF. */
	pattern(21, 0, hbuf, sizeof(hbuf));
	host_write(fd, hbuf, sizeof(hbuf));
	vpoll(&t, 50);
	ck_assert_uint_eq(c.rx_cnt, 4096);
	close(fd);
	vpoll(&t, 10);
	drain_fifo(&t);
	/* Four times the device's buffer, within credit, never asking for it. */
	while (sent < 4 * VSOCK_CONN_BUF) {
		uint32_t n = gc_credit(&c);

		if (n > 4 * VSOCK_CONN_BUF - sent)
			n = 4 * VSOCK_CONN_BUF - sent;
		if (n > sizeof(buf))
			n = sizeof(buf);
		if (!n) {
			ck_assert_msg(++stalls < 50,
				      "guest stalled after %u bytes to a closed host end: device fwd_cnt %u",
				      sent, c.peer_fwd_cnt);
			vpoll(&t, 1);
			continue;
		}
		stalls = 0;
		pattern(22, sent, buf, n);
		gc_send(&t, &c, VSOCK_OP_RW, 0, buf, n);
		sent += n;
		ck_assert_uint_le(max_conn_buf(t.v), VSOCK_CONN_BUF);
		pump(&t);
	}
	ck_assert_uint_eq(c.nr_rst, 0);
	ck_assert_uint_eq(t.v->nr_credit_violations, 0);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 1);
	/* The guest reads at last: the rest of the host's bytes, then SHUTDOWN(RCV|SEND). */
	c.hold = false;
	for (int i = 0; i < 100 && !c.nr_shutdown; i++) {
		c.fwd_cnt = c.rx_cnt;
		gc_send(&t, &c, VSOCK_OP_CREDIT_UPDATE, 0, NULL, 0);
		pump(&t);
	}
	ck_assert_uint_eq(c.nr_shutdown, 1);
	ck_assert_uint_eq(c.peer_shutdown, SHUT_BOTH);
	ck_assert_uint_eq(c.rxlen, sizeof(hbuf));
	ck_assert_mem_eq(c.rxdata, hbuf, sizeof(hbuf));
	ck_assert_uint_eq(c.nr_rst, 0);
	gc_send(&t, &c, VSOCK_OP_RST, 0, NULL, 0);
	pump(&t);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

#define NRESET 100

/* Resets of real connections while rx is full are all delivered, however many. */
START_TEST(test_conn_rsts_never_lost)
{
	struct vt t;
	static struct gconn c[NRESET];
	static int fds[NRESET];
	bool seen[NRESET] = { false };
	unsigned int rsts = 0, k = 0;
	struct pkt p;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 4400), 0);
	for (unsigned int i = 0; i < NRESET; i++)
		fds[i] = establish(&t, &c[i], 70000 + i, 4400, 65536);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), NRESET);
	drain_fifo(&t);
	/* The guest stops posting rx buffers; host bytes use up the ones it had. */
	t.rx_repost = false;
	for (unsigned int s = 0; s < t.rx_slots; s++) {
		bool any = false;

		for (unsigned int j = 0; j < t.rx_slots; j++)
			any |= t.rx_posted[j];
		if (!any)
			break;
		host_write(fds[k++ % NRESET], "x", 1);
		pump(&t);
	}
	for (unsigned int j = 0; j < t.rx_slots; j++)
		ck_assert(!t.rx_posted[j]);
	drain_fifo(&t);
	/* The guest gets every connection reset: SHUTDOWN(RCV|SEND), or an unknown op. */
	for (unsigned int i = 0; i < NRESET; i++) {
		if (i % 2)
			gc_post(&t, &c[i], 42, 0, NULL, 0);
		else
			gc_post(&t, &c[i], VSOCK_OP_SHUTDOWN, SHUT_BOTH, NULL, 0);
		if (i % 32 == 31)
			tx_kick(&t);
	}
	tx_kick(&t);
	ck_assert_uint_eq(t.tx_used_seen, t.tx_avail);
	ck_assert_uint_eq(rd(&t, VIRTIO_MMIO_STATUS) & VIRTIO_STATUS_DEVICE_NEEDS_RESET, 0);
	/* Owing a RST is not being open. */
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	for (unsigned int i = 0; i < NRESET; i++) {
		host_eof(&t, fds[i]);
		close(fds[i]);
	}
	/* Buffers again: one RST per connection, none lost. */
	t.rx_repost = true;
	rx_post_n(&t, QSIZE);
	rx_kick(&t);
	while (next_pkt(&t, &p)) {
		ck_assert_msg(p.h.op == VSOCK_OP_RST, "op %u %u -> %u", p.h.op, p.h.src_port,
			      p.h.dst_port);
		ck_assert_uint_eq(p.h.src_port, 4400);
		ck_assert_uint_ge(p.h.dst_port, 70000);
		ck_assert_uint_lt(p.h.dst_port, 70000 + NRESET);
		ck_assert_msg(!seen[p.h.dst_port - 70000], "two RSTs for port %u", p.h.dst_port);
		seen[p.h.dst_port - 70000] = true;
		rsts++;
	}
	ck_assert_uint_eq(rsts, NRESET);
	for (unsigned int i = 0; i < NRESET; i++)
		ck_assert_uint_eq(c[i].nr_rst, 1);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	/* The slots are free again. */
	{
		struct gconn g;
		char got[2];
		int fd = establish(&t, &g, 79999, 4400, 65536);

		gc_send(&t, &g, VSOCK_OP_RW, 0, "ok", 2);
		read_exact(&t, fd, got, 2);
		ck_assert_mem_eq(got, "ok", 2);
		ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 1);
		close(fd);
		gc_free(&g);
	}
	for (unsigned int i = 0; i < NRESET; i++)
		gc_free(&c[i]);
	vt_fini(&t);
}
END_TEST

static void ev_post(struct vt *t, uint16_t desc)
{
	vd_put_le(t->ram + EV_BUF + 8 * desc, 0xffffffffu, 4);
	put_desc(t, EV_DESC, desc, EV_BUF + 8 * desc, 4, VIRTQ_DESC_F_WRITE, 0);
	avail_push(t, EV_AVAIL, EV_QSIZE, &t->ev_avail, desc);
	virtio_mmio_notify(&t->v->mmio, VSOCK_QUEUE_EVENT);
}

/*
 * TRANSPORT_RESET without an event buffer: -1, and each connection is reset
 * with a RST (no guest socket waits forever).  With one: 0, the event, and
 * no RSTs (the guest drops its connections itself).
 */
START_TEST(test_transport_reset_without_event_buffer)
{
	struct vt t;
	struct gconn c[3];
	int fds[3];
	bool seen[3] = { false };
	unsigned int rsts = 0;
	uint16_t used;
	uint8_t *e;
	struct pkt p;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 4500), 0);
	/* Use up the event buffers while nothing is open. */
	for (unsigned int i = 0; i < NR_EV_BUFS; i++)
		ck_assert_int_eq(virtio_vsock_transport_reset(t.v), 0);
	ck_assert_uint_eq(used_idx(&t, EV_USED), NR_EV_BUFS);
	for (unsigned int i = 0; i < 3; i++)
		fds[i] = establish(&t, &c[i], 6500 + i, 4500, 65536);
	drain_fifo(&t);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 3);
	ck_assert_int_eq(virtio_vsock_transport_reset(t.v), -1);
	ck_assert_uint_eq(used_idx(&t, EV_USED), NR_EV_BUFS);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	while (next_pkt(&t, &p)) {
		ck_assert_msg(p.h.op == VSOCK_OP_RST, "op %u", p.h.op);
		ck_assert_uint_eq(p.h.src_port, 4500);
		ck_assert_uint_ge(p.h.dst_port, 6500);
		ck_assert_uint_lt(p.h.dst_port, 6503);
		ck_assert(!seen[p.h.dst_port - 6500]);
		seen[p.h.dst_port - 6500] = true;
		rsts++;
	}
	ck_assert_uint_eq(rsts, 3);
	for (unsigned int i = 0; i < 3; i++) {
		host_eof(&t, fds[i]);
		close(fds[i]);
	}

	/* An event buffer again: the event, no RSTs. */
	ev_post(&t, NR_EV_BUFS);
	ck_assert_uint_eq(used_idx(&t, EV_USED), NR_EV_BUFS);
	for (unsigned int i = 0; i < 2; i++)
		fds[i] = establish(&t, &c[i], 6510 + i, 4500, 65536);
	drain_fifo(&t);
	ck_assert_int_eq(virtio_vsock_transport_reset(t.v), 0);
	used = used_idx(&t, EV_USED);
	ck_assert_uint_eq(used, NR_EV_BUFS + 1);
	e = t.ram + EV_USED + 4 + 8 * ((used - 1) % EV_QSIZE);
	ck_assert_uint_eq(tu_get32(e), NR_EV_BUFS);
	ck_assert_uint_eq(tu_get32(e + 4), 4);
	ck_assert_uint_eq(vd_get_le(t.ram + EV_BUF + 8 * NR_EV_BUFS, 4), VSOCK_EVENT_TRANSPORT_RESET);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	for (unsigned int i = 0; i < 2; i++) {
		host_eof(&t, fds[i]);
		close(fds[i]);
	}
	expect_quiet(&t);
	for (unsigned int i = 0; i < 3; i++)
		gc_free(&c[i]);
	vt_fini(&t);
}
END_TEST

/* After the guest's SHUTDOWN(RCV) host bytes are not sent to it; its own still go. */
START_TEST(test_guest_shutdown_rcv)
{
	struct vt t;
	struct gconn c;
	char got[8];
	int fd;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 1024), 0);
	fd = establish(&t, &c, 5022, 1024, 65536);
	drain_fifo(&t);
	gc_send(&t, &c, VSOCK_OP_SHUTDOWN, VSOCK_SHUTDOWN_RCV, NULL, 0);
	pump(&t);
	host_write(fd, "unwanted", 8);
	vpoll(&t, 50);
	vpoll(&t, 10);
	ck_assert_uint_eq(count_pkts(&t, VSOCK_OP_RW), 0);
	ck_assert_uint_eq(c.rx_cnt, 0);
	ck_assert_uint_eq(c.nr_rst, 0);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 1);
	/* The other direction still works. */
	gc_send(&t, &c, VSOCK_OP_RW, 0, "still", 5);
	read_exact(&t, fd, got, 5);
	ck_assert_mem_eq(got, "still", 5);
	host_write(fd, "more", 4);
	vpoll(&t, 50);
	ck_assert_uint_eq(count_pkts(&t, VSOCK_OP_RW), 0);
	ck_assert_uint_eq(c.rx_cnt, 0);
	close(fd);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

/* A CREDIT_REQUEST while CLOSING (the device sent SHUTDOWN(RCV|SEND)) is answered. */
START_TEST(test_credit_request_closing)
{
	struct vt t;
	struct gconn c;
	struct pkt p;
	char got[4];
	int fd;

	vt_init(&t);
	ck_assert_int_eq(virtio_vsock_listen(t.v, 1024), 0);
	fd = establish(&t, &c, 5023, 1024, 65536);
	gc_send(&t, &c, VSOCK_OP_RW, 0, "abc", 3);
	read_exact(&t, fd, got, 3);
	ck_assert_mem_eq(got, "abc", 3);
	close(fd);
	vpoll(&t, 10);
	p = expect_pkt(&t, VSOCK_OP_SHUTDOWN, 1024, 5023);
	ck_assert_uint_eq(p.h.flags, SHUT_BOTH);
	expect_quiet(&t);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 1);
	gc_send(&t, &c, VSOCK_OP_CREDIT_REQUEST, 0, NULL, 0);
	ck_assert_msg(next_pkt_ex(&t, &p, true), "no answer to CREDIT_REQUEST while closing");
	ck_assert_uint_eq(p.h.op, VSOCK_OP_CREDIT_UPDATE);
	ck_assert_uint_eq(p.h.src_port, 1024);
	ck_assert_uint_eq(p.h.dst_port, 5023);
	ck_assert_uint_eq(p.h.len, 0);
	ck_assert_uint_eq(p.h.buf_alloc, VSOCK_CONN_BUF);
	ck_assert_uint_eq(p.h.fwd_cnt, 3);
	ck_assert(!next_pkt_ex(&t, &p, true));
	ck_assert_uint_eq(c.nr_rst, 0);
	gc_send(&t, &c, VSOCK_OP_RST, 0, NULL, 0);
	expect_quiet(&t);
	ck_assert_uint_eq(virtio_vsock_nr_conns(t.v), 0);
	gc_free(&c);
	vt_fini(&t);
}
END_TEST

static Suite *virtio_vsock_suite(void)
{
	Suite *s = suite_create("virtio_vsock");
	TCase *basic = tcase_create("basic");
	TCase *close_tc = tcase_create("close");
	TCase *host = tcase_create("host_connect");
	TCase *uds = tcase_create("uds");
	TCase *bad = tcase_create("hostile");
	TCase *bulk = tcase_create("bulk");

	tcase_set_timeout(basic, 30);
	tcase_add_test(basic, test_hdr_codec);
	tcase_add_test(basic, test_config_and_features);
	tcase_add_loop_test(basic, test_guest_connect_and_data, 0, 4);
	tcase_add_test(basic, test_credit_limits_device);
	tcase_add_test(basic, test_describe);
	tcase_add_test(basic, test_credit_inconsistent_counts_as_zero);
	tcase_add_test(basic, test_credit_request);
	tcase_add_test(basic, test_credit_update_unasked);
	tcase_add_test(basic, test_credit_small_guest_buffer);
	tcase_add_test(basic, test_request_refused);
	suite_add_tcase(s, basic);

	tcase_set_timeout(close_tc, 30);
	tcase_add_test(close_tc, test_host_shutdown_wr);
	tcase_add_test(close_tc, test_host_close);
	tcase_add_test(close_tc, test_guest_shutdown_send);
	tcase_add_test(close_tc, test_guest_shutdown_both);
	tcase_add_test(close_tc, test_guest_rst);
	tcase_add_test(close_tc, test_destroy_closes_everything);
	tcase_add_test(close_tc, test_transport_reset);
	tcase_add_test(close_tc, test_close_all);
	tcase_add_test(close_tc, test_host_gone_credit_flows);
	tcase_add_test(close_tc, test_transport_reset_without_event_buffer);
	tcase_add_test(close_tc, test_guest_shutdown_rcv);
	tcase_add_test(close_tc, test_credit_request_closing);
	suite_add_tcase(s, close_tc);

	tcase_set_timeout(host, 30);
	tcase_add_test(host, test_host_connect);
	tcase_add_test(host, test_host_connect_refused);
	tcase_add_test(host, test_host_connect_timeout);
	tcase_add_test(host, test_host_connect_before_driver);
	suite_add_tcase(s, host);

	tcase_set_timeout(uds, 30);
	tcase_add_test(uds, test_uds_connect);
	tcase_add_test(uds, test_uds_lowercase_and_refused);
	tcase_add_test(uds, test_uds_pipelined_data);
	tcase_add_test(uds, test_uds_bad_handshake);
	tcase_add_test(uds, test_uds_guest_to_host);
	tcase_add_test(uds, test_uds_partial_handshake);
	suite_add_tcase(s, uds);

	tcase_set_timeout(bad, 60);
	tcase_add_loop_test(bad, test_bad_tx_chain, 0, 7);
	tcase_add_loop_test(bad, test_bad_rx_chain, 0, 3);
	tcase_add_test(bad, test_odd_but_valid_chains);
	tcase_add_test(bad, test_device_reset_resets_connections);
	tcase_add_test(bad, test_wrong_cids_dropped);
	tcase_add_test(bad, test_unknown_packets_get_rst);
	tcase_add_test(bad, test_unknown_op_on_connection);
	tcase_add_test(bad, test_lying_credit_resets);
	tcase_add_test(bad, test_honest_guest_slow_host);
	tcase_add_test(bad, test_order_kept_behind_held_bytes);
	tcase_add_test(bad, test_backlog_limit);
	tcase_add_test(bad, test_backlog_drops_dead);
	tcase_add_test(bad, test_connection_flood);
	tcase_add_test(bad, test_rst_flood_bounded);
	tcase_add_test(bad, test_conn_rsts_never_lost);
	suite_add_tcase(s, bad);

	tcase_set_timeout(bulk, 300);
	tcase_add_test(bulk, test_bulk_concurrent);
	suite_add_tcase(s, bulk);
	return s;
}

int main(void)
{
	signal(SIGPIPE, SIG_IGN);
	return tu_run(virtio_vsock_suite());
}
