/* SPDX-License-Identifier: Apache-2.0 */
/*
 * XSAVE, XRSTOR and XSAVEOPT done by the VMM.
 *
 * On a PVM host (shared/PLATFORM.md §3, §5) guest kernel code runs through
 * KVM's instruction emulator, which cannot do the XSAVE family: KVM_RUN
 * returns KVM_EXIT_INTERNAL_ERROR / KVM_INTERNAL_ERROR_EMULATION with the
 * instruction bytes.  The guest kernel needs these instructions (context
 * switches, signal frames), and turning XSAVE off in the guest is not an
 * option because guest user space sees AVX natively.  So the VMM decodes the
 * memory operand, moves the requested state components between guest memory
 * and KVM_GET_XSAVE/KVM_SET_XSAVE, and steps RIP, or tells the caller which
 * exception the instruction raises instead.
 *
 * Only the standard (non-compacted) format is supported: the guest must run
 * with clearcpuid=xsaves,xsavec.  Component offsets come from CPUID leaf 0xD
 * of the host, which on PVM is also what the guest sees (§2) and what KVM's
 * xsave image uses.
 *
 * The pure parts (decode, address arithmetic, state merging, page walk) do no
 * I/O and are unit-tested; xsave_emulate() and xsave_inject() are the
 * ioctl glue for the vCPU loop:
 *
 *	case KVM_EXIT_INTERNAL_ERROR:
 *		if (run->internal.suberror == KVM_INTERNAL_ERROR_EMULATION &&
 *		    (run->emulation_failure.flags &
 *		     KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
 *			struct xsave_result res;
 *			int r = xsave_emulate(vcpu_fd, gm, &layout, kvm_xsave_size,
 *					      run->emulation_failure.insn_bytes,
 *					      run->emulation_failure.insn_size, &res);
 *			if (r == 0 && res.inject != XSAVE_INJECT_NONE)
 *				r = xsave_inject(vcpu_fd, &res);
 *			if (r == 0)
 *				continue;	// re-enter KVM_RUN
 *			// r == -EINVAL: not an XSAVE-family instruction
 *		}
 */
#ifndef MSVMM_XSAVE_H
#define MSVMM_XSAVE_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include <linux/kvm.h>

#include "guest_mem.h"

/* Fixed parts of the standard-format XSAVE area (SDM Vol. 1, 13.4). */
#define XSAVE_MXCSR_OFFSET	24	/* MXCSR, then MXCSR_MASK at 28 */
#define XSAVE_XMM_OFFSET	160	/* XMM0..XMM15, 16 bytes each */
#define XSAVE_XMM_SIZE		256
#define XSAVE_HDR_OFFSET	512	/* XSTATE_BV, then XCOMP_BV at 520 */
#define XSAVE_HDR_SIZE		64
#define XSAVE_EXT_OFFSET	576	/* first byte of the extended region */

#define XSAVE_KVM_SIZE		4096	/* sizeof(struct kvm_xsave) */
/* Largest area handled: AMX needs ~11 KiB; anything above is a bad layout. */
#define XSAVE_AREA_MAX		65536
#define XSAVE_INSN_MAX		15	/* architectural instruction length limit */

#define XSAVE_MXCSR_DEFAULT	0x1F80
/* MXCSR_MASK to assume when none was saved (SDM Vol. 1, 11.6.6). */
#define XSAVE_MXCSR_MASK_DEFAULT 0xFFBF

enum xsave_op {
	XSAVE_OP_XSAVE,		/* 0F AE /4 */
	XSAVE_OP_XRSTOR,	/* 0F AE /5 */
	XSAVE_OP_XSAVEOPT,	/* 0F AE /6 */
};

enum xsave_seg {
	XSAVE_SEG_NONE,		/* no override, or a null one (ES/CS/SS/DS) */
	XSAVE_SEG_FS,
	XSAVE_SEG_GS,
};

/* Register numbers are encoding numbers: 0 rax, 1 rcx, ..., 4 rsp, ..., 15 r15. */
#define XSAVE_REG_NONE	(-1)
#define XSAVE_REG_RIP	(-2)	/* base of a RIP-relative operand */

struct xsave_insn {
	enum xsave_op op;
	bool rex_w;		/* XSAVE64 and friends */
	enum xsave_seg seg;
	int base;		/* 0..15, XSAVE_REG_NONE or XSAVE_REG_RIP */
	int index;		/* 0..15 or XSAVE_REG_NONE */
	uint8_t scale;		/* 1, 2, 4 or 8 */
	int64_t disp;		/* sign-extended displacement */
	uint8_t len;		/* whole instruction, prefixes included */
};

/*
 * Decode a 64-bit-mode XSAVE, XRSTOR or XSAVEOPT with a memory operand.
 * Returns 0, -EINVAL if the bytes are some other instruction (or a form we
 * do not take: 66/F2/F3/F0/67 prefixes, mod == 3), or -ENODATA if they end
 * before the instruction does.
 */
int xsave_decode(const uint8_t *bytes, size_t len, struct xsave_insn *out);

/*
 * The operand's linear address, modulo 2^64.  rip is the address of the
 * instruction (RIP-relative operands count from its end); seg_base is added
 * only when the instruction has an FS or GS override.
 */
uint64_t xsave_effective_address(const struct xsave_insn *in,
				 const struct kvm_regs *regs,
				 uint64_t rip, uint64_t seg_base);

/* Where each state component lives in a standard-format area. */
struct xsave_layout {
	uint32_t offset[64];
	uint32_t size[64];
	uint64_t supported;	/* components described here (bits 0, 1 always) */
	uint32_t total;		/* bytes an area needs for all of them */
	uint32_t mxcsr_mask;	/* host MXCSR_MASK from FXSAVE, 0 if unknown */
};

/* Just x87 and SSE: the legacy region, total 576. */
void xsave_layout_init(struct xsave_layout *l);
/* Describe component i (2..62).  Returns 0 or -EINVAL for a bad entry. */
int xsave_layout_add(struct xsave_layout *l, unsigned int i,
		     uint32_t offset, uint32_t size);
/* Fill from the host's CPUID leaf 0xD.  Returns 0 or -EOPNOTSUPP. */
int xsave_layout_from_cpuid(struct xsave_layout *l);

/*
 * Bytes [0, *len) of an area that an instruction with this RFBM touches:
 * legacy region and header, plus every extended component in rfbm.
 * Returns 0, or -EOPNOTSUPP if rfbm names a component the layout lacks.
 * The area itself must be 64-byte aligned (else #GP): see xsave_emulate().
 */
int xsave_area_len(const struct xsave_layout *l, uint64_t rfbm, uint32_t *len);

/*
 * XSAVE (opt = false) or XSAVEOPT (opt = true) from KVM's standard-format
 * image into a copy of the guest's area.  Components in rfbm that KVM's
 * XSTATE_BV marks as initial are written as their initial values by XSAVE
 * and skipped by XSAVEOPT (the init optimization); MXCSR and MXCSR_MASK are
 * written whenever rfbm has bit 1 or 2.  Header XSTATE_BV becomes
 * (old & ~rfbm) | (kvm & rfbm); nothing else of the header is written.
 * Both buffers hold at least xsave_area_len(rfbm) bytes.  Returns 0 or
 * -EOPNOTSUPP (component not in the layout).
 */
int xsave_to_memory(const struct xsave_layout *l, const uint8_t *kvm_area,
		    uint8_t *dst, uint64_t rfbm, bool opt);

/*
 * The header checks XRSTOR makes before loading anything: -EINVAL (#GP) for
 * the compacted form (XCOMP_BV bit 63: XSAVEC is hidden from the guest), any
 * nonzero byte in header bytes 8..63, or XSTATE_BV bits outside xcr0.
 * area holds at least XSAVE_EXT_OFFSET bytes.
 */
int xsave_check_header(const uint8_t *area, uint64_t xcr0);

/*
 * XRSTOR from a copy of the guest's area into KVM's image.  For each i in
 * rfbm: loaded from memory when the area's XSTATE_BV has it, else set to its
 * initial state; MXCSR is loaded whenever rfbm has bit 1 or 2, as the
 * standard form does.  KVM's XSTATE_BV becomes (kvm & ~rfbm) | (mem & rfbm),
 * plus bit 1 (SSE) whenever MXCSR was loaded, so that KVM carries MXCSR to
 * the vCPU (XMM left zero: the same state).
 * Returns 0; -EINVAL (#GP, kvm_area untouched) for a bad header or an MXCSR
 * with bits outside MXCSR_MASK; -EOPNOTSUPP for a component not in the layout.
 * src holds the header and every component in rfbm & XSTATE_BV.
 */
int xsave_from_memory(const struct xsave_layout *l, const uint8_t *src,
		      uint8_t *kvm_area, uint64_t rfbm, uint64_t xcr0);

/* A walk of the guest's long-mode page tables (4 or 5 levels). */
struct xsave_walk {
	uint64_t gpa;		/* translation of the address, when present */
	uint64_t entry_gpa[5];	/* entries used, top level first */
	unsigned int levels;	/* how many of entry_gpa are valid */
	bool present;
	bool writable;		/* R/W set at every level */
	bool user;		/* U/S set at every level */
};

/*
 * Walk la through the tables at cr3.  Returns 0 (w->present says whether
 * it maps) or -EFAULT if a table lies outside guest RAM.  Reads only; the
 * guest's tables are not changed.
 */
int xsave_walk(const struct guest_mem *gm, uint64_t cr3, bool la57,
	       uint64_t la, struct xsave_walk *w);
/* Set Accessed in each entry used, and Dirty in the leaf for a write. */
void xsave_walk_set_ad(const struct guest_mem *gm, const struct xsave_walk *w,
		       bool write);

/* What decides whether a data access may use a page. */
struct xsave_access {
	bool write;
	unsigned int cpl;
	bool wp;		/* CR0.WP */
	bool smap;		/* CR4.SMAP */
	bool ac;		/* RFLAGS.AC */
};

/*
 * True if the access faults, with the #PF error code in *error_code
 * (bit 0 present, bit 1 write, bit 2 user).
 */
bool xsave_access_fault(const struct xsave_walk *w, const struct xsave_access *a,
			uint32_t *error_code);

enum xsave_inject {
	XSAVE_INJECT_NONE,	/* emulated, RIP advanced */
	XSAVE_INJECT_PF,	/* #PF: cr2 and error_code set */
	XSAVE_INJECT_GP,	/* #GP(0) */
	XSAVE_INJECT_UD,	/* #UD: CR4.OSXSAVE clear */
	XSAVE_INJECT_NM,	/* #NM: CR0.TS set */
};

struct xsave_result {
	enum xsave_inject inject;	/* what to deliver; RIP is unchanged if not NONE */
	uint32_t error_code;		/* #PF/#GP error code */
	uint64_t cr2;			/* #PF: first faulting linear address */
	enum xsave_op op;		/* what was decoded (for logs) */
	uint64_t la;			/* linear address of the area */
	uint64_t rfbm;			/* XCR0 & EDX:EAX */
	uint8_t len;			/* instruction length */
};

/*
 * Size of KVM's xsave image for this VM: KVM_CHECK_EXTENSION(KVM_CAP_XSAVE2)
 * on the VM fd, at least XSAVE_KVM_SIZE.
 */
size_t xsave_kvm_size(int vm_fd);

/*
 * Emulate the instruction in bytes[0..n) on the vCPU (64-bit mode only).
 * kvm_xsave_size: from xsave_kvm_size() (0 means XSAVE_KVM_SIZE); above
 * XSAVE_KVM_SIZE, KVM_GET_XSAVE2 is used.  Returns 0 with res filled: either
 * emulated (RIP advanced) or res->inject says which exception to deliver with
 * xsave_inject() (nothing changed).  Errors: -EINVAL not an XSAVE-family
 * instruction, -ENODATA truncated bytes, -EOPNOTSUPP not in 64-bit mode or a
 * component the layout or KVM's image lacks, -EFAULT the area maps outside
 * guest RAM, other -errno from KVM ioctls.
 */
int xsave_emulate(int vcpu_fd, const struct guest_mem *gm,
		  const struct xsave_layout *l, size_t kvm_xsave_size,
		  const uint8_t *bytes, size_t n, struct xsave_result *res);

/*
 * Deliver res->inject to the guest (CR2 first for #PF).  Returns 0 (also
 * when there is nothing to inject) or -errno.
 */
int xsave_inject(int vcpu_fd, const struct xsave_result *res);

#endif
