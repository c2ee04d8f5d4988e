// SPDX-License-Identifier: Apache-2.0
/*
 * What a hostile or buggy guest might do to the VMM's device emulation:
 * I/O to ports nobody owns (every width, string I/O), MMIO reads and writes
 * where no device is, and malformed accesses to the control page (wrong
 * sizes, odd offsets, read-only and unknown registers, a write straddling
 * the end of the page, partial writes to EXIT itself).  The VMM must
 * survive all of it, ignore every malformed EXIT write, and end with
 * exactly the status of the final well-formed one: 7.
 *
 * Unclaimed reads must float high (all ones), as on a real bus.  That is
 * checked too; a mismatch is printed and turns the status into 100+n so the
 * test can tell "survived but answered wrongly" from "survived".
 */
#include "guest.h"

#define HOSTILE_STATUS 7
#define NOWHERE_MMIO 0xc8000000ULL	/* in the MMIO hole, below the control page: no device */
#define CTL MSVMM_CTL_BASE

static int bad;

static void expect(bool ok, int n, const char *what)
{
	if (ok)
		return;
	serial_puts("hostile_io: WRONG ");
	serial_putdec((uint64_t)n);
	serial_puts(": ");
	serial_puts(what);
	serial_puts("\n");
	if (!bad)
		bad = 100 + n;
}

static void unknown_ports(void)
{
	static const uint16_t ports[] = { 0x0000, 0x0001, 0x00ed, 0x0cf8, 0x0cfc, 0x1234, 0x5658, 0xbeef, 0xfffc };
	uint8_t buf[16];
	const void *src;
	void *dst;
	uint64_t cnt;

	for (unsigned int i = 0; i < sizeof(ports) / sizeof(ports[0]); i++) {
		uint16_t p = ports[i];

		outb(p, 0xa5);
		outw(p, 0xdead);
		outl(p, 0xdeadbeef);
		expect(inb(p) == 0xff, 1, "inb from an unknown port is not 0xff");
		expect(inw(p) == 0xffff, 2, "inw from an unknown port is not 0xffff");
		expect(inl(p) == 0xffffffffu, 3, "inl from an unknown port is not 0xffffffff");
	}
	/* The top port: a 4-byte access there wraps past 0xffff. */
	outl(0xffff, 0x01020304);
	(void)inl(0xffff);
	/* The POST/debug port Linux pokes for delays. */
	outb(0x80, 0x42);
	/* String I/O: many items in one exit. */
	memset(buf, 0x5a, sizeof(buf));
	src = buf;
	cnt = sizeof(buf);
	__asm__ volatile("rep outsb" : "+S"(src), "+c"(cnt) : "d"((uint16_t)0x1234) : "memory");
	dst = buf;
	cnt = sizeof(buf);
	__asm__ volatile("rep insb" : "+D"(dst), "+c"(cnt) : "d"((uint16_t)0x1234) : "memory");
	for (unsigned int i = 0; i < sizeof(buf); i++)
		expect(buf[i] == 0xff, 4, "rep insb from an unknown port did not read 0xff");
	/* A UART register write with a value no driver sends, then the scratch register. */
	outb(COM1_PORT + 3, 0xff);
	outb(COM1_PORT + 3, 0x03);	/* back to 8N1, DLAB off, so THR is THR again */
	outb(COM1_PORT + 7, 0x3c);
}

static void unknown_mmio(void)
{
	expect(mmio_read8(NOWHERE_MMIO) == 0xff, 5, "8-bit read of unclaimed MMIO is not 0xff");
	expect(mmio_read16(NOWHERE_MMIO + 2) == 0xffff, 6, "16-bit read of unclaimed MMIO is not 0xffff");
	expect(mmio_read32(NOWHERE_MMIO + 4) == 0xffffffffu, 7, "32-bit read of unclaimed MMIO is not all ones");
	expect(mmio_read64(NOWHERE_MMIO + 8) == ~0ULL, 8, "64-bit read of unclaimed MMIO is not all ones");
	/* Unaligned, crossing a page boundary into more nothing. */
	expect(mmio_read32(NOWHERE_MMIO + 0xffe) == 0xffffffffu, 9, "page-straddling read is not all ones");
	mmio_write32(NOWHERE_MMIO, 0xdeadbeef);
	mmio_write8(NOWHERE_MMIO + 0x123, 0x77);
	/* Just past the control page, where virtio-mmio devices may or may not be. */
	(void)mmio_read32(CTL + MSVMM_CTL_SIZE + 0x800);
}

static void control_page(void)
{
	static const uint32_t offs[] = { 1, 2, 3, 0x10, 0xffc };

	for (unsigned int i = 0; i < sizeof(offs) / sizeof(offs[0]); i++) {
		mmio_write8(CTL + offs[i], 0x55);
		mmio_write16(CTL + (offs[i] & ~1u), 0x5555);
		(void)mmio_read8(CTL + offs[i]);
		(void)mmio_read16(CTL + (offs[i] & ~1u));
	}
	/* Narrow and misaligned writes over EXIT: none is a well-formed exit. */
	mmio_write8(CTL + MSVMM_CTL_EXIT, 0x55);
	mmio_write8(CTL + MSVMM_CTL_EXIT + 1, 0x55);
	mmio_write16(CTL + MSVMM_CTL_EXIT, 0x5555);
	mmio_write16(CTL + MSVMM_CTL_EXIT + 2, 0x5555);
	mmio_write32(CTL + MSVMM_CTL_EXIT + 1, 0x55555555);	/* straddles EXIT and PHASE */
	/* Unknown and read-only registers at full width. */
	mmio_write32(CTL + MSVMM_CTL_MAGIC, 0);
	mmio_write32(CTL + 0x10, 0xffffffff);
	mmio_write32(CTL + 0xffc, 0xffffffff);
	mmio_write32(CTL + MSVMM_CTL_PHASE, 0xffffffff);
	/* Straddling the end of the control page. */
	mmio_write32(CTL + MSVMM_CTL_SIZE - 2, 0x55555555);
	(void)mmio_read32(CTL + MSVMM_CTL_SIZE - 2);
	/* The device must still answer normally after all that. */
	expect(mmio_read32(CTL + MSVMM_CTL_MAGIC) == MSVMM_CTL_MAGIC_VALUE, 10,
	       "control page MAGIC is wrong after the garbage writes");
}

int guest_main(const uint8_t *boot_params __attribute__((unused)))
{
	unknown_ports();
	unknown_mmio();
	control_page();
	serial_puts(bad ? "hostile_io: survived, with wrong answers\n" : "hostile_io: survived\n");
	return bad ? bad : HOSTILE_STATUS;
}
