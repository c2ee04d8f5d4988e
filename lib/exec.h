/* SPDX-License-Identifier: Apache-2.0 */
/* msvmm_exec below the sandbox: over any connected agent socket (tests), commands and run-code. */
#ifndef MSVMM_LIB_EXEC_H
#define MSVMM_LIB_EXEC_H

#include "msvmm.h"

/* What a command gets when its options do not say. */
struct exec_defaults {
	char *const *env;        /* KEY=VALUE, NULL-terminated, or NULL */
	const char *workdir;     /* or NULL */
	const char *default_cmd; /* argv[0] when the options have no argv */
	const char *restore;     /* an S record's value (restored sandboxes), or NULL */
};

/* What a run-code call sends: the runtime, its interpreter in the guest, the code. */
struct code_spec {
	const char *runtime;
	const char *program;
	const char *text;
	size_t len;
};

/*
 * msvmm_exec_start() over fd, a stream socket already connected to an
 * agent; fd belongs to the exec from here on (closed on failure too).
 */
int exec_start_fd(int fd, const struct exec_defaults *d, const msvmm_exec_opts *o, msvmm_exec **out,
		  msvmm_error *err);
/* msvmm_run_code_start() over fd, for the code c (o may be NULL), as exec_start_fd(). */
int code_start_fd(int fd, const struct exec_defaults *d, const struct code_spec *c, const msvmm_exec_opts *o,
		  msvmm_exec **out, msvmm_error *err);

#endif
