// SPDX-License-Identifier: Apache-2.0
/*
 * vmm/loader: ELF vmlinux and bzImage loading from hand-built images.  The
 * kernel file is untrusted input, so most tests here are malformed files:
 * each must be refused with MSVMM_EFORMAT, a message naming the problem,
 * and (where the check precedes copying) guest RAM left untouched.
 */
#include "loader.h"

#include <elf.h>

#include "testutil.h"

#define MIB (1024ULL * 1024)
#define RAM_SIZE (64 * MIB)
#define DATA_OFF 0x1000
#define KBASE 0x1000000ULL /* where the test kernels load: 16 MiB */

static uint8_t *ram;
static struct guest_mem gm;

static void ram_setup(void)
{
	ram = calloc(1, RAM_SIZE);
	ck_assert_ptr_nonnull(ram);
	guest_mem_init_from(&gm, ram, RAM_SIZE);
}

static void ram_teardown(void)
{
	free(ram);
	ram = NULL;
}

static int all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++)
		if (p[i] != v)
			return 0;
	return 1;
}

static uint8_t pattern(size_t i)
{
	return (uint8_t)(i * 7 + 3);
}

/* ------------------------------------------------------------------ ELF */

struct elfb {
	uint8_t *buf;
	size_t len;
	Elf64_Ehdr *eh;
	Elf64_Phdr *ph;
};

/* An x86-64 ET_EXEC with 'nph' zeroed program headers and a patterned data area. */
static void elf_new(struct elfb *b, size_t len, unsigned int nph)
{
	ck_assert_uint_ge(len, DATA_OFF);
	b->buf = calloc(1, len);
	ck_assert_ptr_nonnull(b->buf);
	b->len = len;
	for (size_t i = DATA_OFF; i < len; i++)
		b->buf[i] = pattern(i);
	b->eh = (Elf64_Ehdr *)b->buf;
	memcpy(b->eh->e_ident, ELFMAG, SELFMAG);
	b->eh->e_ident[EI_CLASS] = ELFCLASS64;
	b->eh->e_ident[EI_DATA] = ELFDATA2LSB;
	b->eh->e_ident[EI_VERSION] = EV_CURRENT;
	b->eh->e_type = ET_EXEC;
	b->eh->e_machine = EM_X86_64;
	b->eh->e_version = EV_CURRENT;
	b->eh->e_entry = KBASE;
	b->eh->e_phoff = sizeof(Elf64_Ehdr);
	b->eh->e_ehsize = sizeof(Elf64_Ehdr);
	b->eh->e_phentsize = sizeof(Elf64_Phdr);
	b->eh->e_phnum = (uint16_t)nph;
	ck_assert_uint_le(sizeof(Elf64_Ehdr) + nph * sizeof(Elf64_Phdr), DATA_OFF);
	b->ph = (Elf64_Phdr *)(b->buf + sizeof(Elf64_Ehdr));
}

static void elf_seg(struct elfb *b, unsigned int i, uint32_t type, uint64_t paddr, uint64_t offset,
		    uint64_t filesz, uint64_t memsz)
{
	b->ph[i] = (Elf64_Phdr){
		.p_type = type, .p_flags = PF_R | PF_X, .p_offset = offset,
		.p_vaddr = paddr + 0xffffffff80000000ULL, /* the loader must use p_paddr */
		.p_paddr = paddr, .p_filesz = filesz, .p_memsz = memsz, .p_align = 0x1000,
	};
}

/* A single-segment kernel at KBASE: 0x800 bytes of file, 0x1000 in memory. */
static void elf_simple(struct elfb *b)
{
	elf_new(b, DATA_OFF + 0x800, 1);
	elf_seg(b, 0, PT_LOAD, KBASE, DATA_OFF, 0x800, 0x1000);
}

/* Load and expect EFORMAT with 'needle' in the message. */
static void elf_expect_fail(struct elfb *b, const char *needle)
{
	struct kernel_image k;
	msvmm_error err = tu_err();
	int rc = kernel_load_elf(&gm, b->buf, b->len, &k, &err);

	ck_assert_msg(rc == -MSVMM_EFORMAT, "rc %d (%s), want -MSVMM_EFORMAT", rc, err.message);
	ck_assert_err(err, MSVMM_EFORMAT, needle);
	/* The generic entry point takes the ELF path and says the same. */
	err = tu_err();
	ck_assert_int_eq(kernel_load(&gm, b->buf, b->len, &k, &err), -MSVMM_EFORMAT);
	ck_assert_err(err, MSVMM_EFORMAT, needle);
	free(b->buf);
}

START_TEST(test_elf_valid_loads_segments_and_zeroes_bss)
{
	struct elfb b;
	struct kernel_image k;
	msvmm_error err = tu_err();

	elf_new(&b, DATA_OFF + 0x2000 + 0x100, 3);
	/* Listed out of order: a data segment, a note (ignored), the text segment. */
	elf_seg(&b, 0, PT_LOAD, KBASE + 0x200000, DATA_OFF + 0x2000, 0x100, 0x100);
	elf_seg(&b, 1, PT_NOTE, 0xdead0000000ULL, 0, 0x10, 0x10);
	elf_seg(&b, 2, PT_LOAD, KBASE, DATA_OFF, 0x1800, 0x3000);
	b.eh->e_entry = KBASE + 0x40;
	memset(ram + KBASE - 0x1000, 0xaa, 0x5000);
	memset(ram + KBASE + 0x200000 - 0x10, 0xaa, 0x210);

	ck_assert_int_eq(kernel_load_elf(&gm, b.buf, b.len, &k, &err), 0);
	ck_assert_uint_eq(k.entry, KBASE + 0x40);
	ck_assert_uint_eq(k.load_start, KBASE);
	ck_assert_uint_eq(k.load_end, KBASE + 0x200100);
	ck_assert(!k.is_bzimage);
	ck_assert_uint_eq(k.setup_hdr_len, 0);
	ck_assert_uint_eq(k.initrd_addr_max, 0x7fffffff);
	/* File bytes at p_paddr, bss zeroed, neighbours untouched. */
	ck_assert_mem_eq(ram + KBASE, b.buf + DATA_OFF, 0x1800);
	ck_assert(all_bytes(ram + KBASE + 0x1800, 0x1800, 0));
	ck_assert(all_bytes(ram + KBASE - 0x1000, 0x1000, 0xaa));
	ck_assert(all_bytes(ram + KBASE + 0x3000, 0x1000, 0xaa));
	ck_assert_mem_eq(ram + KBASE + 0x200000, b.buf + DATA_OFF + 0x2000, 0x100);
	ck_assert(all_bytes(ram + KBASE + 0x200000 - 0x10, 0x10, 0xaa));
	ck_assert(all_bytes(ram + KBASE + 0x200100, 0x100, 0xaa));
	/* Nothing went to the virtual address or the note's address. */
	ck_assert(all_bytes(ram, 0x1000, 0));
	free(b.buf);
}
END_TEST

START_TEST(test_elf_via_kernel_load)
{
	struct elfb b;
	struct kernel_image k;
	msvmm_error err = tu_err();

	elf_simple(&b);
	b.eh->e_entry = KBASE + 0xfff; /* last byte of the segment */
	ck_assert_int_eq(kernel_load(&gm, b.buf, b.len, &k, &err), 0);
	ck_assert_uint_eq(k.entry, KBASE + 0xfff);
	ck_assert_uint_eq(k.load_end, KBASE + 0x1000);
	ck_assert_mem_eq(ram + KBASE, b.buf + DATA_OFF, 0x800);
	free(b.buf);
}
END_TEST

START_TEST(test_elf_pure_bss_segment_at_eof)
{
	struct elfb b;
	struct kernel_image k;
	msvmm_error err = tu_err();

	/* p_offset == file length with p_filesz == 0 is in bounds. */
	elf_new(&b, DATA_OFF + 0x100, 1);
	elf_seg(&b, 0, PT_LOAD, KBASE, DATA_OFF + 0x100, 0, 0x2000);
	memset(ram + KBASE, 0x5a, 0x2000);
	ck_assert_int_eq(kernel_load_elf(&gm, b.buf, b.len, &k, &err), 0);
	ck_assert(all_bytes(ram + KBASE, 0x2000, 0));
	free(b.buf);
}
END_TEST

START_TEST(test_elf_segment_at_end_of_ram)
{
	struct elfb b;
	struct kernel_image k;
	msvmm_error err = tu_err();

	elf_new(&b, DATA_OFF + 0x800, 1);
	elf_seg(&b, 0, PT_LOAD, RAM_SIZE - 0x1000, DATA_OFF, 0x800, 0x1000);
	b.eh->e_entry = RAM_SIZE - 0x1000;
	ck_assert_int_eq(kernel_load_elf(&gm, b.buf, b.len, &k, &err), 0);
	ck_assert_uint_eq(k.load_end, RAM_SIZE);
	ck_assert_mem_eq(ram + RAM_SIZE - 0x1000, b.buf + DATA_OFF, 0x800);
	free(b.buf);
}
END_TEST

START_TEST(test_elf_truncated_segment)
{
	struct elfb b;

	elf_simple(&b);
	b.ph[0].p_filesz = 0x801; /* one byte past EOF */
	b.ph[0].p_memsz = 0x1000;
	elf_expect_fail(&b, "past the end of the file");
}
END_TEST

START_TEST(test_elf_truncated_file)
{
	struct elfb b;

	/* A real image cut short: the segment's bytes are simply not there. */
	elf_simple(&b);
	b.len = DATA_OFF + 0x400;
	memset(ram + KBASE, 0x77, 0x1000);
	elf_expect_fail(&b, "truncated");
	ck_assert(all_bytes(ram + KBASE, 0x1000, 0x77));
}
END_TEST

START_TEST(test_elf_truncated_in_program_headers)
{
	struct elfb b;
	struct kernel_image k;
	msvmm_error err = tu_err();
	int rc;

	elf_simple(&b);
	/* The file ends half-way through the only program header. */
	rc = kernel_load_elf(&gm, b.buf, sizeof(Elf64_Ehdr) + 20, &k, &err);
	ck_assert_int_eq(rc, -MSVMM_EFORMAT);
	ck_assert_int_eq(err.code, MSVMM_EFORMAT);
	/* libelf trims e_phnum to what fits, so today this reads "no loadable segments". */
	ck_assert_msg(strstr(err.message, "program header") || strstr(err.message, "truncated") ||
		      strstr(err.message, "no loadable segments"),
		      "message '%s' does not say the program headers are missing", err.message);
	free(b.buf);
}
END_TEST

START_TEST(test_elf_truncated_second_program_header)
{
	struct elfb b;
	struct kernel_image k;
	msvmm_error err = tu_err();
	int rc;

	/* Program headers at the end of the file, after both segments' data:
	 * cutting the file inside the second header must not load just the first. */
	elf_new(&b, 0x3000 + 2 * sizeof(Elf64_Phdr), 0);
	b.eh->e_phoff = 0x3000;
	b.eh->e_phnum = 2;
	b.ph = (Elf64_Phdr *)(b.buf + 0x3000);
	elf_seg(&b, 0, PT_LOAD, KBASE, 0x1000, 0x1000, 0x1000);
	elf_seg(&b, 1, PT_LOAD, KBASE + 0x1000, 0x2000, 0x1000, 0x1000);
	ck_assert_int_eq(kernel_load_elf(&gm, b.buf, b.len, &k, &err), 0); /* intact: fine */
	ck_assert_uint_eq(k.load_end, KBASE + 0x2000);
	memset(ram + KBASE, 0, 0x2000);
	err = tu_err();
	rc = kernel_load_elf(&gm, b.buf, b.len - 20, &k, &err);
	ck_assert_msg(rc == -MSVMM_EFORMAT, "truncated header table: rc %d (%s)", rc, err.message);
	ck_assert_int_eq(err.code, MSVMM_EFORMAT);
	ck_assert_msg(strstr(err.message, "program header") != NULL, "message '%s'", err.message);
	ck_assert(all_bytes(ram + KBASE, 0x2000, 0));
	free(b.buf);
}
END_TEST

START_TEST(test_elf_wrong_machine_i386)
{
	struct elfb b;

	elf_simple(&b);
	b.eh->e_machine = EM_386;
	elf_expect_fail(&b, "wrong architecture (ELF machine 3,");
}
END_TEST

START_TEST(test_elf_wrong_machine_aarch64)
{
	struct elfb b;

	elf_simple(&b);
	b.eh->e_machine = EM_AARCH64;
	memset(ram + KBASE, 0x77, 0x1000);
	elf_expect_fail(&b, "ELF machine 183");
	ck_assert(all_bytes(ram + KBASE, 0x1000, 0x77));
}
END_TEST

START_TEST(test_elf_class32)
{
	struct elfb b;
	Elf32_Ehdr *eh;
	Elf32_Phdr *ph;

	b.len = DATA_OFF + 0x100;
	b.buf = calloc(1, b.len);
	ck_assert_ptr_nonnull(b.buf);
	eh = (Elf32_Ehdr *)b.buf;
	memcpy(eh->e_ident, ELFMAG, SELFMAG);
	eh->e_ident[EI_CLASS] = ELFCLASS32;
	eh->e_ident[EI_DATA] = ELFDATA2LSB;
	eh->e_ident[EI_VERSION] = EV_CURRENT;
	eh->e_type = ET_EXEC;
	eh->e_machine = EM_X86_64; /* even claiming x86-64 */
	eh->e_version = EV_CURRENT;
	eh->e_entry = (uint32_t)KBASE;
	eh->e_phoff = sizeof(*eh);
	eh->e_ehsize = sizeof(*eh);
	eh->e_phentsize = sizeof(*ph);
	eh->e_phnum = 1;
	ph = (Elf32_Phdr *)(b.buf + sizeof(*eh));
	*ph = (Elf32_Phdr){ .p_type = PT_LOAD, .p_offset = DATA_OFF, .p_paddr = (uint32_t)KBASE,
			    .p_vaddr = (uint32_t)KBASE, .p_filesz = 0x100, .p_memsz = 0x100 };
	elf_expect_fail(&b, "not a 64-bit ELF");
}
END_TEST

START_TEST(test_elf_dyn)
{
	struct elfb b;

	elf_simple(&b);
	b.eh->e_type = ET_DYN;
	elf_expect_fail(&b, "not an executable");
}
END_TEST

START_TEST(test_elf_rel)
{
	struct elfb b;

	elf_simple(&b);
	b.eh->e_type = ET_REL;
	elf_expect_fail(&b, "not an executable");
}
END_TEST

START_TEST(test_elf_overlapping_segments)
{
	struct elfb b;

	elf_new(&b, DATA_OFF + 0x2000, 2);
	/* Second header sorts first; it runs 0x1000 into the other one. */
	elf_seg(&b, 0, PT_LOAD, KBASE + 0x1000, DATA_OFF, 0x1000, 0x1000);
	elf_seg(&b, 1, PT_LOAD, KBASE, DATA_OFF + 0x1000, 0x1000, 0x2000);
	memset(ram + KBASE, 0x77, 0x3000);
	elf_expect_fail(&b, "overlap at 0x1001000");
	ck_assert(all_bytes(ram + KBASE, 0x3000, 0x77));
}
END_TEST

START_TEST(test_elf_overlap_by_one_byte)
{
	struct elfb b;

	elf_new(&b, DATA_OFF + 0x2000, 2);
	elf_seg(&b, 0, PT_LOAD, KBASE, DATA_OFF, 0x1000, 0x1001);
	elf_seg(&b, 1, PT_LOAD, KBASE + 0x1000, DATA_OFF + 0x1000, 0x1000, 0x1000);
	elf_expect_fail(&b, "overlap");
}
END_TEST

START_TEST(test_elf_adjacent_segments_ok)
{
	struct elfb b;
	struct kernel_image k;
	msvmm_error err = tu_err();

	elf_new(&b, DATA_OFF + 0x2000, 2);
	elf_seg(&b, 0, PT_LOAD, KBASE, DATA_OFF, 0x1000, 0x1000);
	elf_seg(&b, 1, PT_LOAD, KBASE + 0x1000, DATA_OFF + 0x1000, 0x1000, 0x1000);
	ck_assert_int_eq(kernel_load_elf(&gm, b.buf, b.len, &k, &err), 0);
	ck_assert_mem_eq(ram + KBASE, b.buf + DATA_OFF, 0x2000);
	free(b.buf);
}
END_TEST

START_TEST(test_elf_segment_beyond_ram)
{
	struct elfb b;

	elf_simple(&b);
	/* Starts in RAM, ends one page past it. */
	b.ph[0].p_paddr = RAM_SIZE - 0x800;
	b.eh->e_entry = RAM_SIZE - 0x800;
	elf_expect_fail(&b, "does not fit in guest RAM");
}
END_TEST

START_TEST(test_elf_segment_in_mmio_hole)
{
	struct elfb b;

	elf_simple(&b);
	b.ph[0].p_paddr = 0xfec00000ULL;
	b.eh->e_entry = 0xfec00000ULL;
	elf_expect_fail(&b, "[0xfec00000, +0x1000) does not fit");
}
END_TEST

START_TEST(test_elf_paddr_memsz_wraps)
{
	struct elfb b;

	elf_simple(&b);
	/* paddr + memsz wraps to 0x1000, which would be "inside" RAM. */
	b.ph[0].p_paddr = 0xfffffffffffff000ULL;
	b.ph[0].p_memsz = 0x2000;
	elf_expect_fail(&b, "does not fit in guest RAM");
}
END_TEST

START_TEST(test_elf_filesz_above_memsz)
{
	struct elfb b;

	elf_simple(&b);
	b.ph[0].p_filesz = 0x800;
	b.ph[0].p_memsz = 0x7ff;
	elf_expect_fail(&b, "file size above memory size");
}
END_TEST

START_TEST(test_elf_absurd_memsz)
{
	struct elfb b;

	elf_simple(&b);
	b.ph[0].p_memsz = UINT64_MAX;
	elf_expect_fail(&b, "does not fit in guest RAM");
}
END_TEST

START_TEST(test_elf_absurd_filesz)
{
	struct elfb b;

	elf_simple(&b);
	b.ph[0].p_filesz = UINT64_MAX;
	b.ph[0].p_memsz = UINT64_MAX;
	elf_expect_fail(&b, "past the end of the file");
}
END_TEST

START_TEST(test_elf_absurd_offset)
{
	struct elfb b;

	elf_simple(&b);
	/* offset + filesz wraps to a small number. */
	b.ph[0].p_offset = UINT64_MAX - 0x10;
	b.ph[0].p_filesz = 0x800;
	elf_expect_fail(&b, "past the end of the file");
}
END_TEST

START_TEST(test_elf_entry_below_segments)
{
	struct elfb b;

	elf_simple(&b);
	b.eh->e_entry = KBASE - 1;
	elf_expect_fail(&b, "entry point 0xffffff outside");
}
END_TEST

START_TEST(test_elf_entry_at_load_end)
{
	struct elfb b;

	elf_simple(&b);
	b.eh->e_entry = KBASE + 0x1000; /* one past the end */
	elf_expect_fail(&b, "entry point 0x1001000 outside the loaded segments");
}
END_TEST

START_TEST(test_elf_entry_zero)
{
	struct elfb b;

	elf_simple(&b);
	b.eh->e_entry = 0;
	elf_expect_fail(&b, "entry point 0x0 outside");
}
END_TEST

START_TEST(test_elf_no_pt_load)
{
	struct elfb b;

	elf_new(&b, DATA_OFF + 0x100, 2);
	elf_seg(&b, 0, PT_NOTE, KBASE, DATA_OFF, 0x10, 0x10);
	elf_seg(&b, 1, PT_GNU_STACK, 0, 0, 0, 0);
	elf_expect_fail(&b, "no loadable segments");
}
END_TEST

START_TEST(test_elf_no_program_headers)
{
	struct elfb b;

	elf_new(&b, DATA_OFF + 0x100, 0);
	b.eh->e_phoff = 0;
	elf_expect_fail(&b, "no loadable segments");
}
END_TEST

START_TEST(test_elf_too_many_segments)
{
	struct elfb b;

	elf_new(&b, DATA_OFF + 0x100, 60);
	b.eh->e_phoff = 0x2000;
	free(b.buf);
	/* 65 one-page segments: headers at 0x2000, above the patterned data. */
	b.len = 0x2000 + 65 * sizeof(Elf64_Phdr);
	b.buf = realloc(NULL, b.len);
	ck_assert_ptr_nonnull(b.buf);
	memset(b.buf, 0, b.len);
	b.eh = (Elf64_Ehdr *)b.buf;
	memcpy(b.eh->e_ident, ELFMAG, SELFMAG);
	b.eh->e_ident[EI_CLASS] = ELFCLASS64;
	b.eh->e_ident[EI_DATA] = ELFDATA2LSB;
	b.eh->e_ident[EI_VERSION] = EV_CURRENT;
	b.eh->e_type = ET_EXEC;
	b.eh->e_machine = EM_X86_64;
	b.eh->e_version = EV_CURRENT;
	b.eh->e_entry = KBASE;
	b.eh->e_phoff = 0x2000;
	b.eh->e_ehsize = sizeof(Elf64_Ehdr);
	b.eh->e_phentsize = sizeof(Elf64_Phdr);
	b.eh->e_phnum = 65;
	b.ph = (Elf64_Phdr *)(b.buf + 0x2000);
	for (unsigned int i = 0; i < 65; i++)
		elf_seg(&b, i, PT_LOAD, KBASE + i * 0x1000ULL, DATA_OFF, 0x10, 0x1000);
	elf_expect_fail(&b, "more than 64 loadable segments");
}
END_TEST

START_TEST(test_elf_garbage)
{
	uint8_t junk[4096];
	struct kernel_image k;
	msvmm_error err = tu_err();

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 131 + 17);
	ck_assert_int_eq(kernel_load_elf(&gm, junk, sizeof(junk), &k, &err), -MSVMM_EFORMAT);
	ck_assert_err(err, MSVMM_EFORMAT, "not an ELF file");
	err = tu_err();
	ck_assert_int_eq(kernel_load(&gm, junk, sizeof(junk), &k, &err), -MSVMM_EFORMAT);
	ck_assert_err(err, MSVMM_EFORMAT, "neither an ELF vmlinux nor a bzImage");
	err = tu_err();
	ck_assert_int_eq(kernel_load(&gm, junk, 0, &k, &err), -MSVMM_EFORMAT);
	ck_assert_err(err, MSVMM_EFORMAT, "neither");
	ck_assert(all_bytes(ram, RAM_SIZE, 0));
}
END_TEST

START_TEST(test_elf_magic_then_garbage)
{
	uint8_t junk[256];
	struct kernel_image k;
	msvmm_error err = tu_err();
	int rc;

	for (size_t i = 0; i < sizeof(junk); i++)
		junk[i] = (uint8_t)(i * 131 + 17);
	memcpy(junk, ELFMAG, SELFMAG);
	rc = kernel_load(&gm, junk, sizeof(junk), &k, &err);
	ck_assert_msg(rc == -MSVMM_EFORMAT, "rc %d (%s)", rc, err.message);
	ck_assert_int_eq(err.code, MSVMM_EFORMAT);
	ck_assert_msg(strncmp(err.message, "vmlinux: ", 9) == 0 || strncmp(err.message, "kernel: ", 8) == 0,
		      "unexpected message '%s'", err.message);
	/* Only the magic: far too short for a header. */
	err = tu_err();
	rc = kernel_load(&gm, junk, 4, &k, &err);
	ck_assert_msg(rc == -MSVMM_EFORMAT, "rc %d (%s)", rc, err.message);
	ck_assert(all_bytes(ram, RAM_SIZE, 0));
}
END_TEST

/* -------------------------------------------------------------- bzImage */

#define BZ_INITRD_MAX 0x37ffffffU

/* A synthetic bzImage: setup_sects sectors of setup after the boot sector, then the payload. */
static uint8_t *bz_new(size_t *len, uint8_t setup_sects, size_t pm_size, uint16_t version,
		       uint16_t xlf, uint32_t init_size)
{
	size_t setup = ((size_t)(setup_sects ? setup_sects : 4) + 1) * 512;
	uint8_t *f;

	*len = setup + pm_size;
	f = calloc(1, *len);
	ck_assert_ptr_nonnull(f);
	for (size_t i = 0; i < *len; i++)
		f[i] = pattern(i);
	f[0x1f1] = setup_sects;
	f[0x1fe] = 0x55;
	f[0x1ff] = 0xaa;
	f[0x200] = 0xeb; /* jmp: the header runs to 0x202 + 0x6a */
	f[0x201] = 0x6a;
	memcpy(f + 0x202, "HdrS", 4);
	tu_put16(f + 0x206, version);
	f[0x210] = 0;
	f[0x211] = 0x01; /* LOADED_HIGH */
	tu_put32(f + 0x22c, BZ_INITRD_MAX);
	tu_put32(f + 0x230, 0x200000);
	tu_put16(f + 0x236, xlf);
	tu_put32(f + 0x260, init_size);
	return f;
}

static void bz_expect_fail(uint8_t *f, size_t len, const char *needle)
{
	struct kernel_image k;
	msvmm_error err = tu_err();
	int rc = kernel_load_bzimage(&gm, f, len, &k, &err);

	ck_assert_msg(rc == -MSVMM_EFORMAT, "rc %d (%s), want -MSVMM_EFORMAT", rc, err.message);
	ck_assert_err(err, MSVMM_EFORMAT, needle);
	ck_assert(all_bytes(ram + BZIMAGE_LOAD_ADDR, 0x10000, 0));
	free(f);
}

START_TEST(test_bz_valid)
{
	size_t len;
	uint8_t *f = bz_new(&len, 0x1b, 0x6000, 0x020f, 0x1 | 0x2, 0x80000);
	size_t setup = (0x1b + 1) * 512;
	struct kernel_image k;
	msvmm_error err = tu_err();

	memset(&k, 0xcc, sizeof(k));
	ck_assert_int_eq(kernel_load(&gm, f, len, &k, &err), 0);
	ck_assert(k.is_bzimage);
	ck_assert_uint_eq(k.entry, 0x100200);
	ck_assert_uint_eq(k.load_start, 0x100000);
	ck_assert_uint_eq(k.load_end, 0x100000 + 0x80000); /* init_size beyond the payload */
	ck_assert_uint_eq(k.initrd_addr_max, BZ_INITRD_MAX);
	/* The protected-mode payload, byte for byte, at 1 MiB. */
	ck_assert_mem_eq(ram + 0x100000, f + setup, 0x6000);
	ck_assert(all_bytes(ram + 0x100000 + 0x6000, 0x1000, 0));
	ck_assert(all_bytes(ram + 0x100000 - 0x1000, 0x1000, 0));
	/* The setup header from 0x1f1 to the end the jump names. */
	ck_assert_uint_eq(k.setup_hdr_len, 0x202 + 0x6a - 0x1f1);
	ck_assert_mem_eq(k.setup_hdr, f + 0x1f1, k.setup_hdr_len);
	ck_assert_uint_eq(k.setup_hdr[0], 0x1b);
	ck_assert_mem_eq(k.setup_hdr + (0x202 - 0x1f1), "HdrS", 4);
	ck_assert_uint_eq(tu_get16(k.setup_hdr + (0x206 - 0x1f1)), 0x020f);
	ck_assert_uint_eq(tu_get32(k.setup_hdr + (0x260 - 0x1f1)), 0x80000);
	free(f);
}
END_TEST

START_TEST(test_bz_payload_larger_than_init_size)
{
	size_t len;
	uint8_t *f = bz_new(&len, 4, 0x3000, 0x020c, 0x1, 0x1000);
	struct kernel_image k;
	msvmm_error err = tu_err();

	ck_assert_int_eq(kernel_load_bzimage(&gm, f, len, &k, &err), 0);
	ck_assert_uint_eq(k.load_end, 0x100000 + 0x3000);
	ck_assert_mem_eq(ram + 0x100000, f + 5 * 512, 0x3000);
	free(f);
}
END_TEST

START_TEST(test_bz_setup_sects_zero_means_four)
{
	size_t len;
	uint8_t *f = bz_new(&len, 0, 0x1000, 0x020c, 0x1, 0x2000);
	struct kernel_image k;
	msvmm_error err = tu_err();

	ck_assert_uint_eq(len, 5 * 512 + 0x1000);
	ck_assert_int_eq(kernel_load_bzimage(&gm, f, len, &k, &err), 0);
	ck_assert_mem_eq(ram + 0x100000, f + 5 * 512, 0x1000);
	free(f);
}
END_TEST

START_TEST(test_bz_init_size_fills_ram_exactly)
{
	size_t len;
	uint8_t *f = bz_new(&len, 4, 0x1000, 0x020c, 0x1, (uint32_t)(RAM_SIZE - 0x100000));
	struct kernel_image k;
	msvmm_error err = tu_err();

	ck_assert_int_eq(kernel_load_bzimage(&gm, f, len, &k, &err), 0);
	ck_assert_uint_eq(k.load_end, RAM_SIZE);
	free(f);
}
END_TEST

START_TEST(test_bz_init_size_beyond_ram)
{
	size_t len;
	uint8_t *f = bz_new(&len, 4, 0x1000, 0x020c, 0x1, (uint32_t)(RAM_SIZE - 0x100000 + 1));

	bz_expect_fail(f, len, "does not fit in guest RAM");
}
END_TEST

START_TEST(test_bz_init_size_huge)
{
	size_t len;
	uint8_t *f = bz_new(&len, 4, 0x1000, 0x020c, 0x1, 0xffffffffU);

	bz_expect_fail(f, len, "(4294967295 bytes at run time) does not fit");
}
END_TEST

START_TEST(test_bz_old_protocol)
{
	size_t len;
	uint8_t *f = bz_new(&len, 4, 0x1000, 0x020b, 0x1, 0x2000);

	bz_expect_fail(f, len, "boot protocol 2.11 is too old");
}
END_TEST

START_TEST(test_bz_no_64bit_entry)
{
	size_t len;
	uint8_t *f = bz_new(&len, 4, 0x1000, 0x020f, 0x2, 0x2000);

	bz_expect_fail(f, len, "XLF_KERNEL_64");
}
END_TEST

START_TEST(test_bz_truncated_setup)
{
	size_t len;
	uint8_t *f = bz_new(&len, 8, 0x1000, 0x020c, 0x1, 0x2000);

	/* Cut at the end of the setup: no payload at all. */
	bz_expect_fail(f, 9 * 512, "truncated (setup of 4608 bytes, file of 4608)");
}
END_TEST

START_TEST(test_bz_truncated_mid_setup)
{
	size_t len;
	uint8_t *f = bz_new(&len, 30, 0x1000, 0x020c, 0x1, 0x2000);

	bz_expect_fail(f, 0x1000, "truncated");
}
END_TEST

START_TEST(test_bz_shorter_than_header)
{
	size_t len;
	uint8_t *f = bz_new(&len, 4, 0x1000, 0x020c, 0x1, 0x2000);

	bz_expect_fail(f, 0x27f, "not a bzImage");
}
END_TEST

START_TEST(test_bz_no_boot_flag)
{
	size_t len;
	uint8_t *f = bz_new(&len, 4, 0x1000, 0x020c, 0x1, 0x2000);

	f[0x1fe] = 0;
	bz_expect_fail(f, len, "not a bzImage");
}
END_TEST

START_TEST(test_bz_header_too_long)
{
	size_t len;
	uint8_t *f = bz_new(&len, 4, 0x1000, 0x020c, 0x1, 0x2000);

	f[0x201] = 0xff; /* header would run to 0x301, past the zero page's copy */
	bz_expect_fail(f, len, "setup header too long");
}
END_TEST

START_TEST(test_bz_dispatch_short_hdrs)
{
	size_t len;
	uint8_t *f = bz_new(&len, 4, 0x1000, 0x020c, 0x1, 0x2000);
	struct kernel_image k;
	msvmm_error err = tu_err();

	/* Long enough for kernel_load to see HdrS, too short for the header. */
	ck_assert_int_eq(kernel_load(&gm, f, 0x210, &k, &err), -MSVMM_EFORMAT);
	ck_assert_err(err, MSVMM_EFORMAT, "not a bzImage");
	free(f);
}
END_TEST

static Suite *loader_suite(void)
{
	Suite *s = suite_create("loader");
	TCase *elf = tcase_create("elf"), *bz = tcase_create("bzimage");

	tcase_add_checked_fixture(elf, ram_setup, ram_teardown);
	tcase_add_test(elf, test_elf_valid_loads_segments_and_zeroes_bss);
	tcase_add_test(elf, test_elf_via_kernel_load);
	tcase_add_test(elf, test_elf_pure_bss_segment_at_eof);
	tcase_add_test(elf, test_elf_segment_at_end_of_ram);
	tcase_add_test(elf, test_elf_truncated_segment);
	tcase_add_test(elf, test_elf_truncated_file);
	tcase_add_test(elf, test_elf_truncated_in_program_headers);
	tcase_add_test(elf, test_elf_truncated_second_program_header);
	tcase_add_test(elf, test_elf_wrong_machine_i386);
	tcase_add_test(elf, test_elf_wrong_machine_aarch64);
	tcase_add_test(elf, test_elf_class32);
	tcase_add_test(elf, test_elf_dyn);
	tcase_add_test(elf, test_elf_rel);
	tcase_add_test(elf, test_elf_overlapping_segments);
	tcase_add_test(elf, test_elf_overlap_by_one_byte);
	tcase_add_test(elf, test_elf_adjacent_segments_ok);
	tcase_add_test(elf, test_elf_segment_beyond_ram);
	tcase_add_test(elf, test_elf_segment_in_mmio_hole);
	tcase_add_test(elf, test_elf_paddr_memsz_wraps);
	tcase_add_test(elf, test_elf_filesz_above_memsz);
	tcase_add_test(elf, test_elf_absurd_memsz);
	tcase_add_test(elf, test_elf_absurd_filesz);
	tcase_add_test(elf, test_elf_absurd_offset);
	tcase_add_test(elf, test_elf_entry_below_segments);
	tcase_add_test(elf, test_elf_entry_at_load_end);
	tcase_add_test(elf, test_elf_entry_zero);
	tcase_add_test(elf, test_elf_no_pt_load);
	tcase_add_test(elf, test_elf_no_program_headers);
	tcase_add_test(elf, test_elf_too_many_segments);
	tcase_add_test(elf, test_elf_garbage);
	tcase_add_test(elf, test_elf_magic_then_garbage);
	suite_add_tcase(s, elf);

	tcase_add_checked_fixture(bz, ram_setup, ram_teardown);
	tcase_add_test(bz, test_bz_valid);
	tcase_add_test(bz, test_bz_payload_larger_than_init_size);
	tcase_add_test(bz, test_bz_setup_sects_zero_means_four);
	tcase_add_test(bz, test_bz_init_size_fills_ram_exactly);
	tcase_add_test(bz, test_bz_init_size_beyond_ram);
	tcase_add_test(bz, test_bz_init_size_huge);
	tcase_add_test(bz, test_bz_old_protocol);
	tcase_add_test(bz, test_bz_no_64bit_entry);
	tcase_add_test(bz, test_bz_truncated_setup);
	tcase_add_test(bz, test_bz_truncated_mid_setup);
	tcase_add_test(bz, test_bz_shorter_than_header);
	tcase_add_test(bz, test_bz_no_boot_flag);
	tcase_add_test(bz, test_bz_header_too_long);
	tcase_add_test(bz, test_bz_dispatch_short_hdrs);
	suite_add_tcase(s, bz);
	return s;
}

int main(void)
{
	return tu_run(loader_suite());
}
