/* SPDX-License-Identifier: Apache-2.0 */
/* The sandbox object behind msvmm_sandbox (private to the library). */
#ifndef MSVMM_LIB_SANDBOX_H
#define MSVMM_LIB_SANDBOX_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>

#include "err.h"
#include "msvmm.h"

struct msvmm_sandbox {
	msvmm_vm *vm;
	pthread_t runner;   /* runs msvmm_vm_run() until the machine ends */
	bool running;       /* runner not joined yet */
	_Atomic bool ended; /* msvmm_vm_run() returned: run_rc, run_err are final */
	int run_rc;         /* what msvmm_vm_run() returned, once joined */
	msvmm_result run_res;
	msvmm_error run_err;
	char **env;         /* every command's default environment (config) */
	char *workdir;      /* every command's default directory, or NULL */
	/*
	 * Restored, and no request has yet been STARTED with an S record (the
	 * host's clock and a fresh seed; and for run-code, the interpreter's
	 * generator reseeded): the next requests carry one.
	 */
	_Atomic bool restore_owed, runtime_reseed_owed;
};

/*
 * Why the VM ended, when it has or does within a few seconds (a command's
 * connection ended early): into err; else false.
 */
bool sandbox_ended(struct msvmm_sandbox *sb, msvmm_error *err);

/* Room for an S record: "REALTIME_NS:SEED_HEX". */
#define SANDBOX_RESTORE_REC_MAX 96

/*
 * The S record the next request (code: a run-code call) must carry, built
 * in buf; NULL when it needs none, or with *failed set when the host had no
 * random bytes (errno says why).
 */
const char *sandbox_restore_record(struct msvmm_sandbox *sb, bool code, char *buf, size_t size, bool *failed);

/* A request with an S record was STARTED: the guest has taken it. */
void sandbox_restore_taken(struct msvmm_sandbox *sb, bool code);

#endif
