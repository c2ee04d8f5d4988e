/* SPDX-License-Identifier: Apache-2.0 */
/*
 * PVM support: the second host msvmm runs on.  On hosts whose /dev/kvm is
 * the kvm_pvm module (no hardware virtualization), guest kernel code runs
 * through KVM's instruction emulator, which rejects a few instructions, and
 * CPUID cannot be hidden.  Everything PVM needs lives here, switched on only
 * when detected (or forced by the caller): the real-KVM path never sees it.
 * See shared/PLATFORM.md for the measurements behind each workaround.
 */
#ifndef MSVMM_PVM_H
#define MSVMM_PVM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "guest_mem.h"
#include "symbols.h"
#include "xsave.h"

struct vcpu;

struct pvm {
	bool active;
	bool layout_ok;
	struct xsave_layout layout;
	size_t kvm_xsave_size; /* KVM's xsave image size for this VM */
	/* Counters of emulated instructions, for --timings and the closing figures. */
	uint64_t nr_int3, nr_fwait, nr_xsave, nr_xrstor, nr_pf_injected, nr_gp_injected;
};

/* True when this host's /dev/kvm is PVM. */
bool pvm_detect(void);
void pvm_init(struct pvm *p, bool active);
/* Words the guest kernel command line needs on PVM ("" when inactive). */
const char *pvm_cmdline(const struct pvm *p);
/* Try to handle a KVM_EXIT_INTERNAL_ERROR; 0 when handled and the vCPU may go on. */
int pvm_handle_internal_error(struct pvm *p, struct vcpu *v, const struct guest_mem *gm);
/* Describe an unhandled internal error: RIP, instruction bytes, symbol. */
void pvm_describe_failure(const struct pvm *p, struct vcpu *v, const struct symbols *syms, msvmm_error *e);

#endif
