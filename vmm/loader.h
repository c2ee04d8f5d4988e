/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Kernel loading: an ELF vmlinux (PT_LOAD segments at their physical
 * addresses, through libelf) or a bzImage (boot protocol >= 2.12 with a
 * 64-bit entry).  The file is untrusted input: every offset and size is
 * checked against the file and against guest RAM before anything is copied.
 */
#ifndef MSVMM_LOADER_H
#define MSVMM_LOADER_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "guest_mem.h"
#include "err.h"

#define KERNEL_SETUP_HDR_OFFSET 0x1f1
#define KERNEL_SETUP_HDR_MAX (0x280 - KERNEL_SETUP_HDR_OFFSET)
#define BZIMAGE_LOAD_ADDR 0x100000ULL
#define BZIMAGE_MIN_VERSION 0x020c

struct kernel_image {
	uint64_t entry;        /* guest-physical 64-bit entry point */
	uint64_t load_start;   /* lowest guest-physical byte used by the kernel */
	uint64_t load_end;     /* one past the highest (includes init_size for bzImage) */
	bool is_bzimage;
	/* bzImage only: the setup header (from file offset 0x1f1) to copy into the zero page. */
	uint8_t setup_hdr[KERNEL_SETUP_HDR_MAX];
	size_t setup_hdr_len;
	uint32_t initrd_addr_max; /* highest address the initrd may end at */
};

/* Detect the format and load.  Returns 0 or -MSVMM_E*, with a message in err. */
int kernel_load(const struct guest_mem *gm, const uint8_t *file, size_t len,
		struct kernel_image *out, msvmm_error *err);
/*
 * As kernel_load, with 'file' the contents of fd: page-aligned ELF segments
 * are mapped from fd copy-on-write instead of copied.  Only for fresh
 * (all-zero) guest RAM.
 */
int kernel_load_fd(const struct guest_mem *gm, int fd, const uint8_t *file, size_t len,
		   struct kernel_image *out, msvmm_error *err);
int kernel_load_elf(const struct guest_mem *gm, const uint8_t *file, size_t len,
		    struct kernel_image *out, msvmm_error *err);
int kernel_load_bzimage(const struct guest_mem *gm, const uint8_t *file, size_t len,
			struct kernel_image *out, msvmm_error *err);

#endif
