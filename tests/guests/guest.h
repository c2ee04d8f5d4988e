/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Helpers for the freestanding test guests (tests/guests/NAME.c): port and
 * MMIO access, a polled COM1 console, control registers, and zero-page
 * accessors.  Everything is static inline: each guest is one C file plus
 * start.S, with no libc.  Guests run at CPL0, which PVM hosts emulate
 * instruction by instruction, so the helpers stay short and branch-light.
 */
#ifndef MSVMM_TEST_GUEST_H
#define MSVMM_TEST_GUEST_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "ctl.h"

/* start.S calls this with the zero page the VMM handed over in %rsi. */
int guest_main(const uint8_t *boot_params);

/* State recorded by start.S before anything else ran. */
extern uint64_t entry_rflags, entry_rsp, entry_rsi;

/* start.S provides these; declared here so guests can call them. */
void *memcpy(void *dst, const void *src, size_t n);
void *memset(void *dst, int c, size_t n);
int memcmp(const void *a, const void *b, size_t n);

/* ---- port I/O ---- */

static inline void outb(uint16_t port, uint8_t v)
{
	__asm__ volatile("outb %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outw(uint16_t port, uint16_t v)
{
	__asm__ volatile("outw %0, %1" : : "a"(v), "Nd"(port));
}

static inline void outl(uint16_t port, uint32_t v)
{
	__asm__ volatile("outl %0, %1" : : "a"(v), "Nd"(port));
}

static inline uint8_t inb(uint16_t port)
{
	uint8_t v;

	__asm__ volatile("inb %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint16_t inw(uint16_t port)
{
	uint16_t v;

	__asm__ volatile("inw %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

static inline uint32_t inl(uint16_t port)
{
	uint32_t v;

	__asm__ volatile("inl %1, %0" : "=a"(v) : "Nd"(port));
	return v;
}

/* ---- MMIO: volatile so every access really leaves the CPU, at the width asked ---- */

static inline void mmio_write8(uint64_t addr, uint8_t v)
{
	*(volatile uint8_t *)addr = v;
}

static inline void mmio_write16(uint64_t addr, uint16_t v)
{
	*(volatile uint16_t *)addr = v;
}

static inline void mmio_write32(uint64_t addr, uint32_t v)
{
	*(volatile uint32_t *)addr = v;
}

static inline uint8_t mmio_read8(uint64_t addr)
{
	return *(volatile uint8_t *)addr;
}

static inline uint16_t mmio_read16(uint64_t addr)
{
	return *(volatile uint16_t *)addr;
}

static inline uint32_t mmio_read32(uint64_t addr)
{
	return *(volatile uint32_t *)addr;
}

static inline uint64_t mmio_read64(uint64_t addr)
{
	return *(volatile uint64_t *)addr;
}

/* ---- COM1, polled: no interrupts are set up in these guests ---- */

#define COM1_PORT 0x3f8
#define UART_THR 0
#define UART_LSR 5
#define UART_LSR_THRE 0x20

static inline void serial_putc(char c)
{
	/* Bounded: a VMM whose LSR never shows THRE must not hang the guest. */
	for (unsigned int i = 0; i < 100000; i++)
		if (inb(COM1_PORT + UART_LSR) & UART_LSR_THRE)
			break;
	outb(COM1_PORT + UART_THR, (uint8_t)c);
}

static inline void serial_puts(const char *s)
{
	while (*s)
		serial_putc(*s++);
}

/* "0x" and 'digits' hex digits, most significant first. */
static inline void serial_puthex(uint64_t v, unsigned int digits)
{
	serial_puts("0x");
	while (digits--)
		serial_putc("0123456789abcdef"[(v >> (digits * 4)) & 0xf]);
}

static inline void serial_putdec(uint64_t v)
{
	char buf[21];
	int i = 20;

	buf[i] = '\0';
	do {
		buf[--i] = (char)('0' + v % 10);
		v /= 10;
	} while (v);
	serial_puts(buf + i);
}

/* ---- control registers and MSRs ---- */

#define X86_CR0_PE (1ULL << 0)
#define X86_CR0_PG (1ULL << 31)
#define X86_CR4_PAE (1ULL << 5)
#define MSR_EFER 0xc0000080
#define EFER_LME (1ULL << 8)
#define EFER_LMA (1ULL << 10)
#define X86_RFLAGS_IF (1ULL << 9)

static inline uint64_t read_cr0(void)
{
	uint64_t v;

	__asm__ volatile("mov %%cr0, %0" : "=r"(v));
	return v;
}

static inline uint64_t read_cr3(void)
{
	uint64_t v;

	__asm__ volatile("mov %%cr3, %0" : "=r"(v));
	return v;
}

static inline uint64_t read_cr4(void)
{
	uint64_t v;

	__asm__ volatile("mov %%cr4, %0" : "=r"(v));
	return v;
}

static inline uint64_t rdmsr(uint32_t msr)
{
	uint32_t lo, hi;

	__asm__ volatile("rdmsr" : "=a"(lo), "=d"(hi) : "c"(msr));
	return (uint64_t)hi << 32 | lo;
}

static inline uint64_t read_efer(void)
{
	return rdmsr(MSR_EFER);
}

#define DEFINE_READ_SEG(name)                                          \
	static inline uint16_t read_##name(void)                      \
	{                                                              \
		uint16_t v;                                            \
		__asm__ volatile("mov %%" #name ", %0" : "=r"(v));     \
		return v;                                              \
	}
DEFINE_READ_SEG(cs)
DEFINE_READ_SEG(ds)
DEFINE_READ_SEG(es)
DEFINE_READ_SEG(ss)
#undef DEFINE_READ_SEG

struct desc_ptr {
	uint16_t limit;
	uint64_t base;
} __attribute__((packed));

static inline struct desc_ptr read_gdtr(void)
{
	struct desc_ptr d;

	__asm__ volatile("sgdt %0" : "=m"(d));
	return d;
}

static inline void load_idt(const struct desc_ptr *d)
{
	__asm__ volatile("lidt %0" : : "m"(*d));
}

/* ---- the zero page (struct boot_params), by offset as in vmm/boot.h ---- */

#define BP_E820_ENTRIES 0x1e8
#define BP_HEADER 0x202
#define BP_TYPE_OF_LOADER 0x210
#define BP_RAMDISK_IMAGE 0x218
#define BP_RAMDISK_SIZE 0x21c
#define BP_CMD_LINE_PTR 0x228
#define BP_E820_TABLE 0x2d0
#define BP_E820_ENTRY_SIZE 20
#define BP_E820_MAX 128
#define E820_RAM 1
#define E820_RESERVED 2

/* memcpy, not a cast: the fields are not naturally aligned (0x1f1 ...). */
static inline uint8_t bp_u8(const uint8_t *bp, unsigned int off)
{
	return bp[off];
}

static inline uint16_t bp_u16(const uint8_t *bp, unsigned int off)
{
	uint16_t v;

	__builtin_memcpy(&v, bp + off, sizeof(v));
	return v;
}

static inline uint32_t bp_u32(const uint8_t *bp, unsigned int off)
{
	uint32_t v;

	__builtin_memcpy(&v, bp + off, sizeof(v));
	return v;
}

static inline uint64_t bp_u64(const uint8_t *bp, unsigned int off)
{
	uint64_t v;

	__builtin_memcpy(&v, bp + off, sizeof(v));
	return v;
}

/* ---- small string helpers (no libc) ---- */

static inline size_t g_strlen(const char *s)
{
	size_t n = 0;

	while (s[n])
		n++;
	return n;
}

/*
 * Failure bookkeeping for the check-style test guests: report every failed
 * check on COM1 ("NAME: FAIL n (context): what") but keep going, so one run
 * shows every broken field; the guest returns the first failure's number.
 */
struct guest_checks {
	const char *name;
	const char *context;	/* NULL: none */
	int first_failure;
	unsigned int nr_failed;
};

static inline bool guest_check(struct guest_checks *g, bool ok, int n, const char *what)
{
	if (ok)
		return true;
	serial_puts(g->name);
	serial_puts(": FAIL ");
	serial_putdec((uint64_t)n);
	if (g->context) {
		serial_puts(" (");
		serial_puts(g->context);
		serial_puts(")");
	}
	serial_puts(": ");
	serial_puts(what);
	serial_puts("\n");
	if (!g->first_failure)
		g->first_failure = n;
	g->nr_failed++;
	return false;
}

/* Does the space-separated command line hold 'word' exactly? */
static inline bool cmdline_has_word(const char *cl, const char *word)
{
	size_t wl = g_strlen(word);

	for (const char *p = cl; *p;) {
		size_t n = 0;

		while (*p == ' ')
			p++;
		while (p[n] && p[n] != ' ')
			n++;
		if (n == wl && !memcmp(p, word, n))
			return true;
		p += n;
	}
	return false;
}

/* The value of "key=..." on the command line, or NULL; *len gets its length. */
static inline const char *cmdline_value(const char *cl, const char *key, size_t *len)
{
	size_t kl = g_strlen(key);

	for (const char *p = cl; *p;) {
		size_t n = 0;

		while (*p == ' ')
			p++;
		while (p[n] && p[n] != ' ')
			n++;
		if (n > kl && p[kl] == '=' && !memcmp(p, key, kl)) {
			*len = n - kl - 1;
			return p + kl + 1;
		}
		p += n;
	}
	return NULL;
}

#endif
