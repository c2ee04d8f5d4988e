// SPDX-License-Identifier: Apache-2.0
/*
 * msvmm_sandbox: a VM booted with guest-init in agent mode, run on a thread
 * of its own, that commands are sent to over vsock (lib/exec.c).  Start
 * returns once the agent listens; stop asks it to sync and power off.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>
#include <sys/random.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent_proto.h"
#include "config.h"
#include "image.h"
#include "sandbox.h"
#include "virtio_vsock.h"
#include "vm.h"

#define SANDBOX_STOP_TIMEOUT_MS 10000

static void *sandbox_runner(void *p)
{
	struct msvmm_sandbox *sb = p;

	sb->run_rc = msvmm_vm_run(sb->vm, &sb->run_res, &sb->run_err);
	atomic_store(&sb->ended, true);
	return NULL;
}

/* Random bytes a restored guest's RNG is reseeded with, and how long that may take. */
#define SANDBOX_SEED_BYTES 32
#define SANDBOX_RESTORE_EXEC_MS 30000
#define SANDBOX_RESTORE_TRIES 3
#define SANDBOX_DRAIN_MS 10000
/* How long a machine that has ended may take to hand back its result. */
#define SANDBOX_END_WAIT_MS 5000
/*
 * How long a connection that ended early waits for the machine to end too.
 * A guest that powers off or halts resets its vsock device first, and the
 * machine sees the halt only at its next watchdog round or two (1 s each).
 */
#define SANDBOX_GUEST_END_WAIT_MS 3000

bool sandbox_ended(struct msvmm_sandbox *sb, msvmm_error *err)
{
	struct machine *m = vm_machine(sb->vm);

	if (!machine_wait_end(m, SANDBOX_GUEST_END_WAIT_MS))
		return false;
	/*
	 * The machine resets its vsock connections just before msvmm_vm_run()
	 * returns, so the exec that saw its connection end is often a moment
	 * ahead of the runner: wait for the reason.
	 */
	for (int i = 0; i < SANDBOX_END_WAIT_MS && !atomic_load(&sb->ended); i++)
		usleep(1000);
	if (!atomic_load(&sb->ended))
		return false;
	if (sb->run_rc < 0)
		err_set(err, sb->run_err.code, "the VM stopped while the command ran: %s", sb->run_err.message);
	else
		err_set(err, MSVMM_EGUEST, "guest-init stopped (status %d) while the command ran",
			sb->run_res.status);
	return true;
}

static void sandbox_free(struct msvmm_sandbox *sb)
{
	strv_free(sb->env);
	free(sb->workdir);
	msvmm_vm_destroy(sb->vm);
	free(sb);
}

/* Join the VM thread (the machine has ended or been told to). */
static void sandbox_join(struct msvmm_sandbox *sb)
{
	if (!sb->running)
		return;
	pthread_join(sb->runner, NULL);
	sb->running = false;
}

/* The machine ended before its agent came up: say why as well as we know. */
static int sandbox_boot_failed(struct msvmm_sandbox *sb, msvmm_error *err)
{
	sandbox_join(sb);
	if (sb->run_rc < 0) {
		if (err)
			*err = sb->run_err;
		return sb->run_rc;
	}
	char line[200];

	if (uart8250_last_line(&vm_machine(sb->vm)->uart, line, sizeof(line)))
		return err_set(err, MSVMM_EGUEST, "guest-init stopped (status %d) before its agent started: %s",
			       sb->run_res.status, line);
	return err_set(err, MSVMM_EGUEST, "guest-init stopped (status %d) before its agent started",
		       sb->run_res.status);
}

static int sandbox_boot(struct msvmm_sandbox *sb, uint64_t timeout_ms, msvmm_error *err)
{
	struct machine *m = vm_machine(sb->vm);
	sigset_t all, old;
	int rc;

	/* The VM thread takes no process signals: they belong to the caller's threads. */
	sigfillset(&all);
	pthread_sigmask(SIG_BLOCK, &all, &old);
	rc = pthread_create(&sb->runner, NULL, sandbox_runner, sb);
	pthread_sigmask(SIG_SETMASK, &old, NULL);
	if (rc)
		return err_set(err, MSVMM_EINTERNAL, "cannot start the VM thread: %s", strerror(rc));
	sb->running = true;
	rc = machine_wait_ready(m, timeout_ms);
	if (rc > 0)
		return 0;
	if (rc < 0)
		return sandbox_boot_failed(sb, err);
	machine_stop(m);
	sandbox_join(sb);
	return err_set(err, MSVMM_ETIMEDOUT, "the guest agent did not start within %llu ms",
		       (unsigned long long)timeout_ms);
}

/*
 * A ready snapshot with no vsock connection needs no TRANSPORT_RESET when
 * restored: wait for the closing handshakes of the calls made so far to
 * finish, by the clock (a slow guest takes seconds).  false: some are
 * still open, and no ready snapshot should be taken from this state.
 */
static bool sandbox_wait_no_conns(struct msvmm_sandbox *sb)
{
	struct machine *m = vm_machine(sb->vm);
	uint64_t deadline = machine_now_ns() + SANDBOX_DRAIN_MS * 1000000ULL;

	while (m->vsock && virtio_vsock_nr_conns(m->vsock)) {
		if (machine_now_ns() >= deadline)
			return false;
		usleep(1000);
	}
	return true;
}

const char *sandbox_restore_record(struct msvmm_sandbox *sb, bool code, char *buf, size_t size, bool *failed)
{
	uint8_t seed[SANDBOX_SEED_BYTES];
	struct timespec now;
	int n;

	*failed = false;
	if (!atomic_load(&sb->restore_owed) && !(code && atomic_load(&sb->runtime_reseed_owed)))
		return NULL;
	if (getrandom(seed, sizeof(seed), 0) != (ssize_t)sizeof(seed)) {
		*failed = true;
		return NULL;
	}
	clock_gettime(CLOCK_REALTIME, &now);
	n = snprintf(buf, size, "%llu:", (unsigned long long)now.tv_sec * 1000000000ULL + (unsigned long long)now.tv_nsec);
	for (size_t i = 0; i < sizeof(seed) && n > 0 && (size_t)n + 2 < size; i++)
		n += snprintf(buf + n, size - (size_t)n, "%02x", seed[i]);
	return buf;
}

void sandbox_restore_taken(struct msvmm_sandbox *sb, bool code)
{
	atomic_store(&sb->restore_owed, false);
	if (code)
		atomic_store(&sb->runtime_reseed_owed, false);
}

/*
 * Every restore of a snapshot starts with its clock and random state: the
 * first requests carry the host's time and fresh random bytes (an S
 * record, guest-init/restored.c), a run-code call's also reseeds its
 * interpreter's generator.  Nothing is sent here, unless the snapshot held
 * connections: then the guest drops them (TRANSPORT_RESET), which may also
 * reset one made right after, so a first request that is only a probe
 * takes that instead of the caller's.
 */
static int sandbox_after_restore(struct msvmm_sandbox *sb, msvmm_error *err)
{
	const char *argv[] = { "/proc/1/exe", "--restored", NULL };
	msvmm_exec_opts o;
	msvmm_result res;
	int rc = 0;

	atomic_store(&sb->restore_owed, true);
	atomic_store(&sb->runtime_reseed_owed, vm_image(sb->vm)->nr_runtimes > 0);
	if (!vm_machine(sb->vm)->vsock_reset_owed)
		return 0;
	msvmm_exec_opts_init(&o);
	o.argv = argv;
	o.timeout_ms = SANDBOX_RESTORE_EXEC_MS;
	for (int i = 0; i < SANDBOX_RESTORE_TRIES; i++) {
		rc = msvmm_sandbox_exec(sb, &o, &res, err);
		if (rc != -MSVMM_EIO && rc != -MSVMM_EGUEST)
			break;
		usleep(10000);
	}
	if (!rc && res.status != 0)
		rc = err_set(err, MSVMM_EGUEST, "the restored guest could not take the host's clock and random seed "
			     "(status %d)", res.status);
	return rc;
}

int msvmm_sandbox_start(const msvmm_config *cfg, msvmm_sandbox **out, msvmm_error *err)
{
	struct msvmm_sandbox *sb;
	int rc;

	if (err)
		*err = (msvmm_error){ 0 };
	if (!cfg || !out)
		return err_set(err, MSVMM_EINVAL, "invalid arguments");
	*out = NULL;
	sb = calloc(1, sizeof(*sb));
	if (!sb)
		return err_set(err, MSVMM_ENOMEM, "out of memory");
	sb->env = strv_dup((const char *const *)cfg->env);
	sb->workdir = cfg->workdir ? strdup(cfg->workdir) : NULL;
	if (!sb->env || (cfg->workdir && !sb->workdir)) {
		sandbox_free(sb);
		return err_set(err, MSVMM_ENOMEM, "out of memory");
	}
	rc = vm_create(cfg, true, &sb->vm, err);
	if (!rc)
		rc = sandbox_boot(sb, cfg->boot_timeout_ms, err);
	/*
	 * First boot of this configuration: keep its ready state (best effort:
	 * a cache), with the image's runtime already started, so that run-code
	 * in a restored sandbox finds its interpreter up.
	 */
	if (!rc && vm_snapshot_pending(sb->vm)) {
		if (vm_image(sb->vm)->nr_runtimes)
			(void)msvmm_sandbox_run_code(sb, NULL, "pass", 4, NULL, NULL, NULL);
		/* Otherwise no ready snapshot this time: the next start boots and tries again. */
		if (sandbox_wait_no_conns(sb))
			(void)vm_snapshot_save(sb->vm, vm_snapshot_pending(sb->vm), true, NULL);
	}
	if (!rc && vm_restored(sb->vm))
		rc = sandbox_after_restore(sb, err);
	if (rc) {
		sandbox_free(sb);
		return rc;
	}
	*out = sb;
	return 0;
}

msvmm_vm *msvmm_sandbox_vm(msvmm_sandbox *sb)
{
	return sb ? sb->vm : NULL;
}

void msvmm_sandbox_timings(msvmm_sandbox *sb, msvmm_result *res)
{
	if (!sb || !res)
		return;
	vm_timings(sb->vm, res);
}

/*
 * HELLO then SHUTDOWN on a fresh agent connection; the agent answers by
 * powering off.  The caller keeps *fdp open until the VM has ended: a host
 * end closed at once would reset the connection, and a guest socket that is
 * reset drops what it has not read yet (the SHUTDOWN itself, say).
 */
static int sandbox_send_shutdown(struct msvmm_sandbox *sb, unsigned int timeout_ms, int *fdp,
				 msvmm_error *err)
{
	uint8_t msg[AGENT_HDR_SIZE * 2 + 4];
	ssize_t n;
	int fd, rc;

	rc = msvmm_vm_vsock_connect(sb->vm, AGENT_PORT, timeout_ms, &fd, err);
	if (rc)
		return rc;
	agent_hdr_pack(msg, AGENT_HELLO, 0, 4);
	agent_put32(msg + AGENT_HDR_SIZE, AGENT_PROTO_VERSION);
	agent_hdr_pack(msg + AGENT_HDR_SIZE + 4, AGENT_SHUTDOWN, 0, 0);
	n = send(fd, msg, sizeof(msg), MSG_NOSIGNAL);
	rc = n == (ssize_t)sizeof(msg) ? 0 : n < 0 ? -errno : -EIO;
	if (rc)
		close(fd);
	else
		*fdp = fd;
	return rc ? err_set(err, MSVMM_EIO, "cannot ask the guest agent to shut down: %s", strerror(-rc)) : 0;
}

int msvmm_sandbox_stop(msvmm_sandbox *sb, unsigned int timeout_ms, msvmm_error *err)
{
	struct machine *m;
	int rc = 0, fd = -1;

	if (err)
		*err = (msvmm_error){ 0 };
	if (!sb)
		return err_set(err, MSVMM_EINVAL, "invalid arguments");
	if (!sb->running)
		return 0;
	m = vm_machine(sb->vm);
	if (machine_wait_end(m, 0)) {
		/* It ended on its own, before anyone asked: that was no clean shutdown. */
		sandbox_join(sb);
		if (sb->run_rc < 0)
			return err_set(err, sb->run_err.code, "%s", sb->run_err.message);
		return err_set(err, MSVMM_EGUEST, "guest-init stopped (status %d) before the sandbox was stopped",
			       sb->run_res.status);
	}
	rc = sandbox_send_shutdown(sb, timeout_ms, &fd, err);
	if (!rc && !machine_wait_end(m, timeout_ms))
		rc = err_set(err, MSVMM_ETIMEDOUT, "the guest did not shut down within %u ms; stopped it",
			     timeout_ms);
	machine_stop(m);
	if (fd >= 0)
		close(fd);
	sandbox_join(sb);
	return rc;
}

int msvmm_sandbox_snapshot(msvmm_sandbox *sb, const char *path, msvmm_error *err)
{
	if (err)
		*err = (msvmm_error){ 0 };
	if (!sb || !path || !*path)
		return err_set(err, MSVMM_EINVAL, "invalid arguments");
	if (!sb->running || machine_wait_end(vm_machine(sb->vm), 0))
		return err_set(err, MSVMM_ESTOPPED, "the sandbox is not running");
	return vm_snapshot_save(sb->vm, path, false, err);
}

int msvmm_sandbox_restored(const msvmm_sandbox *sb)
{
	return sb && vm_restored(sb->vm) ? 1 : 0;
}

void msvmm_sandbox_destroy(msvmm_sandbox *sb)
{
	if (!sb)
		return;
	msvmm_sandbox_stop(sb, SANDBOX_STOP_TIMEOUT_MS, NULL);
	sandbox_free(sb);
}
