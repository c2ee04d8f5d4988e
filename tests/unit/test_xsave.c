// SPDX-License-Identifier: Apache-2.0
/*
 * XSAVE-family emulation: decoding, addressing, state merging, page walks,
 * and (where /dev/kvm can be opened) the real thing on a tiny long-mode
 * guest, which on PVM exits to us for every XSAVE/XRSTOR and on real KVM
 * runs them natively: the guest-visible results must be the same.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "guest_mem.h"
#include "xsave.h"

/* ---- decoding ------------------------------------------------------------ */

static struct xsave_insn decode_ok(const uint8_t *b, size_t n)
{
	struct xsave_insn in;
	int r = xsave_decode(b, n, &in);

	ck_assert_int_eq(r, 0);
	return in;
}

/* Byte lists as compound literals: plain C11, one expression each. */
#define BYTES(...)	((const uint8_t[]){ __VA_ARGS__ })
#define NBYTES(...)	sizeof(BYTES(__VA_ARGS__))
#define DECODE(...)	decode_ok(BYTES(__VA_ARGS__), NBYTES(__VA_ARGS__))
#define DECODE_ERR(err, ...) \
	ck_assert_int_eq(decode_err(BYTES(__VA_ARGS__), NBYTES(__VA_ARGS__)), (err))

static int decode_err(const uint8_t *b, size_t n)
{
	struct xsave_insn in;

	return xsave_decode(b, n, &in);
}

START_TEST(test_decode_kernel_forms)
{
	/* What Linux emits: REX.W 0F AE /4 /5 /6 with (%rdi). */
	struct xsave_insn in = DECODE(0x48, 0x0f, 0xae, 0x27);

	ck_assert_int_eq(in.op, XSAVE_OP_XSAVE);
	ck_assert(in.rex_w);
	ck_assert_int_eq(in.seg, XSAVE_SEG_NONE);
	ck_assert_int_eq(in.base, 7);
	ck_assert_int_eq(in.index, XSAVE_REG_NONE);
	ck_assert_int_eq(in.disp, 0);
	ck_assert_int_eq(in.len, 4);

	in = DECODE(0x48, 0x0f, 0xae, 0x2f);
	ck_assert_int_eq(in.op, XSAVE_OP_XRSTOR);
	ck_assert_int_eq(in.base, 7);
	ck_assert_int_eq(in.len, 4);

	in = DECODE(0x48, 0x0f, 0xae, 0x37);
	ck_assert_int_eq(in.op, XSAVE_OP_XSAVEOPT);
	ck_assert_int_eq(in.base, 7);

	in = DECODE(0x0f, 0xae, 0x27);
	ck_assert_int_eq(in.op, XSAVE_OP_XSAVE);
	ck_assert(!in.rex_w);
	ck_assert_int_eq(in.len, 3);
}
END_TEST

START_TEST(test_decode_displacements)
{
	struct xsave_insn in = DECODE(0x48, 0x0f, 0xae, 0x67, 0xf0);

	ck_assert_int_eq(in.base, 7);
	ck_assert_int_eq(in.disp, -16);
	ck_assert_int_eq(in.len, 5);

	in = DECODE(0x48, 0x0f, 0xae, 0xa7, 0x00, 0x01, 0x00, 0x00);
	ck_assert_int_eq(in.disp, 0x100);
	ck_assert_int_eq(in.len, 8);

	in = DECODE(0x48, 0x0f, 0xae, 0xa7, 0x00, 0x00, 0x00, 0x80);
	ck_assert(in.disp == -0x80000000LL);
}
END_TEST

START_TEST(test_decode_sib)
{
	/* xsave64 0x8(%rax,%rcx,4) */
	struct xsave_insn in = DECODE(0x48, 0x0f, 0xae, 0x64, 0x88, 0x08);

	ck_assert_int_eq(in.base, 0);
	ck_assert_int_eq(in.index, 1);
	ck_assert_int_eq(in.scale, 4);
	ck_assert_int_eq(in.disp, 8);
	ck_assert_int_eq(in.len, 6);

	/* xsave (%rsp): index 100 without REX.X is no index */
	in = DECODE(0x0f, 0xae, 0x24, 0x24);
	ck_assert_int_eq(in.base, 4);
	ck_assert_int_eq(in.index, XSAVE_REG_NONE);
	ck_assert_int_eq(in.len, 4);

	/* xsave64 (%rax,%r12,1): with REX.X, index 100 is r12 */
	in = DECODE(0x4a, 0x0f, 0xae, 0x24, 0x20);
	ck_assert_int_eq(in.base, 0);
	ck_assert_int_eq(in.index, 12);
	ck_assert_int_eq(in.scale, 1);

	/* xsave 0x12345678: base 101 with mod 00 is disp32, no base */
	in = DECODE(0x0f, 0xae, 0x24, 0x25, 0x78, 0x56, 0x34, 0x12);
	ck_assert_int_eq(in.base, XSAVE_REG_NONE);
	ck_assert_int_eq(in.index, XSAVE_REG_NONE);
	ck_assert_int_eq(in.disp, 0x12345678);
	ck_assert_int_eq(in.len, 8);

	/* ... and REX.B does not turn it into r13 */
	in = DECODE(0x41, 0x0f, 0xae, 0x24, 0x25, 0x78, 0x56, 0x34, 0x12);
	ck_assert_int_eq(in.base, XSAVE_REG_NONE);
	ck_assert_int_eq(in.len, 9);

	/* xsave 0x10(%rbp): base 101 with mod 01 is rbp */
	in = DECODE(0x0f, 0xae, 0x64, 0x25, 0x10);
	ck_assert_int_eq(in.base, 5);
	ck_assert_int_eq(in.disp, 0x10);

	/* xsaveopt64 -0x80(%r13,%rdi,8), REX.R ignored */
	in = DECODE(0x4d, 0x0f, 0xae, 0x74, 0xfd, 0x80);
	ck_assert_int_eq(in.op, XSAVE_OP_XSAVEOPT);
	ck_assert_int_eq(in.base, 13);
	ck_assert_int_eq(in.index, 7);
	ck_assert_int_eq(in.scale, 8);
	ck_assert_int_eq(in.disp, -0x80);
}
END_TEST

START_TEST(test_decode_rip_and_rex_b)
{
	/* xrstor64 0x10(%rip) */
	struct xsave_insn in = DECODE(0x48, 0x0f, 0xae, 0x2d, 0x10, 0, 0, 0);

	ck_assert_int_eq(in.op, XSAVE_OP_XRSTOR);
	ck_assert_int_eq(in.base, XSAVE_REG_RIP);
	ck_assert_int_eq(in.disp, 0x10);
	ck_assert_int_eq(in.len, 8);

	/* REX.B with rm 101, mod 00 is still RIP-relative, not r13 */
	in = DECODE(0x49, 0x0f, 0xae, 0x2d, 0xf0, 0xff, 0xff, 0xff);
	ck_assert_int_eq(in.base, XSAVE_REG_RIP);
	ck_assert_int_eq(in.disp, -16);

	in = DECODE(0x49, 0x0f, 0xae, 0x27);	/* xsave64 (%r15) */
	ck_assert_int_eq(in.base, 15);
	in = DECODE(0x49, 0x0f, 0xae, 0x24, 0x24);	/* xsave64 (%r12) */
	ck_assert_int_eq(in.base, 12);
	ck_assert_int_eq(in.index, XSAVE_REG_NONE);
	in = DECODE(0x4c, 0x0f, 0xae, 0x27);	/* REX.R: still xsave64 (%rdi) */
	ck_assert_int_eq(in.op, XSAVE_OP_XSAVE);
	ck_assert_int_eq(in.base, 7);
}
END_TEST

START_TEST(test_decode_segments)
{
	struct xsave_insn in = DECODE(0x64, 0x48, 0x0f, 0xae, 0x27);

	ck_assert_int_eq(in.seg, XSAVE_SEG_FS);
	ck_assert(in.rex_w);
	ck_assert_int_eq(in.len, 5);

	in = DECODE(0x65, 0x48, 0x0f, 0xae, 0x2f);
	ck_assert_int_eq(in.seg, XSAVE_SEG_GS);
	ck_assert_int_eq(in.op, XSAVE_OP_XRSTOR);

	/* A REX before another prefix is ignored. */
	in = DECODE(0x48, 0x64, 0x0f, 0xae, 0x27);
	ck_assert(!in.rex_w);
	ck_assert_int_eq(in.seg, XSAVE_SEG_FS);

	/* DS override: null in 64-bit mode */
	in = DECODE(0x3e, 0x48, 0x0f, 0xae, 0x27);
	ck_assert_int_eq(in.seg, XSAVE_SEG_NONE);
	ck_assert_int_eq(in.len, 5);
}
END_TEST

START_TEST(test_decode_truncated)
{
	struct xsave_insn in;

	ck_assert_int_eq(xsave_decode(NULL, 0, &in), -ENODATA);
	DECODE_ERR(-ENODATA, 0x48);
	DECODE_ERR(-ENODATA, 0x48, 0x0f);
	DECODE_ERR(-ENODATA, 0x48, 0x0f, 0xae);
	DECODE_ERR(-ENODATA, 0x48, 0x0f, 0xae, 0x67);		/* disp8 missing */
	DECODE_ERR(-ENODATA, 0x48, 0x0f, 0xae, 0xa7, 0x00, 0x01); /* disp32 */
	DECODE_ERR(-ENODATA, 0x0f, 0xae, 0x24);			/* SIB missing */
	DECODE_ERR(-ENODATA, 0x48, 0x0f, 0xae, 0x2d, 0x10, 0, 0);
}
END_TEST

START_TEST(test_decode_not_ours)
{
	DECODE_ERR(-EINVAL, 0x0f, 0xae, 0xe8);		/* lfence: mod 3 */
	DECODE_ERR(-EINVAL, 0x0f, 0xae, 0xf0);		/* mfence: mod 3 */
	DECODE_ERR(-EINVAL, 0x0f, 0xae, 0x38);		/* clflush (%rax) */
	DECODE_ERR(-EINVAL, 0x0f, 0xae, 0x00);		/* fxsave (%rax) */
	DECODE_ERR(-EINVAL, 0x0f, 0xae, 0x18);		/* stmxcsr (%rax) */
	DECODE_ERR(-EINVAL, 0xf3, 0x0f, 0xae, 0x27);	/* ptwrite */
	DECODE_ERR(-EINVAL, 0x66, 0x0f, 0xae, 0x37);	/* clwb */
	DECODE_ERR(-EINVAL, 0xf2, 0x0f, 0xae, 0x27);
	DECODE_ERR(-EINVAL, 0xf0, 0x0f, 0xae, 0x27);	/* lock */
	DECODE_ERR(-EINVAL, 0x67, 0x0f, 0xae, 0x27);	/* 32-bit address */
	DECODE_ERR(-EINVAL, 0x0f, 0xc7, 0x27);		/* xsavec */
	DECODE_ERR(-EINVAL, 0x0f, 0x01, 0xd0);		/* xgetbv */
	DECODE_ERR(-EINVAL, 0xcc);			/* int3 */
	/* 16 bytes long: over the architectural limit */
	DECODE_ERR(-EINVAL, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e,
		   0x3e, 0x48, 0x0f, 0xae, 0xa7, 0x00, 0x01, 0x00, 0x00);
	/* 15 prefixes: no room for the opcode */
	DECODE_ERR(-EINVAL, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e,
		   0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x3e, 0x0f, 0xae, 0x27);
}
END_TEST

/* ---- addressing ------------------------------------------------------------ */

/* Distinct values, set field by field in encoding order. */
static struct kvm_regs numbered_regs(void)
{
	struct kvm_regs r;

	memset(&r, 0, sizeof(r));
	r.rax = 0x1000; r.rcx = 0x1100; r.rdx = 0x1200; r.rbx = 0x1300;
	r.rsp = 0x1400; r.rbp = 0x1500; r.rsi = 0x1600; r.rdi = 0x1700;
	r.r8 = 0x1800; r.r9 = 0x1900; r.r10 = 0x1a00; r.r11 = 0x1b00;
	r.r12 = 0x1c00; r.r13 = 0x1d00; r.r14 = 0x1e00; r.r15 = 0x1f00;
	return r;
}

START_TEST(test_ea_register_numbers)
{
	struct kvm_regs r = numbered_regs();
	struct xsave_insn in = { .index = XSAVE_REG_NONE, .scale = 1 };

	for (int n = 0; n < 16; n++) {
		in.base = n;
		ck_assert_uint_eq(xsave_effective_address(&in, &r, 0, 0),
				  0x1000 + 0x100 * n);
		in.base = XSAVE_REG_NONE;
		in.index = n;
		in.scale = 8;
		ck_assert_uint_eq(xsave_effective_address(&in, &r, 0, 0),
				  8 * (0x1000 + 0x100 * n));
		in.index = XSAVE_REG_NONE;
		in.scale = 1;
	}
}
END_TEST

START_TEST(test_ea_forms)
{
	struct kvm_regs r = numbered_regs();
	struct xsave_insn in;

	in = DECODE(0x48, 0x0f, 0xae, 0x64, 0x88, 0x08);	/* 0x8(%rax,%rcx,4) */
	ck_assert_uint_eq(xsave_effective_address(&in, &r, 0, 0),
			  0x1000 + 4 * 0x1100 + 8);
	in = DECODE(0x48, 0x0f, 0xae, 0x67, 0xf0);		/* -0x10(%rdi) */
	ck_assert_uint_eq(xsave_effective_address(&in, &r, 0, 0), 0x1700 - 16);
	in = DECODE(0x48, 0x0f, 0xae, 0x2d, 0x10, 0, 0, 0);	/* 0x10(%rip) */
	ck_assert_uint_eq(xsave_effective_address(&in, &r, 0xffffffff81000000ULL, 0),
			  0xffffffff81000000ULL + 8 + 0x10);
	in = DECODE(0x0f, 0xae, 0x24, 0x25, 0x78, 0x56, 0x34, 0x12);
	ck_assert_uint_eq(xsave_effective_address(&in, &r, 0, 0), 0x12345678);
	/* disp32 sign-extends to the top of the address space */
	in = DECODE(0x0f, 0xae, 0x24, 0x25, 0x00, 0xf0, 0xff, 0xff);
	ck_assert_uint_eq(xsave_effective_address(&in, &r, 0, 0),
			  0xfffffffffffff000ULL);
	/* segment base only with an override */
	in = DECODE(0x64, 0x48, 0x0f, 0xae, 0x27);
	ck_assert_uint_eq(xsave_effective_address(&in, &r, 0, 0x7f0000000000ULL),
			  0x7f0000001700ULL);
	in = DECODE(0x48, 0x0f, 0xae, 0x27);
	ck_assert_uint_eq(xsave_effective_address(&in, &r, 0, 0x7f0000000000ULL),
			  0x1700);
}
END_TEST

START_TEST(test_ea_wraps)
{
	struct kvm_regs r = numbered_regs();
	struct xsave_insn in;

	r.rdi = 0xfffffffffffffff0ULL;
	in = DECODE(0x48, 0x0f, 0xae, 0x67, 0x20);	/* 0x20(%rdi) */
	ck_assert_uint_eq(xsave_effective_address(&in, &r, 0, 0), 0x10);
	r.rdi = 0x8;
	in = DECODE(0x48, 0x0f, 0xae, 0x67, 0xf0);	/* -0x10(%rdi) */
	ck_assert_uint_eq(xsave_effective_address(&in, &r, 0, 0),
			  0xfffffffffffffff8ULL);
	/* RIP-relative across the top */
	in = DECODE(0x48, 0x0f, 0xae, 0x2d, 0x10, 0, 0, 0);
	ck_assert_uint_eq(xsave_effective_address(&in, &r, 0xfffffffffffffff0ULL, 0),
			  0x8);
	/* index * scale wraps too */
	r.rax = 0; r.rcx = 0x4000000000000001ULL;
	in = DECODE(0x48, 0x0f, 0xae, 0x64, 0x88, 0x08);
	ck_assert_uint_eq(xsave_effective_address(&in, &r, 0, 0), 4 + 8);
}
END_TEST

START_TEST(test_emulate_rejects_before_any_ioctl)
{
	static const uint8_t mfence[] = { 0x0f, 0xae, 0xf0 };
	static const uint8_t cut[] = { 0x48, 0x0f, 0xae };
	struct xsave_result res = { .inject = XSAVE_INJECT_GP };
	struct xsave_layout l;
	struct guest_mem gm;

	memset(&gm, 0, sizeof(gm));
	xsave_layout_init(&l);
	/* fd -1: any ioctl would fail with -EBADF */
	ck_assert_int_eq(xsave_emulate(-1, &gm, &l, 0, mfence, sizeof(mfence), &res),
			 -EINVAL);
	ck_assert_int_eq(res.inject, XSAVE_INJECT_NONE);
	ck_assert_int_eq(xsave_emulate(-1, &gm, &l, 0, cut, sizeof(cut), &res),
			 -ENODATA);
	ck_assert_int_eq(xsave_inject(-1, &res), 0);
	res.inject = XSAVE_INJECT_GP;
	ck_assert_int_eq(xsave_inject(-1, &res), -EBADF);
}
END_TEST

/* ---- layout and state ------------------------------------------------------ */

#define AREA 4096

/* AVX at 576, AVX-512 opmask, ZMM_Hi256 and Hi16_ZMM as on Intel/AMD. */
static struct xsave_layout synthetic_layout(void)
{
	struct xsave_layout l;

	xsave_layout_init(&l);
	ck_assert_int_eq(xsave_layout_add(&l, 2, 576, 256), 0);
	ck_assert_int_eq(xsave_layout_add(&l, 5, 1088, 64), 0);
	ck_assert_int_eq(xsave_layout_add(&l, 6, 1152, 512), 0);
	ck_assert_int_eq(xsave_layout_add(&l, 7, 1664, 1024), 0);
	l.mxcsr_mask = 0xFFFF;
	return l;
}

static uint64_t get64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, 8);
	return v;
}

static void put64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, 8);
}

static uint32_t get32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, 4);
	return v;
}

static void put32(uint8_t *p, uint32_t v)
{
	memcpy(p, &v, 4);
}

static bool all_bytes(const uint8_t *p, size_t n, uint8_t v)
{
	for (size_t i = 0; i < n; i++) {
		if (p[i] != v)
			return false;
	}
	return true;
}

static bool x87_is_init(const uint8_t *a)
{
	return a[0] == 0x7f && a[1] == 0x03 && all_bytes(a + 2, 22, 0) &&
	       all_bytes(a + 32, 128, 0);
}

/* A KVM image full of nonzero bytes, with a valid MXCSR and this XSTATE_BV. */
static void kvm_image(uint8_t *a, uint8_t seed, uint64_t bv)
{
	for (size_t i = 0; i < AREA; i++)
		a[i] = (uint8_t)(i * 7 + seed) | 1;
	put32(a + 24, 0x1F80 | seed);	/* flag bits only */
	put32(a + 28, 0xFFFF);
	memset(a + 512, 0, 64);
	put64(a + 512, bv);
}

/* A guest area: junk (0xAA) with a clean header saying old_bv. */
static void guest_area(uint8_t *a, uint64_t old_bv)
{
	memset(a, 0xAA, AREA);
	memset(a + 512, 0, 64);
	put64(a + 512, old_bv);
}

static void assert_component(const struct xsave_layout *l, unsigned int i,
			     const uint8_t *a, const uint8_t *b)
{
	ck_assert_msg(!memcmp(a + l->offset[i], b + l->offset[i], l->size[i]),
		      "component %u differs", i);
}

START_TEST(test_area_len)
{
	struct xsave_layout l = synthetic_layout();
	uint32_t len = 0;

	ck_assert_uint_eq(l.supported, 0xE7);
	ck_assert_uint_eq(l.total, 2688);
	ck_assert_int_eq(xsave_area_len(&l, 0x3, &len), 0);
	ck_assert_uint_eq(len, 576);
	ck_assert_int_eq(xsave_area_len(&l, 0x0, &len), 0);
	ck_assert_uint_eq(len, 576);
	ck_assert_int_eq(xsave_area_len(&l, 0x7, &len), 0);
	ck_assert_uint_eq(len, 832);
	ck_assert_int_eq(xsave_area_len(&l, 0x23, &len), 0);
	ck_assert_uint_eq(len, 1152);
	ck_assert_int_eq(xsave_area_len(&l, 0xE7, &len), 0);
	ck_assert_uint_eq(len, 2688);
	ck_assert_int_eq(xsave_area_len(&l, 0x8, &len), -EOPNOTSUPP);
	ck_assert_int_eq(xsave_area_len(&l, 1ULL << 63, &len), -EOPNOTSUPP);
	/* bad layout entries */
	ck_assert_int_eq(xsave_layout_add(&l, 1, 576, 64), -EINVAL);
	ck_assert_int_eq(xsave_layout_add(&l, 3, 512, 64), -EINVAL);
	ck_assert_int_eq(xsave_layout_add(&l, 3, 960, 0), -EINVAL);
	ck_assert_int_eq(xsave_layout_add(&l, 63, 960, 64), -EINVAL);
	ck_assert_int_eq(xsave_layout_add(&l, 3, 0xFFFFFFF0, 0x20), -EINVAL);
}
END_TEST

START_TEST(test_layout_from_cpuid)
{
	struct xsave_layout l;
	uint32_t len;

	if (xsave_layout_from_cpuid(&l) == -EOPNOTSUPP)
		return;		/* a host without XSAVE: nothing to compare */
	ck_assert(l.supported & 0x3);
	ck_assert_uint_ge(l.total, 576);
	ck_assert_int_eq(xsave_area_len(&l, l.supported, &len), 0);
	ck_assert_uint_le(len, l.total);
	if (l.supported & 0x4) {	/* AVX sits right after the header everywhere */
		ck_assert_uint_eq(l.offset[2], 576);
		ck_assert_uint_eq(l.size[2], 256);
	}
	ck_assert(l.mxcsr_mask & 0xFFBF);
}
END_TEST

START_TEST(test_xsave_full)
{
	struct xsave_layout l = synthetic_layout();
	static uint8_t kvm[AREA], mem[AREA];

	kvm_image(kvm, 3, 0xE7);
	guest_area(mem, 0);
	ck_assert_int_eq(xsave_to_memory(&l, kvm, mem, 0xE7, false), 0);
	ck_assert(!memcmp(mem, kvm, 416));		/* x87, MXCSR, XMM */
	ck_assert(all_bytes(mem + 416, 96, 0xAA));	/* not XSAVE's */
	ck_assert_uint_eq(get64(mem + 512), 0xE7);
	ck_assert(all_bytes(mem + 520, 56, 0));		/* XCOMP_BV untouched */
	for (unsigned int i = 2; i < 8; i++) {
		if (l.supported & (1u << i))
			assert_component(&l, i, mem, kvm);
	}
	ck_assert(all_bytes(mem + 832, 1088 - 832, 0xAA)); /* MPX hole */
	ck_assert(all_bytes(mem + 2688, AREA - 2688, 0xAA));
}
END_TEST

START_TEST(test_xsave_partial_rfbm_merges_bv)
{
	struct xsave_layout l = synthetic_layout();
	static uint8_t kvm[AREA], mem[AREA];

	/* KVM: x87, SSE, opmask in use.  Old header: AVX and Hi16_ZMM. */
	kvm_image(kvm, 5, 0x23);
	guest_area(mem, 0x84);
	ck_assert_int_eq(xsave_to_memory(&l, kvm, mem, 0x07, false), 0);
	ck_assert_uint_eq(get64(mem + 512), 0x83);
	ck_assert(!memcmp(mem, kvm, 416));
	/* AVX requested but initial in KVM: XSAVE writes its init value */
	ck_assert(all_bytes(mem + 576, 256, 0));
	/* opmask in use in KVM but not requested: untouched */
	ck_assert(all_bytes(mem + 1088, 64, 0xAA));
	ck_assert(all_bytes(mem + 1664, 1024, 0xAA));
}
END_TEST

START_TEST(test_xsaveopt_skips_initial)
{
	struct xsave_layout l = synthetic_layout();
	static uint8_t kvm[AREA], mem[AREA];

	kvm_image(kvm, 5, 0x23);
	guest_area(mem, 0x84);
	ck_assert_int_eq(xsave_to_memory(&l, kvm, mem, 0x07, true), 0);
	ck_assert_uint_eq(get64(mem + 512), 0x83);
	ck_assert(!memcmp(mem, kvm, 416));
	ck_assert(all_bytes(mem + 576, 256, 0xAA));	/* init optimization */

	/* x87 initial: XSAVE writes FNINIT state, XSAVEOPT leaves it */
	kvm_image(kvm, 9, 0x02);
	guest_area(mem, 0x01);
	ck_assert_int_eq(xsave_to_memory(&l, kvm, mem, 0x03, true), 0);
	ck_assert(all_bytes(mem, 24, 0xAA));
	ck_assert_uint_eq(get64(mem + 512), 0x02);
	ck_assert_int_eq(xsave_to_memory(&l, kvm, mem, 0x03, false), 0);
	ck_assert(x87_is_init(mem));
	ck_assert(!memcmp(mem + 24, kvm + 24, 8));	/* MXCSR is SSE's */
	ck_assert(!memcmp(mem + 160, kvm + 160, 256));
}
END_TEST

START_TEST(test_xsave_mxcsr_rules)
{
	struct xsave_layout l = synthetic_layout();
	static uint8_t kvm[AREA], mem[AREA];

	/* AVX alone still saves MXCSR and MXCSR_MASK, not x87 or XMM */
	kvm_image(kvm, 11, 0xE7);
	guest_area(mem, 0);
	ck_assert_int_eq(xsave_to_memory(&l, kvm, mem, 0x04, false), 0);
	ck_assert(all_bytes(mem, 24, 0xAA));
	ck_assert(!memcmp(mem + 24, kvm + 24, 8));
	ck_assert(all_bytes(mem + 32, 512 - 32, 0xAA));
	assert_component(&l, 2, mem, kvm);
	ck_assert_uint_eq(get64(mem + 512), 0x04);

	/* x87 alone does not */
	guest_area(mem, 0);
	ck_assert_int_eq(xsave_to_memory(&l, kvm, mem, 0x01, false), 0);
	ck_assert(all_bytes(mem + 24, 8, 0xAA));
	ck_assert(!memcmp(mem, kvm, 24));

	/* KVM reports MXCSR_MASK 0 when SSE/AVX are initial: use the host's */
	put32(kvm + 28, 0);
	guest_area(mem, 0);
	ck_assert_int_eq(xsave_to_memory(&l, kvm, mem, 0x02, false), 0);
	ck_assert_uint_eq(get32(mem + 28), 0xFFFF);

	/* a component the layout does not know */
	guest_area(mem, 0);
	ck_assert_int_eq(xsave_to_memory(&l, kvm, mem, 0x0F, false), -EOPNOTSUPP);
	ck_assert(all_bytes(mem, 512, 0xAA));
}
END_TEST

START_TEST(test_round_trip)
{
	struct xsave_layout l = synthetic_layout();
	static uint8_t kvm[AREA], mem[AREA], back[AREA];

	kvm_image(kvm, 13, 0xE7);
	memset(mem, 0, AREA);
	ck_assert_int_eq(xsave_to_memory(&l, kvm, mem, 0xE7, false), 0);
	kvm_image(back, 42, 0);
	ck_assert_int_eq(xsave_from_memory(&l, mem, back, 0xE7, 0xE7), 0);
	ck_assert(!memcmp(back, kvm, 24));
	ck_assert(!memcmp(back + 24, kvm + 24, 4));	/* MXCSR */
	ck_assert_uint_eq(get32(back + 28), 0xFFFF);	/* KVM's mask kept */
	ck_assert(!memcmp(back + 32, kvm + 32, 384));
	for (unsigned int i = 2; i < 8; i++) {
		if (l.supported & (1u << i))
			assert_component(&l, i, back, kvm);
	}
	ck_assert_uint_eq(get64(back + 512), 0xE7);
}
END_TEST

START_TEST(test_xrstor_init_state)
{
	struct xsave_layout l = synthetic_layout();
	static uint8_t kvm[AREA], mem[AREA];

	kvm_image(kvm, 17, 0xE7);
	kvm_image(mem, 19, 0x02);	/* only SSE in the area */
	put32(mem + 24, 0x1F00);
	ck_assert_int_eq(xsave_from_memory(&l, mem, kvm, 0xE7, 0xE7), 0);
	ck_assert(x87_is_init(kvm));
	ck_assert_uint_eq(get32(kvm + 24), 0x1F00);
	ck_assert(!memcmp(kvm + 160, mem + 160, 256));
	ck_assert(all_bytes(kvm + 576, 256, 0));
	ck_assert(all_bytes(kvm + 1088, 64, 0));
	ck_assert(all_bytes(kvm + 1152, 512, 0));
	ck_assert(all_bytes(kvm + 1664, 1024, 0));
	ck_assert_uint_eq(get64(kvm + 512), 0x02);
}
END_TEST

START_TEST(test_xrstor_partial_rfbm)
{
	struct xsave_layout l = synthetic_layout();
	static uint8_t kvm[AREA], mem[AREA], orig[AREA];

	/* x87 only: MXCSR not loaded (nor checked), other components kept */
	kvm_image(kvm, 23, 0x24);
	memcpy(orig, kvm, AREA);
	kvm_image(mem, 29, 0x41);
	put32(mem + 24, 0xFFFFFFFF);
	ck_assert_int_eq(xsave_from_memory(&l, mem, kvm, 0x01, 0xE7), 0);
	ck_assert(!memcmp(kvm, mem, 24));
	ck_assert(!memcmp(kvm + 32, mem + 32, 128));		/* ST0..ST7 */
	ck_assert(!memcmp(kvm + 24, orig + 24, 8));		/* MXCSR */
	ck_assert(!memcmp(kvm + 160, orig + 160, 512 - 160));	/* XMM */
	ck_assert(!memcmp(kvm + 576, orig + 576, AREA - 576));	/* bit 6 too */
	ck_assert_uint_eq(get64(kvm + 512), 0x25);

	/* x87 and SSE: MXCSR loaded, so KVM must carry SSE as in use */
	kvm_image(kvm, 23, 0x24);
	kvm_image(mem, 29, 0x41);
	put32(mem + 24, 0x1F80);
	ck_assert_int_eq(xsave_from_memory(&l, mem, kvm, 0x03, 0xE7), 0);
	ck_assert(all_bytes(kvm + 160, 256, 0));	/* XMM initial */
	ck_assert_uint_eq(get64(kvm + 512), 0x27);
	ck_assert(!memcmp(kvm + 576, orig + 576, 256));	/* AVX kept */
}
END_TEST

START_TEST(test_xrstor_mxcsr_without_sse_bit)
{
	struct xsave_layout l = synthetic_layout();
	static uint8_t kvm[AREA], mem[AREA];

	/* RFBM SSE+AVX, XSTATE_BV 0: MXCSR still comes from memory */
	kvm_image(kvm, 31, 0x04);
	kvm_image(mem, 37, 0);
	put32(mem + 24, 0x1F00);
	ck_assert_int_eq(xsave_from_memory(&l, mem, kvm, 0x06, 0x07), 0);
	ck_assert_uint_eq(get32(kvm + 24), 0x1F00);
	ck_assert(all_bytes(kvm + 160, 256, 0));
	ck_assert(all_bytes(kvm + 576, 256, 0));
	ck_assert_uint_eq(get64(kvm + 512) & 0x06, 0x02);

	/* AVX alone: XMM were initial in KVM, stay zero under the SSE bit */
	kvm_image(kvm, 31, 0x00);
	kvm_image(mem, 37, 0x04);
	put32(mem + 24, 0x1F80);
	ck_assert_int_eq(xsave_from_memory(&l, mem, kvm, 0x04, 0x07), 0);
	ck_assert(all_bytes(kvm + 160, 256, 0));
	ck_assert(!memcmp(kvm + 576, mem + 576, 256));
	ck_assert_uint_eq(get64(kvm + 512), 0x06);
}
END_TEST

/* from_memory must fail with -EINVAL and leave KVM's image alone. */
static void assert_gp(const struct xsave_layout *l, const uint8_t *mem,
		      uint8_t *kvm, uint64_t rfbm, uint64_t xcr0)
{
	static uint8_t orig[AREA];

	memcpy(orig, kvm, AREA);
	ck_assert_int_eq(xsave_from_memory(l, mem, kvm, rfbm, xcr0), -EINVAL);
	ck_assert(!memcmp(orig, kvm, AREA));
}

START_TEST(test_xrstor_gp)
{
	struct xsave_layout l = synthetic_layout();
	static uint8_t kvm[AREA], mem[AREA];

	kvm_image(kvm, 41, 0xE7);
	kvm_image(mem, 43, 0x07);
	ck_assert_int_eq(xsave_check_header(mem, 0x07), 0);

	put64(mem + 520, 1ULL << 63);		/* compacted form */
	assert_gp(&l, mem, kvm, 0x07, 0x07);
	put64(mem + 520, 1);			/* XCOMP_BV must be 0 */
	assert_gp(&l, mem, kvm, 0x07, 0x07);
	put64(mem + 520, 0);
	mem[530] = 1;				/* header bytes 16..23 */
	assert_gp(&l, mem, kvm, 0x07, 0x07);
	mem[530] = 0;
	mem[575] = 0x80;			/* last reserved byte */
	assert_gp(&l, mem, kvm, 0x07, 0x07);
	mem[575] = 0;
	put64(mem + 512, 0x27);			/* opmask not in XCR0 */
	assert_gp(&l, mem, kvm, 0x07, 0x07);
	ck_assert_int_eq(xsave_from_memory(&l, mem, kvm, 0x07, 0x27), 0);
}
END_TEST

START_TEST(test_xrstor_gp_mxcsr)
{
	struct xsave_layout l = synthetic_layout();
	static uint8_t kvm[AREA], mem[AREA];

	kvm_image(kvm, 47, 0x07);
	kvm_image(mem, 53, 0x07);
	put32(mem + 24, 0x11F80);		/* bit 16: reserved */
	assert_gp(&l, mem, kvm, 0x03, 0x07);
	assert_gp(&l, mem, kvm, 0x04, 0x07);	/* AVX alone loads MXCSR too */
	ck_assert_int_eq(xsave_from_memory(&l, mem, kvm, 0x01, 0x07), 0);

	put32(mem + 24, 0x1FC0);		/* DAZ: allowed by mask 0xFFFF */
	put32(kvm + 28, 0xFFBF);
	assert_gp(&l, mem, kvm, 0x03, 0x07);
	put32(kvm + 28, 0xFFFF);
	ck_assert_int_eq(xsave_from_memory(&l, mem, kvm, 0x03, 0x07), 0);
	ck_assert_uint_eq(get32(kvm + 24), 0x1FC0);

	/* no mask in KVM's image: the host's, else the SDM default 0xFFBF */
	put32(kvm + 28, 0);
	ck_assert_int_eq(xsave_from_memory(&l, mem, kvm, 0x03, 0x07), 0);
	put32(kvm + 28, 0);
	l.mxcsr_mask = 0;
	assert_gp(&l, mem, kvm, 0x03, 0x07);
}
END_TEST

/* ---- page walk --------------------------------------------------------------- */

#define PTE_P	0x1ULL
#define PTE_RW	0x2ULL
#define PTE_US	0x4ULL
#define PTE_A	0x20ULL
#define PTE_D	0x40ULL
#define PTE_PS	0x80ULL
#define WALK_RAM (8u << 20)

static uint64_t *pte_at(uint8_t *ram, uint64_t gpa)
{
	return (uint64_t *)(ram + gpa);
}

/*
 * PML4 0x1000 -> PDPT 0x2000 -> PD 0x3000 -> PT 0x4000; PML5 at 0x5000.
 * VA 0x10000 RW user, 0x11000 read-only, 0x12000 absent, 0x13000
 * supervisor; 0x200000 a 2 MiB supervisor page at 0x600000; 0x40000000 a
 * 1 GiB page at 0x80000000; PML4[2] points outside RAM.
 */
static uint8_t *walk_ram(struct guest_mem *gm)
{
	uint8_t *ram = calloc(1, WALK_RAM);

	ck_assert_ptr_nonnull(ram);
	guest_mem_init_from(gm, ram, WALK_RAM);
	*pte_at(ram, 0x5000) = 0x1000 | PTE_P | PTE_RW | PTE_US;
	*pte_at(ram, 0x1000) = 0x2000 | PTE_P | PTE_RW | PTE_US;
	*pte_at(ram, 0x1000 + 2 * 8) = 0x10000000 | PTE_P | PTE_RW | PTE_US;
	*pte_at(ram, 0x2000) = 0x3000 | PTE_P | PTE_RW | PTE_US;
	*pte_at(ram, 0x2000 + 8) = 0x80000000 | PTE_P | PTE_RW | PTE_US | PTE_PS;
	*pte_at(ram, 0x3000) = 0x4000 | PTE_P | PTE_RW | PTE_US;
	*pte_at(ram, 0x3000 + 8) = 0x600000 | PTE_P | PTE_RW | PTE_PS;
	*pte_at(ram, 0x4000 + 0x10 * 8) = 0x50000 | PTE_P | PTE_RW | PTE_US;
	*pte_at(ram, 0x4000 + 0x11 * 8) = 0x51000 | PTE_P | PTE_US;
	*pte_at(ram, 0x4000 + 0x13 * 8) = 0x53000 | PTE_P | PTE_RW;
	return ram;
}

START_TEST(test_walk_translates)
{
	struct guest_mem gm;
	uint8_t *ram = walk_ram(&gm);
	struct xsave_walk w;

	ck_assert_int_eq(xsave_walk(&gm, 0x1000, false, 0x10123, &w), 0);
	ck_assert(w.present && w.writable && w.user);
	ck_assert_uint_eq(w.gpa, 0x50123);
	ck_assert_uint_eq(w.levels, 4);

	ck_assert_int_eq(xsave_walk(&gm, 0x1000, false, 0x11008, &w), 0);
	ck_assert(w.present && !w.writable && w.user);
	ck_assert_uint_eq(w.gpa, 0x51008);

	ck_assert_int_eq(xsave_walk(&gm, 0x1000, false, 0x12000, &w), 0);
	ck_assert(!w.present);

	ck_assert_int_eq(xsave_walk(&gm, 0x1000, false, 0x212345, &w), 0);
	ck_assert(w.present && w.writable && !w.user);
	ck_assert_uint_eq(w.gpa, 0x612345);
	ck_assert_uint_eq(w.levels, 3);

	ck_assert_int_eq(xsave_walk(&gm, 0x1000, false, 0x41234567, &w), 0);
	ck_assert(w.present);
	ck_assert_uint_eq(w.gpa, 0x81234567);
	ck_assert_uint_eq(w.levels, 2);

	/* 5-level: the same tables under one more */
	ck_assert_int_eq(xsave_walk(&gm, 0x5000, true, 0x10123, &w), 0);
	ck_assert(w.present);
	ck_assert_uint_eq(w.gpa, 0x50123);
	ck_assert_uint_eq(w.levels, 5);

	/* a table outside RAM: no host pointer, no crash */
	ck_assert_int_eq(xsave_walk(&gm, 0x1000, false, 2ULL << 39, &w), -EFAULT);
	ck_assert_int_eq(xsave_walk(&gm, 0xfffffff000ULL, false, 0, &w), -EFAULT);
	free(ram);
}
END_TEST

START_TEST(test_walk_set_ad)
{
	struct guest_mem gm;
	uint8_t *ram = walk_ram(&gm);
	struct xsave_walk w;

	ck_assert_int_eq(xsave_walk(&gm, 0x1000, false, 0x10000, &w), 0);
	xsave_walk_set_ad(&gm, &w, true);
	ck_assert_uint_eq(*pte_at(ram, 0x4000 + 0x10 * 8) & (PTE_A | PTE_D),
			  PTE_A | PTE_D);
	ck_assert_uint_eq(*pte_at(ram, 0x3000) & (PTE_A | PTE_D), PTE_A);
	ck_assert_uint_eq(*pte_at(ram, 0x2000) & (PTE_A | PTE_D), PTE_A);
	ck_assert_uint_eq(*pte_at(ram, 0x1000) & (PTE_A | PTE_D), PTE_A);
	ck_assert_uint_eq(*pte_at(ram, 0x4000 + 0x10 * 8) & ~(PTE_A | PTE_D),
			  0x50000 | PTE_P | PTE_RW | PTE_US);

	ck_assert_int_eq(xsave_walk(&gm, 0x1000, false, 0x13000, &w), 0);
	xsave_walk_set_ad(&gm, &w, false);
	ck_assert_uint_eq(*pte_at(ram, 0x4000 + 0x13 * 8) & (PTE_A | PTE_D),
			  PTE_A);

	/* nothing is marked for an absent page */
	*pte_at(ram, 0x1000) &= ~PTE_A;
	ck_assert_int_eq(xsave_walk(&gm, 0x1000, false, 0x12000, &w), 0);
	xsave_walk_set_ad(&gm, &w, true);
	ck_assert_uint_eq(*pte_at(ram, 0x1000) & PTE_A, 0);
	free(ram);
}
END_TEST

static bool faults(struct guest_mem *gm, uint64_t la, struct xsave_access a,
		   uint32_t *ec)
{
	struct xsave_walk w;

	ck_assert_int_eq(xsave_walk(gm, 0x1000, false, la, &w), 0);
	return xsave_access_fault(&w, &a, ec);
}

START_TEST(test_access_faults)
{
	struct guest_mem gm;
	uint8_t *ram = walk_ram(&gm);
	struct xsave_access k_wr = { .write = true, .wp = true };
	struct xsave_access k_rd = { .wp = true };
	struct xsave_access u_wr = { .write = true, .cpl = 3, .wp = true };
	struct xsave_access u_rd = { .cpl = 3, .wp = true };
	uint32_t ec;

	ck_assert(!faults(&gm, 0x10000, k_wr, &ec));
	ck_assert(!faults(&gm, 0x10000, u_wr, &ec));
	/* read-only page: a store faults present|write under CR0.WP */
	ck_assert(faults(&gm, 0x11000, k_wr, &ec));
	ck_assert_uint_eq(ec, 0x3);
	ck_assert(!faults(&gm, 0x11000, k_rd, &ec));
	k_wr.wp = false;
	ck_assert(!faults(&gm, 0x11000, k_wr, &ec));
	k_wr.wp = true;
	u_wr.wp = false;			/* WP does not help user mode */
	ck_assert(faults(&gm, 0x11000, u_wr, &ec));
	ck_assert_uint_eq(ec, 0x7);
	/* supervisor page from user mode */
	ck_assert(faults(&gm, 0x13000, u_rd, &ec));
	ck_assert_uint_eq(ec, 0x5);
	ck_assert(!faults(&gm, 0x13000, k_rd, &ec));
	/* absent page: no present bit */
	ck_assert(faults(&gm, 0x12000, k_wr, &ec));
	ck_assert_uint_eq(ec, 0x2);
	ck_assert(faults(&gm, 0x12000, u_rd, &ec));
	ck_assert_uint_eq(ec, 0x4);
	ck_assert(faults(&gm, 0x12000, k_rd, &ec));
	ck_assert_uint_eq(ec, 0x0);
	/* SMAP: kernel touching a user page without RFLAGS.AC */
	k_rd.smap = true;
	ck_assert(faults(&gm, 0x10000, k_rd, &ec));
	ck_assert_uint_eq(ec, 0x1);
	k_rd.ac = true;
	ck_assert(!faults(&gm, 0x10000, k_rd, &ec));
	free(ram);
}
END_TEST

/* ---- on KVM ---------------------------------------------------------------------- */

/*
 * Guest memory map: GDT 0x500, IDT 0x600, page tables 0x1000-0x4fff
 * (4 KiB pages for the first 2 MiB, one 2 MiB page after), stack below
 * 0x7000, code at 0x8000, XSAVE areas from 0x9000.  0x100000 and
 * 0x103000 start absent and 0x101000 read-only; the #PF handler makes them
 * present and writable and counts in r12.
 */
#define VM_RAM		(4u << 20)
#define GDT		0x500
#define IDT		0x600
#define PML4		0x1000
#define PT		0x4000
#define STACK		0x7000
#define CODE		0x8000
#define AREA_A		0x9000
#define AREA_B		0xB000
#define PAGE_ABSENT	0x100000
#define PAGE_RO		0x101000
#define PAGE_ABSENT2	0x103000
#define STRADDLE	(PAGE_ABSENT2 - 0x40)	/* 64 bytes before, rest after */

/* Assembled with GNU as; see the labels for what each entry runs. */
static const uint8_t guest_code[] = {
	/* 0x00: xrstor64 (%rdi); xsave64 (%rsi); hlt */
	0x48, 0x0f, 0xae, 0x2f, 0x48, 0x0f, 0xae, 0x26, 0xf4, 0, 0, 0, 0, 0, 0, 0,
	/* 0x10: xsave64 (%rsi); hlt */
	0x48, 0x0f, 0xae, 0x26, 0xf4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	/* 0x20: xsave64 %fs:0x40(%rbx,%rcx,2); xsaveopt64 0x400(%rbx); hlt */
	0x64, 0x48, 0x0f, 0xae, 0x64, 0x4b, 0x40, 0x48, 0x0f, 0xae, 0xb3, 0x00,
	0x04, 0x00, 0x00, 0xf4, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	/*
	 * 0x40, #PF: mov %cr2,%r8; pop %r9; mov %r8,%r11; shr $12,%r11;
	 * and $511,%r11; orq $3,PT(,%r11,8); invlpg (%r8); inc %r12; iretq
	 */
	0x41, 0x0f, 0x20, 0xd0, 0x41, 0x59, 0x4d, 0x89, 0xc3, 0x49, 0xc1, 0xeb,
	0x0c, 0x49, 0x81, 0xe3, 0xff, 0x01, 0x00, 0x00, 0x4a, 0x83, 0x0c, 0xdd,
	0x00, 0x40, 0x00, 0x00, 0x03, 0x41, 0x0f, 0x01, 0x38, 0x49, 0xff, 0xc4,
	0x48, 0xcf, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0, 0,
	/* 0x80, #GP: pop %r9; mov $0xdead,%r10; hlt */
	0x41, 0x59, 0x49, 0xc7, 0xc2, 0xad, 0xde, 0x00, 0x00, 0xf4,
};
#define ENTRY_RESTORE_SAVE	0x00
#define ENTRY_SAVE		0x10
#define ENTRY_SEGMENTED		0x20
#define ENTRY_PF		0x40
#define ENTRY_GP		0x80

struct vm {
	int kvm, fd, vcpu;
	struct kvm_run *run;
	size_t run_size;
	struct guest_mem gm;
	struct xsave_layout layout;
	size_t xsave_size;
	uint64_t xcr0;
	unsigned int exits;	/* emulation failures seen (0 on real KVM) */
	unsigned int emulated;	/* instructions xsave_emulate() did */
	unsigned int injected;
};

static int kvm_open(void)
{
	return open("/dev/kvm", O_RDWR | O_CLOEXEC);
}

static void set_cpuid(struct vm *v)
{
	size_t sz = sizeof(struct kvm_cpuid2) + 256 * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *cpuid = calloc(1, sz);

	ck_assert_ptr_nonnull(cpuid);
	cpuid->nent = 256;
	ck_assert_int_eq(ioctl(v->kvm, KVM_GET_SUPPORTED_CPUID, cpuid), 0);
	for (unsigned int i = 0; i < cpuid->nent; i++) {
		struct kvm_cpuid_entry2 *e = &cpuid->entries[i];

		/* PVM may not list XSAVE though the guest has it (§2). */
		if (e->function == 1)
			e->ecx |= 1u << 26;
	}
	ck_assert_int_eq(ioctl(v->vcpu, KVM_SET_CPUID2, cpuid), 0);
	free(cpuid);
}

static void set_xcr0(struct vm *v)
{
	struct kvm_xcrs xcrs;
	uint64_t want = v->layout.supported & 0xE7;	/* x87 SSE AVX AVX-512 */

	if ((want & 0xE0) != 0xE0)
		want &= 0x7;
	memset(&xcrs, 0, sizeof(xcrs));
	xcrs.nr_xcrs = 1;
	xcrs.xcrs[0].xcr = 0;
	xcrs.xcrs[0].value = want;
	if (ioctl(v->vcpu, KVM_SET_XCRS, &xcrs) < 0) {
		xcrs.xcrs[0].value = want = 0x3;
		ck_assert_int_eq(ioctl(v->vcpu, KVM_SET_XCRS, &xcrs), 0);
	}
	v->xcr0 = want;
}

static void put_gate(uint8_t *ram, unsigned int vec, uint64_t handler)
{
	uint8_t *g = ram + IDT + vec * 16;

	memset(g, 0, 16);
	g[0] = handler & 0xff;
	g[1] = (handler >> 8) & 0xff;
	g[2] = 0x08;			/* code selector */
	g[5] = 0x8e;			/* present, DPL 0, 64-bit interrupt gate */
	g[6] = (handler >> 16) & 0xff;
	g[7] = (handler >> 24) & 0xff;
}

static void build_memory(uint8_t *ram)
{
	put64(ram + GDT + 8, 0x00af9a000000ffffULL);	/* 0x08: code64 */
	put64(ram + GDT + 16, 0x00cf92000000ffffULL);	/* 0x10: data */
	put_gate(ram, 13, CODE + ENTRY_GP);
	put_gate(ram, 14, CODE + ENTRY_PF);
	put64(ram + PML4, 0x2000 | PTE_P | PTE_RW);
	put64(ram + 0x2000, 0x3000 | PTE_P | PTE_RW);
	put64(ram + 0x3000, PT | PTE_P | PTE_RW);
	put64(ram + 0x3000 + 8, 0x200000 | PTE_P | PTE_RW | PTE_PS);
	for (uint64_t i = 0; i < 512; i++)
		put64(ram + PT + i * 8, (i << 12) | PTE_P | PTE_RW);
	put64(ram + PT + (PAGE_ABSENT >> 12) * 8, PAGE_ABSENT);
	put64(ram + PT + (PAGE_RO >> 12) * 8, PAGE_RO | PTE_P);
	put64(ram + PT + (PAGE_ABSENT2 >> 12) * 8, PAGE_ABSENT2);
	memcpy(ram + CODE, guest_code, sizeof(guest_code));
}

static void set_long_mode(struct vm *v)
{
	struct kvm_segment code = {
		.base = 0, .limit = 0xffffffff, .selector = 0x08, .type = 11,
		.present = 1, .dpl = 0, .db = 0, .s = 1, .l = 1, .g = 1,
	};
	struct kvm_segment data = code;
	struct kvm_sregs s;

	data.selector = 0x10;
	data.type = 3;
	data.l = 0;
	data.db = 1;
	ck_assert_int_eq(ioctl(v->vcpu, KVM_GET_SREGS, &s), 0);
	s.cs = code;
	s.ds = s.es = s.fs = s.gs = s.ss = data;
	s.gdt.base = GDT;
	s.gdt.limit = 23;
	s.idt.base = IDT;
	s.idt.limit = 32 * 16 - 1;
	s.cr3 = PML4;
	/* PAE, OSFXSR, OSXMMEXCPT, OSXSAVE */
	s.cr4 = (1u << 5) | (1u << 9) | (1u << 10) | (1u << 18);
	/* PE, MP, ET, NE, WP, PG */
	s.cr0 = 0x80050033;
	s.efer = 0x500;				/* LME, LMA */
	ck_assert_int_eq(ioctl(v->vcpu, KVM_SET_SREGS, &s), 0);
}

static void vm_create(struct vm *v)
{
	struct kvm_userspace_memory_region region;
	int mmap_size;

	memset(v, 0, sizeof(*v));
	ck_assert_int_eq(xsave_layout_from_cpuid(&v->layout), 0);
	v->kvm = kvm_open();
	ck_assert_int_ge(v->kvm, 0);
	v->fd = ioctl(v->kvm, KVM_CREATE_VM, 0);
	ck_assert_int_ge(v->fd, 0);
	ck_assert_int_eq(guest_mem_init(&v->gm, VM_RAM), 0);
	region = (struct kvm_userspace_memory_region){
		.slot = 0, .guest_phys_addr = 0, .memory_size = VM_RAM,
		.userspace_addr = (uint64_t)(uintptr_t)v->gm.mapping,
	};
	ck_assert_int_eq(ioctl(v->fd, KVM_SET_USER_MEMORY_REGION, &region), 0);
	v->vcpu = ioctl(v->fd, KVM_CREATE_VCPU, 0);
	ck_assert_int_ge(v->vcpu, 0);
	mmap_size = ioctl(v->kvm, KVM_GET_VCPU_MMAP_SIZE, 0);
	ck_assert_int_gt(mmap_size, 0);
	v->run_size = mmap_size;
	v->run = mmap(NULL, v->run_size, PROT_READ | PROT_WRITE, MAP_SHARED,
		      v->vcpu, 0);
	ck_assert(v->run != MAP_FAILED);
	v->xsave_size = xsave_kvm_size(v->fd);
	set_cpuid(v);
	set_long_mode(v);
	set_xcr0(v);
	build_memory(v->gm.mapping);
}

static void vm_destroy(struct vm *v)
{
	munmap(v->run, v->run_size);
	close(v->vcpu);
	close(v->fd);
	close(v->kvm);
	guest_mem_free(&v->gm);
}

static void set_regs(struct vm *v, uint64_t entry, struct kvm_regs *r)
{
	r->rip = CODE + entry;
	r->rsp = STACK;
	r->rflags = 0x2;
	r->rax = (uint32_t)v->xcr0;
	r->rdx = v->xcr0 >> 32;
	ck_assert_int_eq(ioctl(v->vcpu, KVM_SET_REGS, r), 0);
}

/* Run to HLT, doing what the VMM's vCPU loop does for the XSAVE family. */
static void run_to_hlt(struct vm *v)
{
	for (int i = 0; i < 100; i++) {
		struct xsave_result res;
		int r;

		ck_assert_int_eq(ioctl(v->vcpu, KVM_RUN, 0), 0);
		if (v->run->exit_reason == KVM_EXIT_HLT)
			return;
		ck_assert_msg(v->run->exit_reason == KVM_EXIT_INTERNAL_ERROR &&
			      v->run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION,
			      "unexpected exit %u", v->run->exit_reason);
		v->exits++;
		r = xsave_emulate(v->vcpu, &v->gm, &v->layout, v->xsave_size,
				  v->run->emulation_failure.insn_bytes,
				  v->run->emulation_failure.insn_size, &res);
		ck_assert_msg(r == 0, "xsave_emulate: %d (%s)", r, strerror(-r));
		if (res.inject != XSAVE_INJECT_NONE) {
			ck_assert_int_eq(xsave_inject(v->vcpu, &res), 0);
			v->injected++;
		} else {
			v->emulated++;
		}
	}
	ck_abort_msg("guest did not halt");
}

/* A recognisable state: everything in use, nothing an AMD FXSAVE drops. */
static void fill_area(const struct vm *v, uint8_t *a)
{
	uint32_t len;

	ck_assert_int_eq(xsave_area_len(&v->layout, v->xcr0, &len), 0);
	for (uint32_t i = 0; i < len; i++)
		a[i] = (uint8_t)(i * 13 + 5);
	memset(a, 0, 32);
	a[0] = 0x7f;				/* FCW 0x037F */
	a[1] = 0x03;
	a[4] = 0xff;				/* FTW: all valid */
	put32(a + 24, 0x1FA0);			/* MXCSR, PE flag set */
	put32(a + 28, 0);
	for (int st = 0; st < 8; st++)
		memset(a + 32 + st * 16 + 10, 0, 6);
	memset(a + 512, 0, 64);
	put64(a + 512, v->xcr0);
}

static void assert_same_state(const struct vm *v, const uint8_t *a,
			      const uint8_t *b)
{
	ck_assert(!memcmp(a, b, 24));
	ck_assert_uint_eq(get32(a + 24), get32(b + 24));
	ck_assert(!memcmp(a + 32, b + 32, 416 - 32));
	for (unsigned int i = 2; i < 64; i++) {
		if (v->xcr0 & (1ULL << i))
			assert_component(&v->layout, i, a, b);
	}
}

START_TEST(test_kvm_restore_then_save)
{
	struct vm v;
	struct kvm_regs r;
	uint8_t *ram, *kvm;

	vm_create(&v);
	ram = v.gm.mapping;
	fill_area(&v, ram + AREA_A);
	memset(&r, 0, sizeof(r));
	r.rdi = AREA_A;
	r.rsi = AREA_B;
	set_regs(&v, ENTRY_RESTORE_SAVE, &r);
	run_to_hlt(&v);
	ck_assert_uint_eq(get64(ram + AREA_B + 512), v.xcr0);
	assert_same_state(&v, ram + AREA_A, ram + AREA_B);
	ck_assert_uint_ne(get32(ram + AREA_B + 28), 0);	/* MXCSR_MASK */

	/* what KVM holds now is what was restored */
	kvm = calloc(1, v.xsave_size);
	ck_assert_int_eq(ioctl(v.vcpu, v.xsave_size > XSAVE_KVM_SIZE ?
			       KVM_GET_XSAVE2 : KVM_GET_XSAVE, kvm), 0);
	assert_same_state(&v, ram + AREA_A, kvm);
	ck_assert_int_eq(ioctl(v.vcpu, KVM_GET_REGS, &r), 0);
	ck_assert_uint_eq(r.rip, CODE + ENTRY_RESTORE_SAVE + 9);
	fprintf(stderr, "xsave: xcr0 %#llx, %u emulated, %u injected\n",
		(unsigned long long)v.xcr0, v.emulated, v.injected);
	free(kvm);
	vm_destroy(&v);
}
END_TEST

START_TEST(test_kvm_segment_sib_and_opt)
{
	struct vm v;
	struct kvm_regs r;
	struct kvm_sregs s;
	uint8_t *ram;

	vm_create(&v);
	ram = v.gm.mapping;
	fill_area(&v, ram + AREA_A);
	memset(&r, 0, sizeof(r));
	r.rdi = AREA_A;
	r.rsi = AREA_B;
	set_regs(&v, ENTRY_RESTORE_SAVE, &r);
	run_to_hlt(&v);

	/* %fs:0x40(%rbx,%rcx,2) = 0x2f80 + 0xd000 + 0x40 + 0x40 = 0x10000 */
	ck_assert_int_eq(ioctl(v.vcpu, KVM_GET_SREGS, &s), 0);
	s.fs.base = 0x2f80;
	ck_assert_int_eq(ioctl(v.vcpu, KVM_SET_SREGS, &s), 0);
	memset(&r, 0, sizeof(r));
	r.rbx = 0xd000;
	r.rcx = 0x20;
	set_regs(&v, ENTRY_SEGMENTED, &r);
	run_to_hlt(&v);
	ck_assert_uint_eq(get64(ram + 0x10000 + 512), v.xcr0);
	assert_same_state(&v, ram + AREA_A, ram + 0x10000);
	ck_assert_uint_eq(get64(ram + 0xd400 + 512), v.xcr0);
	assert_same_state(&v, ram + AREA_A, ram + 0xd400);
	vm_destroy(&v);
}
END_TEST

START_TEST(test_kvm_page_faults)
{
	struct vm v;
	struct kvm_regs r;
	uint8_t *ram;

	vm_create(&v);
	ram = v.gm.mapping;
	fill_area(&v, ram + AREA_A);
	memset(&r, 0, sizeof(r));
	r.rdi = AREA_A;
	r.rsi = AREA_B;
	set_regs(&v, ENTRY_RESTORE_SAVE, &r);
	run_to_hlt(&v);

	/* absent page: #PF, error code "write", then the retry succeeds */
	memset(&r, 0, sizeof(r));
	r.rsi = PAGE_ABSENT;
	set_regs(&v, ENTRY_SAVE, &r);
	run_to_hlt(&v);
	ck_assert_int_eq(ioctl(v.vcpu, KVM_GET_REGS, &r), 0);
	ck_assert_uint_eq(r.r12, 1);
	ck_assert_uint_eq(r.r8, PAGE_ABSENT);
	ck_assert_uint_eq(r.r9, 0x2);
	ck_assert_uint_eq(r.rip, CODE + ENTRY_SAVE + 5);
	assert_same_state(&v, ram + AREA_A, ram + PAGE_ABSENT);
	/* on PVM the #PF was ours; on real KVM no exit happens at all */
	ck_assert_uint_eq(v.injected, v.exits ? 1 : 0);

	/* read-only page under CR0.WP: #PF "present, write" */
	memset(&r, 0, sizeof(r));
	r.rsi = PAGE_RO;
	set_regs(&v, ENTRY_SAVE, &r);
	run_to_hlt(&v);
	ck_assert_int_eq(ioctl(v.vcpu, KVM_GET_REGS, &r), 0);
	ck_assert_uint_eq(r.r12, 1);
	ck_assert_uint_eq(r.r8, PAGE_RO);
	ck_assert_uint_eq(r.r9, 0x3);
	assert_same_state(&v, ram + AREA_A, ram + PAGE_RO);
	ck_assert_uint_eq(v.injected, v.exits ? 2 : 0);
	/* the store marked the leaf entry dirty */
	ck_assert_uint_eq(get64(ram + PT + (PAGE_RO >> 12) * 8) & PTE_D, PTE_D);

	/* an area across a page boundary, second page absent */
	memset(&r, 0, sizeof(r));
	r.rsi = STRADDLE;
	set_regs(&v, ENTRY_SAVE, &r);
	run_to_hlt(&v);
	ck_assert_int_eq(ioctl(v.vcpu, KVM_GET_REGS, &r), 0);
	ck_assert_uint_eq(r.r12, 1);
	ck_assert_uint_eq(r.r8 & ~0xfffULL, PAGE_ABSENT2);
	ck_assert_uint_eq(r.r9, 0x2);
	ck_assert_uint_eq(v.injected, v.exits ? 3 : 0);
	assert_same_state(&v, ram + AREA_A, ram + STRADDLE);

	/* and back from it into a fresh area */
	memset(&r, 0, sizeof(r));
	r.rdi = STRADDLE;
	r.rsi = AREA_B;
	memset(ram + AREA_B, 0, 4096);
	set_regs(&v, ENTRY_RESTORE_SAVE, &r);
	run_to_hlt(&v);
	assert_same_state(&v, ram + AREA_A, ram + AREA_B);
	ck_assert_uint_eq(v.injected, v.exits ? 3 : 0);
	vm_destroy(&v);
}
END_TEST

START_TEST(test_kvm_general_protection)
{
	struct vm v;
	struct kvm_regs r;
	uint8_t *ram;

	vm_create(&v);
	ram = v.gm.mapping;

	/* misaligned area */
	fill_area(&v, ram + AREA_A);
	memset(&r, 0, sizeof(r));
	r.rdi = AREA_A + 0x10;
	set_regs(&v, ENTRY_RESTORE_SAVE, &r);
	run_to_hlt(&v);
	ck_assert_int_eq(ioctl(v.vcpu, KVM_GET_REGS, &r), 0);
	ck_assert_uint_eq(r.r10, 0xdead);
	ck_assert_uint_eq(r.r9, 0);

	/* XCOMP_BV nonzero in a standard-form restore */
	put64(ram + AREA_A + 520, 1);
	memset(&r, 0, sizeof(r));
	r.rdi = AREA_A;
	r.rsi = AREA_B;
	set_regs(&v, ENTRY_RESTORE_SAVE, &r);
	run_to_hlt(&v);
	ck_assert_int_eq(ioctl(v.vcpu, KVM_GET_REGS, &r), 0);
	ck_assert_uint_eq(r.r10, 0xdead);
	ck_assert(all_bytes(ram + AREA_B, 576, 0));	/* XSAVE never ran */
	ck_assert_uint_eq(v.injected, v.exits ? 2 : 0);

	/* a non-canonical address */
	memset(&r, 0, sizeof(r));
	r.rsi = 0x0000800000000000ULL;
	set_regs(&v, ENTRY_SAVE, &r);
	run_to_hlt(&v);
	ck_assert_int_eq(ioctl(v.vcpu, KVM_GET_REGS, &r), 0);
	ck_assert_uint_eq(r.r10, 0xdead);
	ck_assert_uint_eq(v.injected, v.exits ? 3 : 0);
	vm_destroy(&v);
}
END_TEST

/* ---- suite --------------------------------------------------------------------- */

static Suite *xsave_suite(void)
{
	Suite *s = suite_create("xsave");
	TCase *dec = tcase_create("decode");
	TCase *state = tcase_create("state");
	TCase *walk = tcase_create("walk");
	int fd;

	tcase_add_test(dec, test_decode_kernel_forms);
	tcase_add_test(dec, test_decode_displacements);
	tcase_add_test(dec, test_decode_sib);
	tcase_add_test(dec, test_decode_rip_and_rex_b);
	tcase_add_test(dec, test_decode_segments);
	tcase_add_test(dec, test_decode_truncated);
	tcase_add_test(dec, test_decode_not_ours);
	tcase_add_test(dec, test_ea_register_numbers);
	tcase_add_test(dec, test_ea_forms);
	tcase_add_test(dec, test_ea_wraps);
	tcase_add_test(dec, test_emulate_rejects_before_any_ioctl);
	suite_add_tcase(s, dec);

	tcase_add_test(state, test_area_len);
	tcase_add_test(state, test_layout_from_cpuid);
	tcase_add_test(state, test_xsave_full);
	tcase_add_test(state, test_xsave_partial_rfbm_merges_bv);
	tcase_add_test(state, test_xsaveopt_skips_initial);
	tcase_add_test(state, test_xsave_mxcsr_rules);
	tcase_add_test(state, test_round_trip);
	tcase_add_test(state, test_xrstor_init_state);
	tcase_add_test(state, test_xrstor_partial_rfbm);
	tcase_add_test(state, test_xrstor_mxcsr_without_sse_bit);
	tcase_add_test(state, test_xrstor_gp);
	tcase_add_test(state, test_xrstor_gp_mxcsr);
	suite_add_tcase(s, state);

	tcase_add_test(walk, test_walk_translates);
	tcase_add_test(walk, test_walk_set_ad);
	tcase_add_test(walk, test_access_faults);
	suite_add_tcase(s, walk);

	/* The guest tests need /dev/kvm; without it they are left out, loudly. */
	fd = kvm_open();
	if (fd >= 0) {
		TCase *kvm = tcase_create("kvm");

		close(fd);
		tcase_set_timeout(kvm, 30);
		tcase_add_test(kvm, test_kvm_restore_then_save);
		tcase_add_test(kvm, test_kvm_segment_sib_and_opt);
		tcase_add_test(kvm, test_kvm_page_faults);
		tcase_add_test(kvm, test_kvm_general_protection);
		suite_add_tcase(s, kvm);
	} else {
		fprintf(stderr, "test_xsave: /dev/kvm unavailable (%s): guest tests skipped\n",
			strerror(errno));
	}
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(xsave_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
