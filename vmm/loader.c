// SPDX-License-Identifier: Apache-2.0
#include "loader.h"

#include <gelf.h>
#include <libelf.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>

/* Segments beyond this count are not a Linux kernel; refuse early. */
#define ELF_MAX_LOADS 64

struct elf_seg {
	uint64_t paddr, filesz, memsz, offset;
};

static int seg_cmp(const void *a, const void *b)
{
	const struct elf_seg *x = a, *y = b;

	return x->paddr < y->paddr ? -1 : x->paddr > y->paddr;
}

/* Check one PT_LOAD against the file and guest RAM, without wrapping. */
static int elf_check_seg(const struct guest_mem *gm, size_t len, const struct elf_seg *s,
			 unsigned int idx, msvmm_error *err)
{
	if (s->filesz > s->memsz)
		return err_set(err, MSVMM_EFORMAT, "vmlinux: segment %u has file size above memory size", idx);
	if (s->offset > len || s->filesz > len - s->offset)
		return err_set(err, MSVMM_EFORMAT, "vmlinux: segment %u extends past the end of the file (truncated?)", idx);
	if (!guest_mem_ptr(gm, s->paddr, s->memsz))
		return err_set(err, MSVMM_EFORMAT,
			       "vmlinux: segment %u [0x%llx, +0x%llx) does not fit in guest RAM", idx,
			       (unsigned long long)s->paddr, (unsigned long long)s->memsz);
	return 0;
}

static int elf_collect(Elf *elf, const struct guest_mem *gm, size_t len, struct elf_seg *segs,
		       unsigned int *nsegs, msvmm_error *err)
{
	size_t phnum;
	unsigned int n = 0;

	if (elf_getphdrnum(elf, &phnum) != 0)
		return err_set(err, MSVMM_EFORMAT, "vmlinux: unreadable program headers: %s", elf_errmsg(-1));
	for (size_t i = 0; i < phnum; i++) {
		GElf_Phdr ph;
		int rc;

		if (!gelf_getphdr(elf, (int)i, &ph))
			return err_set(err, MSVMM_EFORMAT, "vmlinux: bad program header %zu", i);
		if (ph.p_type != PT_LOAD)
			continue;
		if (n == ELF_MAX_LOADS)
			return err_set(err, MSVMM_EFORMAT, "vmlinux: more than %d loadable segments", ELF_MAX_LOADS);
		segs[n] = (struct elf_seg){ ph.p_paddr, ph.p_filesz, ph.p_memsz, ph.p_offset };
		rc = elf_check_seg(gm, len, &segs[n], n, err);
		if (rc)
			return rc;
		n++;
	}
	if (!n)
		return err_set(err, MSVMM_EFORMAT, "vmlinux: no loadable segments");
	qsort(segs, n, sizeof(*segs), seg_cmp);
	for (unsigned int i = 1; i < n; i++)
		if (segs[i].paddr - segs[i - 1].paddr < segs[i - 1].memsz)
			return err_set(err, MSVMM_EFORMAT, "vmlinux: loadable segments overlap at 0x%llx",
				       (unsigned long long)segs[i].paddr);
	*nsegs = n;
	return 0;
}

static int elf_check_header(Elf *elf, size_t len, GElf_Ehdr *eh, msvmm_error *err)
{
	if (elf_kind(elf) != ELF_K_ELF || !gelf_getehdr(elf, eh))
		return err_set(err, MSVMM_EFORMAT, "kernel: not an ELF file");
	if (gelf_getclass(elf) != ELFCLASS64)
		return err_set(err, MSVMM_EFORMAT, "vmlinux: not a 64-bit ELF file");
	if (eh->e_machine != EM_X86_64)
		return err_set(err, MSVMM_EFORMAT, "vmlinux: wrong architecture (ELF machine %u, want x86-64)",
			       eh->e_machine);
	if (eh->e_type != ET_EXEC)
		return err_set(err, MSVMM_EFORMAT, "vmlinux: not an executable ELF file");
	if (eh->e_phoff > len || (uint64_t)eh->e_phnum * eh->e_phentsize > len - eh->e_phoff)
		return err_set(err, MSVMM_EFORMAT, "vmlinux: program headers extend past the end of the file (truncated?)");
	return 0;
}

#define PAGE_SIZE_4K 4096ULL

/*
 * Map a segment's file pages straight into guest RAM (private, copy on
 * write): no copy, and unchanged kernel pages stay shared with the page
 * cache.  Needs page-aligned file offset and address and a segment that
 * does not share its last page with the next one; RAM must be fresh
 * (zero), since bss beyond the mapped pages is not cleared.  Returns false
 * when the caller must copy instead.
 */
static bool elf_map_seg(const struct guest_mem *gm, int fd, const struct elf_seg *s, uint64_t next_paddr)
{
	uint64_t map_len = (s->filesz + PAGE_SIZE_4K - 1) & ~(PAGE_SIZE_4K - 1);
	uint8_t *dst = guest_mem_ptr(gm, s->paddr, s->memsz);
	uint64_t tail = map_len - s->filesz;

	if (fd < 0 || !s->filesz || (s->paddr | s->offset) & (PAGE_SIZE_4K - 1) || map_len > s->memsz + tail ||
	    s->paddr + map_len > next_paddr || !guest_mem_ptr(gm, s->paddr, map_len))
		return false;
	if (mmap(dst, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, (off_t)s->offset) == MAP_FAILED)
		return false;
	/* The rest of the last page holds whatever follows in the file: bss starts there. */
	memset(dst + s->filesz, 0, tail);
	return true;
}

static int kernel_load_elf_src(const struct guest_mem *gm, const uint8_t *file, size_t len, int fd,
			       struct kernel_image *out, msvmm_error *err)
{
	struct elf_seg segs[ELF_MAX_LOADS];
	unsigned int n = 0;
	GElf_Ehdr eh;
	Elf *elf;
	int rc;

	if (elf_version(EV_CURRENT) == EV_NONE)
		return err_set(err, MSVMM_EINTERNAL, "libelf initialisation failed");
	/* libelf only reads from this buffer; the cast drops const for its API. */
	elf = elf_memory((char *)file, len);
	if (!elf)
		return err_set(err, MSVMM_EFORMAT, "vmlinux: %s", elf_errmsg(-1));
	rc = elf_check_header(elf, len, &eh, err);
	if (!rc)
		rc = elf_collect(elf, gm, len, segs, &n, err);
	elf_end(elf);
	if (rc)
		return rc;

	/* Every check before the first byte is copied: a refused kernel leaves RAM untouched. */
	if (eh.e_entry < segs[0].paddr || eh.e_entry >= segs[n - 1].paddr + segs[n - 1].memsz)
		return err_set(err, MSVMM_EFORMAT, "vmlinux: entry point 0x%llx outside the loaded segments",
			       (unsigned long long)eh.e_entry);
	memset(out, 0, sizeof(*out));
	for (unsigned int i = 0; i < n; i++) {
		uint8_t *dst = guest_mem_ptr(gm, segs[i].paddr, segs[i].memsz);
		uint64_t next = i + 1 < n ? segs[i + 1].paddr : UINT64_MAX;

		if (elf_map_seg(gm, fd, &segs[i], next))
			continue;
		memcpy(dst, file + segs[i].offset, segs[i].filesz);
		memset(dst + segs[i].filesz, 0, segs[i].memsz - segs[i].filesz);
	}
	out->load_start = segs[0].paddr;
	out->load_end = segs[n - 1].paddr + segs[n - 1].memsz;
	out->entry = eh.e_entry;
	out->initrd_addr_max = 0x7fffffff;
	return 0;
}

static uint32_t rd32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static uint16_t rd16(const uint8_t *p)
{
	uint16_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

int kernel_load_bzimage(const struct guest_mem *gm, const uint8_t *file, size_t len,
			struct kernel_image *out, msvmm_error *err)
{
	size_t hdr_end, setup_size, pm_size;
	uint16_t version;
	uint32_t init_size;
	uint8_t setup_sects;

	if (len < 0x280 || rd16(file + 0x1fe) != 0xAA55 || rd32(file + 0x202) != 0x53726448)
		return err_set(err, MSVMM_EFORMAT, "kernel: not a bzImage (no boot sector signature or HdrS)");
	version = rd16(file + 0x206);
	if (version < BZIMAGE_MIN_VERSION)
		return err_set(err, MSVMM_EFORMAT, "bzImage: boot protocol %u.%02u is too old (need 2.12)",
			       version >> 8, version & 0xff);
	if (!(rd16(file + 0x236) & 1))
		return err_set(err, MSVMM_EFORMAT, "bzImage: kernel has no 64-bit entry point (XLF_KERNEL_64)");
	hdr_end = 0x202 + (size_t)file[0x201];
	if (hdr_end - KERNEL_SETUP_HDR_OFFSET > KERNEL_SETUP_HDR_MAX)
		return err_set(err, MSVMM_EFORMAT, "bzImage: setup header too long");
	setup_sects = file[0x1f1] ? file[0x1f1] : 4;
	setup_size = ((size_t)setup_sects + 1) * 512;
	if (setup_size >= len)
		return err_set(err, MSVMM_EFORMAT, "bzImage: truncated (setup of %zu bytes, file of %zu)",
			       setup_size, len);
	pm_size = len - setup_size;
	init_size = rd32(file + 0x260);
	if (!guest_mem_ptr(gm, BZIMAGE_LOAD_ADDR, pm_size > init_size ? pm_size : init_size))
		return err_set(err, MSVMM_EFORMAT, "bzImage: kernel (%u bytes at run time) does not fit in guest RAM",
			       init_size);

	memset(out, 0, sizeof(*out));
	memcpy(guest_mem_ptr(gm, BZIMAGE_LOAD_ADDR, pm_size), file + setup_size, pm_size);
	out->is_bzimage = true;
	out->setup_hdr_len = hdr_end - KERNEL_SETUP_HDR_OFFSET;
	memcpy(out->setup_hdr, file + KERNEL_SETUP_HDR_OFFSET, out->setup_hdr_len);
	out->entry = BZIMAGE_LOAD_ADDR + 0x200;
	out->load_start = BZIMAGE_LOAD_ADDR;
	out->load_end = BZIMAGE_LOAD_ADDR + (pm_size > init_size ? pm_size : init_size);
	out->initrd_addr_max = rd32(file + 0x22c);
	return 0;
}

int kernel_load_elf(const struct guest_mem *gm, const uint8_t *file, size_t len,
		    struct kernel_image *out, msvmm_error *err)
{
	return kernel_load_elf_src(gm, file, len, -1, out, err);
}

int kernel_load_fd(const struct guest_mem *gm, int fd, const uint8_t *file, size_t len,
		   struct kernel_image *out, msvmm_error *err)
{
	if (len >= 4 && memcmp(file, "\177ELF", 4) == 0)
		return kernel_load_elf_src(gm, file, len, fd, out, err);
	return kernel_load(gm, file, len, out, err);
}

int kernel_load(const struct guest_mem *gm, const uint8_t *file, size_t len,
		struct kernel_image *out, msvmm_error *err)
{
	if (len >= 4 && memcmp(file, "\177ELF", 4) == 0)
		return kernel_load_elf(gm, file, len, out, err);
	if (len >= 0x206 && rd32(file + 0x202) == 0x53726448)
		return kernel_load_bzimage(gm, file, len, out, err);
	return err_set(err, MSVMM_EFORMAT, "kernel: neither an ELF vmlinux nor a bzImage");
}
