// SPDX-License-Identifier: Apache-2.0
/*
 * virtio-blk throughput from inside a guest, for bench/blk.sh: sequential
 * write and read in large requests, then random 4 KiB writes and reads, on
 * one virtio-mmio disk, timed with the TSC.  Prints one human line and one
 * machine line ("vblk_bench: result NAME BYTES REQS TICKS KHZ") per phase.
 *
 * Command line (all optional):
 *   msvmm.vblk=ADDR      device base; else the first virtio_mmio.device= word
 *   msvmm.tsc_khz=N      TSC rate; else tsc_early_khz= (msvmm passes it);
 *                        with neither, MB/s is left to the script (khz 0)
 *   msvmm.bench_mib=N    sequential region (default 8 MiB)
 *   msvmm.seq_kib=N      sequential request size (default 128 KiB)
 *   msvmm.rand_ops=N     random requests per direction (default 2048)
 *   msvmm.qd=N           requests kept in flight (default 1, at most 8)
 *
 * The same ELF also boots under QEMU (microvm, PVH): a Xen PVH note names a
 * 32-bit entry that builds an identity map of the first 4 GiB, enters long
 * mode and joins start.S's _start with a stand-in zero page holding only
 * the command-line pointer.  The Makefile's guest.ld discards notes, so only
 * bench/blk.sh's link (guest.ld plus a PT_NOTE) keeps that entry reachable;
 * the code is the same either way.  msvmm ends the run through its control
 * device when guest_main returns; elsewhere the guest ends it with a triple
 * fault, which QEMU -no-reboot turns into an exit.
 */
#include "virtio.h"

#define MAX_QD 8
#define MAX_SEQ_BYTES (1U << 20) /* the device's size_max */
#define RAND_BLOCK 4096

/* ---- PVH entry (QEMU) ---- */

__asm__(
	/* XEN_ELFNOTE_PHYS32_ENTRY (18): the 32-bit entry, as a 64-bit ELF's note carries it. */
	"	.pushsection .note.Xen, \"a\", @note\n"
	"	.balign 4\n"
	"	.long 4, 8, 18\n"
	"	.asciz \"Xen\"\n"
	"	.balign 4\n"
	"	.quad pvh_entry\n"
	"	.popsection\n"

	/*
	 * Entered in 32-bit protected mode, paging off, %ebx = hvm_start_info.
	 * Page tables: PML4[0] -> PDPT, PDPT[0..3] -> four PDs of 2 MiB pages.
	 */
	"	.pushsection .text.pvh, \"ax\"\n"
	"	.code32\n"
	"	.globl pvh_entry\n"
	"pvh_entry:\n"
	"	cli\n"
	"	movl %ebx, pvh_start_info\n"
	"	movl $pvh_pdpt + 3, pvh_pml4\n"
	"	xorl %ecx, %ecx\n"
	"1:	movl %ecx, %eax\n"
	"	shll $12, %eax\n"
	"	addl $pvh_pd + 3, %eax\n"
	"	movl %eax, pvh_pdpt(,%ecx,8)\n"
	"	incl %ecx\n"
	"	cmpl $4, %ecx\n"
	"	jne 1b\n"
	"	xorl %ecx, %ecx\n"
	"2:	movl %ecx, %eax\n"
	"	shll $21, %eax\n"
	"	orl $0x83, %eax\n" /* present, writable, 2 MiB page */
	"	movl %eax, pvh_pd(,%ecx,8)\n"
	"	incl %ecx\n"
	"	cmpl $2048, %ecx\n"
	"	jne 2b\n"
	"	movl $pvh_pml4, %eax\n"
	"	movl %eax, %cr3\n"
	"	movl %cr4, %eax\n"
	"	orl $0x20, %eax\n" /* PAE */
	"	movl %eax, %cr4\n"
	"	movl $0xc0000080, %ecx\n" /* EFER */
	"	rdmsr\n"
	"	orl $0x100, %eax\n" /* LME */
	"	wrmsr\n"
	"	movl %cr0, %eax\n"
	"	orl $0x80000001, %eax\n" /* PG | PE */
	"	movl %eax, %cr0\n"
	"	lgdt pvh_gdt_ptr\n"
	"	ljmp $0x08, $pvh_entry64\n"
	"	.code64\n"
	"pvh_entry64:\n"
	"	movl $0x10, %eax\n"
	"	movl %eax, %ds\n"
	"	movl %eax, %es\n"
	"	movl %eax, %ss\n"
	"	movl %eax, %fs\n"
	"	movl %eax, %gs\n"
	"	leaq pvh_stack_top(%rip), %rsp\n"
	/* hvm_start_info.cmdline_paddr (offset 24) becomes boot_params.hdr.cmd_line_ptr (0x228). */
	"	movl pvh_start_info(%rip), %eax\n"
	"	movl 24(%rax), %ecx\n"
	"	movl %ecx, pvh_zero_page + 0x228(%rip)\n"
	"	leaq pvh_zero_page(%rip), %rsi\n"
	"	jmp _start\n"
	"	.popsection\n"

	"	.pushsection .data.pvh, \"aw\"\n"
	"	.balign 16\n"
	"pvh_gdt:\n"
	"	.quad 0\n"
	"	.quad 0x00af9a000000ffff\n" /* 0x08: 64-bit code */
	"	.quad 0x00cf92000000ffff\n" /* 0x10: flat data */
	"pvh_gdt_ptr:\n"
	"	.word pvh_gdt_ptr - pvh_gdt - 1\n"
	"	.long pvh_gdt\n"
	"	.popsection\n"

	"	.pushsection .bss.pvh, \"aw\", @nobits\n"
	"	.balign 4096\n"
	"pvh_pml4:	.skip 4096\n"
	"pvh_pdpt:	.skip 4096\n"
	"pvh_pd:	.skip 4 * 4096\n"
	"pvh_zero_page:	.skip 4096\n"
	"pvh_start_info:	.skip 8\n"
	"	.balign 16\n"
	"	.skip 1024\n"
	"pvh_stack_top:\n"
	"	.popsection\n");

/* ---- the benchmark ---- */

static struct vq_rings rings;
static struct vdev dev;
static struct vblk_hdr hdrs[MAX_QD] __attribute__((aligned(16)));
static uint8_t statuses[MAX_QD];
static uint8_t buf[MAX_QD][MAX_SEQ_BYTES] __attribute__((aligned(4096)));

static uint64_t tsc_khz;
static unsigned int qd = 1;
static uint64_t rng = 0x9e3779b97f4a7c15ULL;

static uint64_t xorshift(void)
{
	rng ^= rng << 13;
	rng ^= rng >> 7;
	rng ^= rng << 17;
	return rng;
}

/* Slot k uses descriptors 3k .. 3k + 2: header, data, status. */
static void submit(unsigned int k, uint32_t type, uint64_t sector, uint32_t len)
{
	uint16_t d0 = (uint16_t)(3 * k);

	hdrs[k] = (struct vblk_hdr){ .type = type, .sector = sector };
	statuses[k] = 0xff;
	vq_set_desc(&dev, d0, (uint64_t)(uintptr_t)&hdrs[k], sizeof(hdrs[k]), VQ_DESC_F_NEXT, (uint16_t)(d0 + 1));
	vq_set_desc(&dev, (uint16_t)(d0 + 1), (uint64_t)(uintptr_t)buf[k], len,
		    (uint16_t)(VQ_DESC_F_NEXT | (type == VBLK_T_IN ? VQ_DESC_F_WRITE : 0)), (uint16_t)(d0 + 2));
	vq_set_desc(&dev, (uint16_t)(d0 + 2), (uint64_t)(uintptr_t)&statuses[k], 1, VQ_DESC_F_WRITE, 0);
	vq_publish(&dev, d0, true);
}

static void print_rate(const char *name, uint64_t bytes, uint64_t reqs, uint64_t ticks)
{
	serial_puts("vblk_bench: ");
	serial_puts(name);
	if (tsc_khz && ticks) {
		/* bytes * khz stays below 2^64 for anything this guest moves. */
		uint64_t cmbps = bytes * tsc_khz / ticks / 10; /* MB/s * 100 */
		uint64_t iops = reqs * tsc_khz * 1000 / ticks;

		serial_puts(": ");
		serial_putdec(cmbps / 100);
		serial_putc('.');
		serial_putc((char)('0' + cmbps / 10 % 10));
		serial_putc((char)('0' + cmbps % 10));
		serial_puts(" MB/s, ");
		serial_putdec(iops);
		serial_puts(" IOPS, ");
		serial_putdec(ticks * 1000 / tsc_khz * 1000 / reqs);
		serial_puts(" ns/req\n");
	} else {
		serial_puts(": (no TSC rate)\n");
	}
	serial_puts("vblk_bench: result ");
	serial_puts(name);
	serial_putc(' ');
	serial_putdec(bytes);
	serial_putc(' ');
	serial_putdec(reqs);
	serial_putc(' ');
	serial_putdec(ticks);
	serial_putc(' ');
	serial_putdec(tsc_khz);
	serial_putc('\n');
}

/*
 * 'n' requests of 'len' bytes, keeping 'qd' in flight; request i goes to
 * the sector sector_of(i).  Returns false (after saying why) on any failure.
 */
static bool run_phase(const char *name, uint32_t type, uint64_t n, uint32_t len, bool random, uint64_t region_sect)
{
	uint64_t issued = 0, done = 0, t0, t1;
	uint64_t blocks = region_sect / (len / VBLK_SECTOR);
	struct vq_used_elem e;

	t0 = rdtsc();
	for (unsigned int k = 0; k < qd && issued < n; k++, issued++)
		submit(k, type, (random ? xorshift() % blocks : issued) * (len / VBLK_SECTOR), len);
	while (done < n) {
		unsigned int k;
		int r = vq_wait(&dev, &e);

		if (r) {
			serial_puts("vblk_bench: ");
			serial_puts(name);
			serial_puts(": ");
			serial_puts(vio_strerror(r));
			serial_puts("\n");
			return false;
		}
		k = e.id / 3;
		if (e.id % 3 || k >= qd || statuses[k] != VBLK_S_OK) {
			serial_puts("vblk_bench: ");
			serial_puts(name);
			serial_puts(": request failed\n");
			return false;
		}
		done++;
		if (issued < n) {
			submit(k, type, (random ? xorshift() % blocks : issued) * (len / VBLK_SECTOR), len);
			issued++;
		}
	}
	t1 = rdtsc();
	print_rate(name, n * len, n, t1 - t0);
	return true;
}

/* Off msvmm, end the VM the only portable way: a triple fault (no IDT, then #UD). */
static void __attribute__((noreturn)) triple_fault(void)
{
	static const struct desc_ptr no_idt = { 0, 0 };

	load_idt(&no_idt);
	for (;;)
		__asm__ volatile("ud2");
}

static bool on_msvmm(void)
{
	return mmio_read32(MSVMM_CTL_BASE + MSVMM_CTL_MAGIC) == MSVMM_CTL_MAGIC_VALUE;
}

static int bench(const char *cl)
{
	uint64_t base = vio_cmdline_u64(cl, "msvmm.vblk", 0);
	uint64_t region = vio_cmdline_u64(cl, "msvmm.bench_mib", 8) << 20;
	uint64_t seq = vio_cmdline_u64(cl, "msvmm.seq_kib", 128) << 10;
	uint64_t rand_ops = vio_cmdline_u64(cl, "msvmm.rand_ops", 2048);
	uint64_t cap, region_sect;
	int r;

	tsc_khz = vio_cmdline_u64(cl, "msvmm.tsc_khz", vio_cmdline_u64(cl, "tsc_early_khz", 0));
	qd = (unsigned int)vio_cmdline_u64(cl, "msvmm.qd", 1);
	if (!base)
		base = vio_cmdline_device(cl, 0);
	if (qd < 1 || qd > MAX_QD || seq < VBLK_SECTOR || seq > MAX_SEQ_BYTES || seq % VBLK_SECTOR ||
	    region < seq || region % seq || !rand_ops) {
		serial_puts("vblk_bench: bad parameters\n");
		return 2;
	}
	if (!base) {
		serial_puts("vblk_bench: no virtio-blk device on the command line\n");
		return 3;
	}
	r = vio_init(&dev, base, VIRTIO_DEV_BLOCK, VIO_BIT(VBLK_F_FLUSH) | VIO_BIT(VBLK_F_BLK_SIZE), VQ_SIZE_MAX,
		     &rings);
	if (r) {
		serial_puts("vblk_bench: device: ");
		serial_puts(vio_strerror(r));
		serial_puts("\n");
		return 4;
	}
	cap = vblk_cfg64(&dev, VBLK_CFG_CAPACITY);
	region_sect = region / VBLK_SECTOR;
	if (cap < region_sect) {
		serial_puts("vblk_bench: disk smaller than the region\n");
		return 5;
	}
	for (unsigned int k = 0; k < qd; k++)
		for (uint64_t i = 0; i < seq; i += 64)
			buf[k][i] = (uint8_t)(i >> 6 ^ k);

	serial_puts("vblk_bench: region ");
	serial_putdec(region >> 20);
	serial_puts(" MiB, seq ");
	serial_putdec(seq >> 10);
	serial_puts(" KiB, random 4 KiB x ");
	serial_putdec(rand_ops);
	serial_puts(", qd ");
	serial_putdec(qd);
	serial_puts(", tsc ");
	serial_putdec(tsc_khz);
	serial_puts(" kHz\n");
	if (!run_phase("seq-write", VBLK_T_OUT, region / seq, (uint32_t)seq, false, region_sect) ||
	    !run_phase("seq-read", VBLK_T_IN, region / seq, (uint32_t)seq, false, region_sect) ||
	    !run_phase("rand-write-4k", VBLK_T_OUT, rand_ops, RAND_BLOCK, true, region_sect) ||
	    !run_phase("rand-read-4k", VBLK_T_IN, rand_ops, RAND_BLOCK, true, region_sect))
		return 6;
	serial_puts("vblk_bench: done\n");
	return 0;
}

int guest_main(const uint8_t *bp)
{
	int r = bench(vio_cmdline(bp));

	if (!on_msvmm()) {
		if (r)
			serial_puts("vblk_bench: failed\n");
		triple_fault();
	}
	return r;
}
