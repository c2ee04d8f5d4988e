// SPDX-License-Identifier: Apache-2.0
#include "pvm.h"

#include <errno.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

#include "vcpu.h"

#define PVM_SYSFS_MODULE "/sys/module/kvm_pvm"

#define INSN_INT3 0xcc
#define INSN_FWAIT 0x9b
#define VEC_BP 3

bool pvm_detect(void)
{
	return access(PVM_SYSFS_MODULE, F_OK) == 0;
}

void pvm_init(struct pvm *p, bool active)
{
	memset(p, 0, sizeof(*p));
	p->active = active;
	if (active)
		p->layout_ok = xsave_layout_from_cpuid(&p->layout) == 0;
}

const char *pvm_cmdline(const struct pvm *p)
{
	if (!p->active)
		return "";
	/*
	 * CPUID is native under PVM, so features are switched off here instead:
	 * POPCNT and CLAC cannot be emulated; ERMS/FSRM make "rep movsb" cost one
	 * emulator step per byte; protection keys and FSGSBASE misbehave;
	 * XSAVES/XSAVEC would need the compacted format, which msvmm does not
	 * emulate.  msvmm.pvm=1 turns on the guest kernel's SYSCALL fix.
	 */
	return "msvmm.pvm=1 clearcpuid=popcnt,smap,fsgsbase,erms,fsrm,pku,ospke,xsaves,xsavec,cx16";
}

static int pvm_emulate_xsave(struct pvm *p, struct vcpu *v, const struct guest_mem *gm,
			     const uint8_t *bytes, size_t n)
{
	struct xsave_result res;
	int rc;

	if (!p->layout_ok)
		return -ENOTSUP;
	rc = xsave_emulate(v->fd, gm, &p->layout, p->kvm_xsave_size, bytes, n, &res);
	if (rc)
		return rc;
	if (res.inject == XSAVE_INJECT_PF)
		p->nr_pf_injected++;
	else if (res.inject == XSAVE_INJECT_GP)
		p->nr_gp_injected++;
	else if (res.op == XSAVE_OP_XRSTOR)
		p->nr_xrstor++;
	else
		p->nr_xsave++;
	return res.inject != XSAVE_INJECT_NONE ? xsave_inject(v->fd, &res) : 0;
}

int pvm_handle_internal_error(struct pvm *p, struct vcpu *v, const struct guest_mem *gm)
{
	struct kvm_run *r = v->run;
	const uint8_t *b = r->emulation_failure.insn_bytes;
	size_t n = r->emulation_failure.insn_size;

	if (!p->active || r->internal.suberror != KVM_INTERNAL_ERROR_EMULATION ||
	    !(r->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES) || !n)
		return -ENOTSUP;
	if (n > sizeof(r->emulation_failure.insn_bytes))
		n = sizeof(r->emulation_failure.insn_bytes);
	if (b[0] == INSN_INT3) {
		/* A trap: the #BP frame must point after the INT3, as the CPU's would. */
		p->nr_int3++;
		if (vcpu_skip(v, 1) < 0)
			return -EIO;
		return vcpu_inject_exception(v, VEC_BP, 0, 0);
	}
	if (b[0] == INSN_FWAIT) {
		/* FWAIT only waits for pending x87 exceptions, which never are pending here. */
		p->nr_fwait++;
		return vcpu_skip(v, 1);
	}
	return pvm_emulate_xsave(p, v, gm, b, n);
}

void pvm_describe_failure(const struct pvm *p, struct vcpu *v, const struct symbols *syms, msvmm_error *e)
{
	struct kvm_run *r = v->run;
	char bytes[3 * 16] = "", where[160] = "";
	struct kvm_regs regs;
	uint64_t rip = 0;
	size_t n = 0;

	if (ioctl(v->fd, KVM_GET_REGS, &regs) == 0)
		rip = regs.rip;
	if (r->internal.suberror == KVM_INTERNAL_ERROR_EMULATION &&
	    (r->emulation_failure.flags & KVM_INTERNAL_ERROR_EMULATION_FLAG_INSTRUCTION_BYTES)) {
		n = r->emulation_failure.insn_size;
		if (n > sizeof(r->emulation_failure.insn_bytes))
			n = sizeof(r->emulation_failure.insn_bytes);
	}
	for (size_t i = 0; i < n; i++)
		snprintf(bytes + 3 * i, sizeof(bytes) - 3 * i, "%s%02x", i ? " " : "",
			 r->emulation_failure.insn_bytes[i]);
	if (syms) {
		const struct symbol *s = symbols_lookup(syms, rip);

		if (s)
			snprintf(where, sizeof(where), " (%s+0x%llx)", s->name,
				 (unsigned long long)(rip - s->addr));
	}
	err_set(e, MSVMM_EGUEST,
		"vCPU %u: KVM cannot emulate the guest instruction at RIP 0x%llx%s: bytes [%s], suberror %u%s",
		v->id, (unsigned long long)rip, where, n ? bytes : "unknown", r->internal.suberror,
		p->active ? " (PVM host)" : "");
}
