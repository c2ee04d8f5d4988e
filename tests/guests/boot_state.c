// SPDX-License-Identifier: Apache-2.0
/*
 * Checks the machine state msvmm hands a kernel on its 64-bit boot path,
 * from inside the guest: the zero page, command line, e820 map, long-mode
 * control registers and segments, the identity map, the initrd with the
 * appended run-spec archive, and the MP table.
 *
 * tests/unit/test_guests.c sets up what this expects: extra command-line
 * words "msvmm.test=boot_state msvmm.mem_mib=<RAM in MiB>", argv
 * {"hello", "world"}, env MSVMM_GUEST=boot_state, and an image initramfs
 * holding INITRAMFS_FILE with INITRAMFS_TEXT.
 *
 * Every check has its own number; a failure prints "boot_state: FAIL <n>:"
 * and why over COM1, and the guest's status is the first failing number
 * (0: all passed), so a test failure names the check even without the console.
 */
#include "guest.h"

#define INITRAMFS_FILE "hello.txt"
#define INITRAMFS_TEXT "msvmm initramfs payload\n"
#define RUN_SPEC_NAME "msvmm/run" /* MSVMM_RUN_SPEC_PATH without the '/' */

#define BOOT_CS 0x10
#define BOOT_DS 0x18
#define MP_FLOAT_ADDR 0x9fc00ULL
#define HIMEM 0x100000ULL

enum check {
	C_RSI = 1,
	C_HDRS,
	C_LOADER,
	C_BOOT_FLAG,
	C_CMDLINE_PTR,
	C_CMDLINE_TEST,
	C_CMDLINE_CONSOLE,
	C_E820_COUNT,
	C_E820_ORDER,
	C_E820_LOW,
	C_E820_HIGH,
	C_E820_TOTAL,
	C_CR0,
	C_CR4,
	C_EFER,
	C_CS,
	C_DATA_SEGS,
	C_IF,
	C_GDT,
	C_IDMAP,
	C_INITRD_SET,
	C_INITRD_ALIGN,
	C_INITRD_IN_RAM,
	C_INITRD_MAGIC,
	C_INITRD_ARCHIVES,
	C_INITRD_FILE,
	C_RUNSPEC_FOUND,
	C_RUNSPEC_ARGV,
	C_RUNSPEC_ENV,
	C_RUNSPEC_FORMAT,
	C_MP_FLOAT,
	C_MP_CONFIG,
};

/* tests/unit/test_guests.c provokes these two on purpose and expects their numbers. */
_Static_assert(C_E820_TOTAL == 12 && C_RUNSPEC_ARGV == 28, "check numbers are part of the test's contract");

static struct guest_checks checks = { .name = "boot_state" };

/* Report but keep going: one run shows every broken field, not just the first. */
static bool check(bool ok, enum check n, const char *what)
{
	return guest_check(&checks, ok, (int)n, what);
}

static void note_hex(const char *what, uint64_t v)
{
	serial_puts("boot_state:   ");
	serial_puts(what);
	serial_puts(" = ");
	serial_puthex(v, 16);
	serial_puts("\n");
}

/* ---- e820 ---- */

struct e820 {
	uint64_t addr, size;
	uint32_t type;
};

static struct e820 e820_get(const uint8_t *bp, unsigned int i)
{
	unsigned int off = BP_E820_TABLE + i * BP_E820_ENTRY_SIZE;

	return (struct e820){ bp_u64(bp, off), bp_u64(bp, off + 8), bp_u32(bp, off + 16) };
}

/* Is [addr, addr + len) inside one RAM entry? */
static bool e820_is_ram(const uint8_t *bp, unsigned int n, uint64_t addr, uint64_t len)
{
	for (unsigned int i = 0; i < n; i++) {
		struct e820 e = e820_get(bp, i);

		if (e.type == E820_RAM && addr >= e.addr && addr - e.addr <= e.size &&
		    len <= e.size - (addr - e.addr))
			return true;
	}
	return false;
}

static uint64_t parse_dec(const char *s, size_t len)
{
	uint64_t v = 0;

	for (size_t i = 0; i < len; i++) {
		if (s[i] < '0' || s[i] > '9')
			return 0;
		v = v * 10 + (uint64_t)(s[i] - '0');
	}
	return v;
}

static void check_e820(const uint8_t *bp, const char *cmdline)
{
	unsigned int n = bp_u8(bp, BP_E820_ENTRIES);
	uint64_t ram = 0, mem = 0, prev_end = 0;
	const char *v;
	size_t vl;

	if (!check(n >= 3 && n <= BP_E820_MAX, C_E820_COUNT, "e820 has fewer than 3 (or over 128) entries")) {
		note_hex("e820_entries", n);
		return;
	}
	for (unsigned int i = 0; i < n; i++) {
		struct e820 e = e820_get(bp, i);

		check(e.size && e.addr >= prev_end && e.addr + e.size > e.addr, C_E820_ORDER,
		      "e820 entries empty, overlapping, unsorted or wrapping");
		prev_end = e.addr + e.size;
		if (e.type == E820_RAM)
			ram += e.size;
	}
	/* Page 0 (real-mode IVT, BDA) and the zero page itself live in low RAM. */
	check(e820_is_ram(bp, n, 0, 0x8000), C_E820_LOW, "no e820 RAM entry at 0 covering the boot area");
	check(e820_is_ram(bp, n, HIMEM, 0x100000), C_E820_HIGH, "no e820 RAM entry at 1 MiB");

	v = cmdline_value(cmdline, "msvmm.mem_mib", &vl);
	if (v)
		mem = parse_dec(v, vl) << 20;
	/* RAM adds up to the configured size less the EBDA..1 MiB hole, which is under 1 MiB. */
	if (!check(mem && ram <= mem && ram > mem - HIMEM, C_E820_TOTAL,
		   "e820 RAM total does not match msvmm.mem_mib (less the sub-1 MiB hole)")) {
		note_hex("configured", mem);
		note_hex("e820 RAM", ram);
	}
}

/* ---- CPU state ---- */

/* A flat 4 GiB descriptor of the given kind (code: 64-bit, execute/read; data: read/write). */
static bool gdt_desc_ok(uint64_t d, bool code)
{
	uint32_t limit = (uint32_t)(d & 0xffff) | (uint32_t)((d >> 32) & 0xf0000);
	uint32_t base = (uint32_t)((d >> 16) & 0xffffff) | (uint32_t)((d >> 32) & 0xff000000);
	uint8_t access = (uint8_t)(d >> 40), flags = (uint8_t)(d >> 52);
	bool present = access & 0x80, s = access & 0x10, exec = access & 0x08, rw = access & 0x02;
	bool g = flags & 0x8, l = flags & 0x2;

	if (!present || !s || base != 0 || limit != 0xfffff || !g)
		return false;
	return code ? exec && rw && l : !exec && rw;
}

static void check_cpu(void)
{
	uint64_t cr0 = read_cr0(), cr4 = read_cr4(), efer = read_efer();
	struct desc_ptr gdtr = read_gdtr();

	if (!check((cr0 & (X86_CR0_PG | X86_CR0_PE)) == (X86_CR0_PG | X86_CR0_PE), C_CR0, "CR0.PG/PE not set"))
		note_hex("cr0", cr0);
	if (!check(cr4 & X86_CR4_PAE, C_CR4, "CR4.PAE not set"))
		note_hex("cr4", cr4);
	if (!check((efer & (EFER_LMA | EFER_LME)) == (EFER_LMA | EFER_LME), C_EFER, "EFER.LMA/LME not set"))
		note_hex("efer", efer);
	if (!check(read_cs() == BOOT_CS, C_CS, "CS is not __BOOT_CS (0x10)"))
		note_hex("cs", read_cs());
	/* The 64-bit boot protocol asks for DS = ES = SS = __BOOT_DS. */
	if (!check(read_ds() == BOOT_DS && read_es() == BOOT_DS && read_ss() == BOOT_DS, C_DATA_SEGS,
		   "DS/ES/SS are not __BOOT_DS (0x18)")) {
		note_hex("ds", read_ds());
		note_hex("es", read_es());
		note_hex("ss", read_ss());
	}
	if (!check(!(entry_rflags & X86_RFLAGS_IF), C_IF, "interrupts enabled at entry"))
		note_hex("rflags", entry_rflags);
	if (check(gdtr.limit >= BOOT_DS + 7, C_GDT, "GDT too short for __BOOT_DS")) {
		const uint64_t *gdt = (const uint64_t *)gdtr.base;

		if (!check(gdt_desc_ok(gdt[BOOT_CS / 8], true) && gdt_desc_ok(gdt[BOOT_DS / 8], false), C_GDT,
			   "GDT entries 0x10/0x18 are not flat 64-bit code / data")) {
			note_hex("gdt[0x10]", gdt[BOOT_CS / 8]);
			note_hex("gdt[0x18]", gdt[BOOT_DS / 8]);
		}
	} else {
		note_hex("gdt limit", gdtr.limit);
	}
}

/*
 * Translate va through the live page tables (which must themselves be
 * identity-mapped for this walk to read them).  Returns the physical address,
 * or ~0 when not present.
 */
static uint64_t walk(uint64_t va)
{
	const uint64_t addr_mask = 0x000ffffffffff000ULL;
	uint64_t e = read_cr3() & addr_mask;
	unsigned int shift = 39;

	for (int level = 4; level >= 1; level--, shift -= 9) {
		uint64_t entry = ((const uint64_t *)(e & addr_mask))[(va >> shift) & 511];

		if (!(entry & 1))
			return ~0ULL;
		/* PS at the PDPT (1 GiB) or PD (2 MiB) level ends the walk. */
		if (level == 1 || ((level == 3 || level == 2) && (entry & 0x80))) {
			uint64_t page = 1ULL << shift;

			return (entry & addr_mask & ~(page - 1)) | (va & (page - 1));
		}
		e = entry;
	}
	return ~0ULL;
}

static void check_idmap(const uint8_t *bp)
{
	const uint64_t addrs[] = {
		(uint64_t)bp, bp_u32(bp, BP_CMD_LINE_PTR), bp_u32(bp, BP_RAMDISK_IMAGE),
		(uint64_t)&guest_main, (uint64_t)&checks.first_failure, MP_FLOAT_ADDR, MSVMM_CTL_BASE,
	};

	for (unsigned int i = 0; i < sizeof(addrs) / sizeof(addrs[0]); i++) {
		uint64_t pa = walk(addrs[i]);

		if (!check(pa == addrs[i], C_IDMAP, "not identity-mapped")) {
			note_hex("virtual", addrs[i]);
			note_hex("physical", pa);
		}
	}
	/* And the zero page reads the same through the map as it did via %rsi. */
	check(*(const volatile uint32_t *)(uint64_t)walk((uint64_t)bp + BP_HEADER) == 0x53726448, C_IDMAP,
	      "zero page not readable at its own address");
}

/* ---- initrd: concatenated newc archives ---- */

#define NEWC_HDR 110

static bool hex8(const uint8_t *p, uint32_t *out)
{
	uint32_t v = 0;

	for (int i = 0; i < 8; i++) {
		uint8_t c = p[i], d;

		if (c >= '0' && c <= '9')
			d = (uint8_t)(c - '0');
		else if (c >= 'a' && c <= 'f')
			d = (uint8_t)(c - 'a' + 10);
		else if (c >= 'A' && c <= 'F')
			d = (uint8_t)(c - 'A' + 10);
		else
			return false;
		v = v << 4 | d;
	}
	*out = v;
	return true;
}

static uint64_t align4(uint64_t x)
{
	return (x + 3) & ~3ULL;
}

struct found {
	const uint8_t *data;
	uint32_t size;
	bool ok;
};

/*
 * Walk every archive in the initrd the way the kernel's unpacker does (zero
 * padding between archives is skipped), counting archives and finding two
 * files.  Returns the number of archives, or -1 on a malformed stream.
 */
static int initrd_scan(const uint8_t *rd, uint64_t len, const char *name_a, struct found *a,
		       const char *name_b, struct found *b)
{
	uint64_t off = 0;
	int archives = 0;
	bool in_archive = false;

	while (off < len) {
		uint32_t fsize, nsize;
		const char *name;

		if (!in_archive) {
			if (rd[off] == 0) {
				off++;
				continue;
			}
			in_archive = true;
			archives++;
		}
		if ((off & 3) || len - off < NEWC_HDR || memcmp(rd + off, "070701", 6) ||
		    !hex8(rd + off + 54, &fsize) || !hex8(rd + off + 94, &nsize) || nsize == 0 ||
		    len - off - NEWC_HDR < nsize)
			return -1;
		name = (const char *)rd + off + NEWC_HDR;
		if (name[nsize - 1] != '\0')
			return -1;
		off = align4(off + NEWC_HDR + nsize);
		if (off > len || len - off < fsize)
			return -1;
		if (!memcmp(name, "TRAILER!!!", 11)) {
			in_archive = false;
		} else if (g_strlen(name) == g_strlen(name_a) && !memcmp(name, name_a, nsize)) {
			*a = (struct found){ rd + off, fsize, true };
		} else if (g_strlen(name) == g_strlen(name_b) && !memcmp(name, name_b, nsize)) {
			*b = (struct found){ rd + off, fsize, true };
		}
		off = align4(off + fsize);
	}
	return in_archive ? -1 : archives;
}

/*
 * Walk the run-spec records (type byte + NUL-terminated string, ctl.h):
 * argv must be exactly hello, world in order, the env entry present, and
 * every record well formed.
 */
static void check_runspec(const struct found *f)
{
	static const char *const want_argv[] = { "hello", "world" };
	unsigned int nargs = 0;
	bool argv_ok = true, env_ok = false;
	uint32_t pos = 0;

	while (pos < f->size) {
		char type = (char)f->data[pos];
		const char *s = (const char *)f->data + pos + 1;
		uint32_t n = 0;

		while (pos + 1 + n < f->size && s[n])
			n++;
		if (!check(pos + 1 + n < f->size, C_RUNSPEC_FORMAT, "run spec record not NUL-terminated"))
			return;
		if (type == 'A') {
			if (nargs >= 2 || g_strlen(want_argv[nargs]) != n || memcmp(s, want_argv[nargs], n))
				argv_ok = false;
			nargs++;
		} else if (type == 'E') {
			env_ok |= n == g_strlen("MSVMM_GUEST=boot_state") && !memcmp(s, "MSVMM_GUEST=boot_state", n);
		} else {
			check(type == 'W', C_RUNSPEC_FORMAT, "run spec has a record other than A/E/W");
		}
		pos += n + 2;
	}
	check(argv_ok && nargs == 2, C_RUNSPEC_ARGV, "run spec argv ('A' records) is not hello, world");
	check(env_ok, C_RUNSPEC_ENV, "run spec lacks 'E' MSVMM_GUEST=boot_state");
}

static void check_initrd(const uint8_t *bp)
{
	uint64_t addr = bp_u32(bp, BP_RAMDISK_IMAGE), size = bp_u32(bp, BP_RAMDISK_SIZE);
	const uint8_t *rd = (const uint8_t *)addr;
	struct found file = { 0 }, spec = { 0 };
	int archives;

	if (!check(addr && size, C_INITRD_SET, "ramdisk_image/ramdisk_size not set"))
		return;
	if (!check(!(addr & 0xfff), C_INITRD_ALIGN, "initrd not page aligned"))
		note_hex("ramdisk_image", addr);
	if (!check(e820_is_ram(bp, bp_u8(bp, BP_E820_ENTRIES), addr, size), C_INITRD_IN_RAM,
		   "initrd not inside one e820 RAM range")) {
		note_hex("ramdisk_image", addr);
		note_hex("ramdisk_size", size);
		return;
	}
	if (!check(size >= 6 && !memcmp(rd, "070701", 6), C_INITRD_MAGIC,
		   "initrd does not start with newc magic 070701"))
		return;
	archives = initrd_scan(rd, size, INITRAMFS_FILE, &file, RUN_SPEC_NAME, &spec);
	if (!check(archives == 2, C_INITRD_ARCHIVES,
		   "initrd is not exactly two well-formed newc archives (image + run spec)"))
		note_hex("archives", (uint64_t)(int64_t)archives);
	check(file.ok && file.size == g_strlen(INITRAMFS_TEXT) && !memcmp(file.data, INITRAMFS_TEXT, file.size),
	      C_INITRD_FILE, "image file " INITRAMFS_FILE " missing or wrong in the initrd");
	if (!check(spec.ok, C_RUNSPEC_FOUND, "run spec " RUN_SPEC_NAME " not in the initrd"))
		return;
	check_runspec(&spec);
}

/* ---- MP table ---- */

static uint8_t sum8(const uint8_t *p, size_t n)
{
	uint8_t s = 0;

	while (n--)
		s = (uint8_t)(s + *p++);
	return s;
}

static void check_mptable(void)
{
	const uint8_t *fp = (const uint8_t *)MP_FLOAT_ADDR;
	const uint8_t *tbl;
	uint32_t phys;
	uint16_t len;

	if (!check(!memcmp(fp, "_MP_", 4) && fp[8] == 1 && sum8(fp, 16) == 0, C_MP_FLOAT,
		   "no valid _MP_ floating pointer (16 bytes, checksum 0) at 0x9fc00"))
		return;
	__builtin_memcpy(&phys, fp + 4, 4);
	tbl = (const uint8_t *)(uint64_t)phys;
	if (!check(phys && !memcmp(tbl, "PCMP", 4), C_MP_CONFIG, "MP configuration table missing")) {
		note_hex("physptr", phys);
		return;
	}
	__builtin_memcpy(&len, tbl + 4, 2);
	check(len >= 44 && sum8(tbl, len) == 0, C_MP_CONFIG, "MP configuration table checksum is wrong");
}

int guest_main(const uint8_t *bp)
{
	const char *cmdline = "";

	serial_puts("boot_state: start\n");
	if (!check(bp && bp == (const uint8_t *)entry_rsi && !((uint64_t)bp & 0xfff), C_RSI,
		   "%rsi is not a page-aligned zero page")) {
		note_hex("rsi", entry_rsi);
		return checks.first_failure;
	}
	check(bp_u32(bp, BP_HEADER) == 0x53726448, C_HDRS, "no \"HdrS\" at 0x202");
	check(bp_u8(bp, BP_TYPE_OF_LOADER) == 0xff, C_LOADER, "type_of_loader is not 0xff");
	check(bp_u16(bp, 0x1fe) == 0xaa55, C_BOOT_FLAG, "boot_flag is not 0xaa55");
	if (check(bp_u32(bp, BP_CMD_LINE_PTR) != 0, C_CMDLINE_PTR, "cmd_line_ptr is 0")) {
		cmdline = (const char *)(uint64_t)bp_u32(bp, BP_CMD_LINE_PTR);
		check(cmdline_has_word(cmdline, "msvmm.test=boot_state"), C_CMDLINE_TEST,
		      "command line lacks the extra word msvmm.test=boot_state");
		check(cmdline_has_word(cmdline, "console=ttyS0"), C_CMDLINE_CONSOLE, "command line lacks console=ttyS0");
	}
	check_e820(bp, cmdline);
	check_cpu();
	check_idmap(bp);
	check_initrd(bp);
	check_mptable();
	if (checks.nr_failed) {
		serial_puts("boot_state: ");
		serial_putdec(checks.nr_failed);
		serial_puts(" check(s) failed; command line: ");
		serial_puts(cmdline);
		serial_puts("\n");
	} else {
		serial_puts("boot_state: ok\n");
	}
	return checks.first_failure;
}
