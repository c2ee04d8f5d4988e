/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Runtimes: the long-lived interpreters that RUNCODE hands code to
 * (lib/agent-protocol.md).  One interpreter per runtime per sandbox,
 * started by the first call that needs it and kept for every later one, so
 * that state persists between calls.  One call uses a runtime at a time:
 * the others wait for its lock.  guest-init/runtime.c says how the pieces
 * (a directory of FIFOs, a keeper process, a driver program) fit together.
 */
#ifndef MSVMM_RUNTIME_H
#define MSVMM_RUNTIME_H

#include <stddef.h>
#include <stdint.h>
#include <sys/types.h>

/* Where runtimes keep their FIFOs and lock, unless the agent's hooks say otherwise. */
#define RUNTIME_DIR_DEFAULT "/run/msvmm/runtimes"
/* A call waiting for a busy runtime tries its lock again this often. */
#define RUNTIME_LOCK_RETRY_MS 10
#define RUNTIME_NAME_MAX 32
/*
 * Set in a code block's length word (fd 3): reseed the interpreter's own
 * random generator before the block, the first call after a restore.
 */
#define RUNTIME_F_RESEED 0x80000000u

/* An entry of the agent's runtime table (python; node would be one more). */
struct runtime_def;

/* The table entry named name, or NULL. */
const struct runtime_def *runtime_find(const char *name);
/* The names in the table, ", "-separated, into buf (for messages). */
void runtime_names(char *buf, size_t len);

/* One call's hold on its runtime. */
struct runtime_call {
	const struct runtime_def *def;
	char dir[256];		/* <root>/<name> */
	int lock_fd;		/* dir/lock, flock()ed while held; -1 before */
	int status_fd;		/* the status FIFO's read end: 8-byte records */
	pid_t pid;		/* the interpreter, leader of its process group */
	int running;		/* code handed over, no DONE or ENDED read yet */
};

/* The fds a call pumps, the session's to close: code in, output out. */
struct runtime_fds {
	int code;		/* to the interpreter's fd 3, non-blocking */
	int out, err;		/* its stdout and stderr, non-blocking */
};

void runtime_call_init(struct runtime_call *c);
/*
 * Take the lock of runtime def under root without waiting: 0 held, 1 held
 * by another call, -1 failed (errno).
 */
int runtime_trylock(struct runtime_call *c, const char *root, const struct runtime_def *def);
/*
 * With the lock: reach the interpreter, starting it (program, env,
 * workdir: used only when this call starts it) if it is not running, and
 * open its streams into fds.  NULL, or what could not be done (errno set).
 * notice gets a line for the call's stderr when the runtime's state was
 * lost since the last call ("" otherwise).
 */
const char *runtime_attach(struct runtime_call *c, const char *program, char *const *env,
			   const char *workdir, struct runtime_fds *fds, char *notice, size_t len);
/*
 * status_fd is readable: 1 when the call is over (*status in EXIT's
 * encoding; *ended: the interpreter itself ended, its state is gone, and
 * notice says so for the call's stderr), else 0.
 */
int runtime_read_status(struct runtime_call *c, uint32_t *status, int *ended, char *notice, size_t len);
/*
 * Let go of the runtime.  A call still running (the host left) is
 * interrupted with SIGINT first, its output (out_fd, err_fd: the session's
 * ends, or -1) dropped; if it does not finish within a grace period the
 * interpreter is killed, and the next call starts a new one.
 */
void runtime_release(struct runtime_call *c, int out_fd, int err_fd);

#endif
