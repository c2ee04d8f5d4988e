/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The Linux x86-64 boot protocol, 64-bit entry: zero page (boot_params) with
 * the e820 map, the command line, the initrd, an identity-mapped long-mode
 * page table and a flat GDT.  Everything is written through the checked
 * guest-memory accessor, so it can be unit-tested on a plain buffer.
 */
#ifndef MSVMM_BOOT_H
#define MSVMM_BOOT_H

#include <stdint.h>

#include "guest_mem.h"
#include "loader.h"

#define BOOT_GDT_ADDR 0x500ULL
#define BOOT_IDT_ADDR 0x540ULL /* after the 5-entry GDT */
#define BOOT_ZERO_PAGE_ADDR 0x7000ULL
#define BOOT_STACK_ADDR 0x8ff0ULL
#define BOOT_PML4_ADDR 0x9000ULL
#define BOOT_PDPT_ADDR 0xa000ULL
#define BOOT_PD_ADDR 0xb000ULL /* four pages: identity map of 0..4 GiB */
#define BOOT_CMDLINE_ADDR 0x20000ULL
#define BOOT_CMDLINE_MAX 4096
#define BOOT_EBDA_START 0x9fc00ULL
#define BOOT_HIMEM_START 0x100000ULL

#define BOOT_CS 0x10
#define BOOT_DS 0x18
#define BOOT_TSS 0x20

/* boot_params offsets (arch/x86/include/uapi/asm/bootparam.h). */
#define BP_E820_ENTRIES 0x1e8
#define BP_HDR 0x1f1
#define BP_BOOT_FLAG 0x1fe
#define BP_HEADER 0x202
#define BP_VERSION 0x206
#define BP_TYPE_OF_LOADER 0x210
#define BP_LOADFLAGS 0x211
#define BP_RAMDISK_IMAGE 0x218
#define BP_RAMDISK_SIZE 0x21c
#define BP_HEAP_END_PTR 0x224
#define BP_CMD_LINE_PTR 0x228
#define BP_KERNEL_ALIGNMENT 0x230
#define BP_CMDLINE_SIZE 0x238
#define BP_E820_TABLE 0x2d0
#define BP_E820_MAX 128

#define E820_RAM 1
#define E820_RESERVED 2

struct e820_entry {
	uint64_t addr;
	uint64_t size;
	uint32_t type;
} __attribute__((packed));

/* Fill 'out' with msvmm's memory map for this guest; returns the count. */
unsigned int boot_e820_build(const struct guest_mem *gm, struct e820_entry *out, unsigned int max);

/* Choose where the initrd goes: page-aligned, as high as allowed. 0: no room. */
uint64_t boot_initrd_addr(const struct guest_mem *gm, const struct kernel_image *k, uint64_t size);

/* Write zero page, command line, GDT, IDT and page tables. */
int boot_setup(const struct guest_mem *gm, const struct kernel_image *k, const char *cmdline,
	       uint64_t initrd_addr, uint64_t initrd_size, msvmm_error *err);

/* A GDT entry in the packed hardware format. */
uint64_t boot_gdt_entry(uint16_t flags, uint32_t base, uint32_t limit);

#endif
