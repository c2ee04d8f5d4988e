// SPDX-License-Identifier: Apache-2.0
/*
 * Run-code end to end minus the VM: the host's client (lib/exec.c,
 * code_start_fd) against the real guest agent (guest-init/agent.c and
 * runtime.c) over socketpairs, with this machine's /usr/bin/python3 as the
 * runtime's interpreter and a temporary directory as the runtimes' root.
 * Every call gets its own agent session, as every call gets its own vsock
 * connection in a sandbox; one root is one sandbox.
 *
 * State persists from call to call, stdout and stderr arrive apart and
 * byte-exact (MiBs of them too), exceptions, SystemExit, expressions and
 * syntax errors are reported as python would, a timeout interrupts the code
 * and keeps the interpreter (or kills one that ignores SIGINT, and says
 * so), a second call waits for the first, a host that leaves mid-call or
 * an agent that dies mid-call does not wedge the runtime, and two roots
 * (two sandboxes) share nothing.
 */
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
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

#define PYTHON "/usr/bin/python3"
#define MIB (1u << 20)

static char base[256];	/* this run's directory: one root per test under it */
static char root[300];	/* the runtimes' root of the current test: one sandbox */

static const struct exec_defaults defaults = { .default_cmd = "/bin/sh" };

struct buf {
	uint8_t *p;
	size_t len, cap;
};

struct out {
	struct buf o, e;
};

struct call {
	msvmm_exec *ex;
	pid_t agent;
	struct out out;
	msvmm_result res;
	msvmm_error err;
	int rc;
};

static void buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->len + n + 1 > b->cap) {
		b->cap = (b->len + n + 1) * 2;
		b->p = realloc(b->p, b->cap);
		ck_assert_ptr_nonnull(b->p);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
	b->p[b->len] = '\0';
}

static const char *str(const struct buf *b)
{
	return b->p ? (const char *)b->p : "";
}

static void on_output(void *opaque, int stream, const void *data, size_t len)
{
	struct out *o = opaque;

	buf_add(stream == 1 ? &o->o : &o->e, data, len);
}

static void call_free(struct call *c)
{
	free(c->out.o.p);
	free(c->out.e.p);
	memset(&c->out, 0, sizeof(c->out));
}

/* --- the sandbox: a root, and an agent session per call ------------------------------- */

static void base_setup(void)
{
	snprintf(base, sizeof(base), "%s/msvmm-runcode-XXXXXX", tu_tmpdir());
	ck_assert_ptr_nonnull(mkdtemp(base));
}

/* The python interpreter of a root, from the runtime's pid file; -1 when there is none. */
static pid_t interp_pid(const char *r)
{
	char path[400], buf[32] = "";
	FILE *f;

	snprintf(path, sizeof(path), "%s/python/pid", r);
	f = fopen(path, "r");
	if (!f)
		return -1;
	if (!fgets(buf, sizeof(buf), f))
		buf[0] = '\0';
	fclose(f);
	return atoi(buf) > 1 ? atoi(buf) : -1;
}

/* A fresh root per test; an interpreter left in it is killed afterwards. */
static void setup(void)
{
	snprintf(root, sizeof(root), "%s/sb-XXXXXX", base);
	ck_assert_ptr_nonnull(mkdtemp(root));
}

static void root_kill(const char *r)
{
	pid_t pid = interp_pid(r);

	if (pid > 0) {
		kill(-pid, SIGKILL);
		tu_assert_gone(pid, 20000);
	}
}

static void teardown(void)
{
	root_kill(root);
}

/* In the parent, after every test: a test that failed did not get to its teardown. */
static void base_teardown(void)
{
	char cmd[300], path[600];
	struct dirent *de;
	DIR *d = opendir(base);

	for (; d && (de = readdir(d));) {
		snprintf(path, sizeof(path), "%s/%s", base, de->d_name);
		if (de->d_name[0] != '.')
			root_kill(path);
	}
	if (d)
		closedir(d);
	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	ck_assert_int_eq(system(cmd), 0);
}

/* Start a call in sandbox r: a forked agent session, the client on the other end. */
static void call_start_in(struct call *c, const char *r, const char *program, const char *runtime, const char *code,
			  const msvmm_exec_opts *o)
{
	struct agent_hooks hooks = { .runtime_dir = r };
	struct code_spec spec = { .runtime = runtime, .program = program, .text = code, .len = strlen(code) };
	msvmm_exec_opts opts;
	int sv[2];

	memset(c, 0, sizeof(*c));
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	c->agent = fork();
	ck_assert_int_ge(c->agent, 0);
	if (c->agent == 0) {
		close(sv[0]);
		_exit(agent_session(sv[1], NULL, &hooks));
	}
	close(sv[1]);
	if (o)
		opts = *o;
	else
		msvmm_exec_opts_init(&opts);
	opts.on_output = on_output;
	opts.opaque = &c->out;
	c->err = tu_err();
	c->rc = code_start_fd(sv[0], &defaults, &spec, &opts, &c->ex, &c->err);
	ck_assert_msg(c->rc == 0, "start: %s", c->err.message);
}

/* Wait for it; the agent session must end without crashing. */
static int call_wait(struct call *c)
{
	int st;

	c->rc = msvmm_exec_wait(c->ex, &c->res, &c->err);
	msvmm_exec_free(c->ex);
	c->ex = NULL;
	ck_assert_int_eq(waitpid(c->agent, &st, 0), c->agent);
	ck_assert_msg(WIFEXITED(st), "agent session died of signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	return c->rc;
}

static int run_opts(struct call *c, const char *code, const msvmm_exec_opts *o)
{
	call_start_in(c, root, PYTHON, "python", code, o);
	return call_wait(c);
}

/* Run code that must succeed; its stdout and stderr must be exactly out and err. */
static void run_ok(const char *code, const char *out, const char *err)
{
	struct call c;

	ck_assert_msg(run_opts(&c, code, NULL) == 0, "%s: %s", code, c.err.message);
	ck_assert_msg(c.res.exited && c.res.status == 0, "%s: status %d, stderr %s", code, c.res.status,
		      str(&c.out.e));
	ck_assert_str_eq(str(&c.out.o), out);
	ck_assert_str_eq(str(&c.out.e), err);
	call_free(&c);
}

/* --- state, streams, status ------------------------------------------------------------ */

START_TEST(test_state_persists)
{
	run_ok("x = 1", "", "");
	run_ok("print(x + 1)", "2\n", "");
	run_ok("def twice(v):\n    return 2 * v\n", "", "");
	run_ok("print(twice(x + 20))", "42\n", "");
}
END_TEST

START_TEST(test_streams_separate)
{
	run_ok("import sys\nsys.stdout.write('out1\\n')\nsys.stderr.write('err1\\n')\nprint('out2')\n"
	       "print('err2', file=sys.stderr)\nn = sys.stdout.write('no newline')",
	       "out1\nout2\nno newline", "err1\nerr2\n");
	/* An expression last is shown, as at the prompt: here write()'s count. */
	run_ok("sys.stdout.write('abc')", "abc3\n", "");
}
END_TEST

START_TEST(test_expression_value)
{
	run_ok("6*7", "42\n", "");
	run_ok("y = 5\ny * 2", "10\n", "");
	run_ok("'a' + 'b'", "'ab'\n", "");
	/* None prints nothing, as at the prompt; a statement last prints nothing either. */
	run_ok("None", "", "");
	run_ok("z = y", "", "");
}
END_TEST

START_TEST(test_exception)
{
	struct call c;

	run_ok("before = 'kept'", "", "");
	ck_assert_int_eq(run_opts(&c, "def f():\n    raise ValueError('boom')\nf()", NULL), 0);
	ck_assert_int_eq(c.res.status, 1);
	ck_assert_str_eq(str(&c.out.o), "");
	ck_assert_str_eq(str(&c.out.e), "Traceback (most recent call last):\n"
					"  File \"<code-2>\", line 3, in <module>\n"
					"    f()\n"
					"  File \"<code-2>\", line 2, in f\n"
					"    raise ValueError('boom')\n"
					"ValueError: boom\n");
	ck_assert_int_eq(c.res.runtime_ended, 0);
	call_free(&c);
	run_ok("print(before)", "kept\n", "");
}
END_TEST

START_TEST(test_syntax_error)
{
	struct call c;

	ck_assert_int_eq(run_opts(&c, "x = (1,", NULL), 0);
	ck_assert_int_eq(c.res.status, 1);
	/* As python reports a script that does not compile: no traceback header. */
	ck_assert_msg(strstr(str(&c.out.e), "SyntaxError") && !strstr(str(&c.out.e), "Traceback"), "stderr: %s",
		      str(&c.out.e));
	call_free(&c);
	run_ok("print('still here')", "still here\n", "");
}
END_TEST

START_TEST(test_system_exit)
{
	static const struct { const char *code; int status; const char *err; } cases[] = {
		{ "raise SystemExit(7)", 7, "" },
		{ "import sys; sys.exit()", 0, "" },
		{ "sys.exit(300)", 300 & 0xff, "" },
		{ "sys.exit('bye')", 1, "bye\n" },
	};
	struct call c;

	run_ok("k = 3", "", "");
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		ck_assert_int_eq(run_opts(&c, cases[i].code, NULL), 0);
		ck_assert_msg(c.res.exited && c.res.status == cases[i].status, "%s: status %d", cases[i].code,
			      c.res.status);
		ck_assert_str_eq(str(&c.out.e), cases[i].err);
		ck_assert_int_eq(c.res.runtime_ended, 0);
		call_free(&c);
	}
	/* SystemExit ends the call, not the interpreter. */
	run_ok("print(k)", "3\n", "");
}
END_TEST

START_TEST(test_binary_and_unicode)
{
	struct call c;
	uint8_t want[256 + 64];
	/* "ünïcödé ✓" */
	const char *text = "\xc3\xbcn\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9 \xe2\x9c\x93\n";

	for (int i = 0; i < 256; i++)
		want[i] = (uint8_t)i;
	memcpy(want + 256, text, strlen(text));
	ck_assert_int_eq(run_opts(&c, "import sys\nsys.stdout.buffer.write(bytes(range(256)))\nsys.stdout.flush()\n"
				      "print('\xc3\xbcn\xc3\xaf" "c\xc3\xb6" "d\xc3\xa9 \xe2\x9c\x93')\n"
				      "n = sys.stderr.buffer.write(b'\\x00\\xff\\r\\n')",
				 NULL),
			 0);
	ck_assert_int_eq(c.res.status, 0);
	ck_assert_uint_eq(c.out.o.len, 256 + strlen(text));
	ck_assert(memcmp(c.out.o.p, want, c.out.o.len) == 0);
	ck_assert_uint_eq(c.out.e.len, 4);
	ck_assert(memcmp(c.out.e.p, "\x00\xff\r\n", 4) == 0);
	call_free(&c);
}
END_TEST

/* MiBs on both streams at once, every byte where it belongs. */
START_TEST(test_large_output)
{
	const size_t nout = 6 * MIB, nerr = 3 * MIB;
	struct call c;

	ck_assert_int_eq(run_opts(&c, "import sys\n"
				      "o = b''.join(i.to_bytes(4, 'little') for i in range(6 << 18))\n"
				      "e = b''.join((i ^ 0xdeadbeef).to_bytes(4, 'little') for i in range(3 << 18))\n"
				      "for i in range(0, len(o), 1 << 20):\n"
				      "    sys.stdout.buffer.write(o[i:i + (1 << 20)])\n"
				      "    sys.stderr.buffer.write(e[i // 2:i // 2 + (1 << 19)])\n",
				 NULL),
			 0);
	ck_assert_int_eq(c.res.status, 0);
	ck_assert_uint_eq(c.out.o.len, nout);
	ck_assert_uint_eq(c.out.e.len, nerr);
	for (uint32_t i = 0; i < nout / 4; i++)
		ck_assert_msg(tu_get32(c.out.o.p + 4 * i) == i, "stdout word %u", i);
	for (uint32_t i = 0; i < nerr / 4; i++)
		ck_assert_msg(tu_get32(c.out.e.p + 4 * i) == (i ^ 0xdeadbeefu), "stderr word %u", i);
	call_free(&c);
}
END_TEST

/* --- timeouts and signals ---------------------------------------------------------------- */

START_TEST(test_timeout_interrupts)
{
	msvmm_exec_opts o;
	struct call c;
	pid_t pid;

	run_ok("kept = 'yes'", "", "");
	pid = interp_pid(root);
	ck_assert_int_gt(pid, 1);
	msvmm_exec_opts_init(&o);
	o.timeout_ms = 300;
	ck_assert_int_eq(run_opts(&c, "while True:\n    pass\n", &o), -MSVMM_ETIMEDOUT);
	ck_assert_err(c.err, MSVMM_ETIMEDOUT, "interrupted (KeyboardInterrupt); the runtime keeps its state");
	ck_assert(c.res.timed_out);
	ck_assert(c.res.signaled && c.res.term_signal == SIGINT && c.res.status == 130);
	ck_assert_int_eq(c.res.runtime_ended, 0);
	ck_assert_msg(strstr(str(&c.out.e), "KeyboardInterrupt\n") && !strstr(str(&c.out.e), "<string>"),
		      "stderr: %s", str(&c.out.e));
	call_free(&c);
	/* The same interpreter, with its globals. */
	ck_assert_int_eq(interp_pid(root), pid);
	run_ok("print(kept)", "yes\n", "");
}
END_TEST

/* A deadline that passes while the interpreter is still starting interrupts the first block, not python. */
START_TEST(test_timeout_while_starting)
{
	msvmm_exec_opts o;
	struct call c;
	pid_t pid;

	msvmm_exec_opts_init(&o);
	o.timeout_ms = 1;
	ck_assert_int_eq(run_opts(&c, "while True:\n    pass\n", &o), -MSVMM_ETIMEDOUT);
	ck_assert_msg(c.res.signaled && c.res.term_signal == SIGINT && !c.res.runtime_ended, "status %d, stderr %s",
		      c.res.status, str(&c.out.e));
	ck_assert_msg(strstr(str(&c.out.e), "KeyboardInterrupt"), "stderr: %s", str(&c.out.e));
	call_free(&c);
	pid = interp_pid(root);
	run_ok("print('up')", "up\n", "");
	ck_assert_int_eq(interp_pid(root), pid);
}
END_TEST

/*
 * Deadlines that race the code's end: whichever wins, the interrupt is
 * spent on its own call, never on the next one.
 */
START_TEST(test_timeout_races_end)
{
	msvmm_exec_opts o;
	struct call c;

	run_ok("import time", "", "");
	msvmm_exec_opts_init(&o);
	for (int i = 0; i < 20; i++) {
		o.timeout_ms = 20 + (uint64_t)(i % 5);
		run_opts(&c, "time.sleep(0.02)", &o);
		ck_assert_msg(c.res.status == 0 || c.res.status == 130, "status %d", c.res.status);
		ck_assert_int_eq(c.res.runtime_ended, 0);
		call_free(&c);
		run_ok("print('next')", "next\n", "");
	}
}
END_TEST

/* Code that ignores SIGINT is killed with its interpreter after the grace period: state lost, said so. */
START_TEST(test_timeout_kills_stubborn_code)
{
	msvmm_exec_opts o;
	struct call c;
	pid_t pid;

	run_ok("lost = 1", "", "");
	pid = interp_pid(root);
	msvmm_exec_opts_init(&o);
	o.timeout_ms = 200;
	ck_assert_int_eq(run_opts(&c, "import signal\nsignal.signal(signal.SIGINT, signal.SIG_IGN)\nwhile True:\n"
				      "    pass\n",
				 &o),
			 -MSVMM_ETIMEDOUT);
	ck_assert_err(c.err, MSVMM_ETIMEDOUT, "did not stop on SIGINT: its runtime was killed, its state is lost");
	ck_assert(c.res.timed_out && c.res.runtime_ended);
	ck_assert(c.res.signaled && c.res.term_signal == SIGKILL && c.res.status == 137);
	ck_assert_str_eq(str(&c.out.e), "msvmm: the python runtime ended (killed by signal 9): its state is lost, "
					"the next call starts a new one\n");
	call_free(&c);
	tu_assert_gone(pid, 20000);
	/* A new interpreter, with nothing of the old one's, and no second word about it. */
	run_ok("print(globals().get('lost'))", "None\n", "");
	ck_assert_int_ne(interp_pid(root), pid);
}
END_TEST

/* A signal from the host (msx forwards Ctrl-C) reaches the code: KeyboardInterrupt, state kept. */
START_TEST(test_signal_interrupts)
{
	struct call c;

	run_ok("n = 7", "", "");
	call_start_in(&c, root, PYTHON, "python", "import time\nprint('sleeping', flush=True)\ntime.sleep(60)", NULL);
	usleep(300000);
	ck_assert_int_eq(msvmm_exec_signal(c.ex, SIGINT), 0);
	ck_assert_int_eq(call_wait(&c), 0);
	ck_assert(!c.res.timed_out && c.res.signaled && c.res.term_signal == SIGINT);
	ck_assert_str_eq(str(&c.out.o), "sleeping\n");
	ck_assert_msg(strstr(str(&c.out.e), "KeyboardInterrupt"), "stderr: %s", str(&c.out.e));
	call_free(&c);
	run_ok("print(n)", "7\n", "");
}
END_TEST

/* The interpreter itself ends (os._exit): its status, the flag, a line on stderr; the next call starts anew. */
START_TEST(test_interpreter_exits)
{
	struct call c;

	run_ok("gone = 1", "", "");
	ck_assert_int_eq(run_opts(&c, "import os\nprint('bye', flush=True)\nos._exit(3)", NULL), 0);
	ck_assert(c.res.exited && c.res.status == 3 && c.res.runtime_ended);
	ck_assert_str_eq(str(&c.out.o), "bye\n");
	ck_assert_str_eq(str(&c.out.e), "msvmm: the python runtime ended (exit status 3): its state is lost, "
					"the next call starts a new one\n");
	call_free(&c);
	run_ok("print(globals().get('gone'))", "None\n", "");
}
END_TEST

/* Killed between calls (OOM, kill -9): the next call says the state is gone. */
START_TEST(test_died_between_calls)
{
	struct call c;
	pid_t pid;

	run_ok("q = 1", "", "");
	pid = interp_pid(root);
	kill(pid, SIGKILL);
	tu_assert_gone(pid, 20000);
	ck_assert_int_eq(run_opts(&c, "print(globals().get('q'))", NULL), 0);
	ck_assert_int_eq(c.res.status, 0);
	ck_assert_str_eq(str(&c.out.o), "None\n");
	ck_assert_str_eq(str(&c.out.e), "msvmm: the python runtime had ended since the previous call: a new one was "
					"started, its state is lost\n");
	call_free(&c);
}
END_TEST

/* --- more than one call ------------------------------------------------------------------- */

/* A call made while another runs waits for it, then sees what it left. */
START_TEST(test_second_call_waits)
{
	struct call a, b;

	run_ok("", "", "");	/* the interpreter is up: the first call is not slowed by its start */
	call_start_in(&a, root, PYTHON, "python", "import time\ntime.sleep(0.5)\nshared = 'from a'\nprint('a')", NULL);
	usleep(100000);
	call_start_in(&b, root, PYTHON, "python", "print(shared)", NULL);
	ck_assert_int_eq(call_wait(&b), 0);
	ck_assert_int_eq(call_wait(&a), 0);
	ck_assert_str_eq(str(&a.out.o), "a\n");
	ck_assert_int_eq(b.res.status, 0);
	ck_assert_str_eq(str(&b.out.o), "from a\n");
	call_free(&a);
	call_free(&b);
}
END_TEST

/* A waiting call whose deadline passes ends without running; the running one is untouched. */
START_TEST(test_timeout_while_waiting)
{
	msvmm_exec_opts o;
	struct call a, b;

	run_ok("", "", "");
	call_start_in(&a, root, PYTHON, "python", "import time\ntime.sleep(1)\nprint('a done')", NULL);
	usleep(100000);
	msvmm_exec_opts_init(&o);
	o.timeout_ms = 200;
	call_start_in(&b, root, PYTHON, "python", "print('b ran')", &o);
	ck_assert_int_eq(call_wait(&b), -MSVMM_ETIMEDOUT);
	ck_assert(b.res.timed_out && b.res.term_signal == SIGINT);
	ck_assert_str_eq(str(&b.out.o), "");
	ck_assert_str_eq(str(&b.out.e), "msvmm: signal 2 came while the python runtime was busy with another call: "
					"the code did not run\n");
	ck_assert_int_eq(call_wait(&a), 0);
	ck_assert_int_eq(a.res.status, 0);
	ck_assert_str_eq(str(&a.out.o), "a done\n");
	call_free(&a);
	call_free(&b);
}
END_TEST

/* The host leaves mid-call: the code is interrupted, the interpreter and its state stay. */
START_TEST(test_host_leaves_mid_call)
{
	struct call c;
	pid_t pid;
	int st;

	run_ok("w = 'still'", "", "");
	pid = interp_pid(root);
	call_start_in(&c, root, PYTHON, "python", "import time\nprint('x' * 200000)\ntime.sleep(60)", NULL);
	usleep(300000);
	msvmm_exec_free(c.ex);
	ck_assert_int_eq(waitpid(c.agent, &st, 0), c.agent);
	ck_assert(WIFEXITED(st));
	call_free(&c);
	ck_assert_int_eq(interp_pid(root), pid);
	run_ok("print(w)", "still\n", "");
}
END_TEST

/* The agent session dies mid-call (killed): the next call finds the runtime busy and restarts it. */
START_TEST(test_session_dies_mid_call)
{
	struct call c;
	pid_t pid;
	int st;

	run_ok("v = 1", "", "");
	pid = interp_pid(root);
	call_start_in(&c, root, PYTHON, "python", "import time\ntime.sleep(60)", NULL);
	usleep(300000);
	kill(c.agent, SIGKILL);
	ck_assert_int_eq(waitpid(c.agent, &st, 0), c.agent);
	msvmm_exec_free(c.ex);
	call_free(&c);
	ck_assert_int_eq(run_opts(&c, "print(globals().get('v'))", NULL), 0);
	ck_assert_int_eq(c.res.status, 0);
	ck_assert_str_eq(str(&c.out.o), "None\n");
	ck_assert_str_eq(str(&c.out.e), "msvmm: the python runtime was left busy by a call that lost its "
					"connection: it was restarted, its state is lost\n");
	call_free(&c);
	tu_assert_gone(pid, 20000);
}
END_TEST

/* Two roots are two sandboxes: nothing of one is seen in the other. */
START_TEST(test_sandboxes_apart)
{
	char other[400];
	struct call c;

	snprintf(other, sizeof(other), "%s-other", root);
	ck_assert_int_eq(mkdir(other, 0700), 0);
	run_ok("v = 'one'", "", "");
	call_start_in(&c, other, PYTHON, "python", "print(globals().get('v'))", NULL);
	ck_assert_int_eq(call_wait(&c), 0);
	ck_assert_str_eq(str(&c.out.o), "None\n");
	call_free(&c);
	ck_assert_int_ne(interp_pid(other), interp_pid(root));
	run_ok("print(v)", "one\n", "");
	root_kill(other);
}
END_TEST

/* The first call's environment and directory are the interpreter's; the empty call just starts it. */
START_TEST(test_env_and_workdir)
{
	const char *env[] = { "GREETING=hi", NULL };
	msvmm_exec_opts o;
	struct call c;
	char want[400];

	msvmm_exec_opts_init(&o);
	o.env = env;
	o.workdir = base;
	ck_assert_int_eq(interp_pid(root), -1);
	ck_assert_int_eq(run_opts(&c, "", &o), 0);
	ck_assert_int_eq(c.res.status, 0);
	call_free(&c);
	ck_assert_int_gt(interp_pid(root), 1);
	snprintf(want, sizeof(want), "hi %s\n", base);
	run_ok("import os\nprint(os.environ['GREETING'], os.getcwd())", want, "");
	/* stdin is /dev/null: input() ends at once. */
	run_ok("try:\n    input()\nexcept EOFError:\n    print('eof')", "eof\n", "");
}
END_TEST

/* --- refusals -------------------------------------------------------------------------------- */

START_TEST(test_unknown_runtime)
{
	struct call c;

	call_start_in(&c, root, PYTHON, "ruby", "puts 1", NULL);
	ck_assert_int_eq(call_wait(&c), -MSVMM_EGUEST);
	ck_assert_err(c.err, MSVMM_EGUEST, "no runtime 'ruby' here (there is: python) (error 5)");
	call_free(&c);
}
END_TEST

START_TEST(test_interpreter_missing)
{
	struct call c;

	call_start_in(&c, root, "/nonexistent/python3", "python", "print(1)", NULL);
	ck_assert_int_eq(call_wait(&c), -MSVMM_EGUEST);
	ck_assert_err(c.err, MSVMM_EGUEST,
		      "cannot start the python runtime: /nonexistent/python3: No such file or directory (error 5)");
	call_free(&c);
	/* Nothing half-started is left to trip the next call. */
	run_ok("print(1)", "1\n", "");
}
END_TEST

START_TEST(test_bad_workdir)
{
	msvmm_exec_opts o;
	struct call c;

	msvmm_exec_opts_init(&o);
	o.workdir = "/nonexistent-dir";
	call_start_in(&c, root, PYTHON, "python", "print(1)", &o);
	ck_assert_int_eq(call_wait(&c), -MSVMM_EGUEST);
	ck_assert_err(c.err, MSVMM_EGUEST, "cannot start the python runtime: /nonexistent-dir: No such file");
	call_free(&c);
}
END_TEST

/* What the library refuses before anything is sent. */
START_TEST(test_client_refusals)
{
	static const char *const argv[] = { "sh", NULL };
	struct code_spec spec = { .runtime = "python", .program = PYTHON, .text = "a\0b", .len = 3 };
	msvmm_exec_opts o;
	msvmm_exec *ex;
	msvmm_error err = tu_err();
	char *big;
	int sv[2];

	for (int i = 0; i < 5; i++) {
		msvmm_exec_opts_init(&o);
		spec.len = 1;
		if (i == 0)
			o.argv = argv;
		else if (i == 1)
			o.tty = 1;
		else if (i == 2)
			o.stdin_fd = 0;
		else if (i == 3)
			o.user = "nobody";
		else
			spec.len = 3;	/* the NUL */
		ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
		close(sv[1]);
		ck_assert_int_eq(code_start_fd(sv[0], &defaults, &spec, &o, &ex, &err), -MSVMM_EINVAL);
		ck_assert_err(err, MSVMM_EINVAL, i < 4 ? "run-code takes no command, tty, stdin or user"
						  : "the code contains a NUL byte");
	}
	big = malloc(AGENT_MAX_RUNCODE + 1);
	ck_assert_ptr_nonnull(big);
	memset(big, 'x', AGENT_MAX_RUNCODE + 1);
	spec.text = big;
	spec.len = AGENT_MAX_RUNCODE + 1;
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	close(sv[1]);
	ck_assert_int_eq(code_start_fd(sv[0], &defaults, &spec, NULL, &ex, &err), -MSVMM_EINVAL);
	ck_assert_err(err, MSVMM_EINVAL, "the code and environment exceed 1024 KiB");
	free(big);
}
END_TEST

/* Nearly the largest code there is arrives whole. */
START_TEST(test_large_code)
{
	static const char head[] = "print('big')\n";
	size_t n = AGENT_MAX_RUNCODE - 4096;
	char *code = malloc(n + 1);
	struct call c;

	/* A print, then a comment to fill it up. */
	ck_assert_ptr_nonnull(code);
	memset(code, '#', n);
	memcpy(code, head, sizeof(head) - 1);
	code[n] = '\0';
	call_start_in(&c, root, PYTHON, "python", code, NULL);
	ck_assert_int_eq(call_wait(&c), 0);
	ck_assert_int_eq(c.res.status, 0);
	ck_assert_str_eq(str(&c.out.o), "big\n");
	call_free(&c);
	free(code);
}
END_TEST

static Suite *runcode_suite(void)
{
	Suite *s = suite_create("runcode");
	TCase *state = tcase_create("state"), *stop = tcase_create("stopping"), *calls = tcase_create("calls"),
	      *refuse = tcase_create("refusals");
	TCase *all[] = { state, stop, calls, refuse };

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		tcase_set_timeout(all[i], 60);
		tcase_add_unchecked_fixture(all[i], base_setup, base_teardown);
		tcase_add_checked_fixture(all[i], setup, teardown);
		suite_add_tcase(s, all[i]);
	}
	tcase_add_test(state, test_state_persists);
	tcase_add_test(state, test_streams_separate);
	tcase_add_test(state, test_expression_value);
	tcase_add_test(state, test_exception);
	tcase_add_test(state, test_syntax_error);
	tcase_add_test(state, test_system_exit);
	tcase_add_test(state, test_binary_and_unicode);
	tcase_add_test(state, test_large_output);
	tcase_add_test(state, test_env_and_workdir);

	tcase_add_test(stop, test_timeout_interrupts);
	tcase_add_test(stop, test_timeout_while_starting);
	tcase_add_test(stop, test_timeout_races_end);
	tcase_add_test(stop, test_timeout_kills_stubborn_code);
	tcase_add_test(stop, test_signal_interrupts);
	tcase_add_test(stop, test_interpreter_exits);
	tcase_add_test(stop, test_died_between_calls);

	tcase_add_test(calls, test_second_call_waits);
	tcase_add_test(calls, test_timeout_while_waiting);
	tcase_add_test(calls, test_host_leaves_mid_call);
	tcase_add_test(calls, test_session_dies_mid_call);
	tcase_add_test(calls, test_sandboxes_apart);

	tcase_add_test(refuse, test_unknown_runtime);
	tcase_add_test(refuse, test_interpreter_missing);
	tcase_add_test(refuse, test_bad_workdir);
	tcase_add_test(refuse, test_client_refusals);
	tcase_add_test(refuse, test_large_code);
	return s;
}

int main(void)
{
	if (access(PYTHON, X_OK) < 0) {
		printf("test_runcode: SKIPPED: no %s on this machine\n", PYTHON);
		return 0;
	}
	/* A call whose connection dies must not take the test with it. */
	signal(SIGPIPE, SIG_IGN);
	return tu_run(runcode_suite());
}
