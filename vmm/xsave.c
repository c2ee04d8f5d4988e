// SPDX-License-Identifier: Apache-2.0
/*
 * XSAVE-family emulation for hosts whose KVM cannot emulate it (PVM).
 * See xsave.h for the contract and SDM Vol. 1 ch. 13 for the semantics.
 */
#include "xsave.h"

#include <cpuid.h>
#include <errno.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>

#define BIT(n)			(1ULL << (n))
#define XFEATURE_X87		BIT(0)
#define XFEATURE_SSE		BIT(1)
#define XFEATURE_AVX		BIT(2)
/* Components whose instructions save and load MXCSR (standard form). */
#define XFEATURE_MXCSR_USERS	(XFEATURE_SSE | XFEATURE_AVX)

#define XSAVE_X87_HEAD		24	/* FCW..FDP: bytes 0..23 */
#define XSAVE_ST_OFFSET		32	/* ST0..ST7, 16 bytes each */
#define XSAVE_ST_SIZE		128
#define X87_FCW_INIT		0x037F

#define PAGE_SIZE		4096ULL
#define PTE_P			BIT(0)
#define PTE_RW			BIT(1)
#define PTE_US			BIT(2)
#define PTE_A			BIT(5)
#define PTE_D			BIT(6)
#define PTE_PS			BIT(7)
#define PTE_ADDR		0x000FFFFFFFFFF000ULL

#define PFERR_PRESENT		BIT(0)
#define PFERR_WRITE		BIT(1)
#define PFERR_USER		BIT(2)

#define X86_CR0_TS		BIT(3)
#define X86_CR0_WP		BIT(16)
#define X86_CR0_PG		BIT(31)
#define X86_CR4_LA57		BIT(12)
#define X86_CR4_OSXSAVE		BIT(18)
#define X86_CR4_SMAP		BIT(21)
#define X86_EFER_LMA		BIT(10)
#define X86_RFLAGS_AC		BIT(18)

#define PF_VECTOR		14
#define GP_VECTOR		13
#define UD_VECTOR		6
#define NM_VECTOR		7

static uint64_t load64(const uint8_t *p)
{
	uint64_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

static void store64(uint8_t *p, uint64_t v)
{
	memcpy(p, &v, sizeof(v));
}

static uint32_t load32(const uint8_t *p)
{
	uint32_t v;

	memcpy(&v, p, sizeof(v));
	return v;
}

/* ---- decoding ---------------------------------------------------------- */

/* Prefixes before the opcode; REX counts only if it comes last. */
static int decode_prefixes(const uint8_t *b, size_t len, size_t *pos,
			   uint8_t *rex, enum xsave_seg *seg)
{
	size_t i;

	*rex = 0;
	*seg = XSAVE_SEG_NONE;
	for (i = 0; i < XSAVE_INSN_MAX; i++) {
		if (i >= len)
			return -ENODATA;
		switch (b[i]) {
		case 0x64:
			*seg = XSAVE_SEG_FS;
			*rex = 0;
			continue;
		case 0x65:
			*seg = XSAVE_SEG_GS;
			*rex = 0;
			continue;
		case 0x26: case 0x2E: case 0x36: case 0x3E:
			/* ES/CS/SS/DS overrides are null in 64-bit mode. */
			*seg = XSAVE_SEG_NONE;
			*rex = 0;
			continue;
		}
		if ((b[i] & 0xF0) == 0x40) {
			*rex = b[i];
			continue;
		}
		/*
		 * Anything else ends the prefixes.  66/F2/F3 turn 0F AE into
		 * other instructions (CLWB, PTWRITE, ...), F0 is #UD and 67
		 * would need 32-bit addressing: all fail the opcode check.
		 */
		*pos = i;
		return 0;
	}
	return -EINVAL;
}

static int decode_opcode(const uint8_t *b, size_t len, size_t *pos)
{
	static const uint8_t opcode[2] = { 0x0F, 0xAE };

	for (size_t k = 0; k < sizeof(opcode); k++, (*pos)++) {
		if (*pos >= len)
			return -ENODATA;
		if (b[*pos] != opcode[k])
			return -EINVAL;
	}
	return 0;
}

static int decode_op(uint8_t reg, enum xsave_op *op)
{
	switch (reg) {
	case 4: *op = XSAVE_OP_XSAVE; return 0;
	case 5: *op = XSAVE_OP_XRSTOR; return 0;
	case 6: *op = XSAVE_OP_XSAVEOPT; return 0;
	}
	return -EINVAL;	/* FXSAVE, LDMXCSR, CLFLUSH, ... */
}

static int decode_sib(const uint8_t *b, size_t len, size_t *pos, uint8_t rex,
		      uint8_t mod, struct xsave_insn *out, unsigned int *disp_size)
{
	uint8_t sib, index, base;

	if (*pos >= len)
		return -ENODATA;
	sib = b[(*pos)++];
	index = ((sib >> 3) & 7) | ((rex & 0x2) << 2);
	base = (sib & 7) | ((rex & 0x1) << 3);
	out->scale = 1 << (sib >> 6);
	out->index = index == 4 ? XSAVE_REG_NONE : index; /* r12 is fine */
	/* Base 101 with mod 00 means disp32 and no base, REX.B or not. */
	if ((sib & 7) == 5 && mod == 0) {
		out->base = XSAVE_REG_NONE;
		*disp_size = 4;
	} else {
		out->base = base;
	}
	return 0;
}

static int decode_disp(const uint8_t *b, size_t len, size_t *pos,
		       unsigned int size, int64_t *disp)
{
	if (size > len || *pos > len - size)
		return -ENODATA;
	if (size == 1) {
		*disp = (int8_t)b[*pos];
	} else if (size == 4) {
		int32_t d;

		memcpy(&d, b + *pos, sizeof(d));
		*disp = d;
	}
	*pos += size;
	return 0;
}

static int decode_modrm(const uint8_t *b, size_t len, size_t *pos, uint8_t rex,
			struct xsave_insn *out)
{
	uint8_t modrm, mod, rm;
	unsigned int disp_size;
	int r;

	if (*pos >= len)
		return -ENODATA;
	modrm = b[(*pos)++];
	mod = modrm >> 6;
	rm = modrm & 7;
	/* The reg field is an opcode extension here: REX.R does not apply. */
	r = decode_op((modrm >> 3) & 7, &out->op);
	if (r)
		return r;
	if (mod == 3)
		return -EINVAL;	/* register forms: LFENCE, MFENCE, ... */
	disp_size = mod == 1 ? 1 : mod == 2 ? 4 : 0;
	out->index = XSAVE_REG_NONE;
	out->scale = 1;
	if (rm == 4) {
		r = decode_sib(b, len, pos, rex, mod, out, &disp_size);
		if (r)
			return r;
	} else if (rm == 5 && mod == 0) {
		out->base = XSAVE_REG_RIP;
		disp_size = 4;
	} else {
		out->base = rm | ((rex & 0x1) << 3);
	}
	return decode_disp(b, len, pos, disp_size, &out->disp);
}

int xsave_decode(const uint8_t *bytes, size_t len, struct xsave_insn *out)
{
	size_t pos = 0;
	uint8_t rex;
	int r;

	memset(out, 0, sizeof(*out));
	r = decode_prefixes(bytes, len, &pos, &rex, &out->seg);
	if (r)
		return r;
	r = decode_opcode(bytes, len, &pos);
	if (r)
		return r;
	r = decode_modrm(bytes, len, &pos, rex, out);
	if (r)
		return r;
	if (pos > XSAVE_INSN_MAX)
		return -EINVAL;
	out->rex_w = rex & 0x8;
	out->len = pos;
	return 0;
}

/* ---- addressing -------------------------------------------------------- */

/* kvm_regs is not in encoding order (rbx comes second): map by name. */
static uint64_t gpr(const struct kvm_regs *r, int n)
{
	switch (n) {
	case 0: return r->rax;
	case 1: return r->rcx;
	case 2: return r->rdx;
	case 3: return r->rbx;
	case 4: return r->rsp;
	case 5: return r->rbp;
	case 6: return r->rsi;
	case 7: return r->rdi;
	case 8: return r->r8;
	case 9: return r->r9;
	case 10: return r->r10;
	case 11: return r->r11;
	case 12: return r->r12;
	case 13: return r->r13;
	case 14: return r->r14;
	case 15: return r->r15;
	}
	return 0;
}

uint64_t xsave_effective_address(const struct xsave_insn *in,
				 const struct kvm_regs *regs,
				 uint64_t rip, uint64_t seg_base)
{
	/* Unsigned arithmetic: 64-bit addresses wrap, as on hardware. */
	uint64_t ea = (uint64_t)in->disp;

	if (in->base == XSAVE_REG_RIP)
		ea += rip + in->len;
	else if (in->base >= 0)
		ea += gpr(regs, in->base);
	if (in->index >= 0)
		ea += gpr(regs, in->index) * in->scale;
	if (in->seg != XSAVE_SEG_NONE)
		ea += seg_base;
	return ea;
}

/* ---- layout -------------------------------------------------------------- */

void xsave_layout_init(struct xsave_layout *l)
{
	memset(l, 0, sizeof(*l));
	l->offset[0] = 0;
	l->size[0] = XSAVE_XMM_OFFSET;
	l->offset[1] = XSAVE_XMM_OFFSET;
	l->size[1] = XSAVE_XMM_SIZE;
	l->supported = XFEATURE_X87 | XFEATURE_SSE;
	l->total = XSAVE_EXT_OFFSET;
}

int xsave_layout_add(struct xsave_layout *l, unsigned int i,
		     uint32_t offset, uint32_t size)
{
	if (i < 2 || i > 62 || size == 0 || offset < XSAVE_EXT_OFFSET ||
	    offset > XSAVE_AREA_MAX || size > XSAVE_AREA_MAX - offset)
		return -EINVAL;
	l->offset[i] = offset;
	l->size[i] = size;
	l->supported |= BIT(i);
	if (offset + size > l->total)
		l->total = offset + size;
	return 0;
}

/* The host's MXCSR_MASK: on PVM the guest runs on the same CPU. */
static uint32_t host_mxcsr_mask(void)
{
	uint8_t area[512] __attribute__((aligned(16)));

	memset(area, 0, sizeof(area));
	__asm__ volatile("fxsave64 %0" : "=m"(area));
	return load32(area + XSAVE_MXCSR_OFFSET + 4);
}

int xsave_layout_from_cpuid(struct xsave_layout *l)
{
	unsigned int a, b, c, d, max_size;
	uint64_t features;

	xsave_layout_init(l);
	if (__get_cpuid_max(0, NULL) < 0xD)
		return -EOPNOTSUPP;
	__cpuid(1, a, b, c, d);
	if (!(c & bit_XSAVE))
		return -EOPNOTSUPP;
	__cpuid_count(0xD, 0, a, b, c, d);
	features = ((uint64_t)d << 32) | a;
	max_size = c;
	for (unsigned int i = 2; i < 63; i++) {
		if (!(features & BIT(i)))
			continue;
		__cpuid_count(0xD, i, a, b, c, d);
		if (c & 1)
			continue;	/* supervisor state: never in XCR0 */
		if (xsave_layout_add(l, i, b, a))
			return -EOPNOTSUPP;
	}
	if (max_size > l->total && max_size <= XSAVE_AREA_MAX)
		l->total = max_size;
	l->mxcsr_mask = host_mxcsr_mask();
	return 0;
}

int xsave_area_len(const struct xsave_layout *l, uint64_t rfbm, uint32_t *len)
{
	uint32_t end = XSAVE_EXT_OFFSET;

	if (rfbm & ~l->supported)
		return -EOPNOTSUPP;
	for (unsigned int i = 2; i < 64; i++) {
		if ((rfbm & BIT(i)) && l->offset[i] + l->size[i] > end)
			end = l->offset[i] + l->size[i];
	}
	*len = end;
	return 0;
}

/* ---- state transfer ---------------------------------------------------- */

/* x87 state is bytes 0..23 and 32..159: 24..31 are MXCSR, which is SSE's. */
static void x87_copy(uint8_t *dst, const uint8_t *src)
{
	memcpy(dst, src, XSAVE_X87_HEAD);
	memcpy(dst + XSAVE_ST_OFFSET, src + XSAVE_ST_OFFSET, XSAVE_ST_SIZE);
}

/* FNINIT state; FTW 0 is "all empty" in the abridged tag byte. */
static void x87_init(uint8_t *dst)
{
	memset(dst, 0, XSAVE_X87_HEAD);
	dst[0] = X87_FCW_INIT & 0xFF;
	dst[1] = X87_FCW_INIT >> 8;
	memset(dst + XSAVE_ST_OFFSET, 0, XSAVE_ST_SIZE);
}

/*
 * Move component i (x87 aside) from src to dst, or put it in its initial
 * state when the source says it is initial.  Every initial value beyond
 * x87 and MXCSR is all zeroes (SDM Vol. 1, 13.6).
 */
static void component_move(const struct xsave_layout *l, unsigned int i,
			   uint8_t *dst, const uint8_t *src, bool in_use)
{
	uint32_t off = l->offset[i], size = l->size[i];

	if (i == 0) {
		if (in_use)
			x87_copy(dst, src);
		else
			x87_init(dst);
	} else if (in_use) {
		memcpy(dst + off, src + off, size);
	} else {
		memset(dst + off, 0, size);
	}
}

int xsave_to_memory(const struct xsave_layout *l, const uint8_t *kvm_area,
		    uint8_t *dst, uint64_t rfbm, bool opt)
{
	uint64_t kvm_bv = load64(kvm_area + XSAVE_HDR_OFFSET);
	uint64_t old_bv = load64(dst + XSAVE_HDR_OFFSET);
	uint32_t len;
	int r;

	r = xsave_area_len(l, rfbm, &len);
	if (r)
		return r;
	for (unsigned int i = 0; i < 64; i++) {
		bool in_use = kvm_bv & BIT(i);

		if (!(rfbm & BIT(i)))
			continue;
		/* XSAVEOPT may leave initial components unwritten. */
		if (opt && !in_use)
			continue;
		component_move(l, i, dst, kvm_area, in_use);
	}
	if (rfbm & XFEATURE_MXCSR_USERS) {
		uint32_t mask = load32(kvm_area + XSAVE_MXCSR_OFFSET + 4);

		/* KVM reports MXCSR_MASK 0 when SSE/AVX are initial. */
		memcpy(dst + XSAVE_MXCSR_OFFSET, kvm_area + XSAVE_MXCSR_OFFSET, 4);
		if (!mask)
			mask = l->mxcsr_mask;
		memcpy(dst + XSAVE_MXCSR_OFFSET + 4, &mask, 4);
	}
	store64(dst + XSAVE_HDR_OFFSET, (old_bv & ~rfbm) | (kvm_bv & rfbm));
	return 0;
}

int xsave_check_header(const uint8_t *area, uint64_t xcr0)
{
	const uint8_t *hdr = area + XSAVE_HDR_OFFSET;

	/*
	 * Bit 63 of XCOMP_BV selects the compacted form, which needs XSAVEC;
	 * it lies in bytes 8..15, so the loop below rejects it too.  The SDM
	 * (13.8.1) only requires bytes 8..23 to be zero for the standard form
	 * and calls 24..63 reserved; we reject those as well, as Linux does for
	 * the user frames it restores.
	 */
	for (unsigned int i = 8; i < XSAVE_HDR_SIZE; i++) {
		if (hdr[i])
			return -EINVAL;
	}
	if (load64(hdr) & ~xcr0)
		return -EINVAL;
	return 0;
}

static uint32_t mxcsr_mask_of(const struct xsave_layout *l,
			      const uint8_t *kvm_area)
{
	uint32_t mask = load32(kvm_area + XSAVE_MXCSR_OFFSET + 4);

	if (!mask)
		mask = l->mxcsr_mask;
	return mask ? mask : XSAVE_MXCSR_MASK_DEFAULT;
}

/*
 * Once MXCSR is loaded, mark SSE in use in KVM's image so that MXCSR reaches
 * the vCPU: Linux takes MXCSR from the image only with x87, SSE or AVX
 * marked in use, and the compacted XRSTORS a host may restore with resets
 * MXCSR to 1F80 whenever SSE is marked initial.  SSE "in use" with zero XMM
 * registers is the same state.
 */
static void mxcsr_keep(uint8_t *kvm_area, uint64_t old_kvm_bv, uint64_t rfbm)
{
	uint64_t bv = load64(kvm_area + XSAVE_HDR_OFFSET);

	if (bv & XFEATURE_SSE)
		return;
	/* XMM were initial (zero) and not loaded: the image may hold junk. */
	if (!(rfbm & XFEATURE_SSE) && !(old_kvm_bv & XFEATURE_SSE))
		memset(kvm_area + XSAVE_XMM_OFFSET, 0, XSAVE_XMM_SIZE);
	store64(kvm_area + XSAVE_HDR_OFFSET, bv | XFEATURE_SSE);
}

int xsave_from_memory(const struct xsave_layout *l, const uint8_t *src,
		      uint8_t *kvm_area, uint64_t rfbm, uint64_t xcr0)
{
	uint64_t kvm_bv = load64(kvm_area + XSAVE_HDR_OFFSET);
	uint64_t mem_bv = load64(src + XSAVE_HDR_OFFSET);
	uint32_t len, mxcsr = load32(src + XSAVE_MXCSR_OFFSET);
	int r;

	r = xsave_area_len(l, rfbm, &len);
	if (r)
		return r;
	r = xsave_check_header(src, xcr0);
	if (r)
		return r;
	/* All checks before any change: a #GP leaves the state as it was. */
	if ((rfbm & XFEATURE_MXCSR_USERS) && (mxcsr & ~mxcsr_mask_of(l, kvm_area)))
		return -EINVAL;
	for (unsigned int i = 0; i < 64; i++) {
		if (rfbm & BIT(i))
			component_move(l, i, kvm_area, src, mem_bv & BIT(i));
	}
	/* The standard form loads MXCSR even when XSTATE_BV[1] is clear. */
	if (rfbm & XFEATURE_MXCSR_USERS)
		memcpy(kvm_area + XSAVE_MXCSR_OFFSET, &mxcsr, 4);
	store64(kvm_area + XSAVE_HDR_OFFSET, (kvm_bv & ~rfbm) | (mem_bv & rfbm));
	if (rfbm & XFEATURE_MXCSR_USERS)
		mxcsr_keep(kvm_area, kvm_bv, rfbm);
	return 0;
}

/* ---- page walk ----------------------------------------------------------- */

static int walk_entry(const struct guest_mem *gm, uint64_t table, uint64_t la,
		      unsigned int level, struct xsave_walk *w, uint64_t *pte)
{
	unsigned int shift = 12 + 9 * (level - 1);
	uint64_t gpa = (table & PTE_ADDR) + ((la >> shift) & 511) * 8;
	const void *p = guest_mem_ptr(gm, gpa, 8);

	if (!p)
		return -EFAULT;
	*pte = __atomic_load_n((const uint64_t *)p, __ATOMIC_RELAXED);
	w->entry_gpa[w->levels++] = gpa;
	return 0;
}

int xsave_walk(const struct guest_mem *gm, uint64_t cr3, bool la57,
	       uint64_t la, struct xsave_walk *w)
{
	uint64_t table = cr3, pte = 0;

	memset(w, 0, sizeof(*w));
	w->writable = true;
	w->user = true;
	for (unsigned int level = la57 ? 5 : 4; level >= 1; level--) {
		uint64_t page_mask = (1ULL << (12 + 9 * (level - 1))) - 1;
		int r = walk_entry(gm, table, la, level, w, &pte);

		if (r)
			return r;
		if (!(pte & PTE_P))
			return 0;
		w->writable &= !!(pte & PTE_RW);
		w->user &= !!(pte & PTE_US);
		/* PS maps a 1 GiB (level 3) or 2 MiB (level 2) page. */
		if (level == 1 || ((level == 2 || level == 3) && (pte & PTE_PS))) {
			w->gpa = (pte & PTE_ADDR & ~page_mask) | (la & page_mask);
			w->present = true;
			return 0;
		}
		table = pte;
	}
	return 0;
}

static void entry_set(const struct guest_mem *gm, uint64_t gpa, uint64_t bits)
{
	uint64_t *p = guest_mem_ptr(gm, gpa, 8);

	/* Atomic: another vCPU may be updating the same entry. */
	if (p && (__atomic_load_n(p, __ATOMIC_RELAXED) & bits) != bits)
		__atomic_fetch_or(p, bits, __ATOMIC_RELAXED);
}

void xsave_walk_set_ad(const struct guest_mem *gm, const struct xsave_walk *w,
		       bool write)
{
	if (!w->present)
		return;
	for (unsigned int i = 0; i < w->levels; i++) {
		bool leaf = i + 1 == w->levels;

		entry_set(gm, w->entry_gpa[i], PTE_A | (leaf && write ? PTE_D : 0));
	}
}

bool xsave_access_fault(const struct xsave_walk *w, const struct xsave_access *a,
			uint32_t *error_code)
{
	bool user_mode = a->cpl == 3;
	bool fault;

	*error_code = (a->write ? PFERR_WRITE : 0) | (user_mode ? PFERR_USER : 0);
	if (!w->present)
		return true;
	if (user_mode)
		fault = !w->user || (a->write && !w->writable);
	else
		fault = (a->write && !w->writable && a->wp) ||
			(w->user && a->smap && !a->ac);
	if (fault)
		*error_code |= PFERR_PRESENT;
	return fault;
}

/* ---- ioctl glue ---------------------------------------------------------- */

/* One piece of the guest area, within one page. */
struct xsave_chunk {
	uint8_t *host;
	uint32_t len;
	bool walked;		/* walk holds our own walk of the page */
	struct xsave_walk walk;
};

#define XSAVE_MAX_CHUNKS	(XSAVE_AREA_MAX / PAGE_SIZE + 2)

struct xsave_ctx {
	int vcpu_fd;
	const struct guest_mem *gm;
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct xsave_access acc;
	bool long_paging;	/* our own walk can check permissions */
	bool la57;
	struct xsave_result *res;
};

static void set_fault(struct xsave_result *res, enum xsave_inject what,
		      uint64_t cr2, uint32_t error_code)
{
	res->inject = what;
	res->cr2 = cr2;
	res->error_code = error_code;
}

static bool canonical(uint64_t la, bool la57)
{
	unsigned int bits = la57 ? 57 : 48;

	return (uint64_t)((int64_t)(la << (64 - bits)) >> (64 - bits)) == la;
}

/*
 * KVM_TRANSLATE does the walk that matters (it is what the guest's TLB
 * would use) but reports every page writable and ignores U/S.  A store must
 * still fault on a read-only page (copy-on-write user stacks are the common
 * case), so when the guest uses long-mode paging, walk its tables too and
 * apply the permissions if both walks agree.  Returns 0 with ch->host,
 * 0 with a #PF recorded in ctx->res, or -errno.
 */
static int translate(struct xsave_ctx *c, uint64_t la, struct xsave_chunk *ch)
{
	struct kvm_translation tr = { .linear_address = la };
	struct xsave_walk *w = &ch->walk;
	uint32_t ec;

	if (ioctl(c->vcpu_fd, KVM_TRANSLATE, &tr) < 0)
		return -errno;
	if (!tr.valid) {
		static const struct xsave_walk absent;

		xsave_access_fault(&absent, &c->acc, &ec);
		set_fault(c->res, XSAVE_INJECT_PF, la, ec);
		return 0;
	}
	ch->host = guest_mem_ptr(c->gm, tr.physical_address, ch->len);
	if (!ch->host)
		return -EFAULT;	/* MMIO or beyond RAM */
	ch->walked = c->long_paging &&
		     !xsave_walk(c->gm, c->sregs.cr3, c->la57, la, w) &&
		     w->present && w->gpa == tr.physical_address;
	if (ch->walked && xsave_access_fault(w, &c->acc, &ec))
		set_fault(c->res, XSAVE_INJECT_PF, la, ec);
	return 0;
}

/*
 * Resolve [la, la + len) page by page into host pointers.  On a fault,
 * ctx->res says which and *nr is meaningless.  Accessed/Dirty bits are set
 * only once every page is known to be usable, as the access then happens.
 */
static int map_range(struct xsave_ctx *c, uint64_t la, uint32_t len,
		     struct xsave_chunk *ch, unsigned int *nr)
{
	*nr = 0;
	while (len) {
		uint32_t n = PAGE_SIZE - (la & (PAGE_SIZE - 1));
		int r;

		if (n > len)
			n = len;
		if (*nr >= XSAVE_MAX_CHUNKS)
			return -E2BIG;
		ch[*nr].len = n;
		r = translate(c, la, &ch[*nr]);
		if (r || c->res->inject != XSAVE_INJECT_NONE)
			return r;
		(*nr)++;
		la += n;
		len -= n;
	}
	for (unsigned int i = 0; i < *nr; i++) {
		if (ch[i].walked)
			xsave_walk_set_ad(c->gm, &ch[i].walk, c->acc.write);
	}
	return 0;
}

static void gather(uint8_t *buf, const struct xsave_chunk *ch, unsigned int nr)
{
	for (unsigned int i = 0; i < nr; buf += ch[i].len, i++)
		memcpy(buf, ch[i].host, ch[i].len);
}

static void scatter(const uint8_t *buf, const struct xsave_chunk *ch,
		    unsigned int nr)
{
	for (unsigned int i = 0; i < nr; buf += ch[i].len, i++)
		memcpy(ch[i].host, buf, ch[i].len);
}

/* Copy guest bytes [la + off, la + off + len) into buf + off. */
static int read_guest(struct xsave_ctx *c, uint64_t la, uint32_t off,
		      uint32_t len, uint8_t *buf)
{
	struct xsave_chunk ch[XSAVE_MAX_CHUNKS];
	unsigned int nr;
	int r;

	c->acc.write = false;
	r = map_range(c, la + off, len, ch, &nr);
	if (r || c->res->inject != XSAVE_INJECT_NONE)
		return r;
	gather(buf + off, ch, nr);
	return 0;
}

size_t xsave_kvm_size(int vm_fd)
{
	int r = ioctl(vm_fd, KVM_CHECK_EXTENSION, KVM_CAP_XSAVE2);

	return r > XSAVE_KVM_SIZE ? (size_t)r : XSAVE_KVM_SIZE;
}

static int get_xsave(int vcpu_fd, uint8_t *kvm_area, size_t size)
{
	unsigned long req = size > XSAVE_KVM_SIZE ? KVM_GET_XSAVE2 : KVM_GET_XSAVE;

	return ioctl(vcpu_fd, req, kvm_area) < 0 ? -errno : 0;
}

static int get_xcr0(int vcpu_fd, uint64_t *xcr0)
{
	struct kvm_xcrs xcrs;

	memset(&xcrs, 0, sizeof(xcrs));
	if (ioctl(vcpu_fd, KVM_GET_XCRS, &xcrs) < 0)
		return -errno;
	for (unsigned int i = 0; i < xcrs.nr_xcrs && i < KVM_MAX_XCRS; i++) {
		if (xcrs.xcrs[i].xcr == 0) {
			*xcr0 = xcrs.xcrs[i].value;
			return 0;
		}
	}
	return -EOPNOTSUPP;
}

static int advance_rip(struct xsave_ctx *c)
{
	c->regs.rip += c->res->len;
	return ioctl(c->vcpu_fd, KVM_SET_REGS, &c->regs) < 0 ? -errno : 0;
}

static int do_xsave(struct xsave_ctx *c, const struct xsave_layout *l,
		    uint8_t *kvm_area, size_t kvm_size, uint8_t *buf, uint32_t len)
{
	struct xsave_chunk ch[XSAVE_MAX_CHUNKS];
	unsigned int nr;
	int r;

	/* Check every page for the store before writing any. */
	c->acc.write = true;
	r = map_range(c, c->res->la, len, ch, &nr);
	if (r || c->res->inject != XSAVE_INJECT_NONE)
		return r;
	r = get_xsave(c->vcpu_fd, kvm_area, kvm_size);
	if (r)
		return r;
	gather(buf, ch, nr);	/* XSAVE merges into the old XSTATE_BV */
	r = xsave_to_memory(l, kvm_area, buf, c->res->rfbm,
			    c->res->op == XSAVE_OP_XSAVEOPT);
	if (r)
		return r;
	scatter(buf, ch, nr);
	return advance_rip(c);
}

static int do_xrstor(struct xsave_ctx *c, const struct xsave_layout *l,
		     uint8_t *kvm_area, size_t kvm_size, uint8_t *buf, uint64_t xcr0)
{
	uint32_t len;
	int r;

	/* Legacy region and header first: they say what else is read. */
	r = read_guest(c, c->res->la, 0, XSAVE_EXT_OFFSET, buf);
	if (r || c->res->inject != XSAVE_INJECT_NONE)
		return r;
	if (xsave_check_header(buf, xcr0)) {
		set_fault(c->res, XSAVE_INJECT_GP, 0, 0);
		return 0;
	}
	r = xsave_area_len(l, c->res->rfbm & load64(buf + XSAVE_HDR_OFFSET), &len);
	if (r)
		return r;
	r = read_guest(c, c->res->la, XSAVE_EXT_OFFSET, len - XSAVE_EXT_OFFSET, buf);
	if (r || c->res->inject != XSAVE_INJECT_NONE)
		return r;
	r = get_xsave(c->vcpu_fd, kvm_area, kvm_size);
	if (r)
		return r;
	r = xsave_from_memory(l, buf, kvm_area, c->res->rfbm, xcr0);
	if (r == -EINVAL) {
		set_fault(c->res, XSAVE_INJECT_GP, 0, 0);	/* bad MXCSR */
		return 0;
	}
	if (r)
		return r;
	if (ioctl(c->vcpu_fd, KVM_SET_XSAVE, kvm_area) < 0)
		return -errno;
	return advance_rip(c);
}

/* Faults decided before any memory is touched: #UD, #NM, #GP. */
static bool early_fault(struct xsave_ctx *c, uint32_t len)
{
	uint64_t la = c->res->la;

	if (!(c->sregs.cr4 & X86_CR4_OSXSAVE))
		set_fault(c->res, XSAVE_INJECT_UD, 0, 0);
	else if (c->sregs.cr0 & X86_CR0_TS)
		set_fault(c->res, XSAVE_INJECT_NM, 0, 0);
	else if ((la & 63) || !canonical(la, c->la57) ||
		 !canonical(la + len - 1, c->la57) || la + len - 1 < la)
		set_fault(c->res, XSAVE_INJECT_GP, 0, 0);
	return c->res->inject != XSAVE_INJECT_NONE;
}

static int load_ctx(struct xsave_ctx *c)
{
	if (ioctl(c->vcpu_fd, KVM_GET_REGS, &c->regs) < 0 ||
	    ioctl(c->vcpu_fd, KVM_GET_SREGS, &c->sregs) < 0)
		return -errno;
	/* The decoder knows 64-bit mode only; 32-bit code runs at CPL3 natively. */
	if (!(c->sregs.efer & X86_EFER_LMA) || !c->sregs.cs.l)
		return -EOPNOTSUPP;
	c->long_paging = c->sregs.cr0 & X86_CR0_PG;
	c->la57 = c->sregs.cr4 & X86_CR4_LA57;
	c->acc.cpl = c->sregs.cs.selector & 3;
	c->acc.wp = c->sregs.cr0 & X86_CR0_WP;
	c->acc.smap = c->sregs.cr4 & X86_CR4_SMAP;
	c->acc.ac = c->regs.rflags & X86_RFLAGS_AC;
	return 0;
}

static uint64_t seg_base(const struct xsave_ctx *c, enum xsave_seg seg)
{
	if (seg == XSAVE_SEG_FS)
		return c->sregs.fs.base;
	if (seg == XSAVE_SEG_GS)
		return c->sregs.gs.base;
	return 0;
}

static int run_insn(struct xsave_ctx *c, const struct xsave_layout *l,
		    size_t kvm_size, uint64_t xcr0)
{
	uint8_t *kvm_area = NULL, *buf = NULL;
	uint32_t len;
	int r;

	r = xsave_area_len(l, c->res->rfbm, &len);
	if (r)
		return r;
	if (len > kvm_size)
		return -EOPNOTSUPP;	/* KVM's image lacks a component */
	if (early_fault(c, len))
		return 0;
	kvm_area = calloc(1, kvm_size);
	buf = calloc(1, len);
	if (!kvm_area || !buf)
		r = -ENOMEM;
	else if (c->res->op == XSAVE_OP_XRSTOR)
		r = do_xrstor(c, l, kvm_area, kvm_size, buf, xcr0);
	else
		r = do_xsave(c, l, kvm_area, kvm_size, buf, len);
	free(kvm_area);
	free(buf);
	return r;
}

int xsave_emulate(int vcpu_fd, const struct guest_mem *gm,
		  const struct xsave_layout *l, size_t kvm_xsave_size,
		  const uint8_t *bytes, size_t n, struct xsave_result *res)
{
	struct xsave_ctx c = { .vcpu_fd = vcpu_fd, .gm = gm, .res = res };
	struct xsave_insn in;
	uint64_t xcr0 = 0;
	int r;

	memset(res, 0, sizeof(*res));
	r = xsave_decode(bytes, n, &in);
	if (r)
		return r;
	res->op = in.op;
	res->len = in.len;
	r = load_ctx(&c);
	if (r)
		return r;
	r = get_xcr0(vcpu_fd, &xcr0);
	if (r)
		return r;
	res->rfbm = xcr0 & ((c.regs.rdx << 32) | (c.regs.rax & 0xFFFFFFFF));
	res->la = xsave_effective_address(&in, &c.regs, c.regs.rip,
					  seg_base(&c, in.seg));
	if (kvm_xsave_size < XSAVE_KVM_SIZE)
		kvm_xsave_size = XSAVE_KVM_SIZE;
	return run_insn(&c, l, kvm_xsave_size, xcr0);
}

static int set_cr2(int vcpu_fd, uint64_t cr2)
{
	struct kvm_sregs sregs;

	if (ioctl(vcpu_fd, KVM_GET_SREGS, &sregs) < 0)
		return -errno;
	sregs.cr2 = cr2;
	return ioctl(vcpu_fd, KVM_SET_SREGS, &sregs) < 0 ? -errno : 0;
}

static int inject_exception(int vcpu_fd, uint8_t nr, bool has_error_code,
			    uint32_t error_code)
{
	struct kvm_vcpu_events ev;

	if (ioctl(vcpu_fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return -errno;
	/* The faulting instruction is being restarted: nothing else is queued. */
	ev.exception.injected = 1;
	ev.exception.pending = 0;
	ev.exception.nr = nr;
	ev.exception.has_error_code = has_error_code;
	ev.exception.error_code = has_error_code ? error_code : 0;
	ev.exception_has_payload = 0;
	ev.exception_payload = 0;
	return ioctl(vcpu_fd, KVM_SET_VCPU_EVENTS, &ev) < 0 ? -errno : 0;
}

int xsave_inject(int vcpu_fd, const struct xsave_result *res)
{
	int r;

	switch (res->inject) {
	case XSAVE_INJECT_NONE:
		return 0;
	case XSAVE_INJECT_PF:
		r = set_cr2(vcpu_fd, res->cr2);
		return r ? r : inject_exception(vcpu_fd, PF_VECTOR, true,
						res->error_code);
	case XSAVE_INJECT_GP:
		return inject_exception(vcpu_fd, GP_VECTOR, true, res->error_code);
	case XSAVE_INJECT_UD:
		return inject_exception(vcpu_fd, UD_VECTOR, false, 0);
	case XSAVE_INJECT_NM:
		return inject_exception(vcpu_fd, NM_VECTOR, false, 0);
	}
	return -EINVAL;
}
