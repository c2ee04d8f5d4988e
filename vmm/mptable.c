// SPDX-License-Identifier: Apache-2.0
#include "mptable.h"

#include <string.h>

#define MP_ENTRY_CPU 0
#define MP_ENTRY_BUS 1
#define MP_ENTRY_IOAPIC 2
#define MP_ENTRY_IOINT 3
#define MP_ENTRY_LINT 4

#define MP_INT 0
#define MP_NMI 1
#define MP_EXTINT 3

struct mp_buf {
	uint8_t *p;
	size_t len, cap;
	int overflow;
};

static void mp_put(struct mp_buf *b, const void *src, size_t n)
{
	if (b->overflow || n > b->cap - b->len) {
		b->overflow = 1;
		return;
	}
	memcpy(b->p + b->len, src, n);
	b->len += n;
}

uint8_t mptable_checksum(const uint8_t *p, size_t len)
{
	uint8_t sum = 0;

	for (size_t i = 0; i < len; i++)
		sum += p[i];
	return (uint8_t)-sum;
}

static void mp_cpus(struct mp_buf *b, unsigned int ncpus)
{
	for (unsigned int i = 0; i < ncpus; i++) {
		uint8_t e[20] = { MP_ENTRY_CPU, (uint8_t)i, 0x14, (uint8_t)(0x01 | (i == 0 ? 0x02 : 0)) };
		uint32_t sig = 0x600, feat = 0x201; /* family 6; FPU | APIC */

		memcpy(e + 4, &sig, 4);
		memcpy(e + 8, &feat, 4);
		mp_put(b, e, sizeof(e));
	}
}

static void mp_ioints(struct mp_buf *b, uint8_t ioapic_id)
{
	for (unsigned int irq = 0; irq < MPTABLE_IRQS; irq++) {
		/* KVM's default routing sends GSI 0 (the PIT) to IOAPIC pin 2, as on a PC. */
		uint8_t pin = irq == 0 ? 2 : (uint8_t)irq;
		uint8_t e[8] = { MP_ENTRY_IOINT, MP_INT, 0, 0, 0, (uint8_t)irq, ioapic_id, pin };

		if (irq == 2)
			continue;
		mp_put(b, e, sizeof(e));
	}
}

int mptable_write(const struct guest_mem *gm, unsigned int ncpus)
{
	uint8_t tbl[2048], *fp;
	struct mp_buf b = { tbl, 0, sizeof(tbl), 0 };
	uint8_t ioapic_id = (uint8_t)ncpus;
	uint32_t u32;
	uint16_t u16;

	if (ncpus == 0 || ncpus > MPTABLE_MAX_CPUS)
		return -1;
	memset(tbl, 0, sizeof(tbl));
	b.len = 44; /* header, filled in below */
	mp_cpus(&b, ncpus);
	mp_put(&b, (uint8_t[8]){ MP_ENTRY_BUS, 0, 'I', 'S', 'A', ' ', ' ', ' ' }, 8);
	mp_put(&b, (uint8_t[8]){ MP_ENTRY_IOAPIC, ioapic_id, 0x11, 0x01, 0x00, 0x00, 0xc0, 0xfe }, 8);
	mp_ioints(&b, ioapic_id);
	mp_put(&b, (uint8_t[8]){ MP_ENTRY_LINT, MP_EXTINT, 0, 0, 0, 0, 0xff, 0 }, 8);
	mp_put(&b, (uint8_t[8]){ MP_ENTRY_LINT, MP_NMI, 0, 0, 0, 0, 0xff, 1 }, 8);
	if (b.overflow)
		return -1;

	memcpy(tbl, "PCMP", 4);
	u16 = (uint16_t)b.len;
	memcpy(tbl + 4, &u16, 2);
	tbl[6] = 4; /* spec revision 1.4 */
	memcpy(tbl + 8, "MSVMM   ", 8);
	memcpy(tbl + 16, "MICROVM     ", 12);
	u16 = (uint16_t)(ncpus + 1 + 1 + (MPTABLE_IRQS - 1) + 2);
	memcpy(tbl + 34, &u16, 2);
	u32 = MPTABLE_LAPIC_ADDR;
	memcpy(tbl + 36, &u32, 4);
	tbl[7] = mptable_checksum(tbl, b.len);

	/* Floating pointer structure, then the table right after it. */
	fp = guest_mem_ptr(gm, MPTABLE_ADDR, 16 + b.len);
	if (!fp)
		return -1;
	memset(fp, 0, 16);
	memcpy(fp, "_MP_", 4);
	u32 = (uint32_t)(MPTABLE_ADDR + 16);
	memcpy(fp + 4, &u32, 4);
	fp[8] = 1; /* length in 16-byte units */
	fp[9] = 4;
	fp[10] = mptable_checksum(fp, 16);
	memcpy(fp + 16, tbl, b.len);
	return 0;
}
