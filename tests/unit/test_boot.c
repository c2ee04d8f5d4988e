// SPDX-License-Identifier: Apache-2.0
/*
 * vmm/boot and vmm/mptable: the Linux 64-bit boot protocol state (e820 map,
 * zero page, command line, GDT, identity page tables, initrd placement) and
 * the Intel MP table, all read back from guest memory and decoded here.
 */
#include "boot.h"
#include "mptable.h"

#include "testutil.h"

#define MIB (1024ULL * 1024)
#define GIB (1024ULL * MIB)

static struct guest_mem gm;

static void ram_256m(void)
{
	ck_assert_int_eq(guest_mem_init(&gm, 256 * MIB), 0);
}

static void ram_free(void)
{
	guest_mem_free(&gm);
}

static uint8_t *gpa(uint64_t addr, uint64_t len)
{
	uint8_t *p = guest_mem_ptr(&gm, addr, len);

	ck_assert_msg(p != NULL, "gpa 0x%llx+0x%llx not in RAM", (unsigned long long)addr,
		      (unsigned long long)len);
	return p;
}

static struct kernel_image vmlinux_image(void)
{
	struct kernel_image k;

	memset(&k, 0, sizeof(k));
	k.entry = 0x1000000;
	k.load_start = 0x1000000;
	k.load_end = 0x3000000;
	k.initrd_addr_max = 0x7fffffff;
	return k;
}

/* ------------------------------------------------------------------ e820 */

START_TEST(test_e820_256m)
{
	struct e820_entry e[8];
	unsigned int n = boot_e820_build(&gm, e, 8);

	ck_assert_uint_eq(n, 3);
	ck_assert_uint_eq(e[0].addr, 0);
	ck_assert_uint_eq(e[0].size, 0x9fc00);
	ck_assert_uint_eq(e[0].type, E820_RAM);
	ck_assert_uint_eq(e[1].addr, 0x9fc00);
	ck_assert_uint_eq(e[1].size, 0x100000 - 0x9fc00);
	ck_assert_uint_eq(e[1].type, E820_RESERVED);
	ck_assert_uint_eq(e[2].addr, 0x100000);
	ck_assert_uint_eq(e[2].size, 256 * MIB - 0x100000);
	ck_assert_uint_eq(e[2].type, E820_RAM);
	/* The MP table must lie in reserved memory, not in RAM Linux may reuse. */
	ck_assert_uint_ge(MPTABLE_ADDR, e[1].addr);
	ck_assert_uint_lt(MPTABLE_ADDR, e[1].addr + e[1].size);
	ck_assert_uint_eq(sizeof(struct e820_entry), 20);
}
END_TEST

START_TEST(test_e820_above_4g)
{
	struct guest_mem big;
	struct e820_entry e[8];
	unsigned int n;
	uint64_t ram = 0;

	ck_assert_int_eq(guest_mem_init(&big, 5 * GIB), 0);
	n = boot_e820_build(&big, e, 8);
	ck_assert_uint_eq(n, 4);
	ck_assert_uint_eq(e[2].addr, 0x100000);
	ck_assert_uint_eq(e[2].size, 3 * GIB - 0x100000);
	ck_assert_uint_eq(e[2].type, E820_RAM);
	ck_assert_uint_eq(e[3].addr, 4 * GIB);
	ck_assert_uint_eq(e[3].size, 2 * GIB);
	ck_assert_uint_eq(e[3].type, E820_RAM);
	/* Every RAM entry is backed by guest memory; together they are all of it but the BIOS area. */
	for (unsigned int i = 0; i < n; i++) {
		if (e[i].type != E820_RAM)
			continue;
		ck_assert_ptr_nonnull(guest_mem_ptr(&big, e[i].addr, e[i].size));
		ram += e[i].size;
	}
	ck_assert_uint_eq(ram, 5 * GIB - (0x100000 - 0x9fc00));
	/* Nothing claims the MMIO hole. */
	for (unsigned int i = 0; i < n; i++)
		ck_assert(e[i].addr + e[i].size <= 3 * GIB || e[i].addr >= 4 * GIB);
	guest_mem_free(&big);
}
END_TEST

START_TEST(test_e820_too_small)
{
	struct guest_mem tiny;
	struct e820_entry e[8];

	guest_mem_init_from(&tiny, (uint8_t *)0x1000, 0x100000);
	ck_assert_uint_eq(boot_e820_build(&tiny, e, 8), 0);
	/* And a table with room for fewer than four entries is refused, not overrun. */
	ck_assert_uint_eq(boot_e820_build(&gm, e, 3), 0);
}
END_TEST

/* ------------------------------------------------------------- boot_setup */

START_TEST(test_setup_cmdline_and_zero_page)
{
	const char *cl = "console=ttyS0 quiet init=/init panic=-1";
	struct kernel_image k = vmlinux_image();
	msvmm_error err = tu_err();
	struct e820_entry want[BP_E820_MAX];
	unsigned int nwant = boot_e820_build(&gm, want, BP_E820_MAX);
	uint8_t *zp;

	/* Junk where the zero page goes: boot_setup must not leave any behind. */
	memset(gpa(BOOT_ZERO_PAGE_ADDR, 4096), 0xee, 4096);
	memset(gpa(BOOT_CMDLINE_ADDR, 4096), 0xee, 4096);
	ck_assert_int_eq(boot_setup(&gm, &k, cl, 0x8000000, 0x123456, &err), 0);

	ck_assert_str_eq((const char *)gpa(BOOT_CMDLINE_ADDR, strlen(cl) + 1), cl);
	zp = gpa(BOOT_ZERO_PAGE_ADDR, 4096);
	ck_assert_uint_eq(zp[0], 0);
	ck_assert_uint_eq(zp[0x100], 0);
	ck_assert_uint_eq(zp[0xfff], 0);
	ck_assert_uint_eq(zp[BP_TYPE_OF_LOADER], 0xff);
	ck_assert_uint_eq(zp[BP_LOADFLAGS] & 0x81, 0x81);
	ck_assert_uint_eq(tu_get32(zp + BP_CMD_LINE_PTR), BOOT_CMDLINE_ADDR);
	ck_assert_uint_eq(tu_get32(zp + BP_RAMDISK_IMAGE), 0x8000000);
	ck_assert_uint_eq(tu_get32(zp + BP_RAMDISK_SIZE), 0x123456);
	ck_assert_uint_eq(tu_get16(zp + BP_HEAP_END_PTR), 0xfe00);
	/* A vmlinux has no setup header: the fields Linux checks are supplied. */
	ck_assert_uint_eq(tu_get16(zp + BP_BOOT_FLAG), 0xaa55);
	ck_assert_mem_eq(zp + BP_HEADER, "HdrS", 4);
	ck_assert_uint_eq(tu_get32(zp + BP_KERNEL_ALIGNMENT), 0x01000000);
	/* The e820 table, entry for entry. */
	ck_assert_uint_eq(nwant, 3);
	ck_assert_uint_eq(zp[BP_E820_ENTRIES], nwant);
	ck_assert_mem_eq(zp + BP_E820_TABLE, want, nwant * sizeof(want[0]));
	ck_assert_uint_eq(tu_get64(zp + BP_E820_TABLE + 2 * 20), 0x100000);
	ck_assert_uint_eq(tu_get64(zp + BP_E820_TABLE + 2 * 20 + 8), 255 * MIB);
	ck_assert_uint_eq(tu_get32(zp + BP_E820_TABLE + 2 * 20 + 16), E820_RAM);
	ck_assert(zp[BP_E820_TABLE + 3 * 20] == 0);
}
END_TEST

START_TEST(test_setup_above_4g_e820)
{
	struct guest_mem big;
	struct kernel_image k = vmlinux_image();
	msvmm_error err = tu_err();
	uint8_t *zp;

	ck_assert_int_eq(guest_mem_init(&big, 4 * GIB), 0);
	ck_assert_int_eq(boot_setup(&big, &k, "", 0, 0, &err), 0);
	zp = guest_mem_ptr(&big, BOOT_ZERO_PAGE_ADDR, 4096);
	ck_assert_uint_eq(zp[BP_E820_ENTRIES], 4);
	ck_assert_uint_eq(tu_get64(zp + BP_E820_TABLE + 3 * 20), 4 * GIB);
	ck_assert_uint_eq(tu_get64(zp + BP_E820_TABLE + 3 * 20 + 8), 1 * GIB);
	ck_assert_uint_eq(tu_get32(zp + BP_E820_TABLE + 3 * 20 + 16), E820_RAM);
	ck_assert_uint_eq(*(uint8_t *)guest_mem_ptr(&big, BOOT_CMDLINE_ADDR, 1), 0);
	ck_assert_uint_eq(tu_get32(zp + BP_RAMDISK_SIZE), 0);
	guest_mem_free(&big);
}
END_TEST

START_TEST(test_setup_bzimage_header_copied)
{
	struct kernel_image k = vmlinux_image();
	msvmm_error err = tu_err();
	uint8_t *zp;

	k.is_bzimage = true;
	k.setup_hdr_len = 0x26c - 0x1f1;
	for (size_t i = 0; i < k.setup_hdr_len; i++)
		k.setup_hdr[i] = (uint8_t)(i + 1);
	memcpy(k.setup_hdr + (0x202 - 0x1f1), "HdrS", 4);
	k.setup_hdr[0x211 - 0x1f1] = 0x20; /* loadflags from the kernel: kept, and ours added */
	k.setup_hdr[0x210 - 0x1f1] = 0x00;
	ck_assert_int_eq(boot_setup(&gm, &k, "x", 0, 0, &err), 0);
	zp = gpa(BOOT_ZERO_PAGE_ADDR, 4096);
	ck_assert_mem_eq(zp + 0x1f1, k.setup_hdr, 0x210 - 0x1f1);
	ck_assert_mem_eq(zp + BP_HEADER, "HdrS", 4);
	ck_assert_uint_eq(zp[BP_TYPE_OF_LOADER], 0xff);
	ck_assert_uint_eq(zp[BP_LOADFLAGS], 0x20 | 0x81);
	ck_assert_uint_eq(zp[0x230], k.setup_hdr[0x230 - 0x1f1]); /* not overridden for a bzImage */
	ck_assert_uint_eq(tu_get32(zp + BP_CMD_LINE_PTR), BOOT_CMDLINE_ADDR);
	ck_assert_uint_eq(zp[0x26c], 0); /* nothing past the header */
}
END_TEST

START_TEST(test_setup_cmdline_max_and_too_long)
{
	struct kernel_image k = vmlinux_image();
	msvmm_error err = tu_err();
	char *cl = malloc(BOOT_CMDLINE_MAX + 1);

	ck_assert_ptr_nonnull(cl);
	memset(cl, 'a', BOOT_CMDLINE_MAX - 1);
	cl[BOOT_CMDLINE_MAX - 1] = '\0';
	memset(gpa(BOOT_CMDLINE_ADDR, BOOT_CMDLINE_MAX + 1), 0xee, BOOT_CMDLINE_MAX + 1);
	ck_assert_int_eq(boot_setup(&gm, &k, cl, 0, 0, &err), 0);
	ck_assert_uint_eq(gpa(BOOT_CMDLINE_ADDR, 4096)[BOOT_CMDLINE_MAX - 2], 'a');
	ck_assert_uint_eq(gpa(BOOT_CMDLINE_ADDR, 4096)[BOOT_CMDLINE_MAX - 1], 0);
	ck_assert_uint_eq(gpa(BOOT_CMDLINE_ADDR + BOOT_CMDLINE_MAX, 1)[0], 0xee);

	memset(cl, 'b', BOOT_CMDLINE_MAX);
	cl[BOOT_CMDLINE_MAX] = '\0';
	err = tu_err();
	ck_assert_int_eq(boot_setup(&gm, &k, cl, 0, 0, &err), -MSVMM_EINVAL);
	ck_assert_err(err, MSVMM_EINVAL, "command line too long (4096 bytes, max 4095)");
	ck_assert_uint_eq(gpa(BOOT_CMDLINE_ADDR, 1)[0], 'a'); /* not written */
	free(cl);
}
END_TEST

START_TEST(test_setup_ram_too_small)
{
	static uint8_t small[0x100000];
	struct guest_mem sm;
	struct kernel_image k = vmlinux_image();
	msvmm_error err = tu_err();

	guest_mem_init_from(&sm, small, 0x8000); /* the zero page fits, the page tables do not */
	ck_assert_int_eq(boot_setup(&sm, &k, "", 0, 0, &err), -MSVMM_EINVAL);
	ck_assert_err(err, MSVMM_EINVAL, "too small");
	guest_mem_init_from(&sm, small, 0x1000);
	err = tu_err();
	ck_assert_int_eq(boot_setup(&sm, &k, "", 0, 0, &err), -MSVMM_EINVAL);
	ck_assert_err(err, MSVMM_EINVAL, "too small");
	guest_mem_init_from(&sm, small, sizeof(small)); /* exactly 1 MiB: no room above it */
	err = tu_err();
	ck_assert_int_eq(boot_setup(&sm, &k, "", 0, 0, &err), -MSVMM_EINVAL);
	ck_assert_err(err, MSVMM_EINVAL, "need more than 1 MiB");
}
END_TEST

/* Translate a virtual address through the tables at CR3, as the MMU would. */
static uint64_t walk(uint64_t va, int *ok)
{
	uint64_t pml4e = tu_get64(gpa(BOOT_PML4_ADDR + ((va >> 39) & 511) * 8, 8));
	uint64_t pdpte, pde, mask = 0x000ffffffffff000ULL;

	*ok = 0;
	if (!(pml4e & 1))
		return 0;
	ck_assert_uint_eq(pml4e & 2, 2);
	pdpte = tu_get64(gpa((pml4e & mask) + ((va >> 30) & 511) * 8, 8));
	if (!(pdpte & 1))
		return 0;
	ck_assert_uint_eq(pdpte & 0x80, 0); /* points to a page directory */
	pde = tu_get64(gpa((pdpte & mask) + ((va >> 21) & 511) * 8, 8));
	if (!(pde & 1))
		return 0;
	ck_assert_uint_eq(pde & 0x82, 0x82); /* writable 2 MiB page */
	*ok = 1;
	return (pde & mask & ~0x1fffffULL) | (va & 0x1fffff);
}

START_TEST(test_page_tables_identity_map)
{
	struct kernel_image k = vmlinux_image();
	msvmm_error err = tu_err();
	const uint64_t addrs[] = { 0, 0x7000, 0x20000, 0x100000, 0x1000000, 0x1234567, 0x3fffffff,
				   0x40000000, 0x80001234, 0xbfffffff, 0xc0000000, 0xfec00000,
				   0xfee00000, 0xffffffff };
	int ok;

	ck_assert_int_eq(boot_setup(&gm, &k, "", 0, 0, &err), 0);
	for (size_t i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		uint64_t pa = walk(addrs[i], &ok);

		ck_assert_msg(ok, "0x%llx not mapped", (unsigned long long)addrs[i]);
		ck_assert_msg(pa == addrs[i], "0x%llx maps to 0x%llx", (unsigned long long)addrs[i],
			      (unsigned long long)pa);
	}
	walk(0x100000000ULL, &ok);
	ck_assert_msg(!ok, "4 GiB is mapped, but only 0..4 GiB should be");
	/* The tables themselves do not overlap the zero page or the command line. */
	ck_assert_uint_ge(BOOT_PML4_ADDR, BOOT_ZERO_PAGE_ADDR + 4096);
	ck_assert_uint_le(BOOT_PD_ADDR + 4 * 4096, BOOT_CMDLINE_ADDR);
}
END_TEST

/* Decode a GDT entry into its fields. */
struct seg {
	uint32_t base, limit;
	unsigned int type, s, dpl, p, l, db, g;
};

static struct seg gdt_decode(uint64_t d)
{
	return (struct seg){
		.base = (uint32_t)(((d >> 16) & 0xffffff) | ((d >> 56) << 24)),
		.limit = (uint32_t)((d & 0xffff) | (((d >> 48) & 0xf) << 16)),
		.type = (d >> 40) & 0xf, .s = (d >> 44) & 1, .dpl = (d >> 45) & 3, .p = (d >> 47) & 1,
		.l = (d >> 53) & 1, .db = (d >> 54) & 1, .g = (d >> 55) & 1,
	};
}

START_TEST(test_gdt_entries)
{
	struct kernel_image k = vmlinux_image();
	msvmm_error err = tu_err();
	struct seg cs, ds;

	ck_assert_int_eq(boot_setup(&gm, &k, "", 0, 0, &err), 0);
	ck_assert_uint_eq(tu_get64(gpa(BOOT_GDT_ADDR, 8)), 0);
	cs = gdt_decode(tu_get64(gpa(BOOT_GDT_ADDR + BOOT_CS, 8)));
	ck_assert_uint_eq(cs.p, 1);
	ck_assert_uint_eq(cs.s, 1);
	ck_assert_uint_eq(cs.type, 0xb); /* code, readable, accessed */
	ck_assert_uint_eq(cs.l, 1);      /* 64-bit */
	ck_assert_uint_eq(cs.db, 0);     /* must be 0 with L=1 */
	ck_assert_uint_eq(cs.dpl, 0);
	ck_assert_uint_eq(cs.g, 1);
	ck_assert_uint_eq(cs.limit, 0xfffff);
	ck_assert_uint_eq(cs.base, 0);
	ds = gdt_decode(tu_get64(gpa(BOOT_GDT_ADDR + BOOT_DS, 8)));
	ck_assert_uint_eq(ds.p, 1);
	ck_assert_uint_eq(ds.s, 1);
	ck_assert_uint_eq(ds.type, 0x3); /* data, writable, accessed */
	ck_assert_uint_eq(ds.l, 0);
	ck_assert_uint_eq(ds.db, 1);
	ck_assert_uint_eq(ds.g, 1);
	ck_assert_uint_eq(ds.limit, 0xfffff);
}
END_TEST

START_TEST(test_gdt_tss_not_clobbered_by_idt)
{
	struct kernel_image k = vmlinux_image();
	msvmm_error err = tu_err();
	struct seg tss;

	/*
	 * vcpu.c loads TR with selector BOOT_TSS and a GDT limit of 5 * 8 - 1,
	 * so the descriptor at GDT + 0x20 must be a present busy TSS.  The IDT
	 * (one zero entry at BOOT_IDT_ADDR) must not sit on top of it.
	 */
	ck_assert_uint_ge(BOOT_IDT_ADDR, BOOT_GDT_ADDR + BOOT_TSS + 8);
	ck_assert_int_eq(boot_setup(&gm, &k, "", 0, 0, &err), 0);
	tss = gdt_decode(tu_get64(gpa(BOOT_GDT_ADDR + BOOT_TSS, 8)));
	ck_assert_uint_eq(tss.p, 1);
	ck_assert_uint_eq(tss.s, 0);
	ck_assert_uint_eq(tss.type, 0xb);
}
END_TEST

START_TEST(test_gdt_entry_encoding)
{
	/* Worked by hand from the SDM's descriptor layout. */
	ck_assert_uint_eq(boot_gdt_entry(0xa09b, 0, 0xfffff), 0x00af9b000000ffffULL);
	ck_assert_uint_eq(boot_gdt_entry(0xc093, 0, 0xfffff), 0x00cf93000000ffffULL);
	ck_assert_uint_eq(boot_gdt_entry(0x808b, 0, 0xfffff), 0x008f8b000000ffffULL);
	ck_assert_uint_eq(boot_gdt_entry(0x0089, 0x12345678, 0xabcde), 0x120a89345678bcdeULL);
	/* Bits 8..11 of flags are the limit's place, not the flags'. */
	ck_assert_uint_eq(boot_gdt_entry(0x0f00, 0, 0), 0);
}
END_TEST

/* ------------------------------------------------------- initrd placement */

START_TEST(test_initrd_addr_top_of_ram)
{
	struct kernel_image k = vmlinux_image();
	uint64_t a = boot_initrd_addr(&gm, &k, 0x12345);

	ck_assert_uint_eq(a, (256 * MIB - 0x12345) & ~0xfffULL);
	ck_assert_uint_eq(a & 0xfff, 0);
	ck_assert_uint_le(a + 0x12345, 256 * MIB);
	ck_assert_uint_eq(boot_initrd_addr(&gm, &k, 0x10000), 256 * MIB - 0x10000);
	ck_assert_uint_eq(boot_initrd_addr(&gm, &k, 1), 256 * MIB - 0x1000);
}
END_TEST

START_TEST(test_initrd_addr_max_respected)
{
	struct guest_mem big;
	struct kernel_image k = vmlinux_image();
	uint64_t a;

	ck_assert_int_eq(guest_mem_init(&big, 4 * GIB), 0);
	a = boot_initrd_addr(&big, &k, 10 * MIB + 7);
	ck_assert_uint_ne(a, 0);
	ck_assert_uint_eq(a & 0xfff, 0);
	ck_assert_uint_le(a + 10 * MIB + 7, 0x80000000ULL);
	ck_assert_uint_gt(a + 10 * MIB + 7, 0x80000000ULL - 0x1000);
	/* A kernel that allows 4 GiB still gets low RAM (below the hole). */
	k.initrd_addr_max = 0xffffffff;
	a = boot_initrd_addr(&big, &k, 0x1000);
	ck_assert_uint_eq(a, 3 * GIB - 0x1000);
	/* 0: the kernel states no limit. */
	k.initrd_addr_max = 0;
	ck_assert_uint_eq(boot_initrd_addr(&big, &k, 0x1000), 3 * GIB - 0x1000);
	/* A low limit. */
	k.initrd_addr_max = 0x37ffffff;
	ck_assert_uint_eq(boot_initrd_addr(&big, &k, 0x2000), 0x38000000 - 0x2000);
	guest_mem_free(&big);
}
END_TEST

START_TEST(test_initrd_addr_no_room)
{
	struct kernel_image k = vmlinux_image();

	/* Bigger than RAM, and bigger than the room above the kernel. */
	ck_assert_uint_eq(boot_initrd_addr(&gm, &k, 256 * MIB + 1), 0);
	ck_assert_uint_eq(boot_initrd_addr(&gm, &k, UINT64_MAX), 0);
	ck_assert_uint_eq(boot_initrd_addr(&gm, &k, 256 * MIB - k.load_end + 1), 0);
	/* Exactly the room above the kernel fits. */
	ck_assert_uint_eq(boot_initrd_addr(&gm, &k, 256 * MIB - k.load_end), k.load_end);
	/* The limit is below the kernel's end. */
	k.initrd_addr_max = (uint32_t)k.load_end - 1;
	ck_assert_uint_eq(boot_initrd_addr(&gm, &k, 0x1000), 0);
}
END_TEST

/* ---------------------------------------------------------------- mptable */

static uint8_t sum8(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	for (size_t i = 0; i < n; i++)
		s += p[i];
	return s;
}

static void check_mptable(unsigned int ncpus)
{
	const uint8_t *fp, *t, *e, *end;
	unsigned int count, cpus = 0, ioapics = 0, buses = 0, ioints = 0, lints = 0, entries = 0;
	uint8_t ioapic_id = 0;
	uint16_t len;

	memset(gpa(MPTABLE_ADDR, 4096), 0xee, 4096);
	ck_assert_int_eq(mptable_write(&gm, ncpus), 0);

	fp = gpa(MPTABLE_ADDR, 16);
	ck_assert_mem_eq(fp, "_MP_", 4);
	ck_assert_uint_eq(fp[8], 1);   /* 16 bytes */
	ck_assert_uint_eq(fp[9], 4);   /* spec 1.4 */
	ck_assert_uint_eq(sum8(fp, 16), 0);
	ck_assert_uint_eq(fp[11], 0);  /* feature byte 1: 0 = a configuration table is present */
	ck_assert_uint_eq(MPTABLE_ADDR % 16, 0);

	t = gpa(tu_get32(fp + 4), 44);
	ck_assert_mem_eq(t, "PCMP", 4);
	len = tu_get16(t + 4);
	ck_assert_uint_ge(len, 44);
	t = gpa(tu_get32(fp + 4), len);
	ck_assert_uint_eq(t[6], 4);
	ck_assert_uint_eq(sum8(t, len), 0);
	ck_assert_uint_eq(tu_get32(t + 36), MPTABLE_LAPIC_ADDR);
	ck_assert_uint_eq(tu_get16(t + 40), 0); /* no extended table */
	count = tu_get16(t + 34);

	/* Walk the entries by their own type-determined sizes. */
	for (e = t + 44, end = t + len; e < end; entries++) {
		switch (e[0]) {
		case 0:
			ck_assert_uint_eq(e[1], cpus);                 /* LAPIC id */
			ck_assert_uint_eq(e[3] & 1, 1);                /* enabled */
			ck_assert_uint_eq(e[3] & 2, cpus == 0 ? 2 : 0); /* BSP only on cpu 0 */
			cpus++;
			e += 20;
			break;
		case 1:
			ck_assert_mem_eq(e + 2, "ISA   ", 6);
			buses++;
			e += 8;
			break;
		case 2:
			ioapic_id = e[1];
			ck_assert_uint_eq(e[3] & 1, 1);
			ck_assert_uint_eq(tu_get32(e + 4), MPTABLE_IOAPIC_ADDR);
			ioapics++;
			e += 8;
			break;
		case 3:
			ck_assert_uint_eq(e[6], ioapic_id);
			ck_assert_uint_lt(e[7], MPTABLE_IRQS);
			ioints++;
			e += 8;
			break;
		case 4:
			lints++;
			e += 8;
			break;
		default:
			ck_abort_msg("unknown MP entry type %u at offset %td", e[0], e - t);
		}
	}
	ck_assert_msg(e == end, "entries overrun the table length");
	ck_assert_uint_eq(entries, count);
	ck_assert_uint_eq(cpus, ncpus);
	ck_assert_uint_eq(buses, 1);
	ck_assert_uint_eq(ioapics, 1);
	ck_assert_uint_ge(ioapic_id, ncpus); /* the IOAPIC id collides with no LAPIC id */
	ck_assert_uint_eq(ioints, MPTABLE_IRQS - 1);
	ck_assert_uint_eq(lints, 2);
}

START_TEST(test_mptable_1cpu)
{
	check_mptable(1);
}
END_TEST

START_TEST(test_mptable_4cpus)
{
	check_mptable(4);
}
END_TEST

START_TEST(test_mptable_64cpus)
{
	check_mptable(64);
}
END_TEST

START_TEST(test_mptable_isa_irq0_routed_to_pin2)
{
	const uint8_t *t;
	int seen0 = 0;

	ck_assert_int_eq(mptable_write(&gm, 2), 0);
	t = gpa(MPTABLE_ADDR + 16, 44);
	for (const uint8_t *e = t + 44; e < t + tu_get16(t + 4); e += e[0] == 0 ? 20 : 8) {
		if (e[0] != 3)
			continue;
		ck_assert_uint_ne(e[5], 2); /* ISA IRQ 2 (cascade) is not listed */
		if (e[5] == 0) {
			ck_assert_uint_eq(e[7], 2);
			seen0 = 1;
		} else {
			ck_assert_uint_eq(e[7], e[5]);
		}
	}
	ck_assert(seen0);
}
END_TEST

START_TEST(test_mptable_bad_counts)
{
	uint8_t *p = gpa(MPTABLE_ADDR, 16);

	memset(p, 0xee, 16);
	ck_assert_int_eq(mptable_write(&gm, 0), -1);
	ck_assert_int_eq(mptable_write(&gm, MPTABLE_MAX_CPUS + 1), -1);
	ck_assert_int_eq(mptable_write(&gm, 65), -1);
	ck_assert_int_eq(mptable_write(&gm, UINT32_MAX), -1);
	ck_assert_uint_eq(p[0], 0xee);
}
END_TEST

START_TEST(test_mptable_no_room)
{
	static uint8_t small[0x9fc00 + 64];
	struct guest_mem sm;

	guest_mem_init_from(&sm, small, sizeof(small));
	ck_assert_int_eq(mptable_write(&sm, 1), -1);
	ck_assert_uint_eq(small[0x9fc00], 0);
}
END_TEST

START_TEST(test_mptable_checksum_fn)
{
	uint8_t b[5] = { 1, 2, 3, 0xff, 0 };

	ck_assert_uint_eq(mptable_checksum(b, 4), (uint8_t)(0 - (1 + 2 + 3 + 0xff)));
	b[4] = mptable_checksum(b, 4);
	ck_assert_uint_eq(sum8(b, 5), 0);
	ck_assert_uint_eq(mptable_checksum(b, 0), 0);
}
END_TEST

static Suite *boot_suite(void)
{
	Suite *s = suite_create("boot");
	TCase *e820 = tcase_create("e820"), *setup = tcase_create("setup"),
	      *initrd = tcase_create("initrd"), *mp = tcase_create("mptable");

	tcase_add_checked_fixture(e820, ram_256m, ram_free);
	tcase_set_timeout(e820, 30);
	tcase_add_test(e820, test_e820_256m);
	tcase_add_test(e820, test_e820_above_4g);
	tcase_add_test(e820, test_e820_too_small);
	suite_add_tcase(s, e820);

	tcase_add_checked_fixture(setup, ram_256m, ram_free);
	tcase_set_timeout(setup, 30);
	tcase_add_test(setup, test_setup_cmdline_and_zero_page);
	tcase_add_test(setup, test_setup_above_4g_e820);
	tcase_add_test(setup, test_setup_bzimage_header_copied);
	tcase_add_test(setup, test_setup_cmdline_max_and_too_long);
	tcase_add_test(setup, test_setup_ram_too_small);
	tcase_add_test(setup, test_page_tables_identity_map);
	tcase_add_test(setup, test_gdt_entries);
	tcase_add_test(setup, test_gdt_tss_not_clobbered_by_idt);
	tcase_add_test(setup, test_gdt_entry_encoding);
	suite_add_tcase(s, setup);

	tcase_add_checked_fixture(initrd, ram_256m, ram_free);
	tcase_add_test(initrd, test_initrd_addr_top_of_ram);
	tcase_add_test(initrd, test_initrd_addr_max_respected);
	tcase_add_test(initrd, test_initrd_addr_no_room);
	suite_add_tcase(s, initrd);

	tcase_add_checked_fixture(mp, ram_256m, ram_free);
	tcase_add_test(mp, test_mptable_1cpu);
	tcase_add_test(mp, test_mptable_4cpus);
	tcase_add_test(mp, test_mptable_64cpus);
	tcase_add_test(mp, test_mptable_isa_irq0_routed_to_pin2);
	tcase_add_test(mp, test_mptable_bad_counts);
	tcase_add_test(mp, test_mptable_no_room);
	tcase_add_test(mp, test_mptable_checksum_fn);
	suite_add_tcase(s, mp);
	return s;
}

int main(void)
{
	return tu_run(boot_suite());
}
