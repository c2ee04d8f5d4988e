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
};

/*
 * Why the VM ended, when it has or does within a few seconds (a command's
 * connection ended early): into err; else false.
 */
bool sandbox_ended(struct msvmm_sandbox *sb, msvmm_error *err);

#endif
