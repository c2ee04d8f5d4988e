// SPDX-License-Identifier: Apache-2.0
/*
 * virtio-vsock from the inside: drives the VM's vsock device (the last
 * virtio_mmio.device= slot, device id 19, guest CID 3) with the driver in
 * vsock.h, against the host side in tests/unit/test_vsock_guests.c.
 *
 *   (a) guest -> host: connect to CID 2 port HOST_PORT (REQUEST, expect
 *       RESPONSE), send A_BYTES of pat_a() in RW packets within the device's
 *       credit, then SHUTDOWN(SEND).  The host echoes every byte and closes
 *       at EOF: the guest must get the same bytes back, then a SHUTDOWN,
 *       and answers it with RST.
 *   (b) host -> guest: listen on GUEST_PORT (until then every host REQUEST
 *       is refused with RST, which the host's connect sees as
 *       ECONNREFUSED and retries); accept the host's connection, receive
 *       B_BYTES of pat_b(), answer with the byte count (le32), then
 *       SHUTDOWN(RCV|SEND), after which the device must reset it (RST).
 *   Throughout: every packet the device sends must be well formed (CIDs,
 *   type, header len == used.len - 44), in place for its connection, and
 *   within the credit we advertised; no TRANSPORT_RESET event; the device
 *   never needs a reset.
 *
 * Every check has a number; a failure prints "vsock_io: FAIL <n>: why" and
 * the guest's status is the first failing number (0: all passed).
 */
#include "vsock.h"

/* Must match tests/unit/test_vsock_guests.c. */
#define HOST_PORT 5000
#define GUEST_PORT 6000
#define LOCAL_PORT_A 1025
#define A_BYTES (200U * 1024)
#define B_BYTES (64U * 1024)
#define GUEST_CID 3

enum check {
	C_NO_DEVICE = 1,
	C_NOT_LAST,
	C_INIT,
	C_CID,
	C_A_CONNECT,
	C_A_SEND,
	C_A_ECHO_LEN,
	C_A_ECHO_DATA, /* 8: test_vsock_guests.c corrupts the echo and expects this one */
	C_A_SHUTDOWN,
	C_CREDIT,
	C_B_ACCEPT,
	C_B_DATA_LEN,
	C_B_DATA,
	C_B_REPLY,
	C_B_RST,
	C_DEVICE_BAD,
	C_ODD,
	C_EVENT,
	C_ALIVE,
};

/* Byte i of what the guest sends in (a), and so of the echo (test_vsock_guests.c pat_a). */
static uint8_t pat_a(uint32_t i)
{
	return (uint8_t)(i * 7 + (i >> 8) * 13 + (i >> 16) * 0x61 + 0x29);
}

/* Byte i of what the host sends in (b) (test_vsock_guests.c pat_b). */
static uint8_t pat_b(uint32_t i)
{
	return (uint8_t)(i * 3 + (i >> 9) * 0x55 + 0x77);
}

static struct vsk vs;
static struct guest_checks checks = { .name = "vsock_io" };

static bool check(bool ok, enum check n, const char *what)
{
	return guest_check(&checks, ok, (int)n, what);
}

static void say(const char *what, int r)
{
	serial_puts("vsock_io: ");
	serial_puts(what);
	serial_puts(": ");
	serial_puts(vsk_strerror(r));
	serial_puts("\n");
}

static void phase_a(void)
{
	struct vsk_conn *c;
	int r;

	c = vsk_connect(&vs, LOCAL_PORT_A, HOST_PORT, pat_a, &r);
	if (r)
		say("connect", r);
	if (!check(c && c->state == VSK_ESTABLISHED, C_A_CONNECT, "REQUEST to host port 5000 not answered by RESPONSE"))
		return;
	r = vsk_write_pattern(&vs, c, pat_a, A_BYTES);
	if (r)
		say("send", r);
	check(r == VIO_OK && c->tx_cnt == A_BYTES, C_A_SEND, "sending 200 KiB within the credit failed");
	if (r == VIO_OK)
		r = vsk_conn_send(&vs, c, VSK_OP_SHUTDOWN, VSK_SHUT_SEND, NULL, 0);
	if (r == VIO_OK)
		VSK_WAIT(&vs, c->state != VSK_ESTABLISHED || (c->peer_shutdown & VSK_SHUT_SEND), vs.d.timeout_ticks, &r);
	if (r)
		say("echo", r);
	if (c->rx_cnt != A_BYTES) {
		serial_puts("vsock_io: echo bytes ");
		serial_putdec(c->rx_cnt);
		serial_puts("\n");
	}
	check(c->rx_cnt == A_BYTES, C_A_ECHO_LEN, "the echo is not 200 KiB long");
	if (c->rx_bad) {
		serial_puts("vsock_io: echo differs at byte ");
		serial_putdec(c->rx_first_bad);
		serial_puts(", bytes differing ");
		serial_putdec(c->rx_bad);
		serial_puts("\n");
	}
	check(!c->rx_bad, C_A_ECHO_DATA, "the echo differs from what was sent");
	check(r == VIO_OK && !c->rst && (c->peer_shutdown & VSK_SHUT_SEND), C_A_SHUTDOWN,
	      "no SHUTDOWN(SEND) after the echo (or a RST instead)");
	check(!c->credit_overrun, C_CREDIT, "the device sent more than our credit on the echo connection");
	/* Linux answers the peer's SHUTDOWN with RST once it has read everything. */
	if (!c->rst && vsk_conn_send(&vs, c, VSK_OP_RST, 0, NULL, 0) == VIO_OK)
		c->state = VSK_CLOSED;
}

static void phase_b(void)
{
	struct vsk_conn *c;
	uint32_t count;
	int r;

	vs.listen_port = GUEST_PORT;
	vs.listen_expect = pat_b;
	/* A connection the host gave up on (RST) is replaced by its next attempt. */
	VSK_WAIT(&vs, vs.accepted && vs.accepted->rx_cnt >= B_BYTES, 2 * vs.d.timeout_ticks, &r);
	if (r)
		say("accept", r);
	c = vs.accepted;
	vs.listen_port = 0;
	if (!check(r == VIO_OK && c && c->state == VSK_ESTABLISHED, C_B_ACCEPT,
		   "no host connection to guest port 6000 delivered 64 KiB"))
		return;
	check(c->rx_cnt == B_BYTES, C_B_DATA_LEN, "the host's data is not 64 KiB");
	check(!c->rx_bad, C_B_DATA, "the host's data differs from its pattern");
	check(!c->credit_overrun, C_CREDIT, "the device sent more than our credit on the accepted connection");
	count = c->rx_cnt;
	r = vsk_conn_send(&vs, c, VSK_OP_RW, 0, &count, sizeof(count));
	if (r == VIO_OK)
		r = vsk_conn_send(&vs, c, VSK_OP_SHUTDOWN, VSK_SHUT_RCV | VSK_SHUT_SEND, NULL, 0);
	if (r)
		say("reply", r);
	if (!check(r == VIO_OK, C_B_REPLY, "sending the count and SHUTDOWN failed"))
		return;
	/* Both directions shut: the device resets the connection once the count is out. */
	VSK_WAIT(&vs, c->rst, vs.d.timeout_ticks, &r);
	if (r)
		say("close", r);
	check(r == VIO_OK && c->rst, C_B_RST, "no RST after our SHUTDOWN(RCV|SEND)");
}

int guest_main(const uint8_t *bp)
{
	const char *cl = vio_cmdline(bp);
	bool is_last = false;
	uint64_t base = vsk_find(cl, &is_last);
	int r;

	if (!check(base != 0, C_NO_DEVICE, "no virtio-vsock device among the virtio_mmio.device= slots"))
		return checks.first_failure;
	check(is_last, C_NOT_LAST, "the vsock device is not the last virtio-mmio slot");
	r = vsk_init(&vs, base);
	if (r) {
		say("init", r);
		check(false, C_INIT, "device bring-up failed");
		return checks.first_failure;
	}
	check(vs.cid == GUEST_CID, C_CID, "config space guest_cid is not 3");

	phase_a();
	phase_b();

	/* Anything still on its way (a late packet out of place) is seen here. */
	vsk_idle(&vs, 20000000ULL);
	if (vs.first_bad) {
		serial_puts("vsock_io: first bad packet: ");
		serial_puts(vs.first_bad);
		serial_puts("\n");
	}
	check(!vs.nr_bad, C_DEVICE_BAD, "the device sent malformed packets or used entries");
	check(!vs.nr_odd, C_ODD, "the device sent packets out of place for their connection");
	check(!vs.nr_events, C_EVENT, "an event (TRANSPORT_RESET) arrived");
	check((vio_status(&vs.d) & (VIO_S_NEEDS_RESET | VIO_S_DRIVER_OK)) == VIO_S_DRIVER_OK, C_ALIVE,
	      "the device is not live at the end");

	serial_puts("vsock_io: host connections accepted ");
	serial_putdec(vs.nr_accepted);
	serial_puts(", packets received ");
	serial_putdec(vs.nr_rx);
	serial_puts("\n");
	if (checks.nr_failed) {
		serial_putdec(checks.nr_failed);
		serial_puts(" check(s) failed\n");
		return checks.first_failure;
	}
	serial_puts("vsock_io: ok\n");
	return 0;
}
