/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A running microVM: the KVM VM, its vCPU threads, the I/O buses and the
 * built-in devices (8250 console, i8042 reset, msvmm control page).  The
 * machine ends exactly once, for one recorded reason.
 */
#ifndef MSVMM_MACHINE_H
#define MSVMM_MACHINE_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "bus.h"
#include "evloop.h"
#include "ctl_dev.h"
#include "i8042.h"
#include "kvm.h"
#include "profile.h"
#include "pvm.h"
#include "rtc_cmos.h"
#include "symbols.h"
#include "uart8250.h"
#include "vcpu.h"
#include "virtio_slots.h"

struct virtio_vsock;

#define MACHINE_MAX_VCPUS 64

enum machine_end {
	MACHINE_RUNNING = 0,
	MACHINE_END_EXIT,     /* guest-init reported the command's status */
	MACHINE_END_RESET,    /* the guest rebooted (i8042 reset) */
	MACHINE_END_SHUTDOWN, /* triple fault or system event */
	MACHINE_END_STOPPED,  /* the host asked it to stop */
	MACHINE_END_TIMEOUT,
	MACHINE_END_ERROR,    /* see machine.end_err */
};

struct machine {
	struct kvm_vm vm;
	struct vcpu vcpus[MACHINE_MAX_VCPUS];
	unsigned int nr_vcpus;
	struct bus pio, mmio;
	struct uart8250 uart;
	struct i8042 kbd;
	struct rtc_cmos rtc;
	struct ctl_dev ctl;
	struct pvm pvm;
	struct evloop loop;        /* device work, off the vCPU threads */
	struct virtio_slots virtio;
	struct virtio_vsock *vsock; /* NULL until machine_add_vsock() */

	const char *vmlinux_path; /* for symbols; NULL when booting a bzImage */
	struct symbols syms;
	bool syms_loaded;
	unsigned int profile_hz;
	struct profile prof;

	pthread_mutex_t lock;
	pthread_cond_t cond;
	_Atomic int end;
	uint32_t exit_status;
	msvmm_error end_err;

	int kick_signal;
	/* machine_pause(): vCPU threads park outside KVM_RUN until resumed (under lock). */
	_Atomic int pause_req;
	unsigned int nr_parked;
	/*
	 * Restored from a snapshot taken with vsock connections open: the guest
	 * must get a TRANSPORT_RESET.  (A ready snapshot has none, and a reset
	 * racing the first new connection would only break that one.)
	 */
	bool vsock_reset_owed;
	/* Monotonic timestamps in ns; 0 = not yet. */
	uint64_t t_start, t_first_run;
	_Atomic uint64_t t_boot, t_exit, t_ready;
	_Atomic uint64_t nr_exits;
};

uint64_t machine_now_ns(void);
/* mem_fd/mem_off: RAM from a snapshot's memory (see kvm_vm_create), or -1. */
int machine_init(struct machine *m, uint64_t ram_bytes, unsigned int nr_vcpus, int console_fd,
		 bool pvm, int mem_fd, uint64_t mem_off, msvmm_error *err);
void machine_destroy(struct machine *m);
/* Run until the machine ends or timeout_ms (0: none) passes; returns the end reason. */
enum machine_end machine_run(struct machine *m, uint64_t timeout_ms);
/* End the machine for 'why' (first caller wins); async-signal-safe apart from cond signal. */
void machine_end(struct machine *m, enum machine_end why);
void machine_stop(struct machine *m);
/*
 * Attach a virtio-blk disk backed by fd (ownership passes to the machine,
 * also on failure).  Returns the device index (vda = 0) or -MSVMM_E*.
 */
int machine_add_blk(struct machine *m, int fd, bool read_only, const char *serial, msvmm_error *err);
/* Attach the virtio-vsock device with guest CID 'cid' (before the machine runs).  0 or -MSVMM_E*. */
int machine_add_vsock(struct machine *m, uint64_t cid, msvmm_error *err);
/*
 * Wait until guest-init's agent reports it listens (ctl READY), the machine
 * ends, or timeout_ms passes.  1 ready, 0 timed out, -1 the machine ended.
 */
int machine_wait_ready(struct machine *m, uint64_t timeout_ms);
/* Wait up to timeout_ms for the machine to end; true when it has. */
bool machine_wait_end(struct machine *m, uint64_t timeout_ms);
/*
 * Stop every vCPU outside KVM_RUN (for a snapshot); 0, or -1 when the
 * machine ended or timeout_ms passed first (it is resumed then).  Device
 * work on the event loop goes on: callers take each device's lock.
 */
int machine_pause(struct machine *m, uint64_t timeout_ms);
void machine_resume(struct machine *m);
/* Load vmlinux symbols on first use (for errors and profiles). */
const struct symbols *machine_symbols(struct machine *m);

#endif
