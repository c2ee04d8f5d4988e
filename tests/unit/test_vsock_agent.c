// SPDX-License-Identifier: Apache-2.0
/*
 * The whole exec path minus KVM: the host's exec client (lib/exec.c) over a
 * host fd from the real virtio-vsock device (devices/virtio_vsock.c) to the
 * real guest agent (guest-init/agent.c), with the Linux guest driver
 * replaced by a small guest-side vsock transport written here.
 *
 *   host thread(s): virtio_vsock_connect(1024) -> exec_start_fd -> msvmm_exec_wait
 *        | host fd (socketpair end)
 *   device: virtio_vsock over fake guest RAM, driven through virtio-mmio
 *        | rx / tx / event virtqueues
 *   guest thread: a miniature virtio_transport_common.c: a listener on port
 *        1024, RESPONSE to the device's REQUEST, one bridge socket per
 *        connection, credit both ways, SHUTDOWN/RST both ways
 *        | bridge: an AF_UNIX stream socket connected to the agent's listener
 *   guest-init's agent_serve(): a separate process ("PID 1", forked before
 *        any thread exists, so no fork happens in a threaded process) that
 *        forks one agent_session() per accepted connection, as guest-init
 *        does for each vsock connection
 *
 * The guest transport follows Linux 6.1 (Debian's, with the skb rx path):
 * rx buffers are one writable descriptor of SKB_WITH_OVERHEAD(4096) bytes,
 * header included, refilled after each batch; tx packets are a header
 * descriptor plus a payload descriptor of at most 64 KiB and never more than
 * the device's credit (buf_alloc - (tx_cnt - fwd_cnt)); every packet carries
 * the guest's buf_alloc and fwd_cnt; a CREDIT_UPDATE goes out after
 * consuming when the free space since the last advertisement is below
 * 64 KiB or the receive queue ran empty (virtio_transport_stream_do_dequeue);
 * the agent closing its end sends SHUTDOWN(RCV|SEND) and waits for the
 * device's RST (virtio_transport_close; 8 s, then RST itself); the device's
 * SHUTDOWN(SEND) half-closes the bridge once everything received was written
 * to it, SHUTDOWN(RCV|SEND) with nothing left to deliver is answered with RST
 * and closes it.  The guest checks the device as strictly: a packet beyond
 * the credit it gave, data after SHUTDOWN(SEND), an rx buffer it did not
 * post, a malformed header all fail the test.
 *
 * Covered: exit status and both streams of a small command, and its
 * connection ended by the agent's close alone (guest SHUTDOWN, device RST);
 * 4 MiB each of stdout and stderr written at once, byte-exact; 4 MiB of
 * stdin through cat back exactly; SIGTERM -> 143; the timeout -> 137 and
 * timed_out; the host hanging up mid-command (device SHUTDOWN, guest RST, the
 * agent kills the command); 8 execs at once over 8 connections, 256 KiB each
 * way each, byte-exact; the stream tests again with an 8 KiB guest buffer.
 * VSOCK_AGENT_STATS=1 prints each test's packet counts.  After every test: no connection
 * left in the device or in the guest, no process left (the test is the
 * subreaper of everything the agent forks), no fd left open, no credit
 * violation or dropped packet counted by the device.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdio.h>
#include <sys/eventfd.h>
#include <sys/prctl.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "agent_proto.h"
#include "exec.h"
#include "testutil.h"
#include "virtio_vsock.h"
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
#define RX_BUF_STRIDE 0x1000ULL
#define TX_BUF 0x200000ULL
#define TX_BUF_STRIDE 0x11000ULL /* header at +0, payload at +0x40 */
#define TX_PAYLOAD_OFF 0x40ULL

#define QSIZE 256
#define EV_QSIZE 16
#define NR_EV_BUFS 4
#define TX_SLOTS 64
/* Linux 6.1: VIRTIO_VSOCK_DEFAULT_RX_BUF_SIZE = SKB_WITH_OVERHEAD(4096) on x86-64, header included. */
#define RX_BUF_LEN (4096u - 320u)
#define MAX_PKT_BUF (64u * 1024) /* VIRTIO_VSOCK_MAX_PKT_BUF_SIZE */
#define CLOSE_TIMEOUT_MS 8000    /* VSOCK_CLOSE_TIMEOUT */

#define GUEST_CID 3
#define MAX_GCONNS 32
#define BUF_LINUX (256u * 1024) /* Linux's default SO_VM_SOCKETS_BUFFER_SIZE */
#define BUF_SMALL (8u * 1024)
#define BIG (4u << 20)

#define SHUT_BOTH (VSOCK_SHUTDOWN_RCV | VSOCK_SHUTDOWN_SEND)

/* The guest's side of one connection (struct virtio_vsock_sock, reduced). */
struct gconn {
	bool used;
	uint32_t hport;           /* the device's port; ours is AGENT_PORT */
	int fd;                   /* the bridge to the agent, non-blocking */
	uint32_t rx_cnt, fwd_cnt, last_fwd_cnt;
	uint32_t peer_buf_alloc, peer_fwd_cnt, tx_cnt;
	uint8_t *q;               /* received, not yet written to the bridge: a ring of buf_alloc */
	uint32_t q_head, q_len;
	uint32_t peer_shutdown;
	bool rd_eof;              /* the agent closed: SHUTDOWN(RCV|SEND) sent, RST awaited */
	bool wr_shut;             /* shutdown(fd, SHUT_WR) after the device's SHUTDOWN(SEND) */
	uint64_t close_deadline;
};

struct guest {
	struct virtio_vsock *v;
	uint8_t *ram;
	struct guest_mem gm;
	uint32_t buf_alloc;
	int irq_fd;
	pthread_t thr;
	atomic_bool stop;
	uint16_t rx_avail, rx_used_seen, tx_avail, tx_used_seen, ev_avail;
	bool rx_posted[QSIZE];
	bool tx_busy[TX_SLOTS];
	unsigned int tx_next;
	struct gconn conns[MAX_GCONNS];
	atomic_uint nr_open;      /* guest connections in use */
	/* Statistics the tests look at. */
	atomic_ulong nr_accepted, nr_credit_updates, nr_credit_rx, nr_rst_rx, nr_rst_tx, nr_rw_rx, nr_rw_tx;
	atomic_uint max_in_flight; /* most device bytes the guest held at once */
	/* The first thing the device did wrong (the guest thread cannot ck_assert). */
	pthread_mutex_t err_lock;
	char err[512];
	atomic_bool failed;
	/* guest-init: agent_serve() on a Unix listener. */
	char dir[48], sock_path[100];
	pid_t agent_pid;
	int nr_fds_before;
};

static const struct exec_defaults defaults = { .default_cmd = "/bin/sh" };

/* ---- small utilities ---- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void gfail(struct guest *g, const char *fmt, ...)
{
	va_list ap;

	pthread_mutex_lock(&g->err_lock);
	if (!g->failed) {
		va_start(ap, fmt);
		vsnprintf(g->err, sizeof(g->err), fmt, ap);
		va_end(ap);
		fprintf(stderr, "guest: %s\n", g->err);
		g->failed = true;
	}
	pthread_mutex_unlock(&g->err_lock);
}

/* What went wrong in the guest, for failure messages. */
static const char *gerr(struct guest *g)
{
	return g->failed ? g->err : "no complaint";
}

static int count_fds(void)
{
	DIR *d = opendir("/proc/self/fd");
	struct dirent *de;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d)))
		n += de->d_name[0] != '.';
	closedir(d);
	return n - 1; /* the DIR's own */
}

/* Processes whose parent is ppid (from /proc). */
static int count_children(pid_t ppid)
{
	DIR *d = opendir("/proc");
	struct dirent *de;
	int n = 0;

	ck_assert_ptr_nonnull(d);
	while ((de = readdir(d))) {
		char path[300], buf[512], *p;
		int fd, r, pp;

		if (de->d_name[0] < '0' || de->d_name[0] > '9')
			continue;
		snprintf(path, sizeof(path), "/proc/%s/stat", de->d_name);
		fd = open(path, O_RDONLY | O_CLOEXEC);
		if (fd < 0)
			continue;
		r = (int)read(fd, buf, sizeof(buf) - 1);
		close(fd);
		if (r <= 0)
			continue;
		buf[r] = 0;
		p = strrchr(buf, ')'); /* "pid (comm) state ppid ..." */
		if (p && sscanf(p + 1, " %*c %d", &pp) == 1 && pp == ppid)
			n++;
	}
	closedir(d);
	return n;
}

/* Deterministic, non-periodic bytes. */
static void fill_random(uint8_t *buf, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 16);
	}
}

static void write_file(const char *path, const uint8_t *buf, size_t n)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
	close(fd);
}

/* Is the file at path exactly buf[0..n)? */
static bool file_is(const char *path, const uint8_t *buf, size_t n)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint8_t chunk[65536];
	size_t off = 0;
	bool same = fd >= 0;
	ssize_t r;

	while (same && (r = read(fd, chunk, sizeof(chunk))) > 0) {
		same = off + (size_t)r <= n && memcmp(chunk, buf + off, (size_t)r) == 0;
		off += (size_t)r;
	}
	if (fd >= 0)
		close(fd);
	return same && off == n;
}

static int open_out(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	return fd;
}

/* ---- the guest transport: sending ---- */

static void tx_reap(struct guest *g)
{
	uint16_t used = vd_used_idx(g->ram, TX_USED);

	while (g->tx_used_seen != used) {
		uint32_t id, len;

		vd_used_elem(g->ram, TX_USED, QSIZE, g->tx_used_seen, &id, &len);
		if (id % 2 || id / 2 >= TX_SLOTS || !g->tx_busy[id / 2])
			gfail(g, "device used tx head %u that is not in flight", id);
		else
			g->tx_busy[id / 2] = false;
		g->tx_used_seen++;
	}
}

/* A free tx slot; the device serves tx synchronously on the kick, so one is always free. */
static int tx_slot(struct guest *g)
{
	tx_reap(g);
	for (unsigned int i = 0; i < TX_SLOTS; i++) {
		unsigned int s = (g->tx_next + i) % TX_SLOTS;

		if (!g->tx_busy[s]) {
			g->tx_next = s + 1;
			g->tx_busy[s] = true;
			return (int)s;
		}
	}
	gfail(g, "device keeps every tx buffer");
	return -1;
}

static uint8_t *tx_payload(struct guest *g, int slot)
{
	return g->ram + TX_BUF + (uint64_t)slot * TX_BUF_STRIDE + TX_PAYLOAD_OFF;
}

/* Send the packet in slot (payload already there) and kick tx. */
static void tx_send_slot(struct guest *g, int slot, uint32_t hport, uint16_t op, uint32_t flags, uint32_t len,
			 uint32_t buf_alloc, uint32_t fwd_cnt)
{
	uint64_t base = TX_BUF + (uint64_t)slot * TX_BUF_STRIDE;
	uint16_t head = (uint16_t)(2 * slot);
	struct vsock_hdr h = { .src_cid = GUEST_CID, .dst_cid = VSOCK_HOST_CID,
			       .src_port = AGENT_PORT, .dst_port = hport, .len = len,
			       .type = VSOCK_TYPE_STREAM, .op = op, .flags = flags,
			       .buf_alloc = buf_alloc, .fwd_cnt = fwd_cnt };

	vd_hdr_put(g->ram + base, &h);
	vd_put_desc(g->ram, TX_DESC, head, base, VSOCK_HDR_SIZE, len ? VIRTQ_DESC_F_NEXT : 0,
		    (uint16_t)(head + 1));
	vd_put_desc(g->ram, TX_DESC, head + 1, base + TX_PAYLOAD_OFF, len, 0, 0);
	vd_avail_push(g->ram, TX_AVAIL, QSIZE, &g->tx_avail, head);
	virtio_mmio_notify(&g->v->mmio, VSOCK_QUEUE_TX);
	tx_reap(g);
}

/* A control packet on connection c (every packet carries our credit, as virtio_transport_inc_tx_pkt). */
static void gc_send(struct guest *g, struct gconn *c, uint16_t op, uint32_t flags)
{
	int s = tx_slot(g);

	if (s < 0)
		return;
	c->last_fwd_cnt = c->fwd_cnt;
	tx_send_slot(g, s, c->hport, op, flags, 0, g->buf_alloc, c->fwd_cnt);
	if (op == VSOCK_OP_CREDIT_UPDATE)
		g->nr_credit_updates++;
}

/* A RST for a connection the guest does not have (virtio_transport_reset_no_sock). */
static void send_rst_nosock(struct guest *g, uint32_t hport)
{
	int s = tx_slot(g);

	if (s >= 0)
		tx_send_slot(g, s, hport, VSOCK_OP_RST, 0, 0, 0, 0);
}

static uint32_t gc_credit(const struct gconn *c)
{
	uint32_t in_flight = c->tx_cnt - c->peer_fwd_cnt;

	return in_flight > c->peer_buf_alloc ? 0 : c->peer_buf_alloc - in_flight;
}

static void gc_free(struct guest *g, struct gconn *c)
{
	if (c->fd >= 0)
		close(c->fd);
	free(c->q);
	memset(c, 0, sizeof(*c));
	c->fd = -1;
	g->nr_open--;
}

/* ---- the guest transport: the bridge ---- */

/* Bytes the agent wrote: RW packets within the device's credit, at most 64 KiB each. */
static void gc_pull(struct guest *g, struct gconn *c)
{
	for (int round = 0; round < 8 && c->used && !c->rd_eof && !(c->peer_shutdown & VSOCK_SHUTDOWN_RCV);
	     round++) {
		uint32_t want = gc_credit(c);
		ssize_t n;
		int s;

		if (want > MAX_PKT_BUF)
			want = MAX_PKT_BUF;
		if (!want)
			return;
		s = tx_slot(g);
		if (s < 0)
			return;
		n = read(c->fd, tx_payload(g, s), want);
		if (n < 0 && errno == EINTR)
			n = 0;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) {
			g->tx_busy[s] = false;
			return;
		}
		if (n <= 0) {
			/* The agent's close(): SHUTDOWN(RCV|SEND), then wait for the device's RST. */
			g->tx_busy[s] = false;
			c->rd_eof = true;
			c->close_deadline = now_ms() + CLOSE_TIMEOUT_MS;
			gc_send(g, c, VSOCK_OP_SHUTDOWN, SHUT_BOTH);
			return;
		}
		c->tx_cnt += (uint32_t)n;
		c->last_fwd_cnt = c->fwd_cnt;
		tx_send_slot(g, s, c->hport, VSOCK_OP_RW, 0, (uint32_t)n, g->buf_alloc, c->fwd_cnt);
		g->nr_rw_tx++;
	}
}

/* Device bytes to the agent; credit back as virtio_transport_stream_do_dequeue does. */
static void gc_push(struct guest *g, struct gconn *c)
{
	uint32_t before = c->fwd_cnt, delta;

	while (c->q_len) {
		uint32_t chunk = g->buf_alloc - c->q_head;
		ssize_t n;

		if (chunk > c->q_len)
			chunk = c->q_len;
		n = send(c->fd, c->q + c->q_head, chunk, MSG_DONTWAIT | MSG_NOSIGNAL);
		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK))
			break;
		if (n <= 0) {
			/* The agent is gone: what it did not take is dropped, and counted as consumed. */
			c->fwd_cnt += c->q_len;
			c->q_len = 0;
			break;
		}
		c->q_head = (c->q_head + (uint32_t)n) % g->buf_alloc;
		c->q_len -= (uint32_t)n;
		c->fwd_cnt += (uint32_t)n;
	}
	if (!c->q_len)
		c->q_head = 0;
	delta = c->fwd_cnt - c->last_fwd_cnt;
	if (c->fwd_cnt != before && delta && (g->buf_alloc - delta < MAX_PKT_BUF || !c->q_len))
		gc_send(g, c, VSOCK_OP_CREDIT_UPDATE, 0);
}

/* What the state says is due now: half close, reset, the close timeout. */
static void gc_progress(struct guest *g, struct gconn *c)
{
	if (!c->used)
		return;
	gc_push(g, c);
	if ((c->peer_shutdown & VSOCK_SHUTDOWN_SEND) && !c->q_len && !c->wr_shut) {
		shutdown(c->fd, SHUT_WR);
		c->wr_shut = true;
	}
	if (c->peer_shutdown == SHUT_BOTH && !c->q_len) {
		gc_send(g, c, VSOCK_OP_RST, 0);
		g->nr_rst_tx++;
		gc_free(g, c);
		return;
	}
	if (c->rd_eof && now_ms() >= c->close_deadline) {
		gfail(g, "device did not answer SHUTDOWN(RCV|SEND) with RST within %d ms (port %u)",
		      CLOSE_TIMEOUT_MS, c->hport);
		gc_send(g, c, VSOCK_OP_RST, 0);
		gc_free(g, c);
		return;
	}
	gc_pull(g, c);
}

/* The listener on AGENT_PORT: a bridge to guest-init's agent_serve(), then RESPONSE. */
static void gc_accept(struct guest *g, const struct vsock_hdr *h)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct gconn *c = NULL;
	int fd;

	for (unsigned int i = 0; i < MAX_GCONNS && !c; i++)
		if (!g->conns[i].used)
			c = &g->conns[i];
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", g->sock_path);
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (!c || fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0 ||
	    fcntl(fd, F_SETFL, O_NONBLOCK) < 0) {
		gfail(g, "cannot accept a connection from port %u: %s", h->src_port,
		      c ? strerror(errno) : "no slot");
		if (fd >= 0)
			close(fd);
		send_rst_nosock(g, h->src_port);
		return;
	}
	memset(c, 0, sizeof(*c));
	c->used = true;
	c->fd = fd;
	c->hport = h->src_port;
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	c->q = malloc(g->buf_alloc);
	if (!c->q) {
		gfail(g, "out of memory");
		return;
	}
	g->nr_open++;
	g->nr_accepted++;
	gc_send(g, c, VSOCK_OP_RESPONSE, 0);
}

static struct gconn *gc_find(struct guest *g, uint32_t hport)
{
	for (unsigned int i = 0; i < MAX_GCONNS; i++)
		if (g->conns[i].used && g->conns[i].hport == hport)
			return &g->conns[i];
	return NULL;
}

/* One packet from the device (virtio_transport_recv_pkt, for the states a listener's child has). */
static void guest_packet(struct guest *g, const struct vsock_hdr *h, const uint8_t *data)
{
	struct gconn *c;
	uint32_t held;

	if (h->src_cid != VSOCK_HOST_CID || h->dst_cid != GUEST_CID || h->type != VSOCK_TYPE_STREAM) {
		gfail(g, "packet with src_cid %llu dst_cid %llu type %u", (unsigned long long)h->src_cid,
		      (unsigned long long)h->dst_cid, h->type);
		return;
	}
	if (h->op != VSOCK_OP_RW && h->len) {
		gfail(g, "op %u with %u payload bytes", h->op, h->len);
		return;
	}
	if (h->dst_port != AGENT_PORT) {
		gfail(g, "packet for guest port %u, which nothing listens on", h->dst_port);
		if (h->op != VSOCK_OP_RST)
			send_rst_nosock(g, h->src_port);
		return;
	}
	c = gc_find(g, h->src_port);
	if (!c) {
		if (h->op == VSOCK_OP_REQUEST)
			gc_accept(g, h);
		else if (h->op != VSOCK_OP_RST)
			send_rst_nosock(g, h->src_port);
		return;
	}
	/* virtio_transport_space_update(): every packet updates the peer's credit. */
	c->peer_buf_alloc = h->buf_alloc;
	c->peer_fwd_cnt = h->fwd_cnt;
	switch (h->op) {
	case VSOCK_OP_RW:
		if (c->peer_shutdown & VSOCK_SHUTDOWN_SEND) {
			gfail(g, "data after SHUTDOWN(SEND) on port %u", c->hport);
			return;
		}
		held = c->rx_cnt - c->fwd_cnt;
		if (h->len > g->buf_alloc - held) {
			gfail(g, "device overran the guest's credit on port %u: %u held, %u more, buf_alloc %u",
			      c->hport, held, h->len, g->buf_alloc);
			return;
		}
		for (uint32_t off = 0; off < h->len;) {
			uint32_t tail = (c->q_head + c->q_len) % g->buf_alloc;
			uint32_t chunk = g->buf_alloc - tail;

			if (chunk > h->len - off)
				chunk = h->len - off;
			memcpy(c->q + tail, data + off, chunk);
			c->q_len += chunk;
			off += chunk;
		}
		c->rx_cnt += h->len;
		held += h->len;
		if (held > g->max_in_flight)
			g->max_in_flight = held;
		g->nr_rw_rx++;
		return;
	case VSOCK_OP_CREDIT_UPDATE:
		g->nr_credit_rx++;
		return;
	case VSOCK_OP_CREDIT_REQUEST:
		gc_send(g, c, VSOCK_OP_CREDIT_UPDATE, 0);
		return;
	case VSOCK_OP_SHUTDOWN:
		c->peer_shutdown |= h->flags & SHUT_BOTH;
		return;
	case VSOCK_OP_RST:
		g->nr_rst_rx++;
		gc_free(g, c);
		return;
	default:
		gfail(g, "op %u on an established connection (port %u)", h->op, c->hport);
		return;
	}
}

/* ---- the guest transport: rx ---- */

static void rx_post(struct guest *g, uint16_t id)
{
	uint64_t base = RX_BUF + (uint64_t)id * RX_BUF_STRIDE;

	memset(g->ram + base, 0xa5, RX_BUF_LEN);
	vd_put_desc(g->ram, RX_DESC, id, base, RX_BUF_LEN, VIRTQ_DESC_F_WRITE, 0);
	g->rx_posted[id] = true;
	vd_avail_push(g->ram, RX_AVAIL, QSIZE, &g->rx_avail, id);
}

/* Every used rx buffer: check, handle, then refill and kick (virtio_transport_rx_work). */
static bool rx_collect(struct guest *g)
{
	uint16_t used = vd_used_idx(g->ram, RX_USED), refill[QSIZE];
	unsigned int nr = 0;

	while (g->rx_used_seen != used && nr < QSIZE) {
		uint32_t id, len;
		struct vsock_hdr h;
		uint64_t base;

		vd_used_elem(g->ram, RX_USED, QSIZE, g->rx_used_seen, &id, &len);
		g->rx_used_seen++;
		if (id >= QSIZE || !g->rx_posted[id]) {
			gfail(g, "device used rx head %u that is not a posted buffer", id);
			continue;
		}
		g->rx_posted[id] = false;
		refill[nr++] = (uint16_t)id;
		base = RX_BUF + (uint64_t)id * RX_BUF_STRIDE;
		vd_hdr_get(g->ram + base, &h);
		if (len < VSOCK_HDR_SIZE || len > RX_BUF_LEN || h.len != len - VSOCK_HDR_SIZE) {
			gfail(g, "rx buffer used with %u bytes, header says %u", len, h.len);
			continue;
		}
		guest_packet(g, &h, g->ram + base + VSOCK_HDR_SIZE);
	}
	for (unsigned int i = 0; i < nr; i++)
		rx_post(g, refill[i]);
	if (nr)
		virtio_mmio_notify(&g->v->mmio, VSOCK_QUEUE_RX);
	return nr > 0;
}

static void guest_irq(void *opaque)
{
	struct guest *g = opaque;
	uint64_t one = 1;

	if (write(g->irq_fd, &one, sizeof(one)) < 0) {
		/* EAGAIN: the counter is already non-zero, the guest will look */
	}
}

static void *guest_main(void *arg)
{
	struct guest *g = arg;

	while (!g->stop) {
		struct pollfd p[2 + MAX_GCONNS];
		nfds_t n = 2;
		uint64_t cnt;

		p[0] = (struct pollfd){ .fd = virtio_vsock_fd(g->v), .events = POLLIN };
		p[1] = (struct pollfd){ .fd = g->irq_fd, .events = POLLIN };
		for (unsigned int i = 0; i < MAX_GCONNS; i++) {
			struct gconn *c = &g->conns[i];
			short ev = 0;

			if (!c->used)
				continue;
			if (!c->rd_eof && !(c->peer_shutdown & VSOCK_SHUTDOWN_RCV) && gc_credit(c))
				ev |= POLLIN;
			if (c->q_len)
				ev |= POLLOUT;
			p[n++] = (struct pollfd){ .fd = c->fd, .events = ev };
		}
		if (poll(p, n, 10) < 0 && errno != EINTR) {
			gfail(g, "poll: %s", strerror(errno));
			break;
		}
		if (p[0].revents)
			virtio_vsock_poll(g->v);
		/* After a device error the guest resets its connections, so no host exec waits on them. */
		for (unsigned int i = 0; i < MAX_GCONNS && g->failed; i++) {
			if (g->conns[i].used) {
				gc_send(g, &g->conns[i], VSOCK_OP_RST, 0);
				gc_free(g, &g->conns[i]);
			}
		}
		if (p[1].revents && read(g->irq_fd, &cnt, sizeof(cnt)) < 0) {
			/* EAGAIN: nothing new */
		}
		while (rx_collect(g))
			;
		/* Every connection, also those accepted in this round and those waiting for RST. */
		for (unsigned int i = 0; i < MAX_GCONNS; i++)
			gc_progress(g, &g->conns[i]);
	}
	return NULL;
}

/* ---- bring-up and teardown ---- */

/* What Linux's virtio_vsock_probe() does, in register writes; then rx and event buffers. */
static void guest_bring_up(struct guest *g)
{
	uint64_t want = vd_device_features(g->v) & ~(1ULL << VIRTIO_RING_F_EVENT_IDX);
	const uint32_t ad = VIRTIO_STATUS_ACKNOWLEDGE | VIRTIO_STATUS_DRIVER;

	vd_wr(g->v, VIRTIO_MMIO_STATUS, 0);
	ck_assert_uint_eq(vd_rd(g->v, VIRTIO_MMIO_MAGIC_VALUE), VIRTIO_MMIO_MAGIC);
	ck_assert_uint_eq(vd_rd(g->v, VIRTIO_MMIO_DEVICE_ID), VIRTIO_ID_VSOCK);
	vd_wr(g->v, VIRTIO_MMIO_STATUS, VIRTIO_STATUS_ACKNOWLEDGE);
	vd_wr(g->v, VIRTIO_MMIO_STATUS, ad);
	vd_driver_features(g->v, want);
	vd_wr(g->v, VIRTIO_MMIO_STATUS, ad | VIRTIO_STATUS_FEATURES_OK);
	ck_assert_uint_eq(vd_rd(g->v, VIRTIO_MMIO_STATUS), ad | VIRTIO_STATUS_FEATURES_OK);
	ck_assert(vd_queue_setup(g->v, VSOCK_QUEUE_RX, QSIZE, RX_DESC, RX_AVAIL, RX_USED));
	ck_assert(vd_queue_setup(g->v, VSOCK_QUEUE_TX, QSIZE, TX_DESC, TX_AVAIL, TX_USED));
	ck_assert(vd_queue_setup(g->v, VSOCK_QUEUE_EVENT, EV_QSIZE, EV_DESC, EV_AVAIL, EV_USED));
	vd_wr(g->v, VIRTIO_MMIO_STATUS, ad | VIRTIO_STATUS_FEATURES_OK | VIRTIO_STATUS_DRIVER_OK);
	for (uint16_t i = 0; i < NR_EV_BUFS; i++) {
		vd_put_desc(g->ram, EV_DESC, i, EV_BUF + 8 * i, 4, VIRTQ_DESC_F_WRITE, 0);
		vd_avail_push(g->ram, EV_AVAIL, EV_QSIZE, &g->ev_avail, i);
	}
	virtio_mmio_notify(&g->v->mmio, VSOCK_QUEUE_EVENT);
	for (uint16_t i = 0; i < QSIZE; i++)
		rx_post(g, i);
	virtio_mmio_notify(&g->v->mmio, VSOCK_QUEUE_RX);
}

/*
 * guest-init's agent: agent_serve() on a Unix listener, in a process forked
 * while this one still has a single thread; it forks one agent_session() per
 * connection, as PID 1 does for each accepted vsock connection.
 */
static void agent_server_start(struct guest *g)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	int lfd;

	snprintf(g->sock_path, sizeof(g->sock_path), "%s/agent.sock", g->dir);
	snprintf(sa.sun_path, sizeof(sa.sun_path), "%s", g->sock_path);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&sa, sizeof(sa)), 0);
	ck_assert_int_eq(listen(lfd, 64), 0);
	g->agent_pid = fork();
	ck_assert_int_ge(g->agent_pid, 0);
	if (g->agent_pid == 0) {
		agent_serve(lfd, NULL, NULL);
		_exit(1);
	}
	close(lfd);
}

static struct guest *guest_start(uint32_t buf_alloc)
{
	struct guest *g = calloc(1, sizeof(*g));

	ck_assert_ptr_nonnull(g);
	/* Everything the agent forks, orphans included, ends up ours to check and reap. */
	ck_assert_int_eq(prctl(PR_SET_CHILD_SUBREAPER, 1), 0);
	g->nr_fds_before = count_fds();
	pthread_mutex_init(&g->err_lock, NULL);
	strcpy(g->dir, "/tmp/msvmm-vsock-agent-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(g->dir));
	agent_server_start(g);
	g->buf_alloc = buf_alloc;
	g->ram = calloc(1, RAM_SIZE);
	g->v = calloc(1, sizeof(*g->v));
	ck_assert(g->ram && g->v);
	for (unsigned int i = 0; i < MAX_GCONNS; i++)
		g->conns[i].fd = -1;
	guest_mem_init_from(&g->gm, g->ram, RAM_SIZE);
	ck_assert_int_eq(virtio_vsock_init(g->v, &g->gm, GUEST_CID), 0);
	g->irq_fd = eventfd(0, EFD_NONBLOCK | EFD_CLOEXEC);
	ck_assert_int_ge(g->irq_fd, 0);
	virtio_mmio_set_irq(&g->v->mmio, guest_irq, g);
	guest_bring_up(g);
	ck_assert_int_eq(pthread_create(&g->thr, NULL, guest_main, g), 0);
	return g;
}

static void rm_dir(const char *dir)
{
	char cmd[200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	ck_assert_int_eq(system(cmd), 0);
}

/* Everything closed, reaped and freed; the device and the guest agree nothing is open. */
static void guest_finish(struct guest *g)
{
	uint64_t t0 = now_ms();
	unsigned int dev_conns;
	int kids = -1, st;

	/* A closing connection takes one more round trip (SHUTDOWN, RST) after the host saw EXIT. */
	while ((dev_conns = virtio_vsock_nr_conns(g->v)) || g->nr_open) {
		if (now_ms() - t0 > 5000 || g->failed)
			break;
		usleep(1000);
	}
	ck_assert_msg(!g->failed, "guest: %s", g->err);
	ck_assert_msg(dev_conns == 0 && g->nr_open == 0, "connections left: device %u, guest %u", dev_conns,
		      (unsigned int)g->nr_open);
	/* The agent's sessions have exited and been reaped; nothing they started is left. */
	for (t0 = now_ms(); now_ms() - t0 < 5000; usleep(2000)) {
		pid_t r;

		/* PID 1's other job: reap what the commands left behind once it has died. */
		while ((r = waitpid(-1, &st, WNOHANG)) > 0)
			ck_assert_msg(r != g->agent_pid, "guest-init's agent_serve() died (status %#x)", st);
		kids = count_children(g->agent_pid) + count_children(getpid());
		if (kids == 1) /* the agent server itself */
			break;
	}
	ck_assert_msg(kids == 1, "%d processes left behind", kids - 1);
	g->stop = true;
	ck_assert_int_eq(pthread_join(g->thr, NULL), 0);
	/* Every connection ended with a RST, the device's (after our SHUTDOWN) or ours (after its). */
	ck_assert_uint_eq(g->nr_rst_rx + g->nr_rst_tx, g->nr_accepted);
	if (getenv("VSOCK_AGENT_STATS"))
		fprintf(stderr, "connections %lu, RST from device %lu, to device %lu; RW in %lu, out %lu; "
			"CREDIT_UPDATE out %lu, in %lu; most held %u\n",
			g->nr_accepted, g->nr_rst_rx, g->nr_rst_tx, g->nr_rw_rx, g->nr_rw_tx,
			g->nr_credit_updates, g->nr_credit_rx, (unsigned int)g->max_in_flight);
	ck_assert_msg(!g->failed, "guest: %s", g->err);
	ck_assert_uint_eq(g->v->nr_credit_violations, 0);
	ck_assert_uint_eq(g->v->nr_dropped, 0);
	virtio_vsock_destroy(g->v);
	close(g->irq_fd);
	kill(g->agent_pid, SIGKILL);
	ck_assert_int_eq(waitpid(g->agent_pid, &st, 0), g->agent_pid);
	ck_assert_int_eq(waitpid(-1, &st, WNOHANG), -1);
	ck_assert_int_eq(errno, ECHILD);
	rm_dir(g->dir);
	ck_assert_int_eq(count_fds(), g->nr_fds_before);
	pthread_mutex_destroy(&g->err_lock);
	free(g->v);
	free(g->ram);
	free(g);
}

static char *gpath(struct guest *g, const char *name)
{
	static char p[8][160];
	static atomic_uint i;
	unsigned int k = atomic_fetch_add(&i, 1) % 8;

	snprintf(p[k], sizeof(p[k]), "%s/%s", g->dir, name);
	return p[k];
}

/* ---- the host side: what msvmm_exec_start() does in a sandbox, minus the VM ---- */

static int host_start(struct guest *g, const msvmm_exec_opts *o, msvmm_exec **ex, msvmm_error *err)
{
	int fd = virtio_vsock_connect(g->v, AGENT_PORT, 2000);

	if (fd < 0) {
		snprintf(err->message, sizeof(err->message), "virtio_vsock_connect: %s", strerror(-fd));
		err->code = MSVMM_EIO;
		return fd;
	}
	return exec_start_fd(fd, &defaults, o, ex, err);
}

static int host_run(struct guest *g, const msvmm_exec_opts *o, msvmm_result *res, msvmm_error *err)
{
	msvmm_exec *ex;
	int rc = host_start(g, o, &ex, err);

	if (rc)
		return rc;
	rc = msvmm_exec_wait(ex, res, err);
	msvmm_exec_free(ex);
	return rc;
}

struct capture {
	pthread_mutex_t lock;
	char out[256], err[256];
	size_t nout, nerr;
	bool overflow;
};

static void capture_fn(void *opaque, int stream, const void *data, size_t len)
{
	struct capture *c = opaque;
	char *dst = stream == 1 ? c->out : c->err;
	size_t *n = stream == 1 ? &c->nout : &c->nerr;

	pthread_mutex_lock(&c->lock);
	if (*n + len >= sizeof(c->out)) {
		c->overflow = true;
	} else {
		memcpy(dst + *n, data, len);
		*n += len;
	}
	pthread_mutex_unlock(&c->lock);
}

/* ---- tests ---- */

START_TEST(test_status_and_streams)
{
	struct guest *g = guest_start(BUF_LINUX);
	struct capture cap = { .lock = PTHREAD_MUTEX_INITIALIZER };
	msvmm_exec *ex;
	uint64_t t0;
	msvmm_exec_opts o;
	msvmm_result res;
	msvmm_error err = tu_err();

	msvmm_exec_opts_init(&o);
	o.argv = (const char *[]){ "sh", "-c", "echo out; echo err >&2; exit 3", NULL };
	o.on_output = capture_fn;
	o.opaque = &cap;
	ck_assert_msg(host_start(g, &o, &ex, &err) == 0, "start: %s; guest: %s", err.message, gerr(g));
	ck_assert_msg(msvmm_exec_wait(ex, &res, &err) == 0, "wait: %s; guest: %s", err.message, gerr(g));
	/*
	 * The host end is still open: the agent's close after EXIT alone ends the
	 * connection (guest SHUTDOWN(RCV|SEND), the device's RST).
	 */
	for (t0 = now_ms(); !g->nr_rst_rx && now_ms() - t0 < 5000;)
		usleep(1000);
	ck_assert_uint_eq(g->nr_rst_rx, 1);
	ck_assert_uint_eq(virtio_vsock_nr_conns(g->v), 0);
	msvmm_exec_free(ex);
	ck_assert_int_eq(res.exited, 1);
	ck_assert_int_eq(res.exit_code, 3);
	ck_assert_int_eq(res.status, 3);
	ck_assert(!cap.overflow);
	ck_assert_str_eq(cap.out, "out\n");
	ck_assert_str_eq(cap.err, "err\n");
	ck_assert_uint_eq(g->nr_accepted, 1);
	guest_finish(g);
}
END_TEST

/* stdout and stderr of BIG bytes each, written at once so their frames interleave. */
static void streams_big(uint32_t buf_alloc)
{
	struct guest *g = guest_start(buf_alloc);
	uint8_t *a = malloc(BIG), *b = malloc(BIG);
	char script[600];
	msvmm_exec_opts o;
	msvmm_result res;
	msvmm_error err = tu_err();

	ck_assert(a && b);
	fill_random(a, BIG, 1);
	fill_random(b, BIG, 2);
	write_file(gpath(g, "a"), a, BIG);
	write_file(gpath(g, "b"), b, BIG);
	snprintf(script, sizeof(script), "cat '%s' & cat '%s' >&2; wait", gpath(g, "a"), gpath(g, "b"));
	msvmm_exec_opts_init(&o);
	o.argv = (const char *[]){ "sh", "-c", script, NULL };
	o.stdout_fd = open_out(gpath(g, "oa"));
	o.stderr_fd = open_out(gpath(g, "ob"));
	ck_assert_msg(host_run(g, &o, &res, &err) == 0, "exec: %s; guest: %s", err.message, gerr(g));
	close(o.stdout_fd);
	close(o.stderr_fd);
	ck_assert_int_eq(res.exited, 1);
	ck_assert_int_eq(res.status, 0);
	ck_assert_msg(file_is(gpath(g, "oa"), a, BIG), "stdout differs");
	ck_assert_msg(file_is(gpath(g, "ob"), b, BIG), "stderr differs");
	/* 8 MiB through the device's 64 KiB window: the device gave credit back all along. */
	ck_assert_uint_ge(g->nr_credit_rx, (2 * BIG) / VSOCK_CONN_BUF - 1);
	ck_assert_uint_gt(g->nr_rw_tx, (2 * BIG) / MAX_PKT_BUF);
	free(a);
	free(b);
	guest_finish(g);
}

/* BIG bytes of stdin through cat, back exactly. */
static void stdin_big(uint32_t buf_alloc)
{
	struct guest *g = guest_start(buf_alloc);
	uint8_t *in = malloc(BIG);
	msvmm_exec_opts o;
	msvmm_result res;
	msvmm_error err = tu_err();

	ck_assert_ptr_nonnull(in);
	fill_random(in, BIG, 3);
	write_file(gpath(g, "in"), in, BIG);
	msvmm_exec_opts_init(&o);
	o.argv = (const char *[]){ "cat", NULL };
	o.stdin_fd = open(gpath(g, "in"), O_RDONLY | O_CLOEXEC);
	o.stdout_fd = open_out(gpath(g, "out"));
	ck_assert_int_ge(o.stdin_fd, 0);
	ck_assert_msg(host_run(g, &o, &res, &err) == 0, "exec: %s; guest: %s", err.message, gerr(g));
	close(o.stdin_fd);
	close(o.stdout_fd);
	ck_assert_int_eq(res.status, 0);
	ck_assert_msg(file_is(gpath(g, "out"), in, BIG), "stdout is not the stdin");
	/* The device never had more in the guest than the guest gave, and the guest gave it back. */
	ck_assert_uint_le(g->max_in_flight, buf_alloc);
	ck_assert_uint_ge(g->nr_credit_updates, BIG / buf_alloc);
	free(in);
	guest_finish(g);
}

START_TEST(test_streams_4mib_exact)
{
	streams_big(BUF_LINUX);
}
END_TEST

START_TEST(test_stdin_4mib_exact)
{
	stdin_big(BUF_LINUX);
}
END_TEST

START_TEST(test_small_guest_buffer_streams)
{
	streams_big(BUF_SMALL);
}
END_TEST

START_TEST(test_small_guest_buffer_stdin)
{
	stdin_big(BUF_SMALL);
}
END_TEST

struct later_signal {
	msvmm_exec *ex;
	struct capture *cap;
	int sig, rc;
};

/* msx's Ctrl-C: from another thread while msvmm_exec_wait pumps, once the command is up. */
static void *signal_later(void *arg)
{
	struct later_signal *l = arg;
	bool up = false;

	for (int i = 0; i < 5000 && !up; i++) {
		pthread_mutex_lock(&l->cap->lock);
		up = l->cap->nout > 0;
		pthread_mutex_unlock(&l->cap->lock);
		if (!up)
			usleep(1000);
	}
	l->rc = msvmm_exec_signal(l->ex, l->sig);
	return NULL;
}

START_TEST(test_sigterm_143)
{
	struct guest *g = guest_start(BUF_LINUX);
	struct capture cap = { .lock = PTHREAD_MUTEX_INITIALIZER };
	struct later_signal l = { .cap = &cap, .sig = SIGTERM, .rc = -1 };
	msvmm_exec_opts o;
	msvmm_result res;
	msvmm_error err = tu_err();
	pthread_t t;

	msvmm_exec_opts_init(&o);
	o.argv = (const char *[]){ "sh", "-c", "echo up; sleep 100", NULL };
	o.on_output = capture_fn;
	o.opaque = &cap;
	ck_assert_msg(host_start(g, &o, &l.ex, &err) == 0, "start: %s; guest: %s", err.message, gerr(g));
	ck_assert_int_eq(pthread_create(&t, NULL, signal_later, &l), 0);
	ck_assert_msg(msvmm_exec_wait(l.ex, &res, &err) == 0, "wait: %s; guest: %s", err.message, gerr(g));
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	msvmm_exec_free(l.ex);
	ck_assert_int_eq(l.rc, 0);
	ck_assert_str_eq(cap.out, "up\n");
	ck_assert_int_eq(res.signaled, 1);
	ck_assert_int_eq(res.term_signal, SIGTERM);
	ck_assert_int_eq(res.status, 143);
	guest_finish(g);
}
END_TEST

START_TEST(test_timeout_137)
{
	struct guest *g = guest_start(BUF_LINUX);
	msvmm_exec_opts o;
	msvmm_result res;
	msvmm_error err = tu_err();
	uint64_t t0 = now_ms();

	msvmm_exec_opts_init(&o);
	o.argv = (const char *[]){ "sleep", "100", NULL };
	o.timeout_ms = 300;
	ck_assert_int_eq(host_run(g, &o, &res, &err), -MSVMM_ETIMEDOUT);
	ck_assert_uint_lt(now_ms() - t0, 5000);
	ck_assert_int_eq(res.timed_out, 1);
	ck_assert_int_eq(res.signaled, 1);
	ck_assert_int_eq(res.term_signal, SIGKILL);
	/* 137 as reported by the agent, not the grace period's "did not report it killed". */
	ck_assert_int_eq(res.status, 137);
	ck_assert_err(err, MSVMM_ETIMEDOUT, "was killed");
	guest_finish(g);
}
END_TEST

/*
 * The host hangs up while the command runs: the device's SHUTDOWN(RCV|SEND)
 * closes the bridge, the guest answers with RST, and the agent, seeing the
 * connection gone, kills the command (guest_finish() checks none is left).
 */
START_TEST(test_host_hangup_kills_command)
{
	struct guest *g = guest_start(BUF_LINUX);
	char script[300];
	struct stat st;
	msvmm_exec_opts o;
	msvmm_error err = tu_err();
	msvmm_exec *ex;
	uint64_t t0;

	snprintf(script, sizeof(script), "echo $$ >'%s.tmp'; mv '%s.tmp' '%s'; exec sleep 100",
		 gpath(g, "pid"), gpath(g, "pid"), gpath(g, "pid"));
	msvmm_exec_opts_init(&o);
	o.argv = (const char *[]){ "sh", "-c", script, NULL };
	ck_assert_msg(host_start(g, &o, &ex, &err) == 0, "start: %s; guest: %s", err.message, gerr(g));
	for (t0 = now_ms(); stat(gpath(g, "pid"), &st) < 0 && now_ms() - t0 < 5000;)
		usleep(1000);
	ck_assert_msg(stat(gpath(g, "pid"), &st) == 0, "the command did not start");
	msvmm_exec_free(ex);
	for (t0 = now_ms(); g->nr_open && now_ms() - t0 < 5000;)
		usleep(1000);
	ck_assert_uint_eq(g->nr_open, 0);
	ck_assert_uint_eq(g->nr_rst_tx, 1);
	ck_assert_uint_eq(g->nr_rst_rx, 0);
	guest_finish(g);
}
END_TEST

#define NR_PAR 8
#define PAR_LEN (256u * 1024)

struct par {
	struct guest *g;
	char in[160], out[160];
	msvmm_result res;
	msvmm_error err;
	int rc;
};

static void *par_main(void *arg)
{
	struct par *p = arg;
	msvmm_exec_opts o;

	msvmm_exec_opts_init(&o);
	o.argv = (const char *[]){ "cat", NULL };
	o.stdin_fd = open(p->in, O_RDONLY | O_CLOEXEC);
	o.stdout_fd = open(p->out, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (o.stdin_fd < 0 || o.stdout_fd < 0)
		p->rc = -1000;
	else
		p->rc = host_run(p->g, &o, &p->res, &p->err);
	if (o.stdin_fd >= 0)
		close(o.stdin_fd);
	if (o.stdout_fd >= 0)
		close(o.stdout_fd);
	return NULL;
}

START_TEST(test_parallel_8)
{
	struct guest *g = guest_start(BUF_LINUX);
	struct par p[NR_PAR];
	pthread_t t[NR_PAR];
	uint8_t *data[NR_PAR];

	for (int i = 0; i < NR_PAR; i++) {
		char name[16];

		p[i] = (struct par){ .g = g, .err = tu_err() };
		data[i] = malloc(PAR_LEN);
		ck_assert_ptr_nonnull(data[i]);
		fill_random(data[i], PAR_LEN, 100 + (uint32_t)i);
		snprintf(name, sizeof(name), "in%d", i);
		snprintf(p[i].in, sizeof(p[i].in), "%s", gpath(g, name));
		snprintf(name, sizeof(name), "out%d", i);
		snprintf(p[i].out, sizeof(p[i].out), "%s", gpath(g, name));
		write_file(p[i].in, data[i], PAR_LEN);
	}
	for (int i = 0; i < NR_PAR; i++)
		ck_assert_int_eq(pthread_create(&t[i], NULL, par_main, &p[i]), 0);
	for (int i = 0; i < NR_PAR; i++)
		ck_assert_int_eq(pthread_join(t[i], NULL), 0);
	for (int i = 0; i < NR_PAR; i++) {
		ck_assert_msg(p[i].rc == 0, "exec %d: rc %d: %s; guest: %s", i, p[i].rc, p[i].err.message, gerr(g));
		ck_assert_int_eq(p[i].res.status, 0);
		ck_assert_msg(file_is(p[i].out, data[i], PAR_LEN), "exec %d: stdout is not its stdin", i);
		free(data[i]);
	}
	ck_assert_uint_eq(g->nr_accepted, NR_PAR);
	guest_finish(g);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("vsock-agent");
	TCase *tc = tcase_create("exec over virtio-vsock");

	signal(SIGPIPE, SIG_IGN);
	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, test_status_and_streams);
	tcase_add_test(tc, test_streams_4mib_exact);
	tcase_add_test(tc, test_stdin_4mib_exact);
	tcase_add_test(tc, test_sigterm_143);
	tcase_add_test(tc, test_timeout_137);
	tcase_add_test(tc, test_host_hangup_kills_command);
	tcase_add_test(tc, test_parallel_8);
	tcase_add_test(tc, test_small_guest_buffer_streams);
	tcase_add_test(tc, test_small_guest_buffer_stdin);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
