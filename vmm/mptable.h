/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Intel MultiProcessor table (spec 1.4) at the start of the EBDA: without it
 * (and without ACPI) Linux finds neither the IOAPIC nor the other vCPUs.
 */
#ifndef MSVMM_MPTABLE_H
#define MSVMM_MPTABLE_H

#include "guest_mem.h"

#define MPTABLE_ADDR 0x9fc00ULL
#define MPTABLE_MAX_CPUS 64
#define MPTABLE_IOAPIC_ADDR 0xfec00000U
#define MPTABLE_LAPIC_ADDR 0xfee00000U
#define MPTABLE_IRQS 24

/* Write the floating pointer and configuration table; 0 or -1 (no room / bad count). */
int mptable_write(const struct guest_mem *gm, unsigned int ncpus);

/* The 8-bit two's-complement checksum rule the MP spec uses. */
uint8_t mptable_checksum(const uint8_t *p, size_t len);

#endif
