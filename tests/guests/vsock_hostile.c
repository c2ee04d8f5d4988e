// SPDX-License-Identifier: Apache-2.0
/*
 * A hostile virtio-vsock driver, against the host side in
 * tests/unit/test_vsock_guests.c (an echo service on host port HOST_PORT
 * that takes one connection at a time, and a service on HOLD_PORT that
 * accepts and never reads).  In this order, each checked where the device's
 * reaction is observable:
 *
 *   - packets the device must refuse with exactly one RST (never a
 *     RESPONSE): unknown ops (0, 42) on no connection, a SEQPACKET
 *     REQUEST, an RW for a connection that does not exist;
 *   - on a live connection, an unknown op and a packet of the wrong type:
 *     the device must reset it (RST);
 *   - a wrong src_cid (4, and 2^32 + 3) or dst_cid (7): dropped, nothing
 *     back, no connection made (a following correct RW on the same port
 *     gets the one RST a connection that does not exist gets);
 *   - a connection flood: VSK_DEV_MAX_CONNS + 20 REQUESTs to HOST_PORT, one
 *     after the other: each is answered, at least 20 with RST (the device's
 *     connection and backlog limits), at most backlog + 1 accepted (the host
 *     is blocked on the first it took); then all are reset;
 *   - lying credit: RW packets on a HOLD_PORT connection with no regard for
 *     the device's credit: the device must reset it (RST), and not while
 *     we were still within the credit it had told us;
 *   - malformed tx chains, each breaking the device: shorter than the
 *     header, hdr.len beyond the chain, a writable descriptor.  Each must
 *     set DEVICE_NEEDS_RESET without completing the chain, the device must
 *     then ignore a valid packet, and after a reset (status 0) and a fresh
 *     set-up a clean connection must echo ECHO_BYTES.
 *
 * Echo round 0 runs before any of it, one more after each malformed chain
 * (ECHO_ROUNDS in all): the host checks it saw exactly those bytes.
 * Status: 0 when everything held, else the number of the first failed
 * check; "vsock_hostile: FAIL <n> (<case>): why" on COM1.
 */
#include "vsock.h"

/* Must match tests/unit/test_vsock_guests.c. */
#define HOST_PORT 5000
#define HOLD_PORT 5001
#define ECHO_BYTES 4096
#define NR_BREAKS 3
#define ECHO_ROUNDS (1 + NR_BREAKS)

#define PORT_SINGLE 7001 /* 7001 .. 7008: one packet each */
#define PORT_LIVE 7010   /* 7010, 7011 */
#define PORT_LIE 7100
#define PORT_ECHO 7200   /* + round */
#define PORT_BROKEN 7300 /* + break case: the probe a broken device must ignore */
#define PORT_BREAK 7400  /* + break case: the malformed chain's own ports */
#define PORT_FLOOD 8000  /* 8000 .. 8000 + FLOOD - 1 */

#define FLOOD (VSK_DEV_MAX_CONNS + 20)
#define FLOOD_MAX_ACCEPTED (VSK_DEV_MAX_BACKLOG + 1)
#define LIE_MAX (32U << 20)
/* Short wait for something that must NOT happen (~25-50 ms). */
#define QUIET_TICKS 100000000ULL

enum check {
	C_NO_DEVICE = 1,
	C_INIT,
	C_UNKNOWN_OP,      /* unknown op, no connection: not exactly one RST */
	C_WRONG_TYPE,      /* SEQPACKET REQUEST: not exactly one RST */
	C_RW_NO_CONN,      /* RW for no connection: not exactly one RST */
	C_CONNECT,         /* a plain REQUEST was not accepted */
	C_UNKNOWN_OP_LIVE, /* unknown op on a live connection: no RST */
	C_WRONG_TYPE_LIVE, /* wrong type on a live connection: no RST */
	C_BAD_CID,         /* a wrong src/dst CID was answered or made a connection */
	C_FLOOD_ANSWERED,  /* a flood REQUEST got no answer */
	C_FLOOD_REFUSED,   /* fewer RSTs than the limits demand */
	C_FLOOD_ACCEPTED,  /* none accepted, or more than the backlog allows */
	C_LIE_EARLY,       /* reset while within the credit */
	C_LIE_NO_RST,      /* never reset */
	C_BROKEN,          /* no DEVICE_NEEDS_RESET after a malformed chain */
	C_COMPLETED,       /* the device completed the malformed chain */
	C_SERVED_BROKEN,   /* a broken device used a buffer */
	C_RESET,           /* reset or the fresh set-up failed */
	C_ECHO,            /* an echo round failed */
	C_TRANSPORT,       /* the device broke or stalled where it should not have */
	C_DEVICE_BAD,      /* the device sent malformed packets */
	C_EVENT,           /* an unexpected TRANSPORT_RESET event */
};

/* Byte i of each echo round (test_vsock_guests.c pat_h). */
static uint8_t pat_h(uint32_t i)
{
	return (uint8_t)(i * 11 + (i >> 8) * 0x3b + 0x4d);
}

static struct vsk vs;
static uint64_t base;
static struct vsk_hdr bad_hdr;
static uint8_t bad_data[128];
static uint8_t rw_payload[16]; /* zeros: the bytes do not matter */

static const char *cur_case = "setup";
static struct guest_checks checks = { .name = "vsock_hostile" };
static unsigned int flood_accepted, flood_refused;
static uint32_t lie_bytes;

static bool check(bool ok, enum check n, const char *what)
{
	checks.context = cur_case;
	return guest_check(&checks, ok, (int)n, what);
}

static void say(const char *what, int r)
{
	serial_puts("vsock_hostile: ");
	serial_puts(cur_case);
	serial_puts(": ");
	serial_puts(what);
	serial_puts(": ");
	serial_puts(vsk_strerror(r));
	serial_puts("\n");
}

/* The device must still be live after anything but a malformed chain. */
static void alive(void)
{
	check((vio_status(&vs.d) & (VIO_S_NEEDS_RESET | VIO_S_DRIVER_OK)) == VIO_S_DRIVER_OK, C_TRANSPORT,
	      "the device broke on a packet-level error");
}

/* A packet with any header fields, on no connection of ours. */
static int send_raw(uint64_t src_cid, uint64_t dst_cid, uint32_t sport, uint16_t type, uint16_t op, const void *data,
		    uint32_t len)
{
	struct vsk_hdr h = vsk_hdr_make(&vs, sport, HOST_PORT, op, 0, len, 0);

	h.src_cid = src_cid;
	h.dst_cid = dst_cid;
	h.type = type;
	return vsk_send_hdr(&vs, &h, data, len);
}

/*
 * Since 'mark': wait for a RST from HOST_PORT to guest_port, give anything
 * else a quiet period to arrive, and say whether that RST is all there was.
 */
static bool lone_rst(uint32_t mark, uint32_t guest_port)
{
	int r;

	VSK_WAIT(&vs, vsk_strays(&vs, mark, VSK_OP_RST, HOST_PORT, guest_port) > 0, vs.d.timeout_ticks, &r);
	if (r)
		say("waiting for RST", r);
	vsk_idle(&vs, QUIET_TICKS);
	return r == VIO_OK && vsk_strays(&vs, mark, -1, HOST_PORT, guest_port) == 1 &&
	       vsk_strays(&vs, mark, VSK_OP_RST, HOST_PORT, guest_port) == 1;
}

/* ---- refused packets ---- */

static void refused_packets(void)
{
	static const uint16_t unknown_ops[2] = { VSK_OP_INVALID, 42 };
	uint32_t mark;

	cur_case = "unknown op";
	for (unsigned int i = 0; i < 2; i++) {
		mark = vs.nr_stray;
		send_raw(vs.cid, VSK_HOST_CID, PORT_SINGLE + i, VSK_TYPE_STREAM, unknown_ops[i], NULL, 0);
		check(lone_rst(mark, PORT_SINGLE + i), C_UNKNOWN_OP, "an unknown op was not answered by exactly one RST");
	}
	alive();

	cur_case = "wrong type";
	mark = vs.nr_stray;
	send_raw(vs.cid, VSK_HOST_CID, PORT_SINGLE + 2, VSK_TYPE_SEQPACKET, VSK_OP_REQUEST, NULL, 0);
	check(lone_rst(mark, PORT_SINGLE + 2), C_WRONG_TYPE,
	      "a SEQPACKET REQUEST was not answered by exactly one RST (or was accepted)");
	alive();

	cur_case = "RW, no connection";
	mark = vs.nr_stray;
	send_raw(vs.cid, VSK_HOST_CID, PORT_SINGLE + 3, VSK_TYPE_STREAM, VSK_OP_RW, rw_payload, sizeof(rw_payload));
	check(lone_rst(mark, PORT_SINGLE + 3), C_RW_NO_CONN, "RW for no connection was not answered by exactly one RST");
	alive();
}

/* An op or type the device must answer by resetting the live connection it names. */
static void live_case(const char *name, uint32_t port, uint16_t type, uint16_t op, enum check n)
{
	struct vsk_conn *c;
	struct vsk_hdr h;
	int r;

	cur_case = name;
	c = vsk_connect(&vs, port, HOST_PORT, NULL, &r);
	if (r)
		say("connect", r);
	if (!check(c && c->state == VSK_ESTABLISHED, C_CONNECT, "REQUEST to the echo port not accepted")) {
		if (c)
			vsk_conn_free(c);
		return;
	}
	h = vsk_hdr_make(&vs, port, HOST_PORT, op, 0, 0, c->rx_cnt);
	h.type = type;
	r = vsk_send_hdr(&vs, &h, NULL, 0);
	if (r == VIO_OK)
		VSK_WAIT(&vs, c->rst, vs.d.timeout_ticks, &r);
	if (r)
		say("waiting for RST", r);
	check(r == VIO_OK && c->rst, n, "the live connection was not reset");
	vsk_conn_free(c);
	alive();
}

/* A REQUEST with bad CIDs must vanish: then a good RW on its port finds no connection. */
static void bad_cid(const char *name, uint32_t port, uint64_t src_cid, uint64_t dst_cid)
{
	uint32_t mark = vs.nr_stray;

	cur_case = name;
	send_raw(src_cid, dst_cid, port, VSK_TYPE_STREAM, VSK_OP_REQUEST, NULL, 0);
	send_raw(vs.cid, VSK_HOST_CID, port, VSK_TYPE_STREAM, VSK_OP_RW, rw_payload, sizeof(rw_payload));
	check(lone_rst(mark, port), C_BAD_CID, "a REQUEST with a wrong CID was answered, or made a connection");
	alive();
}

/* ---- flood ---- */

static void flood(void)
{
	unsigned int lost = 0;
	int r = VIO_OK;

	cur_case = "flood";
	flood_accepted = flood_refused = 0;
	for (unsigned int i = 0; i < FLOOD; i++) {
		struct vsk_conn *c = vsk_connect(&vs, PORT_FLOOD + i, HOST_PORT, NULL, &r);

		if (!c) {
			/* No answer: the rest would wait as long each; one is enough to fail. */
			say("REQUEST", r);
			lost = FLOOD - i;
			break;
		}
		if (c->state == VSK_ESTABLISHED)
			flood_accepted++;
		else
			flood_refused++;
	}
	serial_puts("vsock_hostile: flood: accepted ");
	serial_putdec(flood_accepted);
	serial_puts(", refused ");
	serial_putdec(flood_refused);
	serial_puts("\n");
	check(!lost, C_FLOOD_ANSWERED, "a flood REQUEST got no answer");
	check(flood_refused >= FLOOD - VSK_DEV_MAX_CONNS, C_FLOOD_REFUSED, "fewer RSTs than the connection limit demands");
	check(flood_accepted >= 1 && flood_accepted <= FLOOD_MAX_ACCEPTED, C_FLOOD_ACCEPTED,
	      "no flood REQUEST accepted, or more than the backlog allows");
	/* Give every slot back: reset what was accepted, forget the rest. */
	for (unsigned int i = 0; i < VSK_CONNS; i++) {
		struct vsk_conn *c = &vs.conns[i];

		if (c->state == VSK_FREE || c->local_port < PORT_FLOOD || c->local_port >= PORT_FLOOD + FLOOD)
			continue;
		if (c->state == VSK_ESTABLISHED && (r = vsk_conn_send(&vs, c, VSK_OP_RST, 0, NULL, 0)) != VIO_OK)
			say("RST", r);
		vsk_conn_free(c);
	}
	alive();
}

/* ---- lying credit ---- */

static void lying_credit(void)
{
	struct vsk_conn *c;
	bool lied = false, early = false;
	int r;

	cur_case = "lying credit";
	c = vsk_connect(&vs, PORT_LIE, HOLD_PORT, NULL, &r);
	if (r)
		say("connect", r);
	if (!check(c && c->state == VSK_ESTABLISHED, C_CONNECT, "REQUEST to the hold port not accepted")) {
		if (c)
			vsk_conn_free(c);
		return;
	}
	memset(vs.b.scratch, 0x5c, VSK_TX_DATA);
	r = VIO_OK;
	while (!c->rst && c->tx_cnt < LIE_MAX && r == VIO_OK) {
		/* Past the credit the device last told us: from here on a reset is deserved. */
		if (VSK_TX_DATA > vsk_credit(c))
			lied = true;
		r = vsk_conn_send(&vs, c, VSK_OP_RW, 0, vs.b.scratch, VSK_TX_DATA);
		vsk_service(&vs);
		if (c->rst && !lied)
			early = true;
	}
	if (r)
		say("send", r);
	if (!c->rst && r == VIO_OK)
		VSK_WAIT(&vs, c->rst, vs.d.timeout_ticks, &r);
	lie_bytes = c->tx_cnt;
	serial_puts("vsock_hostile: lying credit: reset after ");
	serial_putdec(lie_bytes);
	serial_puts(" bytes\n");
	check(!early, C_LIE_EARLY, "the connection was reset while it kept within its credit");
	check(c->rst, C_LIE_NO_RST, "sending far past the credit was never reset");
	vsk_conn_free(c);
	alive();
}

/* ---- echo rounds ---- */

static void echo_round(unsigned int round)
{
	struct vsk_conn *c;
	bool ok;
	int r;

	c = vsk_connect(&vs, PORT_ECHO + round, HOST_PORT, pat_h, &r);
	ok = c && c->state == VSK_ESTABLISHED;
	if (ok && (r = vsk_write_pattern(&vs, c, pat_h, ECHO_BYTES)) != VIO_OK)
		ok = false;
	if (ok && (r = vsk_conn_send(&vs, c, VSK_OP_SHUTDOWN, VSK_SHUT_SEND, NULL, 0)) != VIO_OK)
		ok = false;
	if (ok) {
		VSK_WAIT(&vs, c->state != VSK_ESTABLISHED || (c->peer_shutdown & VSK_SHUT_SEND), vs.d.timeout_ticks, &r);
		ok = r == VIO_OK && !c->rst && c->rx_cnt == ECHO_BYTES && !c->rx_bad && !c->credit_overrun;
	}
	if (r)
		say("echo", r);
	if (c && c->state == VSK_ESTABLISHED && vsk_conn_send(&vs, c, VSK_OP_RST, 0, NULL, 0) != VIO_OK)
		ok = false;
	if (c)
		vsk_conn_free(c);
	check(ok, C_ECHO, "a clean connection did not echo 4 KiB");
}

/* ---- malformed chains ---- */

static const char *const break_names[NR_BREAKS] = {
	"chain shorter than the header",
	"hdr.len beyond the chain",
	"writable descriptor on tx",
};

/* Did rx or tx used.idx move within 'ticks'?  Nothing is consumed. */
static bool used_moves(uint64_t ticks)
{
	uint16_t rx = vsk_used_idx(&vs.q[VSK_Q_RX]), tx = vsk_used_idx(&vs.q[VSK_Q_TX]);
	uint64_t t0 = rdtsc();

	while (rdtsc() - t0 < ticks)
		if (vsk_used_idx(&vs.q[VSK_Q_RX]) != rx || vsk_used_idx(&vs.q[VSK_Q_TX]) != tx)
			return true;
	return false;
}

static void break_case(unsigned int k)
{
	struct vq_buf b[2];
	struct vsk_hdr probe;
	unsigned int n = 2;
	uint16_t tx_seen;
	uint64_t t0;
	int r;

	cur_case = break_names[k];
	/* Every earlier chain is back, so a completed malformed one would show in used.idx. */
	VSK_WAIT(&vs, vs.tx_inflight == 0, vs.d.timeout_ticks, &r);
	if (!check(r == VIO_OK, C_TRANSPORT, "earlier tx chains were not returned"))
		return;
	bad_hdr = vsk_hdr_make(&vs, PORT_BREAK + k, HOST_PORT, VSK_OP_REQUEST, 0, 0, 0);
	memset(bad_data, 0xee, sizeof(bad_data));
	b[0] = (struct vq_buf){ &bad_hdr, VSK_HDR, false };
	switch (k) {
	case 0:
		b[0].len = 20;
		n = 1;
		break;
	case 1:
		bad_hdr.op = VSK_OP_RW;
		bad_hdr.len = 100;
		b[1] = (struct vq_buf){ bad_data, 50, false };
		break;
	default:
		b[1] = (struct vq_buf){ bad_data, 16, true };
		break;
	}
	tx_seen = vsk_used_idx(&vs.q[VSK_Q_TX]);
	vsk_tx_chain(&vs, b, n);
	t0 = rdtsc();
	while (!(vio_status(&vs.d) & VIO_S_NEEDS_RESET) && rdtsc() - t0 < vs.d.timeout_ticks)
		__asm__ volatile("pause");
	check(vio_status(&vs.d) & VIO_S_NEEDS_RESET, C_BROKEN, "no DEVICE_NEEDS_RESET after a malformed tx chain");
	check(vsk_used_idx(&vs.q[VSK_Q_TX]) == tx_seen, C_COMPLETED, "the device completed the malformed chain");

	/* Broken: a valid REQUEST is not served, and nothing arrives, until reset. */
	probe = vsk_hdr_make(&vs, PORT_BROKEN + k, HOST_PORT, VSK_OP_REQUEST, 0, 0, 0);
	vsk_tx_try(&vs, &probe, NULL, 0);
	check(!used_moves(QUIET_TICKS), C_SERVED_BROKEN, "a broken device used a buffer");

	r = vio_reset(&vs.d);
	if (r == VIO_OK)
		r = vsk_init(&vs, base);
	if (r)
		say("reset and set-up", r);
	check(r == VIO_OK, C_RESET, "reset and a fresh set-up failed");
}

int guest_main(const uint8_t *bp)
{
	const char *cl = vio_cmdline(bp);
	int r;

	base = vsk_find(cl, NULL);
	if (!check(base != 0, C_NO_DEVICE, "no virtio-vsock device among the virtio_mmio.device= slots"))
		return checks.first_failure;
	r = vsk_init(&vs, base);
	if (r) {
		say("init", r);
		check(false, C_INIT, "device bring-up failed");
		return checks.first_failure;
	}

	cur_case = "echo round 0";
	echo_round(0);
	refused_packets();
	live_case("unknown op, live", PORT_LIVE, VSK_TYPE_STREAM, 42, C_UNKNOWN_OP_LIVE);
	live_case("wrong type, live", PORT_LIVE + 1, VSK_TYPE_SEQPACKET, VSK_OP_RW, C_WRONG_TYPE_LIVE);
	bad_cid("src_cid 4", PORT_SINGLE + 4, 4, VSK_HOST_CID);
	bad_cid("src_cid 2^32 + 3", PORT_SINGLE + 5, (1ULL << 32) | vs.cid, VSK_HOST_CID);
	bad_cid("dst_cid 7", PORT_SINGLE + 6, vs.cid, 7);
	flood();
	lying_credit();

	/* Counted before the breaks: vsk_init() forgets them. */
	if (vs.first_bad) {
		serial_puts("vsock_hostile: first bad packet: ");
		serial_puts(vs.first_bad);
		serial_puts("\n");
	}
	cur_case = "packets";
	check(!vs.nr_bad, C_DEVICE_BAD, "the device sent malformed packets or used entries");
	check(!vs.nr_events, C_EVENT, "an event (TRANSPORT_RESET) arrived");

	for (unsigned int k = 0; k < NR_BREAKS; k++) {
		break_case(k);
		cur_case = "echo after reset";
		echo_round(1 + k);
	}
	cur_case = "end";
	check(!vs.nr_bad, C_DEVICE_BAD, "the device sent malformed packets or used entries");
	check(!vs.nr_events, C_EVENT, "an event (TRANSPORT_RESET) arrived");
	alive();

	if (checks.nr_failed) {
		serial_putdec(checks.nr_failed);
		serial_puts(" check(s) failed\n");
		return checks.first_failure;
	}
	serial_puts("vsock_hostile: ok, flood accepted ");
	serial_putdec(flood_accepted);
	serial_puts(" refused ");
	serial_putdec(flood_refused);
	serial_puts(", lying credit reset after ");
	serial_putdec(lie_bytes);
	serial_puts(" bytes\n");
	return 0;
}
