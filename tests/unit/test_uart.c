// SPDX-License-Identifier: Apache-2.0
/*
 * devices/uart8250: register-level behaviour as Linux's 8250 driver sees it,
 * with a pipe standing in for the console so transmitted bytes can be read back.
 */
#include "uart8250.h"

#include <errno.h>
#include <fcntl.h>
#include <unistd.h>

#include "testutil.h"

enum { RBR_THR = 0, IER = 1, IIR_FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

struct irq_log {
	int calls;
	int levels[64];
};

static int pfd[2];
static struct uart8250 u;
static struct irq_log irqs;

static void on_irq(void *opaque, int level)
{
	struct irq_log *l = opaque;

	ck_assert_ptr_eq(l, &irqs);
	if (l->calls < 64)
		l->levels[l->calls] = level;
	l->calls++;
}

static void setup(void)
{
	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	ck_assert_int_ne(fcntl(pfd[0], F_SETFL, O_NONBLOCK), -1);
	memset(&irqs, 0, sizeof(irqs));
	uart8250_init(&u, pfd[1], on_irq, &irqs);
}

static void teardown(void)
{
	close(pfd[0]);
	close(pfd[1]);
}

static uint8_t rd(unsigned int reg)
{
	uint8_t v = 0x5c;

	uart8250_access(&u, reg, &v, 1, false);
	return v;
}

static void wr(unsigned int reg, uint8_t v)
{
	uart8250_access(&u, reg, &v, 1, true);
}

/* Everything in the pipe right now (non-blocking). */
static ssize_t drain(char *buf, size_t len)
{
	ssize_t n = read(pfd[0], buf, len);

	if (n < 0) {
		ck_assert_int_eq(errno, EAGAIN);
		return 0;
	}
	return n;
}

START_TEST(test_thr_writes_to_fd)
{
	char buf[64];
	const char *msg = "hello, \x01\xff world\n";

	for (const char *p = msg; *p; p++)
		wr(RBR_THR, (uint8_t)*p);
	ck_assert_int_eq(drain(buf, sizeof(buf)), (ssize_t)strlen(msg));
	ck_assert_mem_eq(buf, msg, strlen(msg));
	ck_assert_uint_eq(u.bytes_out, strlen(msg));
	wr(RBR_THR, 0);
	ck_assert_int_eq(drain(buf, sizeof(buf)), 1);
	ck_assert_uint_eq(buf[0], 0);
}
END_TEST

static void send_str(const char *s)
{
	while (*s)
		wr(RBR_THR, (uint8_t)*s++);
}

START_TEST(test_last_line)
{
	char line[64];

	uart8250_init(&u, -1, NULL, NULL);
	ck_assert_uint_eq(uart8250_last_line(&u, line, sizeof(line)), 0);
	ck_assert_str_eq(line, "");
	send_str("first\r\nmsvmm-init: root disk /dev/vda: no such device\n\n");
	ck_assert_uint_eq(uart8250_last_line(&u, line, sizeof(line)), 46);
	ck_assert_str_eq(line, "msvmm-init: root disk /dev/vda: no such device");
	/* Control bytes are not passed on; a short buffer truncates. */
	send_str("a\x1b[2Jb\tc");
	uart8250_last_line(&u, line, sizeof(line));
	ck_assert_str_eq(line, "a?[2Jb?c");
	ck_assert_uint_eq(uart8250_last_line(&u, line, 4), 3);
	ck_assert_str_eq(line, "a?[");
	/* Past the ring's size only the newest bytes count. */
	for (int i = 0; i < UART_TAIL_SIZE; i++)
		wr(RBR_THR, 'x');
	send_str("\nlast");
	uart8250_last_line(&u, line, sizeof(line));
	ck_assert_str_eq(line, "last");
	for (int i = 0; i < 2 * UART_TAIL_SIZE; i++)
		wr(RBR_THR, 'y');
	ck_assert_uint_eq(uart8250_last_line(&u, line, sizeof(line)), sizeof(line) - 1);
}
END_TEST

START_TEST(test_discard_output)
{
	struct uart8250 d;
	uint8_t v = 'x';

	uart8250_init(&d, -1, NULL, NULL);
	uart8250_access(&d, 0, &v, 1, true);
	uart8250_access(&d, 0, &v, 1, true);
	ck_assert_uint_eq(d.bytes_out, 2); /* counted, not written anywhere */
	v = 0;
	uart8250_access(&d, 5, &v, 1, false);
	ck_assert_uint_eq(v, 0x60);
}
END_TEST

START_TEST(test_dlab_switches_divisor_latch)
{
	char buf[8];

	wr(IER, 0x05);
	wr(LCR, 0x83); /* DLAB | 8N1 */
	ck_assert_uint_eq(rd(LCR), 0x83);
	ck_assert_uint_eq(rd(RBR_THR), 12); /* reset divisor: 9600 baud */
	wr(RBR_THR, 0x01);
	wr(IER, 0x02);
	ck_assert_uint_eq(rd(RBR_THR), 0x01);
	ck_assert_uint_eq(rd(IER), 0x02);
	ck_assert_int_eq(drain(buf, sizeof(buf)), 0); /* a divisor write is not output */
	ck_assert_uint_eq(u.bytes_out, 0);
	ck_assert_int_eq(irqs.calls, 0); /* nor does DLM=0x02 enable THRI */
	wr(LCR, 0x03);
	ck_assert_uint_eq(rd(IER), 0x05); /* IER again, untouched by the DLM write */
	ck_assert_uint_eq(rd(RBR_THR), 0);
	wr(RBR_THR, 'z');
	ck_assert_int_eq(drain(buf, sizeof(buf)), 1);
	ck_assert_uint_eq(buf[0], 'z');
	wr(LCR, 0x80);
	ck_assert_uint_eq(rd(RBR_THR), 0x01); /* divisor kept */
	ck_assert_uint_eq(rd(IER), 0x02);
}
END_TEST

START_TEST(test_lsr_transmitter_always_empty)
{
	ck_assert_uint_eq(rd(LSR), 0x60);
	wr(RBR_THR, 'a');
	ck_assert_uint_eq(rd(LSR), 0x60);
	ck_assert_uint_eq(rd(LSR) & 0x01, 0); /* no received data */
}
END_TEST

START_TEST(test_iir_thri)
{
	ck_assert_uint_eq(rd(IIR_FCR), 0x01); /* no interrupt pending */
	wr(IER, 0x02);
	ck_assert_uint_eq(rd(IER), 0x02);
	ck_assert_int_eq(irqs.calls, 1);
	ck_assert_int_eq(irqs.levels[0], 1);
	ck_assert_int_eq(u.irq_level, 1);
	/* Reading IIR reports THRI once and acknowledges it. */
	ck_assert_uint_eq(rd(IIR_FCR), 0x02);
	ck_assert_int_eq(irqs.calls, 2);
	ck_assert_int_eq(irqs.levels[1], 0);
	ck_assert_uint_eq(rd(IIR_FCR), 0x01);
	ck_assert_int_eq(irqs.calls, 2);
	/* Each transmitted byte makes THR empty again. */
	wr(RBR_THR, 'a');
	ck_assert_int_eq(irqs.calls, 3);
	ck_assert_int_eq(irqs.levels[2], 1);
	ck_assert_uint_eq(rd(IIR_FCR), 0x02);
	ck_assert_int_eq(irqs.levels[3], 0);
	/* Rewriting IER with THRI already set does not raise it again. */
	wr(IER, 0x03);
	ck_assert_uint_eq(rd(IIR_FCR), 0x01);
	ck_assert_int_eq(irqs.calls, 4);
}
END_TEST

START_TEST(test_iir_masked_by_ier)
{
	wr(RBR_THR, 'a'); /* THR empty, but THRI not enabled */
	ck_assert_int_eq(irqs.calls, 0);
	ck_assert_uint_eq(rd(IIR_FCR), 0x01);
	wr(IER, 0x02);
	ck_assert_int_eq(irqs.calls, 1);
	ck_assert_int_eq(irqs.levels[0], 1);
	/* Disabling THRI lowers the line without acknowledging. */
	wr(IER, 0x00);
	ck_assert_int_eq(irqs.calls, 2);
	ck_assert_int_eq(irqs.levels[1], 0);
	ck_assert_uint_eq(rd(IIR_FCR), 0x01);
	ck_assert_int_eq(irqs.calls, 2);
	ck_assert_uint_eq(rd(IER), 0);
	/* IER keeps only its four defined bits. */
	wr(IER, 0xf1);
	ck_assert_uint_eq(rd(IER), 0x01);
}
END_TEST

START_TEST(test_iir_fifo_bits)
{
	wr(IIR_FCR, 0x07); /* enable and clear FIFOs */
	ck_assert_uint_eq(rd(IIR_FCR), 0xc1);
	wr(IER, 0x02);
	ck_assert_uint_eq(rd(IIR_FCR), 0xc2);
	ck_assert_uint_eq(rd(IIR_FCR), 0xc1);
	wr(IIR_FCR, 0x00);
	ck_assert_uint_eq(rd(IIR_FCR), 0x01);
}
END_TEST

START_TEST(test_no_irq_callback_is_fine)
{
	struct uart8250 d;
	uint8_t v = 0x02;

	uart8250_init(&d, -1, NULL, NULL);
	uart8250_access(&d, 1, &v, 1, true);
	ck_assert_int_eq(d.irq_level, 1);
	uart8250_access(&d, 2, &v, 1, false);
	ck_assert_uint_eq(v, 0x02);
	ck_assert_int_eq(d.irq_level, 0);
}
END_TEST

START_TEST(test_msr_and_loopback)
{
	char buf[8];

	ck_assert_uint_eq(rd(MCR), 0x08); /* OUT2 at reset */
	ck_assert_uint_eq(rd(MSR), 0xb0); /* DCD | DSR | CTS: a modem is there */
	/* Linux's probe: loopback with RTS and OUT2 must read back CTS and DCD only. */
	wr(MCR, 0x1a);
	ck_assert_uint_eq(rd(MCR), 0x1a);
	ck_assert_uint_eq(rd(MSR) & 0xf0, 0x90);
	wr(MCR, 0x1f);
	ck_assert_uint_eq(rd(MSR) & 0xf0, 0xf0);
	wr(MCR, 0x10);
	ck_assert_uint_eq(rd(MSR) & 0xf0, 0x00);
	wr(MCR, 0x11);
	ck_assert_uint_eq(rd(MSR) & 0xf0, 0x20); /* DTR -> DSR */
	wr(MCR, 0x14);
	ck_assert_uint_eq(rd(MSR) & 0xf0, 0x40); /* OUT1 -> RI */
	/* Transmitting in loopback sends nothing to the host. */
	wr(MCR, 0x1a);
	wr(RBR_THR, 'L');
	wr(RBR_THR, 'M');
	ck_assert_int_eq(drain(buf, sizeof(buf)), 0);
	ck_assert_uint_eq(u.bytes_out, 0);
	/* Back out of loopback: output resumes. */
	wr(MCR, 0x0b);
	ck_assert_uint_eq(rd(MSR), 0xb0);
	wr(RBR_THR, 'N');
	ck_assert_int_eq(drain(buf, sizeof(buf)), 1);
	ck_assert_uint_eq(buf[0], 'N');
	/* MCR keeps only its five defined bits. */
	wr(MCR, 0xff);
	ck_assert_uint_eq(rd(MCR), 0x1f);
}
END_TEST

START_TEST(test_scratch_register)
{
	ck_assert_uint_eq(rd(SCR), 0);
	wr(SCR, 0x5a);
	ck_assert_uint_eq(rd(SCR), 0x5a);
	wr(SCR, 0xa5);
	ck_assert_uint_eq(rd(SCR), 0xa5);
	wr(LCR, 0x80); /* DLAB does not bank the scratch register */
	ck_assert_uint_eq(rd(SCR), 0xa5);
}
END_TEST

START_TEST(test_bad_width_and_offset)
{
	uint8_t v[4] = { 0, 0, 0, 0 };
	char buf[8];

	uart8250_access(&u, 5, v, 2, false);
	ck_assert_uint_eq(v[0], 0xff);
	ck_assert_uint_eq(v[1], 0xff);
	ck_assert_uint_eq(v[2], 0); /* only 'len' bytes touched */
	memset(v, 0, sizeof(v));
	uart8250_access(&u, 0, v, 4, false);
	ck_assert_uint_eq(tu_get32(v), 0xffffffffU);
	uart8250_access(&u, 8, v, 1, false);
	ck_assert_uint_eq(v[0], 0xff);
	uart8250_access(&u, UINT64_MAX, v, 1, false);
	ck_assert_uint_eq(v[0], 0xff);
	/* Wide or out-of-range writes do nothing: no output, no register change. */
	memcpy(v, "AB", 2);
	uart8250_access(&u, 0, v, 2, true);
	v[0] = 0x77;
	uart8250_access(&u, 7, v, 2, true);
	uart8250_access(&u, 15, v, 1, true);
	ck_assert_int_eq(drain(buf, sizeof(buf)), 0);
	ck_assert_uint_eq(u.bytes_out, 0);
	ck_assert_uint_eq(rd(SCR), 0);
	ck_assert_int_eq(irqs.calls, 0);
}
END_TEST

static Suite *uart_suite(void)
{
	Suite *s = suite_create("uart8250");
	TCase *tc = tcase_create("core");

	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_add_test(tc, test_thr_writes_to_fd);
	tcase_add_test(tc, test_discard_output);
	tcase_add_test(tc, test_last_line);
	tcase_add_test(tc, test_dlab_switches_divisor_latch);
	tcase_add_test(tc, test_lsr_transmitter_always_empty);
	tcase_add_test(tc, test_iir_thri);
	tcase_add_test(tc, test_iir_masked_by_ier);
	tcase_add_test(tc, test_iir_fifo_bits);
	tcase_add_test(tc, test_no_irq_callback_is_fine);
	tcase_add_test(tc, test_msr_and_loopback);
	tcase_add_test(tc, test_scratch_register);
	tcase_add_test(tc, test_bad_width_and_offset);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(uart_suite());
}
