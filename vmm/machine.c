// SPDX-License-Identifier: Apache-2.0
#include "machine.h"

#include "virtio_blk.h"
#include "virtio_vsock.h"

#include <errno.h>
#include <stdlib.h>
#include <signal.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/ioctl.h>
#include <sys/syscall.h>
#include <time.h>
#include <unistd.h>

#define IO_PORT_DEBUG 0x80
#define MACHINE_WATCHDOG_MS 1000

static void vcpu_check_halted(struct vcpu *v);

uint64_t machine_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

static void machine_uart_irq(void *opaque, int level)
{
	struct machine *m = opaque;

	kvm_vm_irq_line(&m->vm, UART_COM1_IRQ, level);
}

static void machine_reset(void *opaque)
{
	machine_end(opaque, MACHINE_END_RESET);
}

static void machine_ctl_boot(void *opaque)
{
	struct machine *m = opaque;
	uint64_t zero = 0;

	atomic_compare_exchange_strong(&m->t_boot, &zero, machine_now_ns());
}

static void machine_ctl_exit(void *opaque, uint32_t status)
{
	struct machine *m = opaque;

	m->exit_status = status;
	m->t_exit = machine_now_ns();
	machine_end(m, MACHINE_END_EXIT);
}

static void machine_ctl_ready(void *opaque)
{
	struct machine *m = opaque;
	uint64_t zero = 0;

	if (atomic_compare_exchange_strong(&m->t_ready, &zero, machine_now_ns())) {
		pthread_mutex_lock(&m->lock);
		pthread_cond_broadcast(&m->cond);
		pthread_mutex_unlock(&m->lock);
	}
}

static const struct ctl_dev_ops machine_ctl_ops = {
	.boot = machine_ctl_boot,
	.exit = machine_ctl_exit,
	.ready = machine_ctl_ready,
};

static int machine_devices(struct machine *m, int console_fd, msvmm_error *err)
{
	uart8250_init(&m->uart, console_fd, machine_uart_irq, m);
	m->kbd = (struct i8042){ .reset = machine_reset, .opaque = m };
	ctl_dev_init(&m->ctl, &machine_ctl_ops, m);
	rtc_cmos_init(&m->rtc);
	if (bus_register(&m->pio, UART_COM1_BASE, UART_NR_REGS, uart8250_access, &m->uart) ||
	    bus_register(&m->pio, I8042_DATA_PORT, 5, i8042_access, &m->kbd) ||
	    bus_register(&m->pio, RTC_CMOS_PORT, RTC_CMOS_NR_PORTS, rtc_cmos_access, &m->rtc) ||
	    bus_register(&m->mmio, MSVMM_CTL_BASE, MSVMM_CTL_SIZE, ctl_dev_access, &m->ctl))
		return err_set(err, MSVMM_EINTERNAL, "device address ranges overlap");
	return 0;
}

int machine_init(struct machine *m, uint64_t ram_bytes, unsigned int nr_vcpus, int console_fd,
		 bool pvm, int mem_fd, uint64_t mem_off, msvmm_error *err)
{
	int rc;

	pthread_condattr_t ca;

	memset(m, 0, sizeof(*m));
	m->loop.epfd = m->loop.wake_fd = -1;
	m->t_start = machine_now_ns();
	pthread_mutex_init(&m->lock, NULL);
	/* The cond waits on CLOCK_MONOTONIC so wall-clock jumps do not cut timeouts. */
	pthread_condattr_init(&ca);
	pthread_condattr_setclock(&ca, CLOCK_MONOTONIC);
	pthread_cond_init(&m->cond, &ca);
	pthread_condattr_destroy(&ca);
	profile_init(&m->prof);
	m->kick_signal = SIGRTMIN + 5;
	m->vm.vm_fd = m->vm.kvm_fd = -1;
	if (nr_vcpus == 0 || nr_vcpus > MACHINE_MAX_VCPUS)
		return err_set(err, MSVMM_EINVAL, "vCPU count %u out of range (1..%d)", nr_vcpus,
			       MACHINE_MAX_VCPUS);
	pvm_init(&m->pvm, pvm);
	rc = evloop_init(&m->loop);
	if (rc)
		return err_set(err, MSVMM_EIO, "cannot create the device event loop: %s", strerror(-rc));
	rc = kvm_vm_create(&m->vm, NULL, ram_bytes, mem_fd, mem_off, err);
	if (rc)
		return rc;
	if (m->pvm.active)
		m->pvm.kvm_xsave_size = xsave_kvm_size(m->vm.vm_fd);
	for (unsigned int i = 0; i < nr_vcpus; i++) {
		rc = vcpu_create(&m->vm, i, nr_vcpus, &m->vcpus[i], err);
		if (rc)
			return rc;
		m->nr_vcpus++;
	}
	return machine_devices(m, console_fd, err);
}

void machine_destroy(struct machine *m)
{
	evloop_destroy(&m->loop);
	virtio_slots_destroy(&m->virtio);
	for (unsigned int i = 0; i < m->nr_vcpus; i++)
		vcpu_destroy(&m->vcpus[i]);
	kvm_vm_destroy(&m->vm);
	if (m->syms_loaded)
		symbols_free(&m->syms);
	profile_free(&m->prof);
	pthread_mutex_destroy(&m->lock);
	pthread_cond_destroy(&m->cond);
}

const struct symbols *machine_symbols(struct machine *m)
{
	pthread_mutex_lock(&m->lock);
	if (!m->syms_loaded && m->vmlinux_path && symbols_load(&m->syms, m->vmlinux_path) == 0)
		m->syms_loaded = true;
	pthread_mutex_unlock(&m->lock);
	return m->syms_loaded ? &m->syms : NULL;
}

static void machine_kick_all(struct machine *m)
{
	for (unsigned int i = 0; i < m->nr_vcpus; i++) {
		struct vcpu *v = &m->vcpus[i];

		if (v->run)
			v->run->immediate_exit = 1;
		if (v->thread_started)
			pthread_kill(v->thread, m->kick_signal);
	}
}

void machine_end(struct machine *m, enum machine_end why)
{
	int running = MACHINE_RUNNING;

	if (!atomic_compare_exchange_strong(&m->end, &running, (int)why))
		return;
	machine_kick_all(m);
	pthread_mutex_lock(&m->lock);
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

void machine_stop(struct machine *m)
{
	machine_end(m, MACHINE_END_STOPPED);
}

/* Record a fatal guest or KVM error (first one wins) and end the machine. */
static void machine_fail(struct machine *m, const msvmm_error *e)
{
	pthread_mutex_lock(&m->lock);
	if (atomic_load(&m->end) == MACHINE_RUNNING && !m->end_err.code)
		m->end_err = *e;
	pthread_mutex_unlock(&m->lock);
	machine_end(m, MACHINE_END_ERROR);
}

static void machine_io(struct machine *m, struct vcpu *v)
{
	struct kvm_run *r = v->run;
	uint8_t *data = (uint8_t *)r + r->io.data_offset;
	bool wr = r->io.direction == KVM_EXIT_IO_OUT;

	/* data_offset and size come from KVM, not from the guest, but stay inside the page anyway. */
	if (r->io.data_offset + (uint64_t)r->io.size * r->io.count > (uint64_t)v->run_size)
		return;
	for (uint32_t i = 0; i < r->io.count; i++, data += r->io.size) {
		if (r->io.port == IO_PORT_DEBUG)
			continue;
		if (!bus_access(&m->pio, r->io.port, data, r->io.size, wr) && !wr)
			memset(data, 0xff, r->io.size);
	}
}

static void machine_mmio(struct machine *m, struct vcpu *v)
{
	struct kvm_run *r = v->run;
	uint32_t len = r->mmio.len > sizeof(r->mmio.data) ? sizeof(r->mmio.data) : r->mmio.len;

	if (!bus_access(&m->mmio, r->mmio.phys_addr, r->mmio.data, len, r->mmio.is_write) &&
	    !r->mmio.is_write)
		memset(r->mmio.data, 0xff, len);
}

static void machine_internal_error(struct machine *m, struct vcpu *v)
{
	msvmm_error e;

	if (pvm_handle_internal_error(&m->pvm, v, &m->vm.mem) == 0)
		return;
	pvm_describe_failure(&m->pvm, v, machine_symbols(m), &e);
	machine_fail(m, &e);
}

/* Handle one exit; false when the loop must stop. */
static bool machine_exit(struct machine *m, struct vcpu *v)
{
	msvmm_error e;

	m->nr_exits++;
	switch (v->run->exit_reason) {
	case KVM_EXIT_IO:
		machine_io(m, v);
		return true;
	case KVM_EXIT_MMIO:
		machine_mmio(m, v);
		return true;
	case KVM_EXIT_INTR:
		return true;
	case KVM_EXIT_HLT:
		/* Only without an in-kernel irqchip; here it means a halted guest. */
		machine_end(m, MACHINE_END_SHUTDOWN);
		return false;
	case KVM_EXIT_SHUTDOWN:
	case KVM_EXIT_SYSTEM_EVENT:
		machine_end(m, MACHINE_END_SHUTDOWN);
		return false;
	case KVM_EXIT_INTERNAL_ERROR:
		machine_internal_error(m, v);
		return true;
	case KVM_EXIT_FAIL_ENTRY:
		err_set(&e, MSVMM_EKVM, "vCPU %u: KVM could not enter the guest (hardware reason 0x%llx)", v->id,
			(unsigned long long)v->run->fail_entry.hardware_entry_failure_reason);
		machine_fail(m, &e);
		return false;
	default:
		err_set(&e, MSVMM_EKVM, "vCPU %u: unhandled KVM exit reason %u", v->id, v->run->exit_reason);
		machine_fail(m, &e);
		return false;
	}
}

static void machine_sample(struct machine *m, struct vcpu *v)
{
	struct kvm_regs r;

	if (m->profile_hz && ioctl(v->fd, KVM_GET_REGS, &r) == 0)
		profile_add(&m->prof, r.rip);
}

/*
 * The kick signal stays blocked in the vCPU thread except inside KVM_RUN
 * (KVM_SET_SIGNAL_MASK), so a kick interrupts the guest and is then consumed
 * with sigtimedwait: no signal handler, no process-wide state.
 */
static int vcpu_signals_setup(struct machine *m, struct vcpu *v)
{
	/* kvm_signal_mask ends in a flexible array: build it in a plain buffer. */
	_Alignas(struct kvm_signal_mask) uint8_t buf[sizeof(struct kvm_signal_mask) + 8];
	struct kvm_signal_mask *km = (struct kvm_signal_mask *)buf;
	sigset_t block, cur;

	sigemptyset(&block);
	sigaddset(&block, m->kick_signal);
	pthread_sigmask(SIG_BLOCK, &block, &cur);
	sigdelset(&cur, m->kick_signal);
	km->len = 8; /* the kernel's sigset_t */
	memcpy(km->sigset, &cur, 8);
	return ioctl(v->fd, KVM_SET_SIGNAL_MASK, km) < 0 ? -errno : 0;
}

static int vcpu_profile_timer(struct machine *m, struct vcpu *v, timer_t *t)
{
	struct sigevent sev = { .sigev_notify = SIGEV_THREAD_ID, .sigev_signo = m->kick_signal };
	long ns = 1000000000L / (long)m->profile_hz;
	struct itimerspec its = { .it_interval = { ns / 1000000000L, ns % 1000000000L },
				  .it_value = { ns / 1000000000L, ns % 1000000000L } };

	sev._sigev_un._tid = v->tid;
	if (timer_create(CLOCK_MONOTONIC, &sev, t) < 0)
		return -errno;
	return timer_settime(*t, 0, &its, NULL) < 0 ? -errno : 0;
}

static void vcpu_consume_kicks(struct machine *m)
{
	struct timespec zero = { 0, 0 };
	sigset_t set;

	sigemptyset(&set);
	sigaddset(&set, m->kick_signal);
	while (sigtimedwait(&set, NULL, &zero) > 0)
		;
}

struct vcpu_thread_arg {
	struct machine *m;
	struct vcpu *v;
};

/* A paused machine's vCPU waits here, outside KVM_RUN, until resumed or ended. */
static void vcpu_park(struct machine *m)
{
	pthread_mutex_lock(&m->lock);
	m->nr_parked++;
	pthread_cond_broadcast(&m->cond);
	while (atomic_load(&m->pause_req) && atomic_load(&m->end) == MACHINE_RUNNING)
		pthread_cond_wait(&m->cond, &m->lock);
	m->nr_parked--;
	pthread_mutex_unlock(&m->lock);
}

static void vcpu_loop(struct machine *m, struct vcpu *v)
{
	msvmm_error e;

	while (atomic_load(&m->end) == MACHINE_RUNNING) {
		if (v->id == 0 && !m->t_first_run)
			m->t_first_run = machine_now_ns();
		if (ioctl(v->fd, KVM_RUN, 0) < 0) {
			if (errno == EINTR || errno == EAGAIN) {
				vcpu_consume_kicks(m);
				machine_sample(m, v);
				vcpu_check_halted(v);
				if (atomic_load(&m->pause_req))
					vcpu_park(m);
				continue;
			}
			err_set(&e, MSVMM_EKVM, "vCPU %u: KVM_RUN: %s", v->id, strerror(errno));
			machine_fail(m, &e);
			return;
		}
		if (!machine_exit(m, v))
			return;
	}
}

static void *vcpu_thread(void *p)
{
	struct vcpu_thread_arg *a = p;
	struct machine *m = a->m;
	struct vcpu *v = a->v;
	timer_t timer;
	bool timer_on = false;
	msvmm_error e;

	v->tid = (pid_t)syscall(SYS_gettid);
	if (vcpu_signals_setup(m, v) < 0) {
		err_set(&e, MSVMM_EKVM, "vCPU %u: KVM_SET_SIGNAL_MASK failed", v->id);
		machine_fail(m, &e);
		return NULL;
	}
	if (m->profile_hz && vcpu_profile_timer(m, v, &timer) == 0)
		timer_on = true;
	vcpu_loop(m, v);
	if (timer_on)
		timer_delete(timer);
	return NULL;
}

/*
 * A vCPU that halts with interrupts off (the guest's "halt", a stopped CPU
 * after a crash) stays inside KVM forever when the irqchip is in-kernel.
 * Once a second the watchdog kicks every vCPU, which then reports whether it
 * is halted for good; when all are, the machine has shut down.
 */
static void vcpu_check_halted(struct vcpu *v)
{
	struct kvm_mp_state mp;
	struct kvm_regs r;

	if (!atomic_exchange(&v->halt_check, 0))
		return;
	v->dead = ioctl(v->fd, KVM_GET_MP_STATE, &mp) == 0 && mp.mp_state == KVM_MP_STATE_HALTED &&
		  ioctl(v->fd, KVM_GET_REGS, &r) == 0 && !(r.rflags & (1u << 9));
}

static void machine_watchdog(struct machine *m)
{
	unsigned int dead = 0;

	for (unsigned int i = 0; i < m->nr_vcpus; i++)
		dead += atomic_load(&m->vcpus[i].dead) ? 1 : 0;
	if (dead == m->nr_vcpus) {
		machine_end(m, MACHINE_END_SHUTDOWN);
		return;
	}
	for (unsigned int i = 0; i < m->nr_vcpus; i++) {
		m->vcpus[i].halt_check = 1;
		if (m->vcpus[i].thread_started)
			pthread_kill(m->vcpus[i].thread, m->kick_signal);
	}
}

static void timespec_add_ms(struct timespec *t, uint64_t ms);

/*
 * A kick without immediate_exit: KVM first completes an exit the vCPU was
 * in the middle of (an MMIO read's data), so the state saved is whole.
 */
int machine_pause(struct machine *m, uint64_t timeout_ms)
{
	struct timespec dl;
	int rc = 0;

	atomic_store(&m->pause_req, 1);
	clock_gettime(CLOCK_MONOTONIC, &dl);
	timespec_add_ms(&dl, timeout_ms);
	pthread_mutex_lock(&m->lock);
	while (m->nr_parked < m->nr_vcpus) {
		if (atomic_load(&m->end) != MACHINE_RUNNING) {
			rc = -1;
			break;
		}
		for (unsigned int i = 0; i < m->nr_vcpus; i++)
			if (m->vcpus[i].thread_started)
				pthread_kill(m->vcpus[i].thread, m->kick_signal);
		/* Re-kick every 10 ms: a kick can land just before a vCPU checks the flag. */
		struct timespec tick;

		clock_gettime(CLOCK_MONOTONIC, &tick);
		timespec_add_ms(&tick, 10);
		pthread_cond_timedwait(&m->cond, &m->lock, &tick);
		clock_gettime(CLOCK_MONOTONIC, &tick);
		if (tick.tv_sec > dl.tv_sec || (tick.tv_sec == dl.tv_sec && tick.tv_nsec >= dl.tv_nsec)) {
			rc = -1;
			break;
		}
	}
	pthread_mutex_unlock(&m->lock);
	if (rc)
		machine_resume(m);
	return rc;
}

void machine_resume(struct machine *m)
{
	pthread_mutex_lock(&m->lock);
	atomic_store(&m->pause_req, 0);
	pthread_cond_broadcast(&m->cond);
	pthread_mutex_unlock(&m->lock);
}

static void timespec_add_ms(struct timespec *t, uint64_t ms)
{
	t->tv_sec += (time_t)(ms / 1000);
	t->tv_nsec += (long)(ms % 1000) * 1000000L;
	if (t->tv_nsec >= 1000000000L) {
		t->tv_sec++;
		t->tv_nsec -= 1000000000L;
	}
}

static void machine_wait(struct machine *m, uint64_t timeout_ms)
{
	uint64_t deadline = timeout_ms ? machine_now_ns() + timeout_ms * 1000000ULL : 0;
	struct timespec tick;

	pthread_mutex_lock(&m->lock);
	while (atomic_load(&m->end) == MACHINE_RUNNING) {
		clock_gettime(CLOCK_MONOTONIC, &tick);
		timespec_add_ms(&tick, MACHINE_WATCHDOG_MS);
		if (pthread_cond_timedwait(&m->cond, &m->lock, &tick) != ETIMEDOUT)
			continue;
		pthread_mutex_unlock(&m->lock);
		if (deadline && machine_now_ns() >= deadline)
			machine_end(m, MACHINE_END_TIMEOUT);
		else
			machine_watchdog(m);
		pthread_mutex_lock(&m->lock);
	}
	pthread_mutex_unlock(&m->lock);
}

enum machine_end machine_run(struct machine *m, uint64_t timeout_ms)
{
	struct vcpu_thread_arg args[MACHINE_MAX_VCPUS];
	sigset_t kick, old;
	msvmm_error e;

	if (evloop_start(&m->loop) < 0) {
		err_set(&e, MSVMM_EINTERNAL, "cannot start the device thread");
		machine_fail(m, &e);
		return MACHINE_END_ERROR;
	}
	/* Threads start with the kick blocked: a kick before set-up must not kill the process. */
	sigemptyset(&kick);
	sigaddset(&kick, m->kick_signal);
	pthread_sigmask(SIG_BLOCK, &kick, &old);
	for (unsigned int i = 0; i < m->nr_vcpus; i++) {
		args[i] = (struct vcpu_thread_arg){ m, &m->vcpus[i] };
		if (pthread_create(&m->vcpus[i].thread, NULL, vcpu_thread, &args[i]) != 0) {
			err_set(&e, MSVMM_EINTERNAL, "cannot start vCPU thread %u", i);
			machine_fail(m, &e);
			break;
		}
		m->vcpus[i].thread_started = 1;
	}
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	machine_wait(m, timeout_ms);
	machine_kick_all(m);
	for (unsigned int i = 0; i < m->nr_vcpus; i++)
		if (m->vcpus[i].thread_started) {
			pthread_join(m->vcpus[i].thread, NULL);
			m->vcpus[i].thread_started = 0;
		}
	evloop_stop(&m->loop);
	/* Nobody serves the guest's side any more: callers holding connections see EOF. */
	if (m->vsock)
		virtio_vsock_close_all(m->vsock);
	return (enum machine_end)atomic_load(&m->end);
}

static void machine_blk_release(void *owner)
{
	struct virtio_blk *b = owner;
	int fd = b->fd;

	virtio_blk_destroy(b);
	close(fd);
	free(b);
}

int machine_add_blk(struct machine *m, int fd, bool read_only, const char *serial, msvmm_error *err)
{
	struct virtio_blk *b = calloc(1, sizeof(*b));
	int rc;

	if (!b) {
		close(fd);
		return err_set(err, MSVMM_ENOMEM, "out of memory for a disk");
	}
	rc = virtio_blk_init(b, &m->vm.mem, fd, read_only, serial);
	if (rc) {
		close(fd);
		free(b);
		return err_set(err, MSVMM_EIO, "disk %s: %s", serial, strerror(-rc));
	}
	return virtio_slots_add(&m->virtio, &m->vm, &m->mmio, &m->loop, &b->mmio, 1, b,
				machine_blk_release, err);
}

static void machine_vsock_release(void *owner)
{
	virtio_vsock_destroy(owner);
	free(owner);
}

static void machine_vsock_event(void *opaque, uint32_t events)
{
	virtio_vsock_poll(opaque);
}

int machine_add_vsock(struct machine *m, uint64_t cid, msvmm_error *err)
{
	struct virtio_vsock *v = calloc(1, sizeof(*v));
	int rc;

	if (!v)
		return err_set(err, MSVMM_ENOMEM, "out of memory for the vsock device");
	rc = virtio_vsock_init(v, &m->vm.mem, cid);
	if (rc) {
		free(v);
		return err_set(err, MSVMM_EIO, "vsock device: %s", strerror(-rc));
	}
	rc = virtio_slots_add(&m->virtio, &m->vm, &m->mmio, &m->loop, &v->mmio, 3, v, machine_vsock_release, err);
	if (rc < 0)
		return rc;
	m->vsock = v;
	if (evloop_add(&m->loop, virtio_vsock_fd(v), EPOLLIN, machine_vsock_event, v) < 0)
		return err_set(err, MSVMM_EINTERNAL, "vsock device: cannot watch its sockets");
	return 0;
}

/* Wait on the machine's cond until the agent is up (ready), the machine ended, or timeout. */
static int machine_wait_for(struct machine *m, bool ready, uint64_t timeout_ms)
{
	struct timespec dl;
	int rc = 0;

	clock_gettime(CLOCK_MONOTONIC, &dl);
	timespec_add_ms(&dl, timeout_ms);
	pthread_mutex_lock(&m->lock);
	for (;;) {
		if (ready && atomic_load(&m->t_ready)) {
			rc = 1;
			break;
		}
		if (atomic_load(&m->end) != MACHINE_RUNNING) {
			rc = -1;
			break;
		}
		if (pthread_cond_timedwait(&m->cond, &m->lock, &dl) == ETIMEDOUT)
			break;
	}
	pthread_mutex_unlock(&m->lock);
	return rc;
}

int machine_wait_ready(struct machine *m, uint64_t timeout_ms)
{
	return machine_wait_for(m, true, timeout_ms);
}

bool machine_wait_end(struct machine *m, uint64_t timeout_ms)
{
	return machine_wait_for(m, false, timeout_ms) < 0;
}
