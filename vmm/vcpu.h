/* SPDX-License-Identifier: Apache-2.0 */
/* A vCPU: its fd, kvm_run page, and the register state of the 64-bit entry. */
#ifndef MSVMM_VCPU_H
#define MSVMM_VCPU_H

#include <linux/kvm.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>
#include <sys/types.h>

#include "kvm.h"

struct vcpu {
	unsigned int id;
	int fd;
	struct kvm_run *run;
	int run_size;
	pthread_t thread;
	pid_t tid;            /* for signals aimed at this vCPU's thread */
	int thread_started;
	_Atomic int halt_check;  /* the watchdog asks: are you halted for good? */
	_Atomic int dead;        /* halted with interrupts off: nothing can wake it */
};

int vcpu_create(struct kvm_vm *vm, unsigned int id, unsigned int ncpus, struct vcpu *v, msvmm_error *err);
void vcpu_destroy(struct vcpu *v);
/* Registers for the Linux 64-bit entry: long mode, rip = entry, rsi = zero page. */
int vcpu_setup_boot(struct vcpu *v, uint64_t entry, uint64_t zero_page, msvmm_error *err);
/* Advance RIP by n bytes (after the VMM handled an instruction). */
int vcpu_skip(struct vcpu *v, unsigned int n);
/* Inject exception 'vector' (with error code when has_code) into the guest. */
int vcpu_inject_exception(struct vcpu *v, uint8_t vector, int has_code, uint32_t code);

#endif
