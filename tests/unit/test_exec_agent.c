// SPDX-License-Identifier: Apache-2.0
/*
 * The host's exec client (lib/exec.c) against the real guest agent
 * (guest-init/agent.c), both run here over a socketpair: what a sandbox
 * does minus the VM, so streams can be checked at full size quickly.
 * stdout and stderr of 20 MiB each arrive separate and byte-exact, 20 MiB
 * of stdin comes back exactly, every exit code 0..255 and signal statuses
 * are reported as a shell would, timeouts kill and say so, a signal gets
 * through while the command leaves 10 MiB of stdin unread, a command that
 * stops reading early does not hang the host, and a hostile "agent" (the
 * test writing frames itself) gets an error, never a crash or a hang.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "agent.h"
#include "agent_proto.h"
#include "exec.h"
#include "testutil.h"

#define BIG (20u << 20)

static char tmpdir[] = "/tmp/msvmm-exec-XXXXXX";

static const struct exec_defaults defaults = { .default_cmd = "/bin/sh" };

/* A forked agent session on one end of a socketpair; the other end is returned. */
static int agent_fork(pid_t *pid)
{
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	*pid = fork();
	ck_assert_int_ge(*pid, 0);
	if (*pid == 0) {
		close(sv[0]);
		_exit(agent_session(sv[1], NULL, NULL) == AGENT_END_EXIT ? 0 : 1);
	}
	close(sv[1]);
	return sv[0];
}

static int agent_reap(pid_t pid)
{
	int st;

	ck_assert_int_eq(waitpid(pid, &st, 0), pid);
	return WIFEXITED(st) ? WEXITSTATUS(st) : 128 + WTERMSIG(st);
}

/* Run argv through a fresh agent; returns exec_wait's rc. */
static int run(const msvmm_exec_opts *o, msvmm_result *res, msvmm_error *err)
{
	msvmm_exec *ex;
	pid_t pid;
	int fd = agent_fork(&pid), rc;

	rc = exec_start_fd(fd, &defaults, o, &ex, err);
	ck_assert_msg(rc == 0, "start: %s", err->message);
	rc = msvmm_exec_wait(ex, res, err);
	msvmm_exec_free(ex);
	agent_reap(pid);
	return rc;
}

static char *tmp_path(const char *name)
{
	static char p[4][256];
	static int i;

	i = (i + 1) % 4;
	snprintf(p[i], sizeof(p[i]), "%s/%s", tmpdir, name);
	return p[i];
}

/* A file of n pseudo-random bytes (all 256 values, no pattern a bug could mimic). */
static void make_random(const char *path, size_t n, uint32_t seed)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0600);
	uint8_t *buf = malloc(n);

	ck_assert(fd >= 0 && buf);
	for (size_t i = 0; i < n; i++) {
		seed = seed * 1103515245u + 12345u;
		buf[i] = (uint8_t)(seed >> 16);
	}
	ck_assert_int_eq(write(fd, buf, n), (ssize_t)n);
	free(buf);
	close(fd);
}

static void assert_same_file(const char *a, const char *b)
{
	char cmd[600];

	snprintf(cmd, sizeof(cmd), "cmp -s '%s' '%s'", a, b);
	ck_assert_msg(system(cmd) == 0, "%s and %s differ", a, b);
}

static int open_out(const char *path)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);

	ck_assert_int_ge(fd, 0);
	return fd;
}

START_TEST(test_streams_separate_and_exact)
{
	char *a = tmp_path("a"), *b = tmp_path("b"), *oa = tmp_path("oa"), *ob = tmp_path("ob");
	char script[600];
	msvmm_exec_opts o;
	msvmm_result res;
	msvmm_error err;

	make_random(a, BIG, 1);
	make_random(b, BIG, 2);
	/* Both streams written at once, so their frames interleave. */
	snprintf(script, sizeof(script), "cat '%s' & cat '%s' >&2; wait; exit 3", a, b);
	msvmm_exec_opts_init(&o);
	o.argv = (const char *[]){ "sh", "-c", script, NULL };
	o.stdout_fd = open_out(oa);
	o.stderr_fd = open_out(ob);
	ck_assert_int_eq(run(&o, &res, &err), 0);
	ck_assert_int_eq(res.exited, 1);
	ck_assert_int_eq(res.status, 3);
	close(o.stdout_fd);
	close(o.stderr_fd);
	assert_same_file(a, oa);
	assert_same_file(b, ob);
}
END_TEST

START_TEST(test_stdin_echoed_exactly)
{
	char *in = tmp_path("in"), *out = tmp_path("out");
	msvmm_exec_opts o;
	msvmm_result res;
	msvmm_error err;

	make_random(in, BIG, 3);
	msvmm_exec_opts_init(&o);
	o.argv = (const char *[]){ "cat", NULL };
	o.stdin_fd = open(in, O_RDONLY | O_CLOEXEC);
	o.stdout_fd = open_out(out);
	ck_assert_int_eq(run(&o, &res, &err), 0);
	ck_assert_int_eq(res.status, 0);
	close(o.stdin_fd);
	close(o.stdout_fd);
	assert_same_file(in, out);
}
END_TEST

START_TEST(test_every_exit_code)
{
	for (int code = 0; code <= 255; code++) {
		char script[32];
		msvmm_exec_opts o;
		msvmm_result res;
		msvmm_error err;

		snprintf(script, sizeof(script), "exit %d", code);
		msvmm_exec_opts_init(&o);
		o.argv = (const char *[]){ "sh", "-c", script, NULL };
		ck_assert_int_eq(run(&o, &res, &err), 0);
		ck_assert_int_eq(res.exited, 1);
		ck_assert_int_eq(res.exit_code, code);
		ck_assert_int_eq(res.status, code);
	}
}
END_TEST

struct capture {
	char out[256], err[256];
	size_t nout, nerr;
};

static void capture_fn(void *opaque, int stream, const void *data, size_t len)
{
	struct capture *c = opaque;
	char *dst = stream == 1 ? c->out : c->err;
	size_t *n = stream == 1 ? &c->nout : &c->nerr;

	ck_assert(stream == 1 || stream == 2);
	ck_assert_uint_le(*n + len, sizeof(c->out) - 1);
	memcpy(dst + *n, data, len);
	*n += len;
}

static void signal_run(int sig, int want_status)
{
	struct capture cap = { 0 };
	msvmm_exec_opts o;
	msvmm_result res;
	msvmm_error err;
	msvmm_exec *ex;
	pid_t pid;
	int fd = agent_fork(&pid);

	msvmm_exec_opts_init(&o);
	/* The group signal reaches the shell and its child alike. */
	o.argv = (const char *[]){ "sh", "-c", "echo up; sleep 100", NULL };
	o.on_output = capture_fn;
	o.opaque = &cap;
	ck_assert_int_eq(exec_start_fd(fd, &defaults, &o, &ex, &err), 0);
	ck_assert_int_eq(msvmm_exec_signal(ex, sig), 0);
	ck_assert_int_eq(msvmm_exec_wait(ex, &res, &err), 0);
	msvmm_exec_free(ex);
	agent_reap(pid);
	ck_assert_int_eq(res.signaled, 1);
	ck_assert_int_eq(res.term_signal, sig);
	ck_assert_int_eq(res.status, want_status);
}

START_TEST(test_sigterm_143_sigkill_137)
{
	signal_run(SIGTERM, 143);
	signal_run(SIGKILL, 137);
}
END_TEST

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

struct later_signal {
	msvmm_exec *ex;
	int sig, rc;
};

/* What msx does on Ctrl-C: signal the exec from another thread while it pumps. */
static void *signal_later(void *arg)
{
	struct later_signal *l = arg;

	usleep(200 * 1000);
	l->rc = msvmm_exec_signal(l->ex, l->sig);
	return NULL;
}

/*
 * `cat big | msx -i image -- sleep 100`, then Ctrl-C: the command never
 * reads its stdin, and the SIGTERM queued behind the stdin still gets
 * through (the window keeps the agent reading frames).
 */
START_TEST(test_signal_while_stdin_unread)
{
	char *in = tmp_path("in");
	struct capture cap = { 0 };
	struct later_signal l = { .sig = SIGTERM };
	msvmm_exec_opts o;
	msvmm_result res;
	msvmm_error err;
	pthread_t t;
	pid_t pid;
	int fd;
	double t0;

	make_random(in, 10u << 20, 5);
	msvmm_exec_opts_init(&o);
	o.argv = (const char *[]){ "sleep", "100", NULL };
	o.stdin_fd = open(in, O_RDONLY | O_CLOEXEC);
	o.on_output = capture_fn;
	o.opaque = &cap;
	fd = agent_fork(&pid);
	ck_assert_int_eq(exec_start_fd(fd, &defaults, &o, &l.ex, &err), 0);
	t0 = now_s();
	ck_assert_int_eq(pthread_create(&t, NULL, signal_later, &l), 0);
	ck_assert_msg(msvmm_exec_wait(l.ex, &res, &err) == 0, "wait: %s", err.message);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(l.rc, 0);
	ck_assert_msg(now_s() - t0 < 5.0, "the signal took %.1f s", now_s() - t0);
	msvmm_exec_free(l.ex);
	agent_reap(pid);
	close(o.stdin_fd);
	ck_assert_int_eq(res.signaled, 1);
	ck_assert_int_eq(res.status, 143);
}
END_TEST

/* The same for the host's own deadline: its SIGKILL gets through too. */
START_TEST(test_timeout_while_stdin_unread)
{
	char *in = tmp_path("in");
	msvmm_exec_opts o;
	msvmm_result res;
	msvmm_error err;

	make_random(in, 10u << 20, 7);
	msvmm_exec_opts_init(&o);
	o.argv = (const char *[]){ "sleep", "100", NULL };
	o.stdin_fd = open(in, O_RDONLY | O_CLOEXEC);
	o.timeout_ms = 300;
	ck_assert_int_eq(run(&o, &res, &err), -MSVMM_ETIMEDOUT);
	close(o.stdin_fd);
	ck_assert_int_eq(res.timed_out, 1);
	/* 137, not the grace period's "did not report it killed". */
	ck_assert_int_eq(res.status, 137);
	ck_assert_err(err, MSVMM_ETIMEDOUT, "was killed");
}
END_TEST

/* A command that takes 100 bytes of 10 MiB and exits: the host must not hang on the rest. */
START_TEST(test_stdin_left_unread_no_hang)
{
	char *in = tmp_path("in"), *out = tmp_path("out"), cmd[600];
	msvmm_exec_opts o;
	msvmm_result res;
	msvmm_error err;
	struct stat st;

	make_random(in, 10u << 20, 6);
	msvmm_exec_opts_init(&o);
	o.argv = (const char *[]){ "head", "-c", "100", NULL };
	o.stdin_fd = open(in, O_RDONLY | O_CLOEXEC);
	o.stdout_fd = open_out(out);
	ck_assert_msg(run(&o, &res, &err) == 0, "wait: %s", err.message);
	ck_assert_int_eq(res.exited, 1);
	ck_assert_int_eq(res.status, 0);
	close(o.stdin_fd);
	close(o.stdout_fd);
	ck_assert_int_eq(stat(out, &st), 0);
	ck_assert_int_eq(st.st_size, 100);
	snprintf(cmd, sizeof(cmd), "cmp -s -n 100 '%s' '%s'", in, out);
	ck_assert_msg(system(cmd) == 0, "the 100 bytes differ");
}
END_TEST

START_TEST(test_timeout_kills)
{
	msvmm_exec_opts o;
	msvmm_result res;
	msvmm_error err;

	msvmm_exec_opts_init(&o);
	o.argv = (const char *[]){ "sleep", "100", NULL };
	o.timeout_ms = 300;
	ck_assert_int_eq(run(&o, &res, &err), -MSVMM_ETIMEDOUT);
	ck_assert_int_eq(res.timed_out, 1);
	ck_assert_int_eq(res.status, 137);
	ck_assert_err(err, MSVMM_ETIMEDOUT, "300 ms");
}
END_TEST

/* A reader that never reads (a paused terminal): the timeout still kills the command and returns. */
START_TEST(test_timeout_with_stalled_stdout)
{
	msvmm_exec_opts o;
	msvmm_result res;
	msvmm_error err = tu_err();
	int pfd[2];

	ck_assert_int_eq(pipe2(pfd, O_CLOEXEC), 0);
	msvmm_exec_opts_init(&o);
	o.argv = (const char *[]){ "yes", NULL };
	o.stdout_fd = pfd[1];
	o.timeout_ms = 300;
	ck_assert_int_eq(run(&o, &res, &err), -MSVMM_ETIMEDOUT);
	ck_assert_int_eq(res.timed_out, 1);
	ck_assert_int_eq(res.status, 137);
	close(pfd[0]);
	close(pfd[1]);
}
END_TEST

START_TEST(test_callback_utf8_env_workdir)
{
	struct capture cap = { 0 };
	msvmm_exec_opts o;
	msvmm_result res;
	msvmm_error err;

	msvmm_exec_opts_init(&o);
	o.argv = (const char *[]){ "sh", "-c", "printf 'h\xc3\xa9llo %s ' \"$GREETING\"; pwd; echo \xe2\x9c\x93 >&2", NULL };
	o.env = (const char *[]){ "GREETING=w\xc3\xb6rld", NULL };
	o.workdir = "/tmp";
	o.on_output = capture_fn;
	o.opaque = &cap;
	ck_assert_int_eq(run(&o, &res, &err), 0);
	ck_assert_int_eq(res.status, 0);
	ck_assert_str_eq(cap.out, "h\xc3\xa9llo w\xc3\xb6rld /tmp\n");
	ck_assert_str_eq(cap.err, "\xe2\x9c\x93\n");
}
END_TEST

/* The sandbox's environment first, the exec's after it; the last value of a key wins. */
START_TEST(test_env_last_wins)
{
	static char *const sb_env[] = { "A=sandbox", "B=kept", NULL };
	const struct exec_defaults d = { .env = sb_env, .default_cmd = "/bin/sh" };
	struct capture cap = { 0 };
	msvmm_exec_opts o;
	msvmm_result res;
	msvmm_error err;
	msvmm_exec *ex;
	pid_t pid;
	int fd = agent_fork(&pid);

	msvmm_exec_opts_init(&o);
	o.argv = (const char *[]){ "sh", "-c", "printf '%s %s' \"$A\" \"$B\"; env | grep -c '^A='", NULL };
	o.env = (const char *[]){ "A=first", "A=last", NULL };
	o.on_output = capture_fn;
	o.opaque = &cap;
	ck_assert_int_eq(exec_start_fd(fd, &d, &o, &ex, &err), 0);
	ck_assert_int_eq(msvmm_exec_wait(ex, &res, &err), 0);
	msvmm_exec_free(ex);
	agent_reap(pid);
	ck_assert_int_eq(res.status, 0);
	ck_assert_str_eq(cap.out, "last kept1\n");
}
END_TEST

START_TEST(test_not_found_127)
{
	struct capture cap = { 0 };
	msvmm_exec_opts o;
	msvmm_result res;
	msvmm_error err;

	msvmm_exec_opts_init(&o);
	o.argv = (const char *[]){ "no-such-command-here", NULL };
	o.on_output = capture_fn;
	o.opaque = &cap;
	ck_assert_int_eq(run(&o, &res, &err), 0);
	ck_assert_int_eq(res.status, 127);
	ck_assert_ptr_nonnull(strstr(cap.err, "not found"));
}
END_TEST

START_TEST(test_bad_options_refused)
{
	msvmm_exec_opts o;
	msvmm_error err = tu_err();
	msvmm_exec *ex = NULL;
	int sv[2];

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM, 0, sv), 0);
	close(sv[1]);
	msvmm_exec_opts_init(&o);
	o.argv = (const char *[]){ "true", NULL };
	o.env = (const char *[]){ "NOEQUALS", NULL };
	ck_assert_int_eq(exec_start_fd(sv[0], &defaults, &o, &ex, &err), -MSVMM_EINVAL);
	ck_assert_err(err, MSVMM_EINVAL, "KEY=VALUE");
	ck_assert_ptr_null(ex);
	/* The fd was the exec's: closed on failure too. */
	ck_assert_int_eq(fcntl(sv[0], F_GETFD), -1);
}
END_TEST

/* ---- a hostile agent: the test writes the guest's side itself ---- */

static void put_frame(int fd, uint8_t type, uint8_t flags, const void *p, uint32_t len, uint8_t reserved)
{
	uint8_t h[AGENT_HDR_SIZE];

	agent_hdr_pack(h, type, flags, len);
	h[6] = reserved;
	ck_assert_int_eq(write(fd, h, sizeof(h)), (ssize_t)sizeof(h));
	if (len)
		ck_assert_int_eq(write(fd, p, len), (ssize_t)len);
}

static void put_hello(int fd)
{
	uint8_t v[4];

	agent_put32(v, AGENT_PROTO_VERSION);
	put_frame(fd, AGENT_HELLO, 0, v, 4, 0);
}

typedef void (*script_fn)(int fd);

/* Run an exec against 'script' playing the agent; return wait's rc and the message. */
static int hostile_opts(script_fn script, uint64_t timeout_ms, msvmm_result *res, msvmm_error *err)
{
	msvmm_exec_opts o;
	msvmm_exec *ex;
	int sv[2], rc;
	pid_t pid;

	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	pid = fork();
	ck_assert_int_ge(pid, 0);
	if (pid == 0) {
		close(sv[0]);
		script(sv[1]);
		/* Keep the connection open: the host must stop on what it read, not on EOF. */
		pause();
		_exit(0);
	}
	close(sv[1]);
	msvmm_exec_opts_init(&o);
	o.argv = (const char *[]){ "true", NULL };
	o.timeout_ms = timeout_ms;
	ck_assert_int_eq(exec_start_fd(sv[0], &defaults, &o, &ex, err), 0);
	rc = msvmm_exec_wait(ex, res, err);
	msvmm_exec_free(ex);
	kill(pid, SIGKILL);
	waitpid(pid, NULL, 0);
	return rc;
}

static int hostile(script_fn script, msvmm_error *err)
{
	msvmm_result res;

	return hostile_opts(script, 0, &res, err);
}

static void s_bad_reserved(int fd) { put_hello(fd); put_frame(fd, AGENT_STDOUT, 0, "x", 1, 7); }
static void s_oversize(int fd)
{
	uint8_t h[AGENT_HDR_SIZE];

	put_hello(fd);
	agent_hdr_pack(h, AGENT_STDOUT, 0, AGENT_MAX_PAYLOAD + 1);
	ck_assert_int_eq(write(fd, h, sizeof(h)), (ssize_t)sizeof(h));
}
static void s_no_hello(int fd) { put_frame(fd, AGENT_EXIT, 0, "\0\0\0\0", 4, 0); }
static void s_wrong_direction(int fd) { put_hello(fd); put_frame(fd, AGENT_STDIN, 0, "x", 1, 0); }
static void s_bad_status(int fd) { put_hello(fd); put_frame(fd, AGENT_EXIT, 0, "\x00\x01\x00\x00", 4, 0); }
static void s_bad_flags(int fd) { put_hello(fd); put_frame(fd, AGENT_STDOUT, 0x80, "x", 1, 0); }
static void s_version(int fd) { put_frame(fd, AGENT_HELLO, 0, "\x09\0\0\0", 4, 0); }
static void s_error(int fd)
{
	uint8_t p[4 + 9];

	agent_put32(p, AGENT_ERR_REQUEST);
	memcpy(p + 4, "bad\n\x1b[2Jx", 9);
	put_hello(fd);
	put_frame(fd, AGENT_ERROR, 0, p, sizeof(p), 0);
}
static void s_ack_unsent(int fd) { put_hello(fd); put_frame(fd, AGENT_STDIN_ACK, 0, "\x01\0\0\0", 4, 0); }
static void s_eof(int fd)
{
	put_hello(fd);
	put_frame(fd, AGENT_STDOUT, 0, "partial", 7, 0);
	close(fd);
	_exit(0);
}

/* An agent that says HELLO and then nothing, whatever it is sent. */
static void s_deaf(int fd) { put_hello(fd); }

/* The guest never confirms the timeout's SIGKILL: the host still gives up, and says what it asked for. */
START_TEST(test_timeout_unconfirmed)
{
	msvmm_error err = tu_err();
	msvmm_result res;

	memset(&res, 0xff, sizeof(res));
	ck_assert_int_eq(hostile_opts(s_deaf, 200, &res, &err), -MSVMM_ETIMEDOUT);
	ck_assert_err(err, MSVMM_ETIMEDOUT, "did not report it killed");
	ck_assert_int_eq(res.timed_out, 1);
	ck_assert_int_eq(res.signaled, 1);
	ck_assert_int_eq(res.term_signal, SIGKILL);
	ck_assert_int_eq(res.status, 137);
}
END_TEST

/* msvmm_exec_start() sends the command: it runs before msvmm_exec_wait() is called. */
START_TEST(test_start_runs_before_wait)
{
	char *mark = tmp_path("mark"), script[400];
	struct stat st;
	msvmm_exec_opts o;
	msvmm_result res;
	msvmm_error err;
	msvmm_exec *ex;
	pid_t pid;
	int fd = agent_fork(&pid), i;

	snprintf(script, sizeof(script), "echo ran >'%s'", mark);
	msvmm_exec_opts_init(&o);
	o.argv = (const char *[]){ "sh", "-c", script, NULL };
	ck_assert_int_eq(exec_start_fd(fd, &defaults, &o, &ex, &err), 0);
	for (i = 0; i < 5000 && stat(mark, &st) < 0; i++)
		usleep(1000);
	ck_assert_msg(i < 5000, "the command did not run before msvmm_exec_wait()");
	ck_assert_int_eq(msvmm_exec_wait(ex, &res, &err), 0);
	ck_assert_int_eq(res.status, 0);
	msvmm_exec_free(ex);
	agent_reap(pid);
}
END_TEST

START_TEST(test_hostile_agent)
{
	static const struct { script_fn fn; const char *needle; } cases[] = {
		{ s_bad_reserved, "malformed frame header" },
		{ s_oversize, "malformed frame header" },
		{ s_no_hello, "not HELLO" },
		{ s_wrong_direction, "malformed frame header" },
		{ s_bad_status, "impossible exit status" },
		{ s_bad_flags, "malformed frame header" },
		{ s_version, "version 9" },
		{ s_error, "bad??[2Jx" },
		{ s_ack_unsent, "STDIN_ACK for no stdin, or for more than was sent" },
		{ s_eof, "closed the connection" },
	};

	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		msvmm_error err = tu_err();
		int rc = hostile(cases[i].fn, &err);

		ck_assert_msg(rc == -MSVMM_EGUEST, "case %zu: rc %d (%s)", i, rc, err.message);
		ck_assert_err(err, MSVMM_EGUEST, cases[i].needle);
	}
}
END_TEST

static void setup(void)
{
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void teardown(void)
{
	char cmd[300];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
	strcpy(tmpdir, "/tmp/msvmm-exec-XXXXXX");
}

int main(void)
{
	Suite *s = suite_create("exec-agent");
	TCase *tc = tcase_create("exec");

	signal(SIGPIPE, SIG_IGN);
	tcase_add_checked_fixture(tc, setup, teardown);
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_streams_separate_and_exact);
	tcase_add_test(tc, test_stdin_echoed_exactly);
	tcase_add_test(tc, test_every_exit_code);
	tcase_add_test(tc, test_sigterm_143_sigkill_137);
	tcase_add_test(tc, test_signal_while_stdin_unread);
	tcase_add_test(tc, test_timeout_while_stdin_unread);
	tcase_add_test(tc, test_stdin_left_unread_no_hang);
	tcase_add_test(tc, test_timeout_kills);
	tcase_add_test(tc, test_timeout_with_stalled_stdout);
	tcase_add_test(tc, test_callback_utf8_env_workdir);
	tcase_add_test(tc, test_not_found_127);
	tcase_add_test(tc, test_env_last_wins);
	tcase_add_test(tc, test_bad_options_refused);
	tcase_add_test(tc, test_hostile_agent);
	tcase_add_test(tc, test_timeout_unconfirmed);
	tcase_add_test(tc, test_start_runs_before_wait);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
