/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An 8250/16550A UART at the standard COM1 ports.  Transmitted bytes go to a
 * host fd at once, so the transmitter is always empty; the guest's THRE
 * interrupt and loopback probe behave as Linux's 8250 driver expects.
 */
#ifndef MSVMM_UART8250_H
#define MSVMM_UART8250_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define UART_COM1_BASE 0x3f8
#define UART_COM1_IRQ 4
#define UART_NR_REGS 8
#define UART_TAIL_SIZE 512

typedef void (*uart_irq_fn)(void *opaque, int level);

struct uart8250 {
	uint8_t ier, lcr, mcr, scr, dll, dlm, fcr;
	bool thri_pending; /* THR-empty interrupt not yet acknowledged by an IIR read */
	int irq_level;
	int out_fd;        /* -1: discard output */
	uint64_t bytes_out;
	/* The last bytes sent, for error messages when the console goes nowhere. */
	char tail[UART_TAIL_SIZE];
	unsigned int tail_pos; /* next write position; the ring is full once bytes_out >= size */
	uart_irq_fn irq;
	void *irq_opaque;
};

void uart8250_init(struct uart8250 *u, int out_fd, uart_irq_fn irq, void *irq_opaque);
/*
 * The last non-empty line the guest printed, control characters replaced,
 * NUL-terminated in out (at most len - 1 bytes).  Returns its length (0: none).
 * Not thread-safe: call when the vCPUs are stopped.
 */
size_t uart8250_last_line(const struct uart8250 *u, char *out, size_t len);
/* Port access relative to the base; matches bus_handler. */
void uart8250_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/*
 * Snapshots.  The section: a version (u32); ier, lcr, mcr, scr, dll, dlm,
 * fcr (u8 each); thri_pending and the irq level (u8, 0 or 1); bytes_out
 * (u64) and the console tail ring (UART_TAIL_SIZE bytes; its write position
 * is bytes_out modulo the size), so uart8250_last_line() still shows the
 * guest's last line.  The console fd and the irq callback are the fresh
 * device's.
 *
 * save: 0, or -ENOMEM when the writer ran out of memory.  restore: 'r'
 * holds exactly this section and 'u' was just set up by uart8250_init();
 * 0, with the irq callback called with the restored level, or -EINVAL
 * (malformed: a register value the guest cannot write, an irq level that
 * does not follow from the registers) with 'u' unchanged.
 */
struct snap_w;
struct snap_r;
int uart8250_save(struct uart8250 *u, struct snap_w *w);
int uart8250_restore(struct uart8250 *u, struct snap_r *r);

#endif
