/* SPDX-License-Identifier: Apache-2.0 */
/* A KVM virtual machine: /dev/kvm, the VM fd, guest RAM, irqchip and PIT. */
#ifndef MSVMM_KVM_H
#define MSVMM_KVM_H

#include <stdbool.h>
#include <stdint.h>

#include "err.h"
#include "guest_mem.h"

#define KVM_TSS_ADDR 0xfffbd000ULL

struct kvm_vm {
	int kvm_fd;
	int vm_fd;
	int run_size;        /* size of each vCPU's kvm_run mapping */
	struct guest_mem mem;
	unsigned int nr_slots;
};

/*
 * Open /dev/kvm (kvm_path may be NULL), create the VM and its RAM: fresh
 * zeroed memory, or (mem_fd >= 0) a private mapping of mem_fd at mem_off.
 */
int kvm_vm_create(struct kvm_vm *vm, const char *kvm_path, uint64_t ram_bytes, int mem_fd, uint64_t mem_off,
		  msvmm_error *err);
void kvm_vm_destroy(struct kvm_vm *vm);
/* Signal eventfd 'fd' when the guest writes 'datamatch' (len bytes) at MMIO 'addr'. */
int kvm_vm_ioeventfd(struct kvm_vm *vm, uint64_t addr, uint32_t len, uint64_t datamatch, int fd);
/* Writing to eventfd 'fd' raises interrupt 'gsi' (edge). */
int kvm_vm_irqfd(struct kvm_vm *vm, int fd, uint32_t gsi);
/* Raise or lower an interrupt line of the in-kernel irqchip. */
int kvm_vm_irq_line(struct kvm_vm *vm, uint32_t gsi, int level);

#endif
