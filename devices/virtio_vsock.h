/* SPDX-License-Identifier: Apache-2.0 */
/*
 * virtio-vsock (device id 19) over virtio-mmio, with the host end of every
 * connection a stream socket in the VMM process: no vhost.
 *
 * Queues: 0 rx (device -> guest packets), 1 tx (guest -> device), 2 event
 * (buffers are held; used only for TRANSPORT_RESET).  Stream sockets only
 * (no SEQPACKET, no DGRAM).  Config space: le64 guest_cid, read-only.
 *
 * Host side.  Each connection's host end is one end of an AF_UNIX stream
 * socketpair (or an accepted/connected Unix socket for the Firecracker-style
 * socket below); the device holds the other end, non-blocking, on its own
 * epoll set.  Bytes written to the host fd reach the guest socket, bytes the
 * guest sends can be read from it, shutdown(SHUT_WR) on it is a half close
 * (the guest reads EOF), and close() resets the connection.
 *   - virtio_vsock_connect(): host -> guest port, blocking until the guest
 *     answers (RESPONSE: an fd; RST: -ECONNREFUSED; no answer: -ETIMEDOUT).
 *   - virtio_vsock_listen() + virtio_vsock_accept(): guest -> host port.
 *   - virtio_vsock_set_uds(): Firecracker's hybrid vsock.  The device
 *     listens on a Unix socket; a client connects and writes
 *     "CONNECT <port>\n" (case-insensitive, at most 32 bytes), the device
 *     answers "OK <host_port>\n" once the guest accepted, or closes the
 *     socket.  A guest connection to host port P that no listen() claims is
 *     connected to the Unix socket "<path>_<P>", else refused with RST.
 *
 * Guest-facing rules (virtio 1.x 5.10, Linux virtio_transport_common.c):
 *   - a tx chain must hold the 44-byte header in its readable part, hdr.len
 *     <= VSOCK_MAX_PKT and <= the readable bytes after the header, and no
 *     writable part; an rx chain needs at least VSOCK_HDR_SIZE + 1 writable
 *     bytes and no readable part.  Anything else is a queue violation: the
 *     device goes to DEVICE_NEEDS_RESET and every connection is reset;
 *   - packets whose src_cid is not the guest's or whose dst_cid is not the
 *     host's are dropped; a packet of another type than STREAM, an unknown
 *     op, or any packet for a connection in the wrong state is answered with
 *     RST (never a reply to a RST);
 *   - credit: the device advertises buf_alloc = VSOCK_CONN_BUF per
 *     connection; a guest that sends more than its credit allows gets the
 *     connection reset, so host memory per connection never exceeds
 *     VSOCK_CONN_BUF.  The device never sends more than the guest's
 *     advertised credit (peer_buf_alloc - (tx_cnt - peer_fwd_cnt)), and a
 *     credit figure that is inconsistent counts as zero;
 *   - at most VSOCK_MAX_CONNS connections (a reset connection keeps its
 *     slot until its RST reached the guest, so that RST is never lost) and
 *     VSOCK_MAX_PENDING_RST queued resets for unknown connections (beyond
 *     that those are dropped: a flooding guest only slows itself down);
 *   - a host-initiated REQUEST unanswered after VSOCK_CONNECT_TIMEOUT_MS is
 *     reset by the device, and so is a connection whose SHUTDOWN(RCV|SEND)
 *     the guest does not follow with RST within VSOCK_CLOSE_TIMEOUT_MS of
 *     having read every byte sent to it (Linux answers with RST only once
 *     its reader has drained the socket; resetting earlier would lose the
 *     data of a slow reader).  A guest that never reads keeps its slot: it
 *     only uses up its own VSOCK_MAX_CONNS;
 *   - after the guest's SHUTDOWN(RCV) the device sends it no more data.
 *
 * Threading: every entry point takes the transport lock; blocking calls
 * (connect, accept) wait on a condition variable tied to it.  The owner
 * watches virtio_vsock_fd() for EPOLLIN on its event loop and calls
 * virtio_vsock_poll() when it is readable.
 */
#ifndef MSVMM_VIRTIO_VSOCK_H
#define MSVMM_VIRTIO_VSOCK_H

#include <pthread.h>
#include <stdbool.h>
#include <stdint.h>

#include "guest_mem.h"
#include "virtio_mmio.h"
#include "virtqueue.h"

#define VIRTIO_ID_VSOCK 19

#define VSOCK_QUEUE_RX 0
#define VSOCK_QUEUE_TX 1
#define VSOCK_QUEUE_EVENT 2
#define VSOCK_QUEUE_SIZE 256

#define VSOCK_HOST_CID 2
#define VSOCK_HDR_SIZE 44
#define VSOCK_MAX_PKT (64u * 1024)
#define VSOCK_CONN_BUF (64u * 1024)
#define VSOCK_MAX_CONNS 128
#define VSOCK_MAX_LISTEN 16     /* host ports with listen() */
#define VSOCK_MAX_BACKLOG 16    /* accepted-but-not-taken connections per port */
#define VSOCK_MAX_PENDING_RST 64
#define VSOCK_MAX_HANDSHAKES 16 /* Unix-socket clients still sending CONNECT */
#define VSOCK_CONNECT_TIMEOUT_MS 2000
#define VSOCK_CLOSE_TIMEOUT_MS 2000
/* Host ports the device picks for host-initiated connections: [2^30, 2^31). */
#define VSOCK_LOCAL_PORT_BASE (1u << 30)

#define VSOCK_TYPE_STREAM 1

#define VSOCK_OP_INVALID 0
#define VSOCK_OP_REQUEST 1
#define VSOCK_OP_RESPONSE 2
#define VSOCK_OP_RST 3
#define VSOCK_OP_SHUTDOWN 4
#define VSOCK_OP_RW 5
#define VSOCK_OP_CREDIT_UPDATE 6
#define VSOCK_OP_CREDIT_REQUEST 7

#define VSOCK_SHUTDOWN_RCV 1
#define VSOCK_SHUTDOWN_SEND 2

#define VSOCK_EVENT_TRANSPORT_RESET 0

/* The 44-byte packet header, decoded (little-endian on the wire). */
struct vsock_hdr {
	uint64_t src_cid, dst_cid;
	uint32_t src_port, dst_port;
	uint32_t len;
	uint16_t type, op;
	uint32_t flags;
	uint32_t buf_alloc, fwd_cnt;
};

void vsock_hdr_decode(const uint8_t in[VSOCK_HDR_SIZE], struct vsock_hdr *h);
void vsock_hdr_encode(const struct vsock_hdr *h, uint8_t out[VSOCK_HDR_SIZE]);

enum vsock_conn_state {
	VSOCK_CONN_FREE = 0,
	VSOCK_CONN_CONNECTING,  /* host-initiated: REQUEST queued or sent */
	VSOCK_CONN_ESTABLISHED,
	VSOCK_CONN_CLOSING,     /* SHUTDOWN(RCV|SEND) sent, waiting for RST */
	VSOCK_CONN_RESET,       /* host end closed; a RST is owed to the guest */
};

struct vsock_conn {
	enum vsock_conn_state state;
	uint32_t host_port, guest_port;
	int fd;               /* the device's end, non-blocking */
	bool uds;             /* fd is a Unix-socket client: answer "OK <port>\n" */
	/* Credit: what the guest said, what we sent, what we consumed. */
	uint32_t peer_buf_alloc, peer_fwd_cnt;
	uint32_t tx_cnt;      /* bytes sent to the guest */
	uint32_t rx_cnt;      /* bytes received from the guest */
	uint32_t fwd_cnt;     /* of those, bytes written to fd */
	uint32_t fwd_cnt_sent; /* fwd_cnt the guest last heard */
	/* Guest bytes the host fd could not take yet: a ring of VSOCK_CONN_BUF. */
	uint8_t *buf;
	uint32_t buf_head, buf_len;
	uint32_t pending;     /* VSOCK_PEND_* control packets to send */
	uint32_t peer_shutdown; /* VSOCK_SHUTDOWN_* the guest sent */
	bool host_readable;   /* fd may have bytes (edge-triggered) */
	bool host_eof;        /* fd reads returned 0: SHUTDOWN(SEND) due */
	bool host_hup;        /* the host end is gone: SHUTDOWN(RCV|SEND) due */
	bool shut_wr_done;    /* shutdown(fd, SHUT_WR) after the guest's SEND */
	uint32_t shutdown_sent; /* VSOCK_SHUTDOWN_* flags sent to the guest */
	uint64_t deadline_ns; /* CONNECTING / CLOSING timeout; 0: none */
	int *waiter;          /* connect(): 1 established, -errno refused */
	bool in_backlog;      /* host_fd waits in the listen backlog for accept() */
	int host_fd;          /* the caller's end while in_backlog */
};

struct vsock_listen {
	uint32_t port;        /* 0: slot unused */
	int fds[VSOCK_MAX_BACKLOG]; /* host ends waiting for accept() */
	unsigned int nr;
};

struct vsock_handshake {
	int fd;               /* -1: unused */
	uint64_t deadline_ns;
};

struct vsock_rst {
	uint32_t host_port, guest_port;
};

/*
 * One device.  Large: allocate it, and do not move it after
 * virtio_vsock_init() (the transport points into it).
 */
struct virtio_vsock {
	struct virtio_mmio_dev mmio;
	struct virtio_mmio_ops ops;
	uint64_t guest_cid;
	uint8_t config[8];
	int epfd;             /* host fds of connections, listener, timer */
	int timer_fd;
	bool timer_armed;
	int uds_fd;           /* Unix-socket listener, or -1 */
	char uds_path[108];
	pthread_cond_t cond;  /* connect()/accept() waiters, with mmio.lock */
	struct vsock_conn conns[VSOCK_MAX_CONNS];
	struct vsock_listen listens[VSOCK_MAX_LISTEN];
	struct vsock_handshake handshakes[VSOCK_MAX_HANDSHAKES];
	struct vsock_rst rsts[VSOCK_MAX_PENDING_RST];
	unsigned int rst_head, nr_rst;
	unsigned int rr;      /* round-robin start for rx delivery */
	uint32_t next_local_port;
	/* Counters for tests and diagnostics. */
	uint64_t nr_rx_pkts, nr_tx_pkts, nr_rst_sent, nr_dropped, nr_credit_violations;
	/* Scratch for the chain being served (transport lock held). */
	struct virtq_chain chain;
};

/* guest_cid >= 3.  0 or -errno. */
int virtio_vsock_init(struct virtio_vsock *v, const struct guest_mem *gm, uint64_t guest_cid);
/* Resets every connection (host fds see EOF), closes the Unix socket and unlinks its path. */
void virtio_vsock_destroy(struct virtio_vsock *v);

/* The fd to watch for EPOLLIN; then call virtio_vsock_poll(). */
int virtio_vsock_fd(const struct virtio_vsock *v);
/* Serve host-side events and deliver what is due to the guest (any thread). */
void virtio_vsock_poll(struct virtio_vsock *v);

/* Connect to guest port; the host fd, or -ECONNREFUSED / -ETIMEDOUT / -EAGAIN (no slot) / -errno. */
int virtio_vsock_connect(struct virtio_vsock *v, uint32_t guest_port, unsigned int timeout_ms);
/* Accept guest connections to host port (>= 1, < VSOCK_LOCAL_PORT_BASE).  0 or -errno. */
int virtio_vsock_listen(struct virtio_vsock *v, uint32_t host_port);
/* The next guest connection to a listened port: fd, or -ETIMEDOUT / -EINVAL (not listened). */
int virtio_vsock_accept(struct virtio_vsock *v, uint32_t host_port, unsigned int timeout_ms);
/* Listen on the Unix socket 'path' (must not exist).  0 or -errno. */
int virtio_vsock_set_uds(struct virtio_vsock *v, const char *path);
/* Queue a TRANSPORT_RESET event and reset every connection (after a restore).  0 or -1 (no event buffer). */
int virtio_vsock_transport_reset(struct virtio_vsock *v);

/* Reset every connection: host fds see EOF (the VM has ended). */
void virtio_vsock_close_all(struct virtio_vsock *v);
/* Diagnostics (locks): counters and every connection that is not free, as lines on fd. */
void virtio_vsock_describe(struct virtio_vsock *v, int fd);
/* Open connections (tests, diagnostics). */
unsigned int virtio_vsock_nr_conns(struct virtio_vsock *v);

/*
 * Snapshots.  The section: a version (u32), the transport state
 * (virtio_mmio_save_locked) and the guest CID.  Connections are not saved:
 * their host ends are sockets of this process.  A restore leaves the device
 * with no connections and no RST owed (a connection the fresh device had is
 * reset, its host end sees EOF); the listened host ports and the Unix
 * socket are the fresh device's and stay.  Once the restored machine runs,
 * the owner calls virtio_vsock_transport_reset() so the guest drops the
 * connections it still believes in.
 *
 * save: 0, or -ENOMEM when the writer ran out of memory.  restore: 'r'
 * holds exactly this section and 'v' was just set up by virtio_vsock_init()
 * over the machine's guest RAM and has not run; 0, or -EINVAL (malformed,
 * or another guest CID than v's) with 'v' unchanged.  Both take the
 * transport lock.
 */
struct snap_w;
struct snap_r;
int virtio_vsock_save(struct virtio_vsock *v, struct snap_w *w);
int virtio_vsock_restore(struct virtio_vsock *v, struct snap_r *r);

#endif
