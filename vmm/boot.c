// SPDX-License-Identifier: Apache-2.0
#include "boot.h"

#include <string.h>

unsigned int boot_e820_build(const struct guest_mem *gm, struct e820_entry *out, unsigned int max)
{
	uint64_t low_end = guest_mem_low_end(gm);
	unsigned int n = 0;

	if (max < 4 || low_end <= BOOT_HIMEM_START)
		return 0;
	out[n++] = (struct e820_entry){ 0, BOOT_EBDA_START, E820_RAM };
	/* EBDA, VGA hole and BIOS area: the MP table lives at the EBDA start. */
	out[n++] = (struct e820_entry){ BOOT_EBDA_START, BOOT_HIMEM_START - BOOT_EBDA_START, E820_RESERVED };
	out[n++] = (struct e820_entry){ BOOT_HIMEM_START, low_end - BOOT_HIMEM_START, E820_RAM };
	if (gm->nr_regions > 1)
		out[n++] = (struct e820_entry){ gm->regions[1].gpa, gm->regions[1].size, E820_RAM };
	return n;
}

uint64_t boot_initrd_addr(const struct guest_mem *gm, const struct kernel_image *k, uint64_t size)
{
	uint64_t top = guest_mem_low_end(gm);
	uint64_t addr;

	if (k->initrd_addr_max && (uint64_t)k->initrd_addr_max + 1 < top)
		top = (uint64_t)k->initrd_addr_max + 1;
	if (size > top)
		return 0;
	addr = (top - size) & ~0xfffULL;
	if (addr < k->load_end)
		return 0;
	return addr;
}

uint64_t boot_gdt_entry(uint16_t flags, uint32_t base, uint32_t limit)
{
	return ((uint64_t)(base & 0xff000000u) << 32) | ((uint64_t)(flags & 0xf0ffu) << 40) |
	       ((uint64_t)(limit & 0x000f0000u) << 32) | ((uint64_t)(base & 0x00ffffffu) << 16) |
	       (uint64_t)(limit & 0x0000ffffu);
}

static int boot_write_tables(const struct guest_mem *gm)
{
	uint64_t gdt[5] = {
		0, 0,
		boot_gdt_entry(0xa09b, 0, 0xfffff), /* 0x10: 64-bit code */
		boot_gdt_entry(0xc093, 0, 0xfffff), /* 0x18: data */
		boot_gdt_entry(0x808b, 0, 0xfffff), /* 0x20: TSS, only so TR is valid */
	};
	uint64_t idt = 0, pml4 = BOOT_PDPT_ADDR | 3, pdpt[4], pd[512];

	if (guest_mem_write(gm, BOOT_GDT_ADDR, gdt, sizeof(gdt)) ||
	    guest_mem_write(gm, BOOT_IDT_ADDR, &idt, sizeof(idt)) ||
	    guest_mem_write(gm, BOOT_PML4_ADDR, &pml4, sizeof(pml4)))
		return -1;
	/* Identity-map 4 GiB with 2 MiB pages: covers kernel, zero page, command line and initrd. */
	for (unsigned int g = 0; g < 4; g++) {
		pdpt[g] = (BOOT_PD_ADDR + g * 0x1000ULL) | 3;
		for (unsigned int i = 0; i < 512; i++)
			pd[i] = (((uint64_t)g << 30) + ((uint64_t)i << 21)) | 0x83;
		if (guest_mem_write(gm, BOOT_PD_ADDR + g * 0x1000ULL, pd, sizeof(pd)))
			return -1;
	}
	return guest_mem_write(gm, BOOT_PDPT_ADDR, pdpt, sizeof(pdpt));
}

static void put32(uint8_t *zp, unsigned int off, uint32_t v)
{
	memcpy(zp + off, &v, sizeof(v));
}

int boot_setup(const struct guest_mem *gm, const struct kernel_image *k, const char *cmdline,
	       uint64_t initrd_addr, uint64_t initrd_size, msvmm_error *err)
{
	uint8_t *zp = guest_mem_ptr(gm, BOOT_ZERO_PAGE_ADDR, 4096);
	struct e820_entry e820[BP_E820_MAX];
	size_t cl = strlen(cmdline);
	unsigned int n;

	if (!zp || boot_write_tables(gm))
		return err_set(err, MSVMM_EINVAL, "guest RAM too small for the boot tables");
	if (cl >= BOOT_CMDLINE_MAX)
		return err_set(err, MSVMM_EINVAL, "kernel command line too long (%zu bytes, max %d)", cl,
			       BOOT_CMDLINE_MAX - 1);
	if (guest_mem_write(gm, BOOT_CMDLINE_ADDR, cmdline, cl + 1))
		return err_set(err, MSVMM_EINVAL, "guest RAM too small for the command line");
	n = boot_e820_build(gm, e820, BP_E820_MAX);
	if (!n)
		return err_set(err, MSVMM_EINVAL, "guest RAM too small (need more than 1 MiB)");

	memset(zp, 0, 4096);
	if (k->is_bzimage) {
		memcpy(zp + BP_HDR, k->setup_hdr, k->setup_hdr_len);
	} else {
		/* A vmlinux has no setup header: supply the fields the kernel checks. */
		zp[BP_BOOT_FLAG] = 0x55;
		zp[BP_BOOT_FLAG + 1] = 0xaa;
		put32(zp, BP_HEADER, 0x53726448);
		put32(zp, BP_KERNEL_ALIGNMENT, 0x01000000);
	}
	zp[BP_TYPE_OF_LOADER] = 0xff;
	zp[BP_LOADFLAGS] |= 0x01 | 0x80; /* LOADED_HIGH | CAN_USE_HEAP */
	zp[BP_HEAP_END_PTR] = 0x00;
	zp[BP_HEAP_END_PTR + 1] = 0xfe; /* 0xfe00: the heap end used by real-mode setup */
	put32(zp, BP_CMD_LINE_PTR, (uint32_t)BOOT_CMDLINE_ADDR);
	put32(zp, BP_CMDLINE_SIZE, (uint32_t)cl);
	put32(zp, BP_RAMDISK_IMAGE, (uint32_t)initrd_addr);
	put32(zp, BP_RAMDISK_SIZE, (uint32_t)initrd_size);
	zp[BP_E820_ENTRIES] = (uint8_t)n;
	memcpy(zp + BP_E820_TABLE, e820, n * sizeof(e820[0]));
	return 0;
}
