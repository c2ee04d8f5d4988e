// SPDX-License-Identifier: Apache-2.0
#include "vcpu.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <unistd.h>

#include "boot.h"

#define CPUID_MAX_ENTRIES 256

#define MSR_IA32_SYSENTER_CS 0x174
#define MSR_IA32_SYSENTER_ESP 0x175
#define MSR_IA32_SYSENTER_EIP 0x176
#define MSR_STAR 0xc0000081
#define MSR_LSTAR 0xc0000082
#define MSR_CSTAR 0xc0000083
#define MSR_SYSCALL_MASK 0xc0000084
#define MSR_KERNEL_GS_BASE 0xc0000102
#define MSR_IA32_TSC 0x10
#define MSR_IA32_MISC_ENABLE 0x1a0
#define MSR_MTRR_DEF_TYPE 0x2ff

/*
 * KVM_GET_SUPPORTED_CPUID leaves out the TSC-deadline timer, which the
 * in-kernel LAPIC emulates whenever KVM_CAP_TSC_DEADLINE_TIMER is there: the
 * VMM sets it (as QEMU and Firecracker do).  Without it the guest calibrates
 * its LAPIC timer against the PIT, which fails where the PIT and the TSC do
 * not keep step (nested or emulated hosts: "APIC timer disabled due to
 * verification failure", then sleeps that never end).
 */
static void vcpu_patch_cpuid(struct kvm_cpuid2 *c, unsigned int id, unsigned int ncpus,
			     bool tsc_deadline)
{
	for (unsigned int i = 0; i < c->nent; i++) {
		struct kvm_cpuid_entry2 *e = &c->entries[i];

		switch (e->function) {
		case 1:
			/* Initial APIC ID, logical CPU count, and "running under a hypervisor". */
			e->ebx = (e->ebx & 0x0000ffff) | (ncpus << 16) | (id << 24);
			e->ecx |= 1u << 31;
			if (tsc_deadline)
				e->ecx |= 1u << 24;
			break;
		case 0xb:
			e->edx = id; /* x2APIC ID */
			break;
		case 0xa:
			/* No architectural perfmon: nothing for the guest to probe. */
			e->eax = e->ebx = e->ecx = e->edx = 0;
			break;
		default:
			break;
		}
	}
}

static int vcpu_setup_cpuid(struct kvm_vm *vm, struct vcpu *v, unsigned int ncpus, msvmm_error *err)
{
	size_t sz = sizeof(struct kvm_cpuid2) + CPUID_MAX_ENTRIES * sizeof(struct kvm_cpuid_entry2);
	struct kvm_cpuid2 *c = calloc(1, sz);
	int rc = 0;

	if (!c)
		return err_set(err, MSVMM_ENOMEM, "out of memory for CPUID");
	c->nent = CPUID_MAX_ENTRIES;
	if (ioctl(vm->kvm_fd, KVM_GET_SUPPORTED_CPUID, c) < 0) {
		rc = err_set(err, MSVMM_EKVM, "KVM_GET_SUPPORTED_CPUID: %s", strerror(errno));
		goto out;
	}
	vcpu_patch_cpuid(c, v->id, ncpus,
			 ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, KVM_CAP_TSC_DEADLINE_TIMER) > 0);
	if (ioctl(v->fd, KVM_SET_CPUID2, c) < 0)
		rc = err_set(err, MSVMM_EKVM, "KVM_SET_CPUID2: %s", strerror(errno));
out:
	free(c);
	return rc;
}

static int vcpu_setup_msrs(struct vcpu *v, msvmm_error *err)
{
	static const uint32_t idx[] = {
		MSR_IA32_SYSENTER_CS, MSR_IA32_SYSENTER_ESP, MSR_IA32_SYSENTER_EIP, MSR_STAR,
		MSR_LSTAR, MSR_CSTAR, MSR_SYSCALL_MASK, MSR_KERNEL_GS_BASE, MSR_IA32_TSC,
		MSR_IA32_MISC_ENABLE, MSR_MTRR_DEF_TYPE,
	};
	const unsigned int n = sizeof(idx) / sizeof(idx[0]);
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[sizeof(idx) / sizeof(idx[0])];
	} m;
	int rc;

	memset(&m, 0, sizeof(m));
	m.hdr.nmsrs = n;
	for (unsigned int i = 0; i < n; i++)
		m.e[i].index = idx[i];
	m.e[9].data = 1;             /* MISC_ENABLE: fast strings */
	m.e[10].data = (1 << 11) | 6; /* MTRRs on, default write-back */
	rc = ioctl(v->fd, KVM_SET_MSRS, &m);
	if (rc != (int)n)
		return err_set(err, MSVMM_EKVM, "KVM_SET_MSRS set %d of %u MSRs", rc, n);
	return 0;
}

static int vcpu_setup_lapic(struct vcpu *v, msvmm_error *err)
{
	struct kvm_lapic_state l;
	uint32_t lvt;

	if (ioctl(v->fd, KVM_GET_LAPIC, &l) < 0)
		return err_set(err, MSVMM_EKVM, "KVM_GET_LAPIC: %s", strerror(errno));
	/* LINT0 as ExtINT so PIC interrupts reach the BSP; LINT1 as NMI. */
	memcpy(&lvt, l.regs + 0x350, 4);
	lvt = (lvt & ~0x700u) | (7u << 8);
	memcpy(l.regs + 0x350, &lvt, 4);
	memcpy(&lvt, l.regs + 0x360, 4);
	lvt = (lvt & ~0x700u) | (4u << 8);
	memcpy(l.regs + 0x360, &lvt, 4);
	if (ioctl(v->fd, KVM_SET_LAPIC, &l) < 0)
		return err_set(err, MSVMM_EKVM, "KVM_SET_LAPIC: %s", strerror(errno));
	return 0;
}

int vcpu_create(struct kvm_vm *vm, unsigned int id, unsigned int ncpus, struct vcpu *v, msvmm_error *err)
{
	int rc;

	memset(v, 0, sizeof(*v));
	v->id = id;
	v->run_size = vm->run_size;
	v->fd = ioctl(vm->vm_fd, KVM_CREATE_VCPU, (unsigned long)id);
	if (v->fd < 0)
		return err_set(err, MSVMM_EKVM, "KVM_CREATE_VCPU %u: %s", id, strerror(errno));
	v->run = mmap(NULL, (size_t)vm->run_size, PROT_READ | PROT_WRITE, MAP_SHARED, v->fd, 0);
	if (v->run == MAP_FAILED) {
		v->run = NULL;
		rc = err_set(err, MSVMM_EKVM, "mmap of vCPU %u run area: %s", id, strerror(errno));
		goto fail;
	}
	rc = vcpu_setup_cpuid(vm, v, ncpus, err);
	if (!rc)
		rc = vcpu_setup_msrs(v, err);
	if (!rc)
		rc = vcpu_setup_lapic(v, err);
	if (!rc)
		return 0;
fail:
	vcpu_destroy(v);
	return rc;
}

void vcpu_destroy(struct vcpu *v)
{
	if (v->run)
		munmap(v->run, (size_t)v->run_size);
	if (v->fd >= 0)
		close(v->fd);
	v->run = NULL;
	v->fd = -1;
}

static void seg_flat(struct kvm_segment *s, uint16_t sel, uint8_t type, int code)
{
	*s = (struct kvm_segment){
		.base = 0, .limit = 0xffffffff, .selector = sel, .type = type,
		.present = 1, .dpl = 0, .db = code ? 0 : 1, .s = 1, .l = code ? 1 : 0, .g = 1,
	};
}

int vcpu_setup_boot(struct vcpu *v, uint64_t entry, uint64_t zero_page, msvmm_error *err)
{
	struct kvm_sregs s;
	struct kvm_regs r = { .rflags = 2, .rip = entry, .rsi = zero_page,
			      .rsp = BOOT_STACK_ADDR, .rbp = BOOT_STACK_ADDR };
	struct kvm_fpu f = { .fcw = 0x37f, .mxcsr = 0x1f80 };

	if (ioctl(v->fd, KVM_GET_SREGS, &s) < 0)
		return err_set(err, MSVMM_EKVM, "KVM_GET_SREGS: %s", strerror(errno));
	seg_flat(&s.cs, BOOT_CS, 0xb, 1);
	seg_flat(&s.ds, BOOT_DS, 0x3, 0);
	s.es = s.fs = s.gs = s.ss = s.ds;
	s.tr = (struct kvm_segment){ .base = 0, .limit = 0xfffff, .selector = BOOT_TSS,
				     .type = 0xb, .present = 1, .g = 1 };
	s.gdt.base = BOOT_GDT_ADDR;
	s.gdt.limit = 5 * 8 - 1;
	s.idt.base = BOOT_IDT_ADDR;
	s.idt.limit = 7;
	s.cr3 = BOOT_PML4_ADDR;
	s.cr4 = 1u << 5;                   /* PAE */
	s.cr0 = 0x80000001u | 0x10u | 0x20u; /* PG | PE | ET | NE */
	s.efer = 0x500;                    /* LME | LMA */
	if (ioctl(v->fd, KVM_SET_SREGS, &s) < 0)
		return err_set(err, MSVMM_EKVM, "KVM_SET_SREGS: %s", strerror(errno));
	if (ioctl(v->fd, KVM_SET_REGS, &r) < 0)
		return err_set(err, MSVMM_EKVM, "KVM_SET_REGS: %s", strerror(errno));
	if (ioctl(v->fd, KVM_SET_FPU, &f) < 0)
		return err_set(err, MSVMM_EKVM, "KVM_SET_FPU: %s", strerror(errno));
	return 0;
}

int vcpu_skip(struct vcpu *v, unsigned int n)
{
	struct kvm_regs r;

	if (ioctl(v->fd, KVM_GET_REGS, &r) < 0)
		return -errno;
	r.rip += n;
	return ioctl(v->fd, KVM_SET_REGS, &r) < 0 ? -errno : 0;
}

int vcpu_inject_exception(struct vcpu *v, uint8_t vector, int has_code, uint32_t code)
{
	struct kvm_vcpu_events ev;

	if (ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0)
		return -errno;
	ev.exception.injected = 1;
	ev.exception.nr = vector;
	ev.exception.has_error_code = has_code ? 1 : 0;
	ev.exception.error_code = code;
	ev.flags = 0;
	return ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev) < 0 ? -errno : 0;
}
