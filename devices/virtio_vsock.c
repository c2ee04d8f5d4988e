// SPDX-License-Identifier: Apache-2.0
#include "virtio_vsock.h"

#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/socket.h>
#include <sys/timerfd.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "snap_io.h"

/* epoll tags: a connection's index, or one of these. */
#define TAG_TIMER (1u << 20)
#define TAG_UDS (TAG_TIMER + 1)
#define TAG_HANDSHAKE (TAG_TIMER + 16) /* + slot */

/* Control packets a connection owes the guest. */
#define PEND_REQUEST 0x1u
#define PEND_RESPONSE 0x2u
#define PEND_CREDIT 0x4u

#define VSOCK_TIMER_MS 250
#define VSOCK_HANDSHAKE_MAX 32
#define VSOCK_POLL_BATCH 64
#define VSOCK_SNAP_VERSION 2 /* 2: the next host-side port */

static void vsock_timer_arm(struct virtio_vsock *v, bool on);

static uint64_t vsock_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static uint64_t vsock_get(const uint8_t *p, unsigned int n)
{
	uint64_t v = 0;

	for (unsigned int i = 0; i < n; i++)
		v |= (uint64_t)p[i] << (8 * i);
	return v;
}

static void vsock_put(uint8_t *p, uint64_t v, unsigned int n)
{
	for (unsigned int i = 0; i < n; i++)
		p[i] = (uint8_t)(v >> (8 * i));
}

void vsock_hdr_decode(const uint8_t in[VSOCK_HDR_SIZE], struct vsock_hdr *h)
{
	h->src_cid = vsock_get(in, 8);
	h->dst_cid = vsock_get(in + 8, 8);
	h->src_port = (uint32_t)vsock_get(in + 16, 4);
	h->dst_port = (uint32_t)vsock_get(in + 20, 4);
	h->len = (uint32_t)vsock_get(in + 24, 4);
	h->type = (uint16_t)vsock_get(in + 28, 2);
	h->op = (uint16_t)vsock_get(in + 30, 2);
	h->flags = (uint32_t)vsock_get(in + 32, 4);
	h->buf_alloc = (uint32_t)vsock_get(in + 36, 4);
	h->fwd_cnt = (uint32_t)vsock_get(in + 40, 4);
}

void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t out[VSOCK_HDR_SIZE])
{
	vsock_put(out, h->src_cid, 8);
	vsock_put(out + 8, h->dst_cid, 8);
	vsock_put(out + 16, h->src_port, 4);
	vsock_put(out + 20, h->dst_port, 4);
	vsock_put(out + 24, h->len, 4);
	vsock_put(out + 28, h->type, 2);
	vsock_put(out + 30, h->op, 2);
	vsock_put(out + 32, h->flags, 4);
	vsock_put(out + 36, h->buf_alloc, 4);
	vsock_put(out + 40, h->fwd_cnt, 4);
}

/* ---- connections ---------------------------------------------------- */

static unsigned int vsock_conn_index(const struct virtio_vsock *v, const struct vsock_conn *c)
{
	return (unsigned int)(c - v->conns);
}

static struct vsock_conn *vsock_conn_find(struct virtio_vsock *v, uint32_t host_port, uint32_t guest_port)
{
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &v->conns[i];

		if (c->state != VSOCK_CONN_FREE && c->host_port == host_port && c->guest_port == guest_port)
			return c;
	}
	return NULL;
}

static struct vsock_conn *vsock_conn_alloc(struct virtio_vsock *v)
{
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++)
		if (v->conns[i].state == VSOCK_CONN_FREE)
			return &v->conns[i];
	return NULL;
}

/* Watch the device's end: edge-triggered, the flags in the conn remember what is due. */
static int vsock_conn_watch(struct virtio_vsock *v, struct vsock_conn *c, int op)
{
	struct epoll_event ev = { .events = EPOLLIN | EPOLLOUT | EPOLLRDHUP | EPOLLET,
				  .data.u64 = vsock_conn_index(v, c) };

	return epoll_ctl(v->epfd, op, c->fd, &ev) < 0 ? -errno : 0;
}

/* Start a connection on fd (owned from here on, also on failure). */
static int vsock_conn_open(struct virtio_vsock *v, struct vsock_conn *c, int fd, int op,
			   enum vsock_conn_state state, uint32_t host_port, uint32_t guest_port)
{
	int rc;

	memset(c, 0, sizeof(*c));
	c->fd = fd;
	c->state = state;
	c->host_port = host_port;
	c->guest_port = guest_port;
	c->host_readable = true; /* the first edge may predate the watch */
	rc = vsock_conn_watch(v, c, op);
	if (rc < 0) {
		close(fd);
		memset(c, 0, sizeof(*c));
		c->fd = -1;
	}
	return rc;
}

static void vsock_wake_waiter(struct virtio_vsock *v, struct vsock_conn *c, int result)
{
	if (!c->waiter)
		return;
	*c->waiter = result;
	c->waiter = NULL;
	pthread_cond_broadcast(&v->cond);
}

static struct vsock_listen *vsock_listen_find(struct virtio_vsock *v, uint32_t port);

/* A connection that ends before accept() took it leaves the backlog: it would only read EOF. */
static void vsock_backlog_drop(struct virtio_vsock *v, struct vsock_conn *c)
{
	struct vsock_listen *l = vsock_listen_find(v, c->host_port);

	for (unsigned int i = 0; l && i < l->nr; i++)
		if (l->fds[i] == c->host_fd) {
			close(l->fds[i]);
			memmove(l->fds + i, l->fds + i + 1, (l->nr - i - 1) * sizeof(l->fds[0]));
			l->nr--;
			break;
		}
	c->in_backlog = false;
}

static void vsock_conn_free(struct virtio_vsock *v, struct vsock_conn *c)
{
	if (c->state == VSOCK_CONN_FREE)
		return;
	if (c->in_backlog)
		vsock_backlog_drop(v, c);
	vsock_wake_waiter(v, c, -ECONNRESET);
	if (c->fd >= 0)
		close(c->fd); /* closing also takes it off the epoll set */
	free(c->buf);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
}

/* Queue a RST for (host_port, guest_port); dropped when too many are queued. */
static void vsock_queue_rst(struct virtio_vsock *v, uint32_t host_port, uint32_t guest_port)
{
	if (v->nr_rst == VSOCK_MAX_PENDING_RST) {
		v->nr_dropped++;
		return;
	}
	v->rsts[(v->rst_head + v->nr_rst) % VSOCK_MAX_PENDING_RST] =
		(struct vsock_rst){ .host_port = host_port, .guest_port = guest_port };
	v->nr_rst++;
}

/* Reset one connection: RST to the guest, EOF to the host. */
static void vsock_conn_reset(struct virtio_vsock *v, struct vsock_conn *c)
{
	uint32_t host_port = c->host_port, guest_port = c->guest_port;

	vsock_conn_free(v, c);
	/* The slot owes the RST: unlike the shared queue, it cannot overflow. */
	c->state = VSOCK_CONN_RESET;
	c->host_port = host_port;
	c->guest_port = guest_port;
}

/* A connection the host side still serves (not free, not only owing a RST). */
static bool vsock_conn_live(const struct vsock_conn *c)
{
	return c->state != VSOCK_CONN_FREE && c->state != VSOCK_CONN_RESET;
}

static void vsock_close_backlogs(struct virtio_vsock *v)
{
	for (unsigned int i = 0; i < VSOCK_MAX_LISTEN; i++) {
		struct vsock_listen *l = &v->listens[i];

		for (unsigned int j = 0; j < l->nr; j++)
			close(l->fds[j]);
		l->nr = 0;
	}
}

/* Device reset or breakage: every connection ends, nothing is owed to the guest. */
static void vsock_reset_all(struct virtio_vsock *v)
{
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++)
		vsock_conn_free(v, &v->conns[i]);
	vsock_close_backlogs(v);
	v->nr_rst = 0;
	v->rst_head = 0;
}

/* The guest's free receive space for c; a figure that makes no sense is zero. */
static uint32_t vsock_peer_credit(const struct vsock_conn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

	return in_flight > c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

/* ---- guest -> host data ----------------------------------------------- */

static ssize_t vsock_send(int fd, struct iovec *iov, int cnt)
{
	struct msghdr mh = { .msg_iov = iov, .msg_iovlen = (size_t)cnt };
	ssize_t n;

	do
		n = sendmsg(fd, &mh, MSG_NOSIGNAL | MSG_DONTWAIT);
	while (n < 0 && errno == EINTR);
	if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
		return 0;
	return n;
}

/* Once the guest has consumed a good part of our credit, tell it what we forwarded. */
static void vsock_credit_check(struct vsock_conn *c)
{
	uint32_t guest_view_used = c->rx_cnt - c->fwd_cnt_sent;
	/* Linux sends at most min(our buf_alloc, its own) unacknowledged bytes. */
	uint32_t window = c->peer_buf_alloc < VSOCK_CONN_BUF ? c->peer_buf_alloc : VSOCK_CONN_BUF;

	if (c->fwd_cnt != c->fwd_cnt_sent && guest_view_used > window / 2)
		c->pending |= PEND_CREDIT;
}

/* Writing to the host end failed for good: its bytes are dropped from now on. */
static void vsock_host_gone(struct vsock_conn *c)
{
	c->fwd_cnt += c->buf_len;
	c->buf_len = 0;
	c->host_hup = true;
	c->host_readable = true; /* to find the EOF */
}

/* Write buffered guest bytes to the host end. */
static void vsock_flush(struct vsock_conn *c)
{
	while (c->buf_len) {
		uint32_t chunk = VSOCK_CONN_BUF - c->buf_head;
		struct iovec iov;
		ssize_t n;

		if (chunk > c->buf_len)
			chunk = c->buf_len;
		iov = (struct iovec){ c->buf + c->buf_head, chunk };
		n = vsock_send(c->fd, &iov, 1);
		if (n < 0) {
			vsock_host_gone(c);
			return;
		}
		if (n == 0)
			return;
		c->buf_head = (c->buf_head + (uint32_t)n) % VSOCK_CONN_BUF;
		c->buf_len -= (uint32_t)n;
		c->fwd_cnt += (uint32_t)n;
	}
	c->buf_head = 0;
}

/* Keep the bytes [off, off + len) of the chain's readable part that the host did not take. */
static void vsock_buffer(struct vsock_conn *c, const struct virtq_chain *ch, uint64_t off, uint32_t len)
{
	while (len) {
		uint32_t tail = (c->buf_head + c->buf_len) % VSOCK_CONN_BUF;
		uint32_t chunk = VSOCK_CONN_BUF - tail;

		if (chunk > len)
			chunk = len;
		virtq_chain_read(ch, off, c->buf + tail, chunk);
		c->buf_len += chunk;
		off += chunk;
		len -= chunk;
	}
}

/* After the guest's SHUTDOWN, and once its bytes are all out: close our side. */
static void vsock_peer_shutdown_progress(struct virtio_vsock *v, struct vsock_conn *c)
{
	if (c->buf_len)
		return;
	if ((c->peer_shutdown & (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND)) ==
	    (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND)) {
		vsock_conn_reset(v, c);
		return;
	}
	if ((c->peer_shutdown & VSOCK_SHUTDOWN_SEND) && !c->shut_wr_done) {
		shutdown(c->fd, SHUT_WR);
		c->shut_wr_done = true;
	}
}

/* An RW packet's payload: straight to the host fd, the rest into the bounded buffer. */
static int vsock_rx_data(struct virtio_vsock *v, struct vsock_conn *c, const struct virtq_chain *ch,
			 uint32_t len)
{
	/* What the guest must believe is in our buffer: bytes beyond the fwd_cnt it was told. */
	uint32_t in_flight = c->rx_cnt - c->fwd_cnt_sent;
	struct iovec iov[VIRTQ_MAX_SEGS];
	ssize_t n = 0;
	int cnt;

	/*
	 * More than VSOCK_CONN_BUF of those broke flow control, even if the
	 * host end could take them; it also bounds what the buffer below holds
	 * (buf_len <= rx_cnt - fwd_cnt <= in_flight).
	 */
	if (in_flight > VSOCK_CONN_BUF || len > VSOCK_CONN_BUF - in_flight) {
		v->nr_credit_violations++;
		vsock_conn_reset(v, c);
		return 0;
	}
	c->rx_cnt += len;
	if (c->host_hup) {
		/* Dropped, but counted as forwarded: the guest must not block on credit. */
		c->fwd_cnt += len;
		vsock_credit_check(c);
		return 0;
	}
	if (!c->buf_len && len) {
		cnt = virtq_chain_slice(ch, false, VSOCK_HDR_SIZE, len, iov, VIRTQ_MAX_SEGS);
		if (cnt < 0)
			return -1;
		n = vsock_send(c->fd, iov, cnt);
		if (n < 0) {
			c->fwd_cnt += len;
			vsock_host_gone(c);
			vsock_credit_check(c);
			return 0;
		}
		c->fwd_cnt += (uint32_t)n;
	}
	if ((uint32_t)n < len) {
		if (!c->buf && !(c->buf = malloc(VSOCK_CONN_BUF))) {
			vsock_conn_reset(v, c);
			return 0;
		}
		vsock_buffer(c, ch, VSOCK_HDR_SIZE + (uint64_t)n, len - (uint32_t)n);
	}
	vsock_credit_check(c);
	return 0;
}

/* ---- connection set-up ------------------------------------------------- */

static struct vsock_listen *vsock_listen_find(struct virtio_vsock *v, uint32_t port)
{
	for (unsigned int i = 0; i < VSOCK_MAX_LISTEN; i++)
		if (v->listens[i].port == port)
			return &v->listens[i];
	return NULL;
}

static int vsock_socketpair(int sv[2])
{
	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -errno;
	/* Only the device's end is non-blocking: the host end is the caller's to use. */
	if (fcntl(sv[0], F_SETFL, O_NONBLOCK) < 0) {
		int e = errno;

		close(sv[0]);
		close(sv[1]);
		return -e;
	}
	return 0;
}

/* "<uds_path>_<port>", Firecracker's name for a host service on port. */
static int vsock_uds_connect(const struct virtio_vsock *v, uint32_t port)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int fd;

	if ((size_t)snprintf(sa.sun_path, sizeof(sa.sun_path), "%s_%u", v->uds_path, port) >=
	    sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		int e = errno;

		close(fd);
		return -e;
	}
	return fd;
}

/* The guest's REQUEST to a host port: a listened port, else the Unix socket, else RST. */
static void vsock_guest_connect(struct virtio_vsock *v, const struct vsock_hdr *h)
{
	struct vsock_listen *l = vsock_listen_find(v, h->dst_port);
	struct vsock_conn *c = vsock_conn_alloc(v);
	int sv[2] = { -1, -1 }, fd = -1;

	if (c && l && l->nr < VSOCK_MAX_BACKLOG && vsock_socketpair(sv) == 0)
		fd = sv[0];
	else if (c && !l && v->uds_path[0])
		fd = vsock_uds_connect(v, h->dst_port);
	if (fd < 0 || vsock_conn_open(v, c, fd, EPOLL_CTL_ADD, VSOCK_CONN_ESTABLISHED, h->dst_port,
				      h->src_port) < 0) {
		if (sv[1] >= 0)
			close(sv[1]);
		vsock_queue_rst(v, h->dst_port, h->src_port);
		return;
	}
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	c->pending = PEND_RESPONSE;
	if (l) {
		l->fds[l->nr++] = sv[1];
		c->in_backlog = true;
		c->host_fd = sv[1];
		pthread_cond_broadcast(&v->cond);
	}
}

/* The guest accepted a host-initiated connection. */
static void vsock_established(struct virtio_vsock *v, struct vsock_conn *c)
{
	char ok[32];
	int n;

	c->state = VSOCK_CONN_ESTABLISHED;
	c->deadline_ns = 0;
	if (c->uds) {
		struct iovec iov;

		n = snprintf(ok, sizeof(ok), "OK %u\n", c->host_port);
		iov = (struct iovec){ ok, (size_t)n };
		/* A fresh socket's buffer is empty: this short line always fits. */
		if (vsock_send(c->fd, &iov, 1) != n) {
			vsock_conn_reset(v, c);
			return;
		}
	}
	vsock_wake_waiter(v, c, 1);
}

/* ---- guest -> device packets ------------------------------------------- */

static void vsock_conn_packet(struct virtio_vsock *v, struct vsock_conn *c, const struct vsock_hdr *h,
			      const struct virtq_chain *ch, int *rc)
{
	if (c->state == VSOCK_CONN_RESET)
		return; /* its RST is on the way: the guest will drop the connection */
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	switch (h->op) {
	case VSOCK_OP_RESPONSE:
		if (c->state != VSOCK_CONN_CONNECTING) {
			vsock_conn_reset(v, c);
			return;
		}
		vsock_established(v, c);
		return;
	case VSOCK_OP_RW:
		if (c->state != VSOCK_CONN_ESTABLISHED || (c->peer_shutdown & VSOCK_SHUTDOWN_SEND)) {
			vsock_conn_reset(v, c);
			return;
		}
		*rc = vsock_rx_data(v, c, ch, h->len);
		return;
	case VSOCK_OP_CREDIT_UPDATE:
		return; /* the new credit is already recorded; delivery looks at it */
	case VSOCK_OP_CREDIT_REQUEST:
		c->pending |= PEND_CREDIT;
		return;
	case VSOCK_OP_SHUTDOWN:
		if (c->state == VSOCK_CONN_CONNECTING) {
			vsock_conn_reset(v, c);
			return;
		}
		c->peer_shutdown |= h->flags & (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND);
		vsock_peer_shutdown_progress(v, c);
		return;
	case VSOCK_OP_RST:
		vsock_wake_waiter(v, c, -ECONNREFUSED);
		vsock_conn_free(v, c);
		return;
	default: /* REQUEST on a live connection, unknown ops */
		vsock_conn_reset(v, c);
		return;
	}
}

/* One tx chain.  -1: the chain itself breaks the rules (device broken). */
static int vsock_tx_packet(struct virtio_vsock *v, const struct virtq_chain *ch)
{
	uint8_t raw[VSOCK_HDR_SIZE];
	struct vsock_conn *c;
	struct vsock_hdr h;
	int rc = 0;

	if (ch->nr_writable || ch->readable_len < VSOCK_HDR_SIZE)
		return -1;
	virtq_chain_read(ch, 0, raw, VSOCK_HDR_SIZE);
	vsock_hdr_decode(raw, &h);
	if (h.len > VSOCK_MAX_PKT || h.len > ch->readable_len - VSOCK_HDR_SIZE)
		return -1;
	v->nr_tx_pkts++;
	if (h.src_cid != v->guest_cid || h.dst_cid != VSOCK_HOST_CID) {
		v->nr_dropped++;
		return 0;
	}
	c = vsock_conn_find(v, h.dst_port, h.src_port);
	if (h.type != VSOCK_TYPE_STREAM) {
		if (c)
			vsock_conn_free(v, c);
		if (h.op != VSOCK_OP_RST)
			vsock_queue_rst(v, h.dst_port, h.src_port);
		return 0;
	}
	if (c)
		vsock_conn_packet(v, c, &h, ch, &rc);
	else if (h.op == VSOCK_OP_REQUEST)
		vsock_guest_connect(v, &h);
	else if (h.op != VSOCK_OP_RST)
		vsock_queue_rst(v, h.dst_port, h.src_port);
	return rc;
}

static int vsock_tx_process(struct virtio_vsock *v)
{
	struct virtq *q = virtio_mmio_queue(&v->mmio, VSOCK_QUEUE_TX);
	int n = 0, r;

	while ((r = virtq_pop(q, &v->chain)) > 0) {
		if (vsock_tx_packet(v, &v->chain) < 0 || virtq_push(q, v->chain.head, 0) < 0)
			return -1;
		n++;
	}
	return r < 0 ? -1 : n;
}

/* ---- device -> guest packets ------------------------------------------- */

static void vsock_hdr_for(const struct virtio_vsock *v, const struct vsock_conn *c, uint16_t op,
			  struct vsock_hdr *h)
{
	*h = (struct vsock_hdr){ .src_cid = VSOCK_HOST_CID, .dst_cid = v->guest_cid,
				 .src_port = c->host_port, .dst_port = c->guest_port,
				 .type = VSOCK_TYPE_STREAM, .op = op,
				 .buf_alloc = VSOCK_CONN_BUF, .fwd_cnt = c->fwd_cnt };
}

/* Read host bytes for c into the chain after the header; 0 when there were none. */
static uint32_t vsock_read_host(struct vsock_conn *c, const struct virtq_chain *ch)
{
	struct iovec iov[VIRTQ_MAX_SEGS];
	uint64_t room = ch->writable_len - VSOCK_HDR_SIZE;
	uint32_t want = vsock_peer_credit(c);
	ssize_t n;
	int cnt;

	if (want > room)
		want = (uint32_t)room;
	if (want > VSOCK_MAX_PKT)
		want = VSOCK_MAX_PKT;
	if (!want)
		return 0;
	cnt = virtq_chain_slice(ch, true, VSOCK_HDR_SIZE, want, iov, VIRTQ_MAX_SEGS);
	if (cnt < 0)
		return 0;
	do
		n = readv(c->fd, iov, cnt);
	while (n < 0 && errno == EINTR);
	if (n > 0)
		return (uint32_t)n;
	c->host_readable = false;
	if (n == 0)
		c->host_eof = true;
	else if (errno != EAGAIN && errno != EWOULDBLOCK)
		c->host_eof = c->host_hup = true;
	return 0;
}

/* What SHUTDOWN c owes the guest after the host end's EOF (0: none). */
static uint32_t vsock_shutdown_due(const struct vsock_conn *c)
{
	uint32_t flags;

	if (!c->host_eof)
		return 0;
	flags = c->host_hup ? VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND : VSOCK_SHUTDOWN_SEND;
	return flags & ~c->shutdown_sent ? flags : 0;
}

/* Host bytes may wait to go, and the guest still wants them (no SHUTDOWN(RCV)). */
static bool vsock_host_data_due(const struct vsock_conn *c)
{
	return c->host_readable && !c->host_eof && !(c->peer_shutdown & VSOCK_SHUTDOWN_RCV);
}

static bool vsock_conn_has_work(const struct vsock_conn *c)
{
	if (c->state == VSOCK_CONN_FREE)
		return false;
	if (c->state == VSOCK_CONN_RESET || c->pending)
		return true;
	if (c->state != VSOCK_CONN_ESTABLISHED)
		return false;
	return (vsock_host_data_due(c) && vsock_peer_credit(c) > 0) || vsock_shutdown_due(c);
}

/* Fill one rx chain for c; the packet's length, or 0 when c had nothing after all. */
static uint32_t vsock_conn_fill(struct virtio_vsock *v, struct vsock_conn *c, const struct virtq_chain *ch,
				struct vsock_hdr *h)
{
	uint32_t n, flags;

	if (c->state == VSOCK_CONN_RESET) {
		vsock_hdr_for(v, c, VSOCK_OP_RST, h);
		v->nr_rst_sent++;
		memset(c, 0, sizeof(*c));
		c->fd = -1;
		return VSOCK_HDR_SIZE;
	}
	if (c->pending & PEND_REQUEST) {
		c->pending &= ~PEND_REQUEST;
		vsock_hdr_for(v, c, VSOCK_OP_REQUEST, h);
		return VSOCK_HDR_SIZE;
	}
	if (c->pending & PEND_RESPONSE) {
		c->pending &= ~PEND_RESPONSE;
		vsock_hdr_for(v, c, VSOCK_OP_RESPONSE, h);
		return VSOCK_HDR_SIZE;
	}
	if (c->pending & PEND_CREDIT) {
		c->pending &= ~PEND_CREDIT;
		vsock_hdr_for(v, c, VSOCK_OP_CREDIT_UPDATE, h);
		return VSOCK_HDR_SIZE;
	}
	if (c->state != VSOCK_CONN_ESTABLISHED)
		return 0;
	if (vsock_host_data_due(c) && (n = vsock_read_host(c, ch)) > 0) {
		c->tx_cnt += n;
		vsock_hdr_for(v, c, VSOCK_OP_RW, h);
		h->len = n;
		return VSOCK_HDR_SIZE + n;
	}
	flags = vsock_shutdown_due(c);
	if (flags) {
		c->shutdown_sent |= flags;
		vsock_hdr_for(v, c, VSOCK_OP_SHUTDOWN, h);
		h->flags = flags;
		if (flags & VSOCK_SHUTDOWN_RCV) {
			c->state = VSOCK_CONN_CLOSING; /* the guest answers with RST */
			vsock_timer_arm(v, true);
		}
		return VSOCK_HDR_SIZE;
	}
	return 0;
}

static bool vsock_has_rx_work(const struct virtio_vsock *v)
{
	if (v->nr_rst)
		return true;
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++)
		if (vsock_conn_has_work(&v->conns[i]))
			return true;
	return false;
}

/* The next packet into ch: queued RSTs first, then connections round-robin. */
static uint32_t vsock_fill(struct virtio_vsock *v, const struct virtq_chain *ch, struct vsock_hdr *h)
{
	if (v->nr_rst) {
		const struct vsock_rst *r = &v->rsts[v->rst_head];

		*h = (struct vsock_hdr){ .src_cid = VSOCK_HOST_CID, .dst_cid = v->guest_cid,
					 .src_port = r->host_port, .dst_port = r->guest_port,
					 .type = VSOCK_TYPE_STREAM, .op = VSOCK_OP_RST };
		v->rst_head = (v->rst_head + 1) % VSOCK_MAX_PENDING_RST;
		v->nr_rst--;
		v->nr_rst_sent++;
		return VSOCK_HDR_SIZE;
	}
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++) {
		unsigned int idx = (v->rr + i) % VSOCK_MAX_CONNS;
		struct vsock_conn *c = &v->conns[idx];
		uint32_t n;

		if (!vsock_conn_has_work(c))
			continue;
		n = vsock_conn_fill(v, c, ch, h);
		if (n) {
			c->fwd_cnt_sent = c->fwd_cnt;
			v->rr = idx + 1;
			return n;
		}
	}
	return 0;
}

/* Deliver what is due while the guest has rx buffers.  Packets pushed, or -1. */
static int vsock_rx_deliver(struct virtio_vsock *v)
{
	struct virtq *q = virtio_mmio_queue(&v->mmio, VSOCK_QUEUE_RX);
	uint8_t raw[VSOCK_HDR_SIZE];
	struct vsock_hdr h;
	int pushed = 0, r;
	uint32_t n;

	while (vsock_has_rx_work(v)) {
		r = virtq_pop(q, &v->chain);
		if (r <= 0)
			return r < 0 ? -1 : pushed;
		if (v->chain.nr_readable || v->chain.writable_len < VSOCK_HDR_SIZE + 1)
			return -1;
		n = vsock_fill(v, &v->chain, &h);
		if (!n) {
			virtq_unpop(q);
			break;
		}
		vsock_hdr_encode(&h, raw);
		virtq_chain_write(&v->chain, 0, raw, VSOCK_HDR_SIZE);
		if (virtq_push(q, v->chain.head, n) < 0)
			return -1;
		v->nr_rx_pkts++;
		pushed++;
	}
	return pushed;
}

/* ---- timers ------------------------------------------------------------- */

static void vsock_timer_arm(struct virtio_vsock *v, bool on)
{
	struct itimerspec its = { 0 };

	if (on == v->timer_armed)
		return;
	if (on)
		its.it_value = its.it_interval =
			(struct timespec){ 0, VSOCK_TIMER_MS * 1000000L };
	if (timerfd_settime(v->timer_fd, 0, &its, NULL) == 0)
		v->timer_armed = on;
}

/* Host-initiated requests nobody answered, closes the guest never finished. */
static void vsock_expire(struct virtio_vsock *v)
{
	uint64_t now = vsock_now_ns();
	bool any = false;

	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &v->conns[i];

		if (c->state == VSOCK_CONN_CLOSING && !c->deadline_ns && c->tx_cnt == c->peer_fwd_cnt)
			c->deadline_ns = now + VSOCK_CLOSE_TIMEOUT_MS * 1000000ULL; /* the guest read it all */
		if (!vsock_conn_live(c) || !c->deadline_ns)
			continue;
		if (now >= c->deadline_ns) {
			vsock_wake_waiter(v, c, -ETIMEDOUT);
			vsock_conn_reset(v, c);
			continue;
		}
		any = true;
	}
	for (unsigned int i = 0; i < VSOCK_MAX_HANDSHAKES; i++) {
		struct vsock_handshake *hs = &v->handshakes[i];

		if (hs->fd < 0)
			continue;
		if (now >= hs->deadline_ns) {
			close(hs->fd);
			hs->fd = -1;
			continue;
		}
		any = true;
	}
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS && !any; i++)
		any = v->conns[i].state == VSOCK_CONN_CLOSING;
	vsock_timer_arm(v, any);
}

/* ---- the Unix socket ---------------------------------------------------- */

/* Host-side ports of host-initiated connections: [BASE, 2 * BASE). */
static bool vsock_local_port_ok(uint32_t p)
{
	return p >= VSOCK_LOCAL_PORT_BASE && p < 2 * VSOCK_LOCAL_PORT_BASE;
}

static uint32_t vsock_next_local_port(struct virtio_vsock *v)
{
	for (;;) {
		uint32_t p = v->next_local_port++;
		bool used = false;

		if (!vsock_local_port_ok(v->next_local_port))
			v->next_local_port = VSOCK_LOCAL_PORT_BASE;
		for (unsigned int i = 0; i < VSOCK_MAX_CONNS && !used; i++)
			used = v->conns[i].state != VSOCK_CONN_FREE && v->conns[i].host_port == p;
		if (!used)
			return p;
	}
}

/* A host-initiated connection to guest_port over fd (owned); NULL when no slot. */
static struct vsock_conn *vsock_host_connect(struct virtio_vsock *v, int fd, int op, uint32_t guest_port,
					     unsigned int timeout_ms)
{
	struct vsock_conn *c = vsock_conn_alloc(v);

	if (!c) {
		close(fd);
		return NULL;
	}
	if (vsock_conn_open(v, c, fd, op, VSOCK_CONN_CONNECTING, vsock_next_local_port(v), guest_port) < 0)
		return NULL;
	c->pending = PEND_REQUEST;
	c->deadline_ns = vsock_now_ns() + (uint64_t)timeout_ms * 1000000ULL;
	vsock_timer_arm(v, true);
	return c;
}

/* "CONNECT <port>", any case; the port or -1. */
static int64_t vsock_parse_connect(const char *line, size_t len)
{
	static const char word[] = "connect ";
	uint64_t port = 0;
	size_t i;

	if (len <= sizeof(word) - 1)
		return -1;
	for (i = 0; i < sizeof(word) - 1; i++)
		if (tolower((unsigned char)line[i]) != word[i])
			return -1;
	for (; i < len; i++) {
		if (line[i] < '0' || line[i] > '9')
			return -1;
		port = port * 10 + (uint64_t)(line[i] - '0');
		if (port > UINT32_MAX)
			return -1;
	}
	return (int64_t)port;
}

/* A Unix-socket client is readable: wait for its whole line, then ask the guest. */
static void vsock_handshake_read(struct virtio_vsock *v, struct vsock_handshake *hs)
{
	char line[VSOCK_HANDSHAKE_MAX];
	char *nl;
	ssize_t n = recv(hs->fd, line, sizeof(line), MSG_PEEK | MSG_DONTWAIT);
	int64_t port;
	int fd = hs->fd;

	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	nl = n > 0 ? memchr(line, '\n', (size_t)n) : NULL;
	if (!nl && n > 0 && (size_t)n < sizeof(line))
		return; /* more to come */
	hs->fd = -1;
	port = nl ? vsock_parse_connect(line, (size_t)(nl - line)) : -1;
	/* Consume exactly the line: what follows it is the connection's data. */
	if (port < 0 || recv(fd, line, (size_t)(nl - line) + 1, MSG_DONTWAIT) != nl - line + 1) {
		close(fd);
		return;
	}
	struct vsock_conn *c = vsock_host_connect(v, fd, EPOLL_CTL_MOD, (uint32_t)port, VSOCK_CONNECT_TIMEOUT_MS);

	if (c)
		c->uds = true;
}

static void vsock_uds_accept(struct virtio_vsock *v)
{
	for (;;) {
		int fd = accept4(v->uds_fd, NULL, NULL, SOCK_NONBLOCK | SOCK_CLOEXEC);
		struct vsock_handshake *hs = NULL;
		/* Edge-triggered: a partial line left unread must not keep the fd readable. */
		struct epoll_event ev = { .events = EPOLLIN | EPOLLRDHUP | EPOLLET };

		if (fd < 0)
			return;
		for (unsigned int i = 0; i < VSOCK_MAX_HANDSHAKES && !hs; i++)
			if (v->handshakes[i].fd < 0)
				hs = &v->handshakes[i];
		ev.data.u64 = hs ? TAG_HANDSHAKE + (uint64_t)(hs - v->handshakes) : 0;
		if (!hs || epoll_ctl(v->epfd, EPOLL_CTL_ADD, fd, &ev) < 0) {
			close(fd);
			continue;
		}
		hs->fd = fd;
		hs->deadline_ns = vsock_now_ns() + VSOCK_CONNECT_TIMEOUT_MS * 1000000ULL;
		vsock_timer_arm(v, true);
	}
}

/* ---- event dispatch ----------------------------------------------------- */

static void vsock_conn_event(struct virtio_vsock *v, struct vsock_conn *c, uint32_t events)
{
	if (!vsock_conn_live(c))
		return; /* an event read in the same batch as the reset */
	if (events & (EPOLLIN | EPOLLRDHUP | EPOLLHUP | EPOLLERR))
		c->host_readable = true;
	if (events & (EPOLLHUP | EPOLLERR))
		c->host_hup = true;
	if (events & EPOLLOUT) {
		vsock_flush(c);
		vsock_credit_check(c);
		vsock_peer_shutdown_progress(v, c);
	}
}

static void vsock_dispatch(struct virtio_vsock *v, uint64_t tag, uint32_t events)
{
	uint64_t ticks;

	if (tag < VSOCK_MAX_CONNS) {
		vsock_conn_event(v, &v->conns[tag], events);
	} else if (tag == TAG_TIMER) {
		if (read(v->timer_fd, &ticks, sizeof(ticks)) < 0) {
			/* EAGAIN: another thread took the tick; expiry is checked anyway */
		}
	} else if (tag == TAG_UDS) {
		vsock_uds_accept(v);
	} else if (tag >= TAG_HANDSHAKE && tag < TAG_HANDSHAKE + VSOCK_MAX_HANDSHAKES) {
		struct vsock_handshake *hs = &v->handshakes[tag - TAG_HANDSHAKE];

		if (hs->fd >= 0)
			vsock_handshake_read(v, hs);
	}
}

/* Deliver what is due and interrupt the guest; on a broken queue, break the device. */
static void vsock_kick_locked(struct virtio_vsock *v)
{
	if (!virtio_mmio_live_locked(&v->mmio))
		return;
	if (vsock_rx_deliver(v) < 0) {
		vsock_reset_all(v);
		virtio_mmio_needs_reset_locked(&v->mmio);
		return;
	}
	virtio_mmio_used_locked(&v->mmio, VSOCK_QUEUE_RX);
}

void virtio_vsock_poll(struct virtio_vsock *v)
{
	struct epoll_event evs[VSOCK_POLL_BATCH];
	int n;

	virtio_mmio_lock(&v->mmio);
	do {
		n = epoll_wait(v->epfd, evs, VSOCK_POLL_BATCH, 0);
		for (int i = 0; i < n; i++)
			vsock_dispatch(v, evs[i].data.u64, evs[i].events);
	} while (n == VSOCK_POLL_BATCH);
	vsock_expire(v);
	vsock_kick_locked(v);
	virtio_mmio_unlock(&v->mmio);
}

/* ---- transport callbacks ------------------------------------------------- */

static void vsock_config_read(void *opaque, uint32_t offset, uint8_t *data, uint32_t len)
{
	const struct virtio_vsock *v = opaque;

	if (offset > sizeof(v->config) || len > sizeof(v->config) - offset)
		return;
	memcpy(data, v->config + offset, len);
}

static int vsock_notify(void *opaque, unsigned int index)
{
	struct virtio_vsock *v = opaque;
	int n = 0, r;

	if (index == VSOCK_QUEUE_EVENT)
		return 0; /* its buffers wait for a TRANSPORT_RESET */
	if (index == VSOCK_QUEUE_TX && (n = vsock_tx_process(v)) < 0)
		goto broken;
	vsock_expire(v);
	r = vsock_rx_deliver(v);
	if (r < 0)
		goto broken;
	/* The transport interrupts for 'index'; packets tx processing queued on rx need their own. */
	if (index == VSOCK_QUEUE_TX)
		virtio_mmio_used_locked(&v->mmio, VSOCK_QUEUE_RX);
	return n + r;
broken:
	vsock_reset_all(v);
	return -1;
}

/*
 * The driver reset the device (also at every probe).  A host connect whose
 * REQUEST the guest has not seen yet survives, to be sent once the driver
 * is up again: a host that connects while the guest still boots waits for
 * the device (up to its own timeout) instead of failing at the probe.
 */
static void vsock_reset(void *opaque)
{
	struct virtio_vsock *v = opaque;

	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++) {
		struct vsock_conn *c = &v->conns[i];

		if (c->state != VSOCK_CONN_CONNECTING || !(c->pending & PEND_REQUEST))
			vsock_conn_free(v, c);
	}
	vsock_close_backlogs(v);
	v->nr_rst = 0;
	v->rst_head = 0;
}

static int vsock_fds_init(struct virtio_vsock *v)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG_TIMER };

	v->epfd = epoll_create1(EPOLL_CLOEXEC);
	v->timer_fd = timerfd_create(CLOCK_MONOTONIC, TFD_NONBLOCK | TFD_CLOEXEC);
	if (v->epfd < 0 || v->timer_fd < 0 || epoll_ctl(v->epfd, EPOLL_CTL_ADD, v->timer_fd, &ev) < 0)
		return -errno;
	return 0;
}

int virtio_vsock_init(struct virtio_vsock *v, const struct guest_mem *gm, uint64_t guest_cid)
{
	pthread_condattr_t ca;
	int rc;

	if (guest_cid < 3 || guest_cid >= UINT32_MAX)
		return -EINVAL;
	memset(v, 0, sizeof(*v));
	v->epfd = v->timer_fd = v->uds_fd = -1;
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++)
		v->conns[i].fd = -1;
	for (unsigned int i = 0; i < VSOCK_MAX_HANDSHAKES; i++)
		v->handshakes[i].fd = -1;
	v->guest_cid = guest_cid;
	vsock_put(v->config, guest_cid, 8);
	v->next_local_port = VSOCK_LOCAL_PORT_BASE;
	rc = vsock_fds_init(v);
	if (rc < 0) {
		if (v->epfd >= 0)
			close(v->epfd);
		if (v->timer_fd >= 0)
			close(v->timer_fd);
		return rc;
	}
	/* Waits measure elapsed time, not the wall clock. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&v->cond, &ca);
	pthread_condattr_destroy(&ca);
	v->ops = (struct virtio_mmio_ops){
		.device_id = VIRTIO_ID_VSOCK,
		.num_queues = 3,
		.queue_max = VSOCK_QUEUE_SIZE,
		.config_read = vsock_config_read,
		.notify = vsock_notify,
		.reset = vsock_reset,
	};
	return virtio_mmio_init(&v->mmio, gm, &v->ops, v);
}

void virtio_vsock_destroy(struct virtio_vsock *v)
{
	vsock_reset_all(v);
	for (unsigned int i = 0; i < VSOCK_MAX_HANDSHAKES; i++)
		if (v->handshakes[i].fd >= 0)
			close(v->handshakes[i].fd);
	if (v->uds_fd >= 0) {
		close(v->uds_fd);
		unlink(v->uds_path);
	}
	close(v->timer_fd);
	close(v->epfd);
	pthread_cond_destroy(&v->cond);
	virtio_mmio_destroy(&v->mmio);
}

int virtio_vsock_fd(const struct virtio_vsock *v)
{
	return v->epfd;
}

/* ---- host API -------------------------------------------------------------- */

static void vsock_deadline(struct timespec *ts, unsigned int timeout_ms)
{
	clock_gettime(CLOCK_MONOTONIC, ts);
	ts->tv_sec += timeout_ms / 1000;
	ts->tv_nsec += (long)(timeout_ms % 1000) * 1000000L;
	if (ts->tv_nsec >= 1000000000L) {
		ts->tv_sec++;
		ts->tv_nsec -= 1000000000L;
	}
}

int virtio_vsock_connect(struct virtio_vsock *v, uint32_t guest_port, unsigned int timeout_ms)
{
	struct vsock_conn *c;
	struct timespec ts;
	int sv[2], result = 0;
	int rc = vsock_socketpair(sv);

	if (rc < 0)
		return rc;
	vsock_deadline(&ts, timeout_ms);
	virtio_mmio_lock(&v->mmio);
	c = vsock_host_connect(v, sv[0], EPOLL_CTL_ADD, guest_port, timeout_ms);
	if (!c) {
		virtio_mmio_unlock(&v->mmio);
		close(sv[1]);
		return -EAGAIN;
	}
	c->waiter = &result;
	vsock_kick_locked(v);
	while (!result)
		if (pthread_cond_timedwait(&v->cond, &v->mmio.lock, &ts) == ETIMEDOUT && !result) {
			/* Still ours: nobody else clears a waiter without setting result. */
			c->waiter = NULL;
			vsock_conn_reset(v, c);
			vsock_kick_locked(v);
			result = -ETIMEDOUT;
		}
	virtio_mmio_unlock(&v->mmio);
	if (result < 0) {
		close(sv[1]);
		return result;
	}
	return sv[1];
}

int virtio_vsock_listen(struct virtio_vsock *v, uint32_t host_port)
{
	struct vsock_listen *l;
	int rc = 0;

	if (host_port == 0 || host_port >= VSOCK_LOCAL_PORT_BASE)
		return -EINVAL;
	virtio_mmio_lock(&v->mmio);
	if (vsock_listen_find(v, host_port))
		rc = -EADDRINUSE;
	else if (!(l = vsock_listen_find(v, 0)))
		rc = -ENOSPC;
	else
		*l = (struct vsock_listen){ .port = host_port };
	virtio_mmio_unlock(&v->mmio);
	return rc;
}

int virtio_vsock_accept(struct virtio_vsock *v, uint32_t host_port, unsigned int timeout_ms)
{
	struct vsock_listen *l;
	struct timespec ts;
	int fd = -ETIMEDOUT;

	if (host_port == 0)
		return -EINVAL;
	vsock_deadline(&ts, timeout_ms);
	virtio_mmio_lock(&v->mmio);
	l = vsock_listen_find(v, host_port);
	if (!l)
		fd = -EINVAL;
	while (l && !l->nr)
		if (pthread_cond_timedwait(&v->cond, &v->mmio.lock, &ts) == ETIMEDOUT)
			break;
	if (l && l->nr) {
		fd = l->fds[0];
		memmove(l->fds, l->fds + 1, (l->nr - 1) * sizeof(l->fds[0]));
		l->nr--;
		for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++)
			if (v->conns[i].in_backlog && v->conns[i].host_fd == fd)
				v->conns[i].in_backlog = false;
	}
	virtio_mmio_unlock(&v->mmio);
	return fd;
}

int virtio_vsock_set_uds(struct virtio_vsock *v, const char *path)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct epoll_event ev = { .events = EPOLLIN, .data.u64 = TAG_UDS };
	int fd, rc = 0;

	/* Room for "_<port>" too: the guest's connections name "<path>_<port>". */
	if (!path || !*path || strlen(path) + 11 >= sizeof(sa.sun_path))
		return -ENAMETOOLONG;
	if (v->uds_fd >= 0)
		return -EBUSY;
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_NONBLOCK | SOCK_CLOEXEC, 0);
	if (fd < 0)
		return -errno;
	if (bind(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0)
		rc = -errno;
	else if (listen(fd, VSOCK_MAX_HANDSHAKES) < 0 || epoll_ctl(v->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		rc = -errno;
	if (rc) {
		if (rc != -EADDRINUSE)
			unlink(sa.sun_path);
		close(fd);
		return rc;
	}
	virtio_mmio_lock(&v->mmio);
	v->uds_fd = fd;
	snprintf(v->uds_path, sizeof(v->uds_path), "%s", path);
	virtio_mmio_unlock(&v->mmio);
	return 0;
}

/* Put TRANSPORT_RESET in an event buffer; false when the guest posted none (or broke the queue). */
static bool vsock_event_reset(struct virtio_vsock *v)
{
	struct virtq *q = virtio_mmio_queue(&v->mmio, VSOCK_QUEUE_EVENT);
	uint8_t ev[4];

	if (!virtio_mmio_live_locked(&v->mmio) || virtq_pop(q, &v->chain) != 1)
		return false;
	vsock_put(ev, VSOCK_EVENT_TRANSPORT_RESET, 4);
	if (v->chain.writable_len < sizeof(ev) || virtq_chain_write(&v->chain, 0, ev, sizeof(ev)) != sizeof(ev)) {
		virtq_unpop(q);
		return false;
	}
	return virtq_push(q, v->chain.head, sizeof(ev)) == 0;
}

int virtio_vsock_transport_reset(struct virtio_vsock *v)
{
	int rc = 0;

	virtio_mmio_lock(&v->mmio);
	if (vsock_event_reset(v)) {
		/* The guest drops every connection itself on the event: nothing is owed. */
		vsock_reset_all(v);
		virtio_mmio_used_locked(&v->mmio, VSOCK_QUEUE_EVENT);
	} else {
		/* No event buffer: reset each connection so no guest socket waits forever. */
		for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++)
			if (vsock_conn_live(&v->conns[i]))
				vsock_conn_reset(v, &v->conns[i]);
		vsock_close_backlogs(v);
		vsock_kick_locked(v);
		rc = -1;
	}
	virtio_mmio_unlock(&v->mmio);
	return rc;
}

void virtio_vsock_close_all(struct virtio_vsock *v)
{
	virtio_mmio_lock(&v->mmio);
	vsock_reset_all(v);
	virtio_mmio_unlock(&v->mmio);
}

void virtio_vsock_describe(struct virtio_vsock *v, int fd)
{
	unsigned int nr_hs = 0;

	virtio_mmio_lock(&v->mmio);
	for (unsigned int i = 0; i < VSOCK_MAX_HANDSHAKES; i++)
		nr_hs += v->handshakes[i].fd >= 0;
	dprintf(fd, "vsock: rx %llu tx %llu rst sent %llu dropped %llu credit violations %llu; %u RSTs queued, "
		"%u handshakes, timer %s\n",
		(unsigned long long)v->nr_rx_pkts, (unsigned long long)v->nr_tx_pkts,
		(unsigned long long)v->nr_rst_sent, (unsigned long long)v->nr_dropped,
		(unsigned long long)v->nr_credit_violations, v->nr_rst, nr_hs, v->timer_armed ? "on" : "off");
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++) {
		const struct vsock_conn *c = &v->conns[i];

		if (c->state == VSOCK_CONN_FREE)
			continue;
		dprintf(fd, "vsock: conn %u: state %d host %u guest %u pending %#x work %d | peer buf %u fwd %u "
			"credit %u | tx %u rx %u fwd %u fwd sent %u buffered %u | readable %d eof %d hup %d "
			"peer shut %#x shut sent %#x uds %d\n",
			i, (int)c->state, c->host_port, c->guest_port, c->pending, vsock_conn_has_work(c),
			c->peer_buf_alloc, c->peer_fwd_cnt, vsock_peer_credit(c), c->tx_cnt, c->rx_cnt, c->fwd_cnt,
			c->fwd_cnt_sent, c->buf_len, c->host_readable, c->host_eof, c->host_hup,
			c->peer_shutdown, c->shutdown_sent, c->uds);
	}
	virtio_mmio_unlock(&v->mmio);
}

unsigned int virtio_vsock_nr_conns(struct virtio_vsock *v)
{
	unsigned int n = 0;

	virtio_mmio_lock(&v->mmio);
	for (unsigned int i = 0; i < VSOCK_MAX_CONNS; i++)
		n += vsock_conn_live(&v->conns[i]);
	virtio_mmio_unlock(&v->mmio);
	return n;
}

int virtio_vsock_save(struct virtio_vsock *v, struct snap_w *w)
{
	snap_put_u32(w, VSOCK_SNAP_VERSION);
	virtio_mmio_lock(&v->mmio);
	virtio_mmio_save_locked(&v->mmio, w);
	snap_put_u64(w, v->guest_cid);
	/*
	 * The guest may still hold sockets of connections made before the save
	 * (closing ones linger there for seconds): a restored device that
	 * started its ports over would reuse their (host port, guest port)
	 * pairs, and the guest would answer those REQUESTs with RST.
	 */
	snap_put_u32(w, v->next_local_port);
	virtio_mmio_unlock(&v->mmio);
	return w->err ? -ENOMEM : 0;
}

int virtio_vsock_restore(struct virtio_vsock *v, struct snap_r *r)
{
	struct virtio_mmio_state s;
	uint32_t port;
	bool ok;

	if (snap_get_u32(r) != VSOCK_SNAP_VERSION)
		snap_r_fail(r);
	virtio_mmio_lock(&v->mmio);
	ok = virtio_mmio_load_locked(&v->mmio, r, &s) == 0;
	/* The guest has the CID in its sockets: another one would misaddress them all. */
	ok = snap_get_u64(r) == v->guest_cid && ok;
	port = snap_get_u32(r);
	ok = ok && vsock_local_port_ok(port) && snap_r_done(r);
	if (ok) {
		virtio_mmio_apply_locked(&v->mmio, &s);
		vsock_reset_all(v);
		v->next_local_port = port;
	}
	virtio_mmio_unlock(&v->mmio);
	if (!ok)
		snap_r_fail(r);
	return ok ? 0 : -EINVAL;
}
