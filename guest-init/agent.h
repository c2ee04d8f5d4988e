/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The guest side of the msvmm agent protocol (lib/agent-protocol.md): the
 * vsock server that guest-init runs in agent mode, one process per
 * connection.  Also built into the host unit tests, which drive
 * agent_session() over a socketpair.
 */
#ifndef MSVMM_AGENT_H
#define MSVMM_AGENT_H

/* What the embedding program does at the few points the protocol needs it. */
struct agent_hooks {
	/* The listening socket is up (init: the control page's READY). */
	void (*ready)(void *arg);
	/* SHUTDOWN: sync and power off.  May return (the tests' hook does). */
	void (*shutdown)(void *arg);
	void *arg;
	/* Where user names are looked up; NULL: /etc/passwd. */
	const char *passwd;
	/* Where runtimes (RUNCODE) keep their state; NULL: RUNTIME_DIR_DEFAULT (runtime.h). */
	const char *runtime_dir;
	/*
	 * An 'S' record's value (already checked), instead of setting the
	 * clock and reseeding the RNG (restored_apply()): 0 or an errno.
	 */
	int (*restore)(void *arg, const char *rec);
};

/* How agent_session() ended. */
enum agent_end {
	AGENT_END_EXIT = 0,     /* the command ran and EXIT was sent */
	AGENT_END_SHUTDOWN = 1, /* SHUTDOWN, and the hook returned */
	AGENT_END_ERROR = 2,    /* an ERROR frame was sent or received */
	AGENT_END_HANGUP = 3,   /* the host closed the connection (or it broke) */
};

/*
 * Serve one connection: HELLO, then one EXEC ... EXIT, one RUNCODE ... EXIT
 * or one SHUTDOWN.
 * base_env (NULL-terminated, may be NULL) is every command's environment
 * before its E records.  fd is closed before returning; a command still
 * running then has been killed with its process group and reaped.
 *
 * One session per process: the buffers are static, and the session blocks
 * SIGCHLD and SIGPIPE (the command starts with an empty signal mask).
 * Fds 0-2 must be open (the command's stdio is dup2()ed onto them from
 * fds the agent opens, which must not be among them).
 */
enum agent_end agent_session(int fd, char *const *base_env, const struct agent_hooks *hooks);

/*
 * Accept connections on the listening socket lfd forever, one forked
 * agent_session() each; reap every child, including orphans when the
 * caller is PID 1.  Calls hooks->ready first.  Returns -1 (errno set)
 * only when it cannot go on.
 */
int agent_serve(int lfd, char *const *base_env, const struct agent_hooks *hooks);

/* Listen on vsock port AGENT_PORT, then agent_serve(). */
int agent_listen_loop(char *const *base_env, const struct agent_hooks *hooks);

#endif
