// SPDX-License-Identifier: Apache-2.0
#include "uart8250.h"

#include <errno.h>
#include <unistd.h>

#include "snap_io.h"

#define UART_SNAP_VERSION 1

#define UART_IER_RDI 0x01
#define UART_IER_THRI 0x02
#define UART_IIR_NO_INT 0x01
#define UART_IIR_THRI 0x02
#define UART_IIR_FIFO 0xc0
#define UART_LCR_DLAB 0x80
#define UART_MCR_LOOP 0x10
#define UART_LSR_THRE 0x20
#define UART_LSR_TEMT 0x40
#define UART_MSR_CTS 0x10
#define UART_MSR_DSR 0x20
#define UART_MSR_RI 0x40
#define UART_MSR_DCD 0x80
/* The bits of IER, FCR and MCR that the guest can set. */
#define UART_IER_MASK 0x0f
#define UART_FCR_MASK 0xc9
#define UART_MCR_MASK 0x1f

void uart8250_init(struct uart8250 *u, int out_fd, uart_irq_fn irq, void *irq_opaque)
{
	*u = (struct uart8250){ .out_fd = out_fd, .irq = irq, .irq_opaque = irq_opaque,
				.mcr = 0x08, .dll = 12 };
}

static int uart_irq_due(const struct uart8250 *u)
{
	return (u->ier & UART_IER_THRI) && u->thri_pending;
}

static void uart_update_irq(struct uart8250 *u)
{
	int level = uart_irq_due(u);

	if (level != u->irq_level) {
		u->irq_level = level;
		if (u->irq)
			u->irq(u->irq_opaque, level);
	}
}

static void uart_tx(struct uart8250 *u, uint8_t c)
{
	u->tail[u->tail_pos] = (char)c;
	u->tail_pos = (u->tail_pos + 1) % UART_TAIL_SIZE;
	u->bytes_out++;
	if (u->out_fd < 0)
		return;
	/* A full pipe or terminal blocks the guest rather than losing output. */
	while (write(u->out_fd, &c, 1) < 0 && errno == EINTR)
		;
}

size_t uart8250_last_line(const struct uart8250 *u, char *out, size_t len)
{
	char buf[UART_TAIL_SIZE];
	size_t n = u->bytes_out < UART_TAIL_SIZE ? (size_t)u->bytes_out : UART_TAIL_SIZE;
	size_t start = (u->tail_pos + UART_TAIL_SIZE - n) % UART_TAIL_SIZE, end, begin, i, o = 0;

	if (!len)
		return 0;
	for (i = 0; i < n; i++)
		buf[i] = u->tail[(start + i) % UART_TAIL_SIZE];
	/* Skip trailing line ends, then back to the start of that line. */
	for (end = n; end > 0 && (buf[end - 1] == '\n' || buf[end - 1] == '\r'); end--)
		;
	for (begin = end; begin > 0 && buf[begin - 1] != '\n'; begin--)
		;
	for (i = begin; i < end && o + 1 < len; i++)
		out[o++] = (unsigned char)buf[i] < 0x20 || buf[i] == 0x7f ? '?' : buf[i];
	out[o] = '\0';
	return o;
}

static uint8_t uart_msr(const struct uart8250 *u)
{
	if (!(u->mcr & UART_MCR_LOOP))
		return UART_MSR_DCD | UART_MSR_DSR | UART_MSR_CTS;
	/* Loopback: modem outputs appear on the inputs, which the driver's probe checks. */
	return (uint8_t)(((u->mcr & 0x02) ? UART_MSR_CTS : 0) | ((u->mcr & 0x01) ? UART_MSR_DSR : 0) |
			 ((u->mcr & 0x04) ? UART_MSR_RI : 0) | ((u->mcr & 0x08) ? UART_MSR_DCD : 0));
}

static uint8_t uart_read(struct uart8250 *u, unsigned int reg)
{
	bool dlab = u->lcr & UART_LCR_DLAB;
	uint8_t fifo = (u->fcr & 1) ? UART_IIR_FIFO : 0;

	switch (reg) {
	case 0: return dlab ? u->dll : 0;
	case 1: return dlab ? u->dlm : u->ier;
	case 2:
		if ((u->ier & UART_IER_THRI) && u->thri_pending) {
			u->thri_pending = false; /* reading IIR acknowledges THRE */
			return UART_IIR_THRI | fifo;
		}
		return UART_IIR_NO_INT | fifo;
	case 3: return u->lcr;
	case 4: return u->mcr;
	case 5: return UART_LSR_THRE | UART_LSR_TEMT;
	case 6: return uart_msr(u);
	default: return u->scr;
	}
}

static void uart_write(struct uart8250 *u, unsigned int reg, uint8_t v)
{
	bool dlab = u->lcr & UART_LCR_DLAB;

	switch (reg) {
	case 0:
		if (dlab) {
			u->dll = v;
		} else {
			if (!(u->mcr & UART_MCR_LOOP))
				uart_tx(u, v);
			u->thri_pending = true;
		}
		break;
	case 1:
		if (dlab) {
			u->dlm = v;
		} else {
			/* Enabling THRI with an empty transmitter raises it at once (16550). */
			if ((v & UART_IER_THRI) && !(u->ier & UART_IER_THRI))
				u->thri_pending = true;
			u->ier = v & UART_IER_MASK;
		}
		break;
	case 2: u->fcr = v & UART_FCR_MASK; break;
	case 3: u->lcr = v; break;
	case 4: u->mcr = v & UART_MCR_MASK; break;
	case 7: u->scr = v; break;
	default: break;
	}
}

void uart8250_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct uart8250 *u = opaque;

	if (offset >= UART_NR_REGS || len != 1) {
		if (!is_write)
			for (uint32_t i = 0; i < len; i++)
				data[i] = 0xff;
		return;
	}
	if (is_write)
		uart_write(u, (unsigned int)offset, data[0]);
	else
		data[0] = uart_read(u, (unsigned int)offset);
	uart_update_irq(u);
}

int uart8250_save(struct uart8250 *u, struct snap_w *w)
{
	snap_put_u32(w, UART_SNAP_VERSION);
	snap_put_u8(w, u->ier);
	snap_put_u8(w, u->lcr);
	snap_put_u8(w, u->mcr);
	snap_put_u8(w, u->scr);
	snap_put_u8(w, u->dll);
	snap_put_u8(w, u->dlm);
	snap_put_u8(w, u->fcr);
	snap_put_u8(w, u->thri_pending);
	snap_put_u8(w, u->irq_level != 0);
	snap_put_u64(w, u->bytes_out);
	snap_put(w, u->tail, sizeof(u->tail));
	return w->err ? -ENOMEM : 0;
}

/* Registers as uart_write() stores them, and the line as uart_update_irq() leaves it. */
static bool uart_state_valid(const struct uart8250 *u)
{
	return !(u->ier & ~UART_IER_MASK) && !(u->fcr & ~UART_FCR_MASK) &&
	       !(u->mcr & ~UART_MCR_MASK) && u->irq_level == uart_irq_due(u);
}

int uart8250_restore(struct uart8250 *u, struct snap_r *r)
{
	struct uart8250 s = *u; /* keeps the fresh device's fd and irq callback */

	if (snap_get_u32(r) != UART_SNAP_VERSION)
		snap_r_fail(r);
	s.ier = snap_get_u8(r);
	s.lcr = snap_get_u8(r);
	s.mcr = snap_get_u8(r);
	s.scr = snap_get_u8(r);
	s.dll = snap_get_u8(r);
	s.dlm = snap_get_u8(r);
	s.fcr = snap_get_u8(r);
	s.thri_pending = snap_get_bool(r);
	s.irq_level = snap_get_bool(r);
	s.bytes_out = snap_get_u64(r);
	snap_get(r, s.tail, sizeof(s.tail));
	s.tail_pos = (unsigned int)(s.bytes_out % UART_TAIL_SIZE); /* as uart_tx() keeps it */
	if (!snap_r_done(r) || !uart_state_valid(&s)) {
		snap_r_fail(r);
		return -EINVAL;
	}
	*u = s;
	/* The line is a level the fresh machine has low: drive it to the guest's. */
	if (u->irq)
		u->irq(u->irq_opaque, u->irq_level);
	return 0;
}
