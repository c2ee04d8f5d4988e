// SPDX-License-Identifier: Apache-2.0
/*
 * msvmm_exec: one command in a sandbox, spoken to the guest agent over one
 * vsock connection (lib/agent-protocol.md).  msvmm_exec_wait() pumps: the
 * caller's stdin becomes STDIN frames, never more than AGENT_STDIN_WINDOW
 * bytes ahead of the agent's STDIN_ACKs (so the agent always reads on and
 * a signal behind them gets through), STDOUT/STDERR frames go to the
 * caller's fds or callback byte for byte, signals and resizes from other
 * threads are queued and sent in order, and the exec's deadline turns into
 * SIGKILL for the command's process group.
 *
 * A run-code call (msvmm_run_code_start) is the same pump over a RUNCODE:
 * its code goes to a runtime's interpreter in the guest, its output and
 * status come back as a command's do, and its deadline interrupts the
 * code (SIGINT) before it kills the interpreter.
 *
 * The guest is untrusted: every frame header is checked before its payload
 * is read, payloads are bounded (agent_hdr_parse), and anything out of
 * order ends the exec with an error instead of being believed.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <poll.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/eventfd.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include "agent_proto.h"
#include "exec.h"
#include "image.h"
#include "runspec.h"
#include "sandbox.h"
#include "vm.h"

#define EXEC_CONNECT_TIMEOUT_MS 10000
/* After SIGKILL for a timeout, how long the agent gets to report the exit. */
#define EXEC_KILL_GRACE_MS 5000
/* After SIGINT for a run-code timeout, how long the code gets to stop before SIGKILL. */
#define CODE_INT_GRACE_MS 2000
#define EXEC_MAX_QUEUED 32
/* Frames handled per pump pass (each at most 64 KiB) before poll looks again. */
#define EXEC_READ_BUDGET 16

struct msvmm_exec {
	struct msvmm_sandbox *sb; /* NULL over a bare fd */
	int fd;             /* the agent connection, non-blocking */
	int wake_fd;        /* eventfd: signal()/resize() queued something */
	int stdin_fd, stdout_fd, stderr_fd;
	msvmm_output_fn on_output;
	void *opaque;
	bool tty;
	bool code;          /* a run-code call */
	bool restore_sent;  /* the request carries an S record */
	uint64_t timeout_ms, deadline_ns, grace_ns;
	unsigned int deadline_step; /* signals the deadline has sent */

	pthread_mutex_t lock; /* the queue below, filled from any thread */
	struct { uint8_t type, flags; uint8_t payload[4]; } queued[EXEC_MAX_QUEUED];
	unsigned int nr_queued;

	/* Frames not yet written to the agent. */
	uint8_t *out;
	size_t out_len, out_off, out_cap;
	/* The frame being read from the agent. */
	uint8_t hdr[AGENT_HDR_SIZE];
	size_t hdr_have, payload_have;
	struct agent_hdr h;
	uint8_t payload[AGENT_MAX_PAYLOAD];

	bool hello, stdin_done, exited, timed_out, out_broken[3];
	uint32_t status;
	uint8_t exit_flags;
	/* STDIN payload bytes sent that the agent has not acknowledged yet. */
	uint32_t stdin_unacked;
};

static uint64_t exec_now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

void msvmm_exec_opts_init(msvmm_exec_opts *o)
{
	if (!o)
		return;
	memset(o, 0, sizeof(*o));
	o->stdin_fd = o->stdout_fd = o->stderr_fd = -1;
	o->rows = 24;
	o->cols = 80;
}

/* ---- frames to the agent ---------------------------------------------- */

static int exec_out_reserve(struct msvmm_exec *ex, size_t n)
{
	uint8_t *p;
	size_t cap;

	if (ex->out_off == ex->out_len)
		ex->out_off = ex->out_len = 0;
	if (ex->out_len + n <= ex->out_cap)
		return 0;
	cap = (ex->out_len + n) * 2;
	p = realloc(ex->out, cap);
	if (!p)
		return -1;
	ex->out = p;
	ex->out_cap = cap;
	return 0;
}

static int exec_frame(struct msvmm_exec *ex, uint8_t type, uint8_t flags, const void *payload, size_t len)
{
	if (exec_out_reserve(ex, AGENT_HDR_SIZE + len) < 0)
		return -1;
	agent_hdr_pack(ex->out + ex->out_len, type, flags, (uint32_t)len);
	if (len)
		memcpy(ex->out + ex->out_len + AGENT_HDR_SIZE, payload, len);
	ex->out_len += AGENT_HDR_SIZE + len;
	return 0;
}

static bool exec_out_empty(const struct msvmm_exec *ex)
{
	return ex->out_off == ex->out_len;
}

/* E and W records: the options' over the sandbox's. */
static void request_env(struct runspec_buf *b, const struct exec_defaults *d, const msvmm_exec_opts *o)
{
	for (char *const *e = d->env; e && *e; e++)
		runspec_put(b, AGENT_REC_ENV, *e);
	for (const char *const *e = o->env; e && *e; e++)
		runspec_put(b, AGENT_REC_ENV, *e);
	if (o->workdir || d->workdir)
		runspec_put(b, AGENT_REC_WORKDIR, o->workdir ? o->workdir : d->workdir);
}

static void exec_records(struct runspec_buf *b, const struct exec_defaults *d, const msvmm_exec_opts *o)
{
	char tty[32];

	if (!o->argv)
		runspec_put(b, AGENT_REC_ARG, d->default_cmd);
	for (const char *const *a = o->argv; a && *a; a++)
		runspec_put(b, AGENT_REC_ARG, *a);
	request_env(b, d, o);
	if (d->restore)
		runspec_put(b, AGENT_REC_RESTORE, d->restore);
	if (o->user)
		runspec_put(b, AGENT_REC_USER, o->user);
	if (o->tty) {
		snprintf(tty, sizeof(tty), "%ux%u", o->rows, o->cols);
		runspec_put(b, AGENT_REC_TTY, tty);
	}
	if (o->stdin_fd >= 0)
		runspec_put(b, AGENT_REC_STDIN, "1");
}

/* The code goes last: the agent finds the small records before it. */
static void code_records(struct runspec_buf *b, const struct exec_defaults *d, const msvmm_exec_opts *o,
			 const struct code_spec *c)
{
	char *p;

	runspec_put(b, AGENT_REC_RUNTIME, c->runtime);
	runspec_put(b, AGENT_REC_PROGRAM, c->program);
	request_env(b, d, o);
	if (d->restore)
		runspec_put(b, AGENT_REC_RESTORE, d->restore);
	/* The code has no NUL (checked), so it is a string record like the others; but it has a length. */
	p = b->failed ? NULL : realloc(b->p, b->len + c->len + 2);
	if (!p) {
		b->failed = 1;
		return;
	}
	b->p = p;
	p[b->len] = AGENT_REC_CODE;
	if (c->len)
		memcpy(p + b->len + 1, c->text, c->len);
	p[b->len + 1 + c->len] = '\0';
	b->len += c->len + 2;
	b->cap = b->len;
}

/* HELLO and EXEC (or RUNCODE), built before the connection is used. */
static int exec_request(struct msvmm_exec *ex, const struct exec_defaults *d, const msvmm_exec_opts *o,
			const struct code_spec *c)
{
	struct runspec_buf b = { 0 };
	uint8_t ver[4];
	int rc;

	if (c)
		code_records(&b, d, o, c);
	else
		exec_records(&b, d, o);
	if (b.failed || b.len > (c ? AGENT_MAX_RUNCODE : AGENT_MAX_EXEC)) {
		free(b.p);
		return b.failed ? -MSVMM_ENOMEM : -MSVMM_EINVAL;
	}
	agent_put32(ver, AGENT_PROTO_VERSION);
	rc = exec_frame(ex, AGENT_HELLO, 0, ver, sizeof(ver));
	if (!rc)
		rc = exec_frame(ex, c ? AGENT_RUNCODE : AGENT_EXEC, 0, b.p, b.len);
	free(b.p);
	return rc ? -MSVMM_ENOMEM : 0;
}

/* ---- start ---------------------------------------------------------------- */

static bool exec_env_ok(const char *const *env)
{
	for (; env && *env; env++)
		if ((*env)[0] == '=' || !strchr(*env, '='))
			return false;
	return true;
}

static int exec_opts_check(const msvmm_exec_opts *o, const struct code_spec *c, msvmm_error *err)
{
	/* The interpreter is shared by every call: it runs as root, its stdin is /dev/null. */
	if (c && (o->argv || o->tty || o->stdin_fd >= 0 || o->user))
		return err_set(err, MSVMM_EINVAL, "run-code takes no command, tty, stdin or user");
	if (c && (!c->text && c->len))
		return err_set(err, MSVMM_EINVAL, "no code given");
	if (c && c->len && memchr(c->text, '\0', c->len))
		return err_set(err, MSVMM_EINVAL, "the code contains a NUL byte");
	if (o->argv && (!o->argv[0] || !o->argv[0][0]))
		return err_set(err, MSVMM_EINVAL, "empty command");
	if (!exec_env_ok(o->env))
		return err_set(err, MSVMM_EINVAL, "environment entries must be KEY=VALUE");
	if (o->workdir && o->workdir[0] != '/')
		return err_set(err, MSVMM_EINVAL, "working directory '%s' is not absolute", o->workdir);
	if (o->tty && (!o->rows || !o->cols || o->rows > 0xffff || o->cols > 0xffff))
		return err_set(err, MSVMM_EINVAL, "terminal size %ux%u out of range", o->rows, o->cols);
	if (o->user && !o->user[0])
		return err_set(err, MSVMM_EINVAL, "empty user name");
	return 0;
}

static void exec_release(struct msvmm_exec *ex)
{
	if (ex->fd >= 0)
		close(ex->fd);
	if (ex->wake_fd >= 0)
		close(ex->wake_fd);
	pthread_mutex_destroy(&ex->lock);
	free(ex->out);
	free(ex);
}

/* Everything but the connection: options checked, HELLO and EXEC (or RUNCODE for c) ready to go. */
static int exec_new(const struct exec_defaults *d, const msvmm_exec_opts *o, const struct code_spec *c,
		    struct msvmm_exec **out, msvmm_error *err)
{
	struct msvmm_exec *ex;
	int rc = exec_opts_check(o, c, err);

	if (rc)
		return rc;
	ex = calloc(1, sizeof(*ex));
	if (!ex)
		return err_set(err, MSVMM_ENOMEM, "out of memory");
	ex->fd = -1;
	ex->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	pthread_mutex_init(&ex->lock, NULL);
	ex->stdin_fd = o->stdin_fd;
	ex->stdout_fd = o->stdout_fd;
	ex->stderr_fd = o->stderr_fd;
	ex->on_output = o->on_output;
	ex->opaque = o->opaque;
	ex->tty = o->tty;
	ex->code = c != NULL;
	ex->timeout_ms = o->timeout_ms;
	ex->stdin_done = o->stdin_fd < 0;
	if (ex->wake_fd < 0) {
		exec_release(ex);
		return err_set(err, MSVMM_EIO, "eventfd: %s", strerror(errno));
	}
	rc = exec_request(ex, d, o, c);
	if (rc) {
		exec_release(ex);
		if (rc == -MSVMM_ENOMEM)
			return err_set(err, MSVMM_ENOMEM, "out of memory");
		return err_set(err, MSVMM_EINVAL, "the %s and environment exceed %u KiB", c ? "code" : "command",
			       (c ? AGENT_MAX_RUNCODE : AGENT_MAX_EXEC) >> 10);
	}
	*out = ex;
	return 0;
}

/*
 * HELLO and EXEC go now, so the command runs even before msvmm_exec_wait().
 * What does not fit, or a connection already gone, is msvmm_exec_wait()'s.
 */
static void exec_send_now(struct msvmm_exec *ex)
{
	while (!exec_out_empty(ex)) {
		/* send(): a connection the device reset is EPIPE here, never SIGPIPE for the caller. */
		ssize_t n = send(ex->fd, ex->out + ex->out_off, ex->out_len - ex->out_off, MSG_NOSIGNAL);

		if (n <= 0 && !(n < 0 && errno == EINTR))
			return;
		if (n > 0)
			ex->out_off += (size_t)n;
	}
}

/* The connection is ready: the deadline starts now. */
static int exec_attach(struct msvmm_exec *ex, int fd, msvmm_error *err)
{
	ex->fd = fd;
	if (fcntl(fd, F_SETFL, O_NONBLOCK) < 0)
		return err_set(err, MSVMM_EIO, "agent connection: %s", strerror(errno));
	if (ex->timeout_ms)
		ex->deadline_ns = exec_now_ns() + ex->timeout_ms * 1000000ULL;
	exec_send_now(ex);
	return 0;
}

static int start_fd(int fd, const struct exec_defaults *d, const msvmm_exec_opts *o, const struct code_spec *c,
		    msvmm_exec **out, msvmm_error *err)
{
	int rc;

	if (err)
		*err = (msvmm_error){ 0 };
	if (!o || !out || !d) {
		close(fd);
		return err_set(err, MSVMM_EINVAL, "invalid arguments");
	}
	*out = NULL;
	rc = exec_new(d, o, c, out, err);
	if (rc)
		close(fd);
	else if ((rc = exec_attach(*out, fd, err))) {
		exec_release(*out);
		*out = NULL;
	}
	return rc;
}

int exec_start_fd(int fd, const struct exec_defaults *d, const msvmm_exec_opts *o, msvmm_exec **out,
		  msvmm_error *err)
{
	return start_fd(fd, d, o, NULL, out, err);
}

static msvmm_exec_opts code_default_opts(const msvmm_exec_opts *o)
{
	msvmm_exec_opts none;

	if (o)
		return *o;
	msvmm_exec_opts_init(&none);
	return none;
}

int code_start_fd(int fd, const struct exec_defaults *d, const struct code_spec *c, const msvmm_exec_opts *o,
		  msvmm_exec **out, msvmm_error *err)
{
	msvmm_exec_opts opts = code_default_opts(o);

	return start_fd(fd, d, &opts, c, out, err);
}

/* A new exec (c: a run-code call) on a new agent connection of the sandbox. */
static int sandbox_start(msvmm_sandbox *sb, const msvmm_exec_opts *o, const struct code_spec *c,
			 msvmm_exec **out, msvmm_error *err)
{
	char restore[SANDBOX_RESTORE_REC_MAX];
	struct exec_defaults d;
	struct msvmm_exec *ex;
	bool no_random = false;
	int fd, rc;

	d = (struct exec_defaults){ .env = sb->env, .workdir = sb->workdir, .default_cmd = vm_default_cmd(sb->vm) };
	d.restore = sandbox_restore_record(sb, c != NULL, restore, sizeof(restore), &no_random);
	if (no_random)
		return err_set(err, MSVMM_EIO, "cannot read host random bytes for the restored guest: %s",
			       strerror(errno));
	rc = exec_new(&d, o, c, &ex, err);
	if (rc)
		return rc;
	ex->sb = sb;
	ex->restore_sent = d.restore != NULL;
	rc = msvmm_vm_vsock_connect(sb->vm, AGENT_PORT, EXEC_CONNECT_TIMEOUT_MS, &fd, err);
	if (!rc)
		rc = exec_attach(ex, fd, err);
	if (rc) {
		exec_release(ex);
		return rc;
	}
	*out = ex;
	return 0;
}

int msvmm_exec_start(msvmm_sandbox *sb, const msvmm_exec_opts *o, msvmm_exec **out, msvmm_error *err)
{
	if (err)
		*err = (msvmm_error){ 0 };
	if (!sb || !o || !out)
		return err_set(err, MSVMM_EINVAL, "invalid arguments");
	*out = NULL;
	return sandbox_start(sb, o, NULL, out, err);
}

int msvmm_run_code_start(msvmm_sandbox *sb, const char *runtime, const char *code, size_t len,
			 const msvmm_exec_opts *o, msvmm_exec **out, msvmm_error *err)
{
	msvmm_exec_opts opts = code_default_opts(o);
	const struct image_runtime *rt;
	struct code_spec c;
	int rc;

	if (err)
		*err = (msvmm_error){ 0 };
	if (!sb || !out)
		return err_set(err, MSVMM_EINVAL, "invalid arguments");
	*out = NULL;
	rc = image_runtime(vm_image(sb->vm), NULL, runtime, &rt, err);
	if (rc)
		return rc;
	c = (struct code_spec){ .runtime = rt->name, .program = rt->program, .text = code, .len = len };
	return sandbox_start(sb, &opts, &c, out, err);
}

/* ---- requests from other threads ------------------------------------------ */

static int exec_queue(struct msvmm_exec *ex, uint8_t type, uint8_t flags, const uint8_t payload[4])
{
	uint64_t one = 1;
	unsigned int i;
	int rc = 0;

	pthread_mutex_lock(&ex->lock);
	/* Only the newest size matters: a burst of resizes never crowds out a signal. */
	for (i = 0; i < ex->nr_queued && !(type == AGENT_RESIZE && ex->queued[i].type == AGENT_RESIZE); i++)
		;
	if (i == EXEC_MAX_QUEUED) {
		rc = -MSVMM_EINVAL;
	} else {
		ex->queued[i].type = type;
		ex->queued[i].flags = flags;
		memcpy(ex->queued[i].payload, payload, 4);
		if (i == ex->nr_queued)
			ex->nr_queued++;
	}
	pthread_mutex_unlock(&ex->lock);
	if (!rc && write(ex->wake_fd, &one, sizeof(one)) < 0) {
		/* The counter cannot overflow here; the pump finds the queue anyway. */
	}
	return rc;
}

int msvmm_exec_signal(msvmm_exec *ex, int signo)
{
	uint8_t p[4];

	if (!ex || signo <= 0 || signo >= 65)
		return -MSVMM_EINVAL;
	agent_put32(p, (uint32_t)signo);
	return exec_queue(ex, AGENT_SIGNAL, AGENT_SIGNAL_F_GROUP, p);
}

int msvmm_exec_resize(msvmm_exec *ex, unsigned int rows, unsigned int cols)
{
	uint8_t p[4];

	if (!ex || !ex->tty || !rows || !cols || rows > 0xffff || cols > 0xffff)
		return -MSVMM_EINVAL;
	agent_put16(p, (uint16_t)rows);
	agent_put16(p + 2, (uint16_t)cols);
	return exec_queue(ex, AGENT_RESIZE, 0, p);
}

static int exec_take_queue(struct msvmm_exec *ex)
{
	uint64_t n;
	int rc = 0;

	if (read(ex->wake_fd, &n, sizeof(n)) < 0) {
		/* EAGAIN: woken for nothing new */
	}
	pthread_mutex_lock(&ex->lock);
	for (unsigned int i = 0; i < ex->nr_queued && !rc; i++)
		rc = exec_frame(ex, ex->queued[i].type, ex->queued[i].flags, ex->queued[i].payload, 4);
	ex->nr_queued = 0;
	pthread_mutex_unlock(&ex->lock);
	return rc;
}

/* ---- output to the caller --------------------------------------------------- */

static int exec_poll_timeout(const struct msvmm_exec *ex);
static int exec_check_deadline(struct msvmm_exec *ex, msvmm_error *err);

/*
 * All of buf to the caller's fd; false when it is gone, or when the
 * deadline's grace ran out while it would not take more.  It is written in
 * PIPE_BUF pieces once poll says there is room, so a stalled reader (a
 * paused terminal, a full pipe) never blocks us in write(): meanwhile the
 * deadline and queued signals still reach the guest.
 */
static bool exec_write_all(struct msvmm_exec *ex, int fd, const uint8_t *buf, size_t len)
{
	msvmm_error ignored;

	while (len) {
		struct pollfd p[2] = { { .fd = fd, .events = POLLOUT }, { .fd = ex->wake_fd, .events = POLLIN } };
		ssize_t n;

		if (poll(p, 2, exec_poll_timeout(ex)) < 0 && errno != EINTR)
			return false;
		if (p[1].revents & POLLIN)
			exec_take_queue(ex);
		if (exec_check_deadline(ex, &ignored) < 0)
			return false;
		exec_send_now(ex);
		if (!(p[0].revents & (POLLOUT | POLLERR | POLLHUP)))
			continue;
		n = write(fd, buf, len < PIPE_BUF ? len : PIPE_BUF);
		if (n < 0 && (errno == EINTR || errno == EAGAIN))
			continue;
		if (n <= 0)
			return false;
		buf += n;
		len -= (size_t)n;
	}
	return true;
}

static void exec_output(struct msvmm_exec *ex, int stream, const uint8_t *data, size_t len)
{
	int fd = stream == 1 ? ex->stdout_fd : ex->stderr_fd;

	if (!len)
		return; /* end of that stream: EXIT follows */
	if (fd >= 0) {
		/* A reader that went away (EPIPE) loses the rest, as a pipe's writer would. */
		if (!ex->out_broken[stream] && !exec_write_all(ex, fd, data, len))
			ex->out_broken[stream] = true;
	} else if (ex->on_output) {
		ex->on_output(ex->opaque, stream, data, len);
	}
}

/* ---- frames from the agent ------------------------------------------------- */

static int exec_bad_frame(msvmm_error *err, const char *why)
{
	return err_set(err, MSVMM_EGUEST, "the guest agent broke the protocol: %s", why);
}

static int exec_agent_error(const struct msvmm_exec *ex, msvmm_error *err)
{
	char msg[1025];
	size_t n = ex->h.len - 4;

	memcpy(msg, ex->payload + 4, n);
	msg[n] = '\0';
	/* The guest chose these bytes: keep the one-line message printable. */
	for (size_t i = 0; i < n; i++)
		if ((unsigned char)msg[i] < 0x20 || msg[i] == 0x7f)
			msg[i] = '?';
	return err_set(err, MSVMM_EGUEST, "guest agent: %s (error %u)", msg, agent_get32(ex->payload));
}

static int exec_dispatch(struct msvmm_exec *ex, msvmm_error *err)
{
	if (!ex->hello && ex->h.type != AGENT_HELLO && ex->h.type != AGENT_ERROR)
		return exec_bad_frame(err, "first frame is not HELLO");
	switch (ex->h.type) {
	case AGENT_HELLO:
		if (ex->hello)
			return exec_bad_frame(err, "second HELLO");
		if (agent_get32(ex->payload) != AGENT_PROTO_VERSION)
			return err_set(err, MSVMM_EGUEST, "the guest agent speaks protocol version %u, not %u",
				       agent_get32(ex->payload), AGENT_PROTO_VERSION);
		ex->hello = true;
		return 0;
	case AGENT_STARTED:
		if (ex->restore_sent && ex->sb)
			sandbox_restore_taken(ex->sb, ex->code);
		return 0;
	case AGENT_STDOUT:
	case AGENT_STDERR:
		exec_output(ex, ex->h.type == AGENT_STDOUT ? 1 : 2, ex->payload, ex->h.len);
		return 0;
	case AGENT_STDIN_ACK: {
		uint32_t n = agent_get32(ex->payload);

		/* Believing more would let the guest open the window without bound. */
		if (!n || n > ex->stdin_unacked)
			return exec_bad_frame(err, "STDIN_ACK for no stdin, or for more than was sent");
		ex->stdin_unacked -= n;
		return 0;
	}
	case AGENT_EXIT:
		if ((ex->h.flags & AGENT_EXIT_F_RUNTIME_ENDED) && !ex->code)
			return exec_bad_frame(err, "a runtime's EXIT flag after a command");
		ex->exit_flags = ex->h.flags;
		ex->status = agent_get32(ex->payload);
		if ((ex->status & ~(AGENT_EXIT_SIGNALED | 0xffu)) ||
		    ((ex->status & AGENT_EXIT_SIGNALED) && !(ex->status & 0xff)))
			return exec_bad_frame(err, "impossible exit status");
		ex->exited = true;
		return 0;
	case AGENT_ERROR:
		return exec_agent_error(ex, err);
	default:
		return exec_bad_frame(err, "unexpected frame type");
	}
}

/*
 * Read what the connection has and dispatch up to 'budget' whole frames
 * (0: no limit), so that a guest that keeps the socket full cannot keep
 * the pump from its deadline, queued signals and stdin.  0, 1 at EOF, or
 * -MSVMM_E*.
 */
static int exec_read(struct msvmm_exec *ex, unsigned int budget, msvmm_error *err)
{
	unsigned int frames = 0;

	for (;;) {
		bool in_hdr = ex->hdr_have < AGENT_HDR_SIZE;
		uint8_t *dst = in_hdr ? ex->hdr + ex->hdr_have : ex->payload + ex->payload_have;
		size_t want = in_hdr ? AGENT_HDR_SIZE - ex->hdr_have : ex->h.len - ex->payload_have;
		ssize_t n = want ? read(ex->fd, dst, want) : 0;
		int rc;

		if (want && n < 0 && errno == EINTR)
			continue;
		if (want && n < 0 && errno == EAGAIN)
			return 0;
		if (want && n < 0 && errno != ECONNRESET)
			return err_set(err, MSVMM_EIO, "agent connection: %s", strerror(errno));
		if (want && n <= 0)
			return 1; /* closed, politely or not */
		if (in_hdr) {
			ex->hdr_have += (size_t)n;
			if (ex->hdr_have < AGENT_HDR_SIZE)
				continue;
			if (agent_hdr_parse(ex->hdr, AGENT_SIDE_HOST, &ex->h) < 0)
				return exec_bad_frame(err, "malformed frame header");
			ex->payload_have = 0;
			if (ex->h.len)
				continue;
		} else {
			ex->payload_have += (size_t)n;
			if (ex->payload_have < ex->h.len)
				continue;
		}
		ex->hdr_have = 0;
		rc = exec_dispatch(ex, err);
		if (rc || ex->exited || (budget && ++frames == budget))
			return rc;
	}
}

/* The connection ended without EXIT: because the VM did, or the agent. */
static int exec_closed_early(struct msvmm_exec *ex, msvmm_error *err)
{
	msvmm_error why;

	if (ex->sb && sandbox_ended(ex->sb, &why)) {
		if (err)
			*err = why;
		return -why.code;
	}
	return err_set(err, MSVMM_EGUEST, "the guest agent closed the connection before the command's exit status");
}

static int exec_flush(struct msvmm_exec *ex, msvmm_error *err)
{
	while (!exec_out_empty(ex)) {
		/* send(): a connection the device reset is EPIPE here, never SIGPIPE for the caller. */
		ssize_t n = send(ex->fd, ex->out + ex->out_off, ex->out_len - ex->out_off, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && errno == EAGAIN)
			return 0;
		if (n < 0) {
			/*
			 * Closed; maybe right after the agent's EXIT, sent while
			 * we still had stdin for the command (head -c 100 < big).
			 * What arrived before the close is still to be read.
			 */
			int rc = exec_read(ex, 0, err);

			if (rc < 0)
				return rc;
			return ex->exited ? 0 : exec_closed_early(ex, err);
		}
		ex->out_off += (size_t)n;
	}
	return 0;
}

static bool exec_stdin_room(const struct msvmm_exec *ex)
{
	return ex->stdin_unacked < AGENT_STDIN_WINDOW;
}

/*
 * The caller's stdin: one read, one STDIN frame (empty at EOF), no bigger
 * than the window has room for.
 */
static int exec_stdin(struct msvmm_exec *ex, msvmm_error *err)
{
	size_t max = AGENT_STDIN_WINDOW - ex->stdin_unacked;
	ssize_t n;

	if (max > AGENT_MAX_PAYLOAD)
		max = AGENT_MAX_PAYLOAD;
	if (exec_out_reserve(ex, AGENT_HDR_SIZE + max) < 0)
		return err_set(err, MSVMM_ENOMEM, "out of memory");
	do
		n = read(ex->stdin_fd, ex->out + ex->out_len + AGENT_HDR_SIZE, max);
	while (n < 0 && errno == EINTR);
	if (n < 0 && errno == EAGAIN)
		return 0;
	if (n < 0)
		n = 0; /* an unreadable stdin ends like an empty one */
	agent_hdr_pack(ex->out + ex->out_len, AGENT_STDIN, 0, (uint32_t)n);
	ex->out_len += AGENT_HDR_SIZE + (size_t)n;
	ex->stdin_unacked += (uint32_t)n;
	if (!n)
		ex->stdin_done = true;
	return 0;
}

/* ---- the pump ------------------------------------------------------------------ */

static int exec_poll_timeout(const struct msvmm_exec *ex)
{
	uint64_t now = exec_now_ns(), until = ex->timed_out ? ex->grace_ns : ex->deadline_ns;

	if (!until)
		return -1;
	if (until <= now)
		return 0;
	/* Deadlines a year out do not fit poll's int: wake up early and look again. */
	return (until - now) / 1000000ULL >= INT_MAX ? INT_MAX : (int)((until - now) / 1000000ULL) + 1;
}

/*
 * What the deadline sends the group, each after the one before had its
 * grace: a command is killed; run-code is interrupted first (the
 * interpreter and its state survive a KeyboardInterrupt) and killed, with
 * its interpreter, only if that does not end it.
 */
struct deadline_step {
	int sig;
	unsigned int grace_ms;
};

static const struct deadline_step exec_deadline[] = { { SIGKILL, EXEC_KILL_GRACE_MS } };
static const struct deadline_step code_deadline[] = { { SIGINT, CODE_INT_GRACE_MS },
						      { SIGKILL, EXEC_KILL_GRACE_MS } };

/* Deadline (or a step's grace) passed: the next signal, or give up on the guest. */
static int exec_check_deadline(struct msvmm_exec *ex, msvmm_error *err)
{
	const struct deadline_step *steps = ex->code ? code_deadline : exec_deadline;
	unsigned int nr = ex->code ? 2 : 1;
	uint64_t now = exec_now_ns();
	uint8_t p[4];

	if (!ex->deadline_ns || now < (ex->timed_out ? ex->grace_ns : ex->deadline_ns))
		return 0;
	if (ex->deadline_step == nr)
		return err_set(err, MSVMM_ETIMEDOUT, "the %s did not finish within %llu ms, and the guest did not report it killed",
			       ex->code ? "code" : "command", (unsigned long long)ex->timeout_ms);
	ex->timed_out = true;
	ex->grace_ns = now + steps[ex->deadline_step].grace_ms * 1000000ULL;
	agent_put32(p, (uint32_t)steps[ex->deadline_step++].sig);
	return exec_frame(ex, AGENT_SIGNAL, AGENT_SIGNAL_F_GROUP, p, 4) ? err_set(err, MSVMM_ENOMEM, "out of memory")
									 : 0;
}

static int exec_pump_once(struct msvmm_exec *ex, msvmm_error *err)
{
	struct pollfd p[3] = {
		{ .fd = ex->fd, .events = POLLIN | (exec_out_empty(ex) ? 0 : POLLOUT) },
		{ .fd = ex->wake_fd, .events = POLLIN },
		/*
		 * Input waits for room in the window (STDIN_ACK makes it) and for
		 * the last frame to be out, so the agent always reads on.
		 */
		{ .fd = ex->stdin_done || !exec_out_empty(ex) || !exec_stdin_room(ex) ? -1 : ex->stdin_fd,
		  .events = POLLIN },
	};
	int rc;

	if (poll(p, 3, exec_poll_timeout(ex)) < 0 && errno != EINTR)
		return err_set(err, MSVMM_EIO, "poll: %s", strerror(errno));
	if ((p[1].revents & POLLIN) && exec_take_queue(ex))
		return err_set(err, MSVMM_ENOMEM, "out of memory");
	if (p[2].revents && (rc = exec_stdin(ex, err)))
		return rc;
	if ((rc = exec_flush(ex, err)))
		return rc;
	if (!ex->exited && (p[0].revents & (POLLIN | POLLHUP | POLLERR))) {
		rc = exec_read(ex, EXEC_READ_BUDGET, err);
		if (rc < 0)
			return rc;
		if (rc > 0 && !ex->exited)
			return exec_closed_early(ex, err);
	}
	return ex->exited ? 0 : exec_check_deadline(ex, err);
}

static void exec_result(const struct msvmm_exec *ex, msvmm_result *res)
{
	memset(res, 0, sizeof(*res));
	res->timed_out = ex->timed_out;
	res->runtime_ended = !!(ex->exit_flags & AGENT_EXIT_F_RUNTIME_ENDED);
	if (ex->status & AGENT_EXIT_SIGNALED) {
		res->signaled = 1;
		res->term_signal = (int)(ex->status & 0xff);
		res->status = 128 + res->term_signal;
	} else {
		res->exited = 1;
		res->exit_code = (int)(ex->status & 0xff);
		res->status = res->exit_code;
	}
}

/* The exec timed out and the guest reported the end: how. */
static int exec_timeout_error(const struct msvmm_exec *ex, const msvmm_result *res, msvmm_error *err)
{
	unsigned long long ms = (unsigned long long)ex->timeout_ms;

	if (!ex->code)
		return err_set(err, MSVMM_ETIMEDOUT, "the command did not finish within %llu ms and was killed", ms);
	if (res->runtime_ended && res->term_signal == SIGKILL)
		return err_set(err, MSVMM_ETIMEDOUT, "the code did not finish within %llu ms and did not stop on SIGINT: "
			       "its runtime was killed, its state is lost", ms);
	if (res->runtime_ended)
		return err_set(err, MSVMM_ETIMEDOUT, "the code did not finish within %llu ms; its runtime ended when "
			       "interrupted, its state is lost", ms);
	return err_set(err, MSVMM_ETIMEDOUT, "the code did not finish within %llu ms and was interrupted "
		       "(KeyboardInterrupt); the runtime keeps its state", ms);
}

int msvmm_exec_wait(msvmm_exec *ex, msvmm_result *res, msvmm_error *err)
{
	msvmm_result tmp;
	int rc = 0;

	if (err)
		*err = (msvmm_error){ 0 };
	if (!ex)
		return err_set(err, MSVMM_EINVAL, "invalid arguments");
	if (!res)
		res = &tmp;
	memset(res, 0, sizeof(*res));
	while (!ex->exited && !rc)
		rc = exec_pump_once(ex, err);
	if (rc == -MSVMM_ETIMEDOUT && ex->timed_out) {
		/* The guest never confirmed: report what the host asked for, a SIGKILL. */
		ex->status = AGENT_EXIT_SIGNALED | SIGKILL;
		exec_result(ex, res);
		return rc;
	}
	if (rc)
		return rc;
	exec_result(ex, res);
	if (ex->timed_out)
		return exec_timeout_error(ex, res, err);
	return 0;
}

void msvmm_exec_free(msvmm_exec *ex)
{
	if (ex)
		exec_release(ex); /* closing the connection makes the agent kill what is left */
}

/* wait + free: the rest of msvmm_sandbox_exec() and msvmm_sandbox_run_code(). */
static int exec_finish(msvmm_exec *ex, msvmm_result *res, msvmm_error *err)
{
	int rc = msvmm_exec_wait(ex, res, err);

	msvmm_exec_free(ex);
	return rc;
}

int msvmm_sandbox_exec(msvmm_sandbox *sb, const msvmm_exec_opts *o, msvmm_result *res, msvmm_error *err)
{
	msvmm_exec *ex;
	int rc = msvmm_exec_start(sb, o, &ex, err);

	return rc ? rc : exec_finish(ex, res, err);
}

int msvmm_sandbox_run_code(msvmm_sandbox *sb, const char *runtime, const char *code, size_t len,
			   const msvmm_exec_opts *o, msvmm_result *res, msvmm_error *err)
{
	msvmm_exec *ex;
	int rc = msvmm_run_code_start(sb, runtime, code, len, o, &ex, err);

	return rc ? rc : exec_finish(ex, res, err);
}
