/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Guest physical memory and the one checked accessor through which every
 * guest-controlled address is turned into a host pointer.
 *
 * Layout: RAM at [0, min(size, 3 GiB)) and, for larger guests, the rest at
 * [4 GiB, ...).  The 3..4 GiB hole holds MMIO, the IOAPIC/LAPIC and the TSS.
 */
#ifndef MSVMM_GUEST_MEM_H
#define MSVMM_GUEST_MEM_H

#include <stddef.h>
#include <stdint.h>

#define GUEST_MEM_LOW_END   0xC0000000ULL /* 3 GiB: start of the MMIO hole */
#define GUEST_MEM_HIGH_BASE 0x100000000ULL /* 4 GiB */
#define GUEST_MEM_MAX_REGIONS 2

struct guest_mem_region {
	uint64_t gpa;  /* guest-physical start */
	uint64_t size; /* bytes */
	uint8_t *host; /* host mapping of the region */
};

struct guest_mem {
	struct guest_mem_region regions[GUEST_MEM_MAX_REGIONS];
	unsigned int nr_regions;
	uint64_t ram_size;  /* total RAM bytes */
	uint8_t *mapping;   /* one host mapping covering all regions */
	size_t mapping_size;
};

/* Allocate and describe 'size' bytes of guest RAM.  Returns 0 or -errno. */
int guest_mem_init(struct guest_mem *gm, uint64_t size);
void guest_mem_free(struct guest_mem *gm);

/*
 * 'size' bytes of guest RAM mapped copy-on-write from fd at offset 'off'
 * (a snapshot's memory): pages are read from the file when first touched,
 * the guest's writes stay private, the file is never modified.
 */
int guest_mem_init_file(struct guest_mem *gm, uint64_t size, int fd, uint64_t off);

/*
 * Describe caller-owned memory (tests, snapshots).  'host' must hold 'size'
 * bytes laid out as the regions would be (low region then high region).
 */
void guest_mem_init_from(struct guest_mem *gm, uint8_t *host, uint64_t size);

/*
 * The checked accessor: return a host pointer for [gpa, gpa + len) if the
 * whole range lies inside one RAM region, else NULL.  Overflow-safe for any
 * 64-bit gpa and len.  len == 0 is valid if gpa is inside (or at the end of)
 * a region.
 */
void *guest_mem_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len);

/* Copy helpers built on guest_mem_ptr; return 0 or -EFAULT. */
int guest_mem_read(const struct guest_mem *gm, uint64_t gpa, void *dst, uint64_t len);
int guest_mem_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len);

/* The highest guest-physical address of low RAM (exclusive). */
uint64_t guest_mem_low_end(const struct guest_mem *gm);

#endif
