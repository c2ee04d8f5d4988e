// SPDX-License-Identifier: Apache-2.0
/*
 * Runtimes (runtime.h): the interpreters behind RUNCODE.  Agent sessions
 * are short-lived processes, one per connection, so nothing of a runtime
 * lives in them.  A runtime is a directory, <root>/<name>/:
 *
 *   lock     flock()ed by the one call using the runtime
 *   pid      the interpreter's pid (and process group)
 *   busy     there while a call's code runs; a call that finds it, and no
 *            call running, knows a session died mid-call: the interpreter's
 *            state is anyone's guess, so it is restarted
 *   in       FIFO: code blocks for the interpreter's fd 3
 *   out err  FIFOs: its stdout and stderr
 *   status   FIFO: 8-byte records from its fd 4 (DONE after each block) and
 *            from its keeper (STARTED or FAILED, then ENDED)
 *
 * The keeper is a fork of the session that starts the runtime and the
 * interpreter's parent: it reports whether the exec worked and, when the
 * interpreter ends, how (its wait status), so a call learns that its
 * interpreter died and of what.  Keeper and interpreter hold the status
 * FIFO open for writing: a call that reads EOF there knows both are gone.
 * Each start makes new FIFOs, so processes an old interpreter left behind
 * cannot write into the new one's streams.  The interpreter holds its
 * FIFOs read-write, so it never sees EOF or EPIPE between calls; output it
 * writes between calls (a background thread) waits in the FIFO, up to its
 * 64 KiB, for the next call.
 *
 * The driver is a program in the runtime's language, given to the
 * interpreter as text (python3 -c DRIVER): it unblocks SIGINT, reads code
 * blocks, runs them in one namespace and writes DONE(status).  Adding a runtime is a table
 * entry and a driver (runtime_python.py says what a driver does).
 */
#include "runtime.h"
#include "agent_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/file.h>
#include <sys/prctl.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

/* Status FIFO records: le32 kind, le32 value; 8 bytes, so each write is atomic. */
enum { REC_DONE = 0, REC_ENDED = 1, REC_STARTED = 2, REC_FAILED = 3 };
#define REC_SIZE 8
/* What FAILED's value (step << 16 | errno) says failed before the interpreter ran. */
enum { STEP_EXEC = 0, STEP_CHDIR = 1, STEP_SETUP = 2 };

/* How long a keeper may take to report the exec. */
#define START_TIMEOUT_MS 10000
/* An abandoned call gets this long to answer SIGINT before its interpreter is killed. */
#define INT_GRACE_MS 2000
/* How long a killed interpreter's end is waited for. */
#define END_WAIT_MS 2000
/* A keeper closes at most this many fds where close_range() is missing. */
#define CLOSE_MAX 65536

#define PATH_SIZE (sizeof(((struct runtime_call *)0)->dir) + 16)

struct runtime_def {
	const char *name;
	const char *text_flag;	/* the interpreter's option for a program given as text */
	const char *driver;	/* that program */
};

/* guest-init/runtime_python.py as it is; builds run from the repository root. */
extern const char runtime_python_driver[] __attribute__((visibility("hidden")));
__asm__(".pushsection .rodata\n"
	".globl runtime_python_driver\n"
	".hidden runtime_python_driver\n"
	".type runtime_python_driver, @object\n"
	"runtime_python_driver:\n"
	".incbin \"guest-init/runtime_python.py\"\n"
	".byte 0\n"
	".size runtime_python_driver, . - runtime_python_driver\n"
	".popsection\n");

static const struct runtime_def runtimes[] = {
	{ "python", "-c", runtime_python_driver },
	/*
	 * node: { "node", "-e", runtime_node_driver }, a runtime_node.js that
	 * reads fd 3 and writes fd 4 as runtime_python.py does, and
	 * runtime=node:/usr/bin/node in the image's image.conf.
	 */
};

const struct runtime_def *runtime_find(const char *name)
{
	for (size_t i = 0; i < sizeof(runtimes) / sizeof(runtimes[0]); i++)
		if (!strcmp(runtimes[i].name, name))
			return &runtimes[i];
	return NULL;
}

void runtime_names(char *buf, size_t len)
{
	size_t off = 0;

	buf[0] = '\0';
	for (size_t i = 0; i < sizeof(runtimes) / sizeof(runtimes[0]) && off < len; i++)
		off += (size_t)snprintf(buf + off, len - off, "%s%s", i ? ", " : "", runtimes[i].name);
}

void runtime_call_init(struct runtime_call *c)
{
	memset(c, 0, sizeof(*c));
	c->lock_fd = c->status_fd = -1;
}

/* --- small pieces ------------------------------------------------------------ */

static void rt_path(const struct runtime_call *c, const char *leaf, char out[PATH_SIZE])
{
	snprintf(out, PATH_SIZE, "%s/%s", c->dir, leaf);
}

static long long now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (long long)ts.tv_sec * 1000 + ts.tv_nsec / 1000000;
}

static int rec_write(int fd, uint32_t kind, uint32_t value)
{
	uint8_t r[REC_SIZE];

	agent_put32(r, kind);
	agent_put32(r + 4, value);
	return write(fd, r, sizeof(r)) == (ssize_t)sizeof(r) ? 0 : -1;
}

/* The next record: 1, 0 when none is there yet, -1 at EOF (no writer left) or a torn one. */
static int rec_read(int fd, uint32_t *kind, uint32_t *value)
{
	uint8_t r[REC_SIZE];
	ssize_t n;

	do
		n = read(fd, r, sizeof(r));
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n != (ssize_t)sizeof(r))
		return -1;
	*kind = agent_get32(r);
	*value = agent_get32(r + 4);
	return 1;
}

static int wait_readable(int fd, int ms)
{
	struct pollfd p = { fd, POLLIN, 0 };
	long long until = now_ms() + ms;
	int r;

	do
		r = poll(&p, 1, (int)(until - now_ms() > 0 ? until - now_ms() : 0));
	while (r < 0 && errno == EINTR);
	return r > 0;
}

/* mkdir -p, each missing directory with mode. */
static int mkdirs(const char *path, mode_t mode)
{
	char p[PATH_SIZE];

	if ((size_t)snprintf(p, sizeof(p), "%s", path) >= sizeof(p)) {
		errno = ENAMETOOLONG;
		return -1;
	}
	for (char *s = p + 1;; s++) {
		char c = *s;

		if (c != '/' && c != '\0')
			continue;
		*s = '\0';
		if (mkdir(p, mode) < 0 && errno != EEXIST)
			return -1;
		if (!c)
			return 0;
		*s = c;
	}
}

static pid_t pid_read(const struct runtime_call *c)
{
	char path[PATH_SIZE], buf[24], *end;
	int fd;
	ssize_t n;
	long v;

	rt_path(c, "pid", path);
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -1;
	n = read(fd, buf, sizeof(buf) - 1);
	close(fd);
	if (n <= 0)
		return -1;
	buf[n] = '\0';
	v = strtol(buf, &end, 10);
	return v > 1 && *end == '\n' ? (pid_t)v : -1;
}

/* Written whole or not at all: a session that dies halfway leaves the old one. */
static int pid_write(const struct runtime_call *c, pid_t pid)
{
	char tmp[PATH_SIZE], path[PATH_SIZE], buf[24];
	int n = snprintf(buf, sizeof(buf), "%d\n", (int)pid), fd, ok;

	rt_path(c, "pid.new", tmp);
	rt_path(c, "pid", path);
	fd = open(tmp, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
	if (fd < 0)
		return -1;
	ok = write(fd, buf, (size_t)n) == n;
	close(fd);
	return ok ? rename(tmp, path) : -1;
}

static void file_set(const struct runtime_call *c, const char *leaf, int on)
{
	char path[PATH_SIZE];
	int fd;

	rt_path(c, leaf, path);
	if (!on) {
		unlink(path);
		return;
	}
	fd = open(path, O_WRONLY | O_CREAT | O_CLOEXEC, 0600);
	if (fd >= 0)
		close(fd);
}

static int file_has(const struct runtime_call *c, const char *leaf)
{
	char path[PATH_SIZE];

	rt_path(c, leaf, path);
	return access(path, F_OK) == 0;
}

/* The interpreter is gone and every call has heard of it (or will hear it from us). */
static void runtime_forget(struct runtime_call *c)
{
	file_set(c, "pid", 0);
	file_set(c, "busy", 0);
	c->running = 0;
}

/* --- the lock ------------------------------------------------------------------ */

int runtime_trylock(struct runtime_call *c, const char *root, const struct runtime_def *def)
{
	char path[PATH_SIZE];

	if (c->lock_fd < 0) {
		c->def = def;
		if ((size_t)snprintf(c->dir, sizeof(c->dir), "%s/%s", root, def->name) >= sizeof(c->dir)) {
			errno = ENAMETOOLONG;
			return -1;
		}
		/* Root only: whoever writes into the FIFOs runs code as the interpreter. */
		if (mkdirs(c->dir, 0700) < 0)
			return -1;
		rt_path(c, "lock", path);
		c->lock_fd = open(path, O_RDWR | O_CREAT | O_CLOEXEC, 0600);
		if (c->lock_fd < 0)
			return -1;
	}
	if (flock(c->lock_fd, LOCK_EX | LOCK_NB) == 0)
		return 0;
	return errno == EWOULDBLOCK ? 1 : -1;
}

/* --- starting an interpreter ----------------------------------------------------- */

/* Nothing of the session survives in a keeper: not its connection, not the runtime's lock. */
static void close_all(void)
{
	if (close_range(0, ~0U, 0) == 0)
		return;
	for (int fd = 0; fd < CLOSE_MAX; fd++)
		close(fd);
}

/*
 * The interpreter: its own session and group (signals for the call go to
 * the group), stdin /dev/null (the keeper's fd 0), 1 and 2 its output
 * FIFOs, 3 the code FIFO, 4 the status FIFO, then the driver.  SIGINT
 * stays blocked across the exec: the driver unblocks it once its handler
 * is in place, so a timeout that comes while the interpreter starts up
 * interrupts the first block instead of killing the interpreter.  A
 * failure before the exec goes to the keeper through fail_fd.
 */
static void __attribute__((noreturn)) interp_exec(const struct runtime_call *c, const char *program,
						  char *const *env, const char *workdir, int status_fd,
						  int fail_fd)
{
	static const char *const fifos[] = { "out", "err", "in" };
	char *argv[] = { (char *)program, (char *)c->def->text_flag, (char *)c->def->driver, NULL };
	char path[PATH_SIZE];
	int fds[5] = { -1, -1, -1, -1, -1 };
	uint32_t why = STEP_SETUP << 16;
	sigset_t sigint;

	setsid();
	/* It dies with its keeper, so that its end is always reported. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	/* Above 0-4 first, so that no dup2() below lands on an fd still to be moved. */
	fail_fd = fcntl(fail_fd, F_DUPFD_CLOEXEC, 10);
	fds[4] = fcntl(status_fd, F_DUPFD_CLOEXEC, 10);
	for (int i = 0; i < 3; i++) {
		int fd;

		rt_path(c, fifos[i], path);
		fd = open(path, O_RDWR | O_CLOEXEC);
		fds[i + 1] = fd < 0 ? -1 : fcntl(fd, F_DUPFD_CLOEXEC, 10);
	}
	for (int i = 1; i < 5; i++)
		if (fds[i] < 0 || dup2(fds[i], i) < 0)
			goto fail;
	why = STEP_CHDIR << 16;
	if (chdir(workdir ? workdir : "/") < 0)
		goto fail;
	sigemptyset(&sigint);
	sigaddset(&sigint, SIGINT);
	sigprocmask(SIG_SETMASK, &sigint, NULL);
	why = STEP_EXEC << 16;
	execve(program, argv, env);
fail:
	why |= (uint32_t)errno & 0xffff;
	(void)!write(fail_fd, &why, sizeof(why));
	_exit(127);
}

/* The keeper: start the interpreter, say so (or why not), wait for its end, say how. */
static void __attribute__((noreturn)) keeper_main(const struct runtime_call *c, const char *program,
						  char *const *env, const char *workdir)
{
	char path[PATH_SIZE];
	int status_fd, fail[2], ws;
	uint32_t why;
	ssize_t n;
	pid_t pid;

	setsid();
	close_all();
	if (open("/dev/null", O_RDWR) != 0 || dup(0) != 1 || dup(0) != 2)
		_exit(1);
	rt_path(c, "status", path);
	status_fd = open(path, O_RDWR | O_CLOEXEC);
	if (status_fd < 0 || pipe2(fail, O_CLOEXEC) < 0)
		_exit(1);
	pid = fork();
	if (pid == 0)
		interp_exec(c, program, env, workdir, status_fd, fail[1]);
	close(fail[1]);
	if (pid < 0) {
		rec_write(status_fd, REC_FAILED, STEP_SETUP << 16 | ((uint32_t)errno & 0xffff));
		_exit(1);
	}
	/* EOF: the exec worked (fail[1] was close-on-exec). */
	do
		n = read(fail[0], &why, sizeof(why));
	while (n < 0 && errno == EINTR);
	if (n == (ssize_t)sizeof(why)) {
		waitpid(pid, NULL, 0);
		rec_write(status_fd, REC_FAILED, why);
		_exit(0);
	}
	rec_write(status_fd, REC_STARTED, (uint32_t)pid);
	while (waitpid(pid, &ws, 0) < 0 && errno == EINTR)
		;
	rec_write(status_fd, REC_ENDED, agent_exit_status(ws));
	_exit(0);
}

/* What a FAILED record says could not be used. */
static const char *start_failure(uint32_t value, const char *program, const char *workdir)
{
	errno = (int)(value & 0xffff);
	switch (value >> 16) {
	case STEP_EXEC:
		return program;
	case STEP_CHDIR:
		return workdir ? workdir : "/";
	default:
		return "setting up its streams";
	}
}

/* New FIFOs and a keeper, which starts the interpreter; NULL or what failed. */
static const char *runtime_start(struct runtime_call *c, const char *program, char *const *env,
				 const char *workdir)
{
	static const char *const fifos[] = { "in", "out", "err", "status" };
	char path[PATH_SIZE];
	uint32_t kind, value;
	pid_t keeper;

	for (size_t i = 0; i < sizeof(fifos) / sizeof(fifos[0]); i++) {
		rt_path(c, fifos[i], path);
		if ((unlink(path) < 0 && errno != ENOENT) || mkfifo(path, 0600) < 0)
			return "mkfifo";
	}
	rt_path(c, "status", path);
	c->status_fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (c->status_fd < 0)
		return "the status FIFO";
	keeper = fork();
	if (keeper == 0)
		keeper_main(c, program, env, workdir);
	if (keeper < 0)
		return "fork";
	if (!wait_readable(c->status_fd, START_TIMEOUT_MS) || rec_read(c->status_fd, &kind, &value) <= 0) {
		errno = ETIMEDOUT;
		return "its keeper did not report the start";
	}
	if (kind == REC_FAILED)
		return start_failure(value, program, workdir);
	c->pid = (pid_t)value;
	if (kind != REC_STARTED || c->pid <= 1) {
		errno = EPROTO;
		return "its keeper";
	}
	return pid_write(c, c->pid) < 0 ? "its pid file" : NULL;
}

/* --- finding it again ------------------------------------------------------------ */

/* Is an interpreter there (1: status_fd open, pid known)?  EOF on the status FIFO: no. */
static int runtime_live(struct runtime_call *c)
{
	char path[PATH_SIZE];
	uint32_t kind = 0, value;
	int r;

	c->pid = pid_read(c);
	rt_path(c, "status", path);
	c->status_fd = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (c->status_fd < 0)
		return 0;
	/* An ENDED nobody read says it too (the interpreter died between calls). */
	while ((r = rec_read(c->status_fd, &kind, &value)) > 0 && kind != REC_ENDED)
		;
	if (r == 0 && c->pid > 0)
		return 1;
	close(c->status_fd);
	c->status_fd = -1;
	return 0;
}

/* SIGKILL to the interpreter's group; its keeper's ENDED (or EOF) is waited for a while. */
static void runtime_kill(struct runtime_call *c)
{
	uint32_t kind = 0, value;

	if (c->pid > 0 && kill(-c->pid, SIGKILL) < 0)
		kill(c->pid, SIGKILL);
	while (c->status_fd >= 0 && kind != REC_ENDED && wait_readable(c->status_fd, END_WAIT_MS) &&
	       rec_read(c->status_fd, &kind, &value) > 0)
		;
	if (c->status_fd >= 0)
		close(c->status_fd);
	c->status_fd = -1;
	runtime_forget(c);
}

/* The session's ends of the streams; -1 when no interpreter reads its code FIFO. */
static int runtime_streams(const struct runtime_call *c, struct runtime_fds *fds)
{
	char path[PATH_SIZE];

	rt_path(c, "in", path);
	/* Non-blocking open for writing: ENXIO when nobody has it open to read. */
	fds->code = open(path, O_WRONLY | O_NONBLOCK | O_CLOEXEC);
	rt_path(c, "out", path);
	fds->out = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	rt_path(c, "err", path);
	fds->err = open(path, O_RDONLY | O_NONBLOCK | O_CLOEXEC);
	if (fds->code >= 0 && fds->out >= 0 && fds->err >= 0)
		return 0;
	for (int *fd = &fds->code; fd <= &fds->err; fd++) {
		if (*fd >= 0)
			close(*fd);
		*fd = -1;
	}
	return -1;
}

const char *runtime_attach(struct runtime_call *c, const char *program, char *const *env,
			   const char *workdir, struct runtime_fds *fds, char *notice, size_t len)
{
	int live = runtime_live(c), had_one = c->pid > 0, busy = live && file_has(c, "busy");
	const char *name = c->def->name, *why;

	notice[0] = '\0';
	fds->code = fds->out = fds->err = -1;
	if (live && !busy && runtime_streams(c, fds) == 0)
		goto ready;
	if (live) {
		/* A session died with its call running: what the interpreter holds now is anyone's guess. */
		runtime_kill(c);
		snprintf(notice, len, "msvmm: the %s runtime %s: it was restarted, its state is lost\n", name,
			 busy ? "was left busy by a call that lost its connection" : "could not be reached");
	} else if (had_one) {
		snprintf(notice, len, "msvmm: the %s runtime had ended since the previous call: a new one was "
			 "started, its state is lost\n", name);
	}
	why = runtime_start(c, program, env, workdir);
	if (!why && runtime_streams(c, fds) < 0)
		why = "its FIFOs";
	if (why)
		return why;
ready:
	/* Until DONE or ENDED: a session that dies leaves the mark for the next call. */
	file_set(c, "busy", 1);
	c->running = 1;
	return NULL;
}

/* --- a call's end ---------------------------------------------------------------- */

/* Statuses EXIT can carry (the host refuses others); the driver's fd 4 is the user's to misuse. */
static int status_ok(uint32_t s)
{
	return !(s & ~(AGENT_EXIT_SIGNALED | 0xffu)) && (!(s & AGENT_EXIT_SIGNALED) || (s & 0xff));
}

int runtime_read_status(struct runtime_call *c, uint32_t *status, int *ended, char *notice, size_t len)
{
	uint32_t kind = REC_ENDED, value = AGENT_EXIT_SIGNALED | SIGKILL;
	int r = rec_read(c->status_fd, &kind, &value);

	/* EOF without ENDED: its keeper was killed too; as good as killed. */
	if (r == 0 || (kind != REC_DONE && kind != REC_ENDED))
		return 0;
	*ended = kind == REC_ENDED || r < 0;
	*status = status_ok(value) ? value : 1;
	c->running = 0;
	if (!*ended) {
		file_set(c, "busy", 0);
		return 1;
	}
	runtime_forget(c);
	snprintf(notice, len, "msvmm: the %s runtime ended (%s %u): its state is lost, the next call starts a new one\n",
		 c->def->name, *status & AGENT_EXIT_SIGNALED ? "killed by signal" : "exit status", *status & 0xff);
	return 1;
}

/* Read and drop what fd holds now; -1 once it is at its end. */
static int drop_output(int fd)
{
	char buf[4096];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0)
		;
	return n == 0 ? -1 : fd;
}

/* The host left mid-call: SIGINT, and the grace period for DONE, its output dropped meanwhile. */
static void runtime_abandon(struct runtime_call *c, int out_fd, int err_fd)
{
	long long until = now_ms() + INT_GRACE_MS;
	char notice[160];
	uint32_t status;
	int ended;

	if (kill(-c->pid, SIGINT) < 0)
		kill(c->pid, SIGINT);
	while (c->running && now_ms() < until) {
		struct pollfd p[3] = { { c->status_fd, POLLIN, 0 }, { out_fd, POLLIN, 0 }, { err_fd, POLLIN, 0 } };

		if (poll(p, 3, (int)(until - now_ms())) < 0 && errno != EINTR)
			break;
		if (p[1].revents)
			out_fd = drop_output(out_fd);
		if (p[2].revents)
			err_fd = drop_output(err_fd);
		if (p[0].revents)
			runtime_read_status(c, &status, &ended, notice, sizeof(notice));
	}
	if (c->running)
		runtime_kill(c);
}

void runtime_release(struct runtime_call *c, int out_fd, int err_fd)
{
	if (c->running)
		runtime_abandon(c, out_fd, err_fd);
	if (c->status_fd >= 0)
		close(c->status_fd);
	/* The lock goes with its fd. */
	if (c->lock_fd >= 0)
		close(c->lock_fd);
	runtime_call_init(c);
}
