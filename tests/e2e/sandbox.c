// SPDX-License-Identifier: Apache-2.0
/*
 * Sandboxes end to end, through the public API only: ONE sandbox booted
 * from the test image (the busybox image plus the static helper
 * tests/e2e/mstest.c, built by tests/e2e/run.sh) runs every test in order:
 * exit codes, state kept between commands, signals, timeouts, 20 MiB
 * streams in and out checked byte for byte against gen.h, binary and UTF-8
 * output, 50 concurrent host->guest vsock connections, a guest->host
 * connection, the Firecracker-style vsock Unix socket, and a clean stop
 * that leaves nothing behind.
 *
 *   sandbox IMAGE DATA_DIR
 *	IMAGE: the test image (a directory holding image.conf), default
 *	$MSVMM_E2E_IMAGE; DATA_DIR: where the kernel is (BUILD/share/msvmm),
 *	default $MSVMM_E2E_DATA_DIR.  Temp files go under $TMPDIR (or /tmp).
 *
 * The sandbox's threads live in this process, so Check runs the tests
 * without forking (CK_NOFORK); Check's timeouts exist only in fork mode, so
 * each test sets its own limit on a watchdog thread instead, which ends the
 * whole program (naming the test) when one expires.  Worker threads never assert: they
 * record what went wrong, and the test asserts after joining them.
 *
 * With no /dev/kvm at all the program skips, saying so; a /dev/kvm that
 * exists but does not work fails.
 */
#include <check.h>
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdarg.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <time.h>
#include <unistd.h>

#include "gen.h"
#include "msvmm.h"
#include "testutil.h"

#define GUEST_MEM_MIB 512
#define BIG_BYTES (20u << 20)   /* the stdout, stderr and stdin streams */
#define CONN_BYTES (1u << 20)   /* per vsock connection */
#define NR_CONNS 50
#define ECHO_PORT 5000          /* mstest vsock-echo in the guest */
#define HOST_PORT 6000          /* msvmm_vm_vsock_listen on the host */
#define STDOUT_SEED 1
#define STDERR_SEED 2
#define STDIN_SEED 3
#define GUEST_TO_HOST_SEED 7
#define UDS_SEED 11
#define EXEC_TIMEOUT_MS 300000  /* a safety net: no exec here should take minutes */
#define CONNECT_RETRY_MS 60000  /* the echo server may still be starting */
#define ACCEPT_TIMEOUT_MS 120000
#define STOP_TIMEOUT_MS 60000
#define IO_BUF (64 * 1024)
#define FILE_CHUNK (1u << 20)

static msvmm_sandbox *sb;
static const char *image_arg, *data_dir_arg;
static char tmpdir[PATH_MAX / 2];
static char uds_path[sizeof(((struct sockaddr_un *)0)->sun_path)];

/* ---- helpers ----------------------------------------------------------- */

static uint64_t now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000 + (uint64_t)ts.tv_nsec / 1000000;
}

static void sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/*
 * The watchdog: a thread that ends the program when the current test runs
 * past its limit.  Not alarm(): Check's own SIGALRM handler, installed even
 * without forking, would SIGKILL our whole process group.
 */
static pthread_mutex_t wd_lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t wd_deadline; /* now_ms() value; 0: none */
static const char *wd_test = "(none)";
/* Progress the watchdog reports: the one echo stream a test runs (NULL: none). */
struct conn_job;
static const struct conn_job *_Atomic wd_job;
static void conn_job_report(const struct conn_job *j);
static void sandbox_state_once(const char *why);
/* Set when the sandbox's state showed its guest kernel dead or deadlocked. */
static _Atomic int guest_broken;

static void *watchdog(void *unused)
{
	for (;;) {
		sleep_ms(500);
		pthread_mutex_lock(&wd_lock);
		if (wd_deadline && now_ms() > wd_deadline) {
			fprintf(stderr, "sandbox: TIMEOUT: %s ran past its limit\n", wd_test);
			if (wd_job)
				conn_job_report(wd_job);
			/* What a stuck guest was doing: vCPUs, interrupts, rings, vsock connections. */
			sandbox_state_once("a test ran past its limit");
			_exit(EXIT_FAILURE);
		}
		pthread_mutex_unlock(&wd_lock);
	}
	return NULL;
}

static void test_limit(const char *name, unsigned int seconds)
{
	pthread_mutex_lock(&wd_lock);
	wd_test = name;
	wd_deadline = now_ms() + seconds * 1000ULL;
	pthread_mutex_unlock(&wd_lock);
}

/* Bound the current test to 'seconds' (the next test sets its own). */
#define TEST_LIMIT(seconds) test_limit(__func__, (seconds))

#define NEED_SANDBOX()                                                   \
	do {                                                              \
		ck_assert_msg(sb != NULL, "no sandbox: test_start failed"); \
		ck_assert_msg(!guest_broken, "the guest kernel broke earlier (its state is above)"); \
	} while (0)


/* Output collected by on_output, per stream (1 stdout, 2 stderr), NUL-terminated for messages. */
struct capture {
	uint8_t *p[3];
	size_t len[3], cap[3];
	bool oom, bad_stream;
};

static void capture_fn(void *opaque, int stream, const void *data, size_t len)
{
	struct capture *c = opaque;

	if (stream != 1 && stream != 2) {
		c->bad_stream = true;
		return;
	}
	if (c->len[stream] + len + 1 > c->cap[stream]) {
		size_t cap = (c->len[stream] + len + 1) * 2;
		uint8_t *p = realloc(c->p[stream], cap);

		if (!p) {
			c->oom = true;
			return;
		}
		c->p[stream] = p;
		c->cap[stream] = cap;
	}
	memcpy(c->p[stream] + c->len[stream], data, len);
	c->len[stream] += len;
	c->p[stream][c->len[stream]] = '\0';
}

static const char *cap_str(const struct capture *c, int stream)
{
	return c->p[stream] ? (const char *)c->p[stream] : "";
}

static void capture_free(struct capture *c)
{
	free(c->p[1]);
	free(c->p[2]);
	memset(c, 0, sizeof(*c));
}

/*
 * The sandbox's state on stderr, once per program: at the first exec that
 * fails or times out, and at a test's timeout, for a guest that stopped
 * making progress (later failures usually follow from the first).
 */
/* The sandbox's diagnostics as a string in buf (through a memfd); 0, or -1 with err set. */
static int diagnostics_read(char *buf, size_t len, msvmm_error *err)
{
	int fd = memfd_create("sandbox-state", MFD_CLOEXEC);
	ssize_t n;

	if (fd < 0) {
		snprintf(err->message, sizeof(err->message), "memfd_create: %s", strerror(errno));
		return -1;
	}
	if (msvmm_vm_write_diagnostics(msvmm_sandbox_vm(sb), fd, err) < 0) {
		close(fd);
		return -1;
	}
	n = pread(fd, buf, len - 1, 0);
	close(fd);
	buf[n > 0 ? n : 0] = '\0';
	return 0;
}

static void sandbox_state_once(const char *why)
{
	static _Atomic int done;
	msvmm_error err = tu_err();
	char buf[16384];

	if (!sb || atomic_exchange(&done, 1))
		return;
	fprintf(stderr, "sandbox: %s; the sandbox's state:\n", why);
	if (diagnostics_read(buf, sizeof(buf), &err) < 0) {
		fprintf(stderr, "sandbox: no diagnostics: %s\n", err.message);
		return;
	}
	fputs(buf, stderr);
	/* Every later test would only wait out its timeouts on a dead guest kernel. */
	if (strstr(buf, "guest kernel deadlock") || strstr(why, "the VM stopped"))
		guest_broken = 1;
}

static int sandbox_exec(const msvmm_exec_opts *o, msvmm_result *res, msvmm_error *err)
{
	int rc = msvmm_sandbox_exec(sb, o, res, err);

	/* A short timeout is a test's own; the safety net's firing means a stuck guest. */
	if ((rc || res->timed_out) && o->timeout_ms == EXEC_TIMEOUT_MS)
		sandbox_state_once(rc ? err->message : "an exec timed out");
	return rc;
}

/* Run argv in the sandbox, its output into cap. */
static int run(const char *const *argv, struct capture *cap, msvmm_result *res, msvmm_error *err)
{
	msvmm_exec_opts o;

	msvmm_exec_opts_init(&o);
	o.argv = argv;
	o.on_output = capture_fn;
	o.opaque = cap;
	o.timeout_ms = EXEC_TIMEOUT_MS;
	return sandbox_exec(&o, res, err);
}

static int run_sh(const char *script, struct capture *cap, msvmm_result *res, msvmm_error *err)
{
	const char *argv[] = { "sh", "-c", script, NULL };

	return run(argv, cap, res, err);
}

/* A command that must exit 0; asserts so, with its stderr in the message. */
static void run_ok(const char *const *argv, struct capture *cap)
{
	msvmm_error err = tu_err();
	msvmm_result res;
	int rc = run(argv, cap, &res, &err);

	ck_assert_msg(rc == 0, "%s: %s", argv[0], err.message);
	ck_assert_msg(res.exited && res.status == 0, "%s: status %d, stderr '%s'", argv[0], res.status,
		      cap_str(cap, 2));
	ck_assert(!cap->oom && !cap->bad_stream);
}

static int tmp_open(const char *name, char *path, size_t len)
{
	snprintf(path, len, "%s/%s", tmpdir, name);
	return open(path, O_RDWR | O_CREAT | O_TRUNC | O_CLOEXEC, 0600);
}

/* Format why into buf and return buf: file_check's answer. */
__attribute__((format(printf, 3, 4))) static const char *why_f(char *buf, size_t len, const char *fmt, ...)
{
	va_list ap;

	va_start(ap, fmt);
	vsnprintf(buf, len, fmt, ap);
	va_end(ap);
	return buf;
}

/* Whether fd holds exactly 'bytes' bytes of stream 'seed': NULL, or why not (in why). */
static const char *file_check(int fd, uint64_t seed, uint64_t bytes, char *why, size_t len)
{
	static uint8_t buf[FILE_CHUNK];
	struct stat st;
	uint64_t off = 0;

	if (fstat(fd, &st) < 0)
		return why_f(why, len, "fstat: %s", strerror(errno));
	if ((uint64_t)st.st_size != bytes)
		return why_f(why, len, "%lld bytes, want %llu", (long long)st.st_size, (unsigned long long)bytes);
	while (off < bytes) {
		size_t want = bytes - off < sizeof(buf) ? (size_t)(bytes - off) : sizeof(buf), bad;
		ssize_t n = pread(fd, buf, want, (off_t)off);

		if (n <= 0)
			return why_f(why, len, "read at %llu: %s", (unsigned long long)off,
				     n < 0 ? strerror(errno) : "end of file");
		bad = gen_check(seed, off, buf, (size_t)n);
		if (bad < (size_t)n)
			return why_f(why, len, "byte %llu differs (0x%02x)", (unsigned long long)(off + bad), buf[bad]);
		off += (uint64_t)n;
	}
	return NULL;
}

/* Write 'bytes' bytes of stream 'seed' to fd; 0 or -1. */
static int file_fill(int fd, uint64_t seed, uint64_t bytes)
{
	static uint8_t buf[FILE_CHUNK];

	for (uint64_t off = 0; off < bytes;) {
		size_t n = bytes - off < sizeof(buf) ? (size_t)(bytes - off) : sizeof(buf);

		gen_fill(seed, off, buf, n);
		if (gen_write_all(fd, buf, n) < 0)
			return -1;
		off += n;
	}
	return 0;
}

/*
 * One stream through an echoing connection: a writer thread sends
 * CONN_BYTES of 'seed' and half-closes while this thread reads the echo to
 * EOF and checks it.  The first problem goes to 'why' ("" when none); the
 * reader keeps draining after a mismatch so the writer always finishes.
 */
struct conn_job {
	uint64_t seed;
	int fd;
	uint64_t sent, received;
	int write_errno;
	char why[640];
};

static void conn_job_report(const struct conn_job *j)
{
	fprintf(stderr, "sandbox: the echo stream: %llu of %u bytes sent, %llu back%s%s\n",
		(unsigned long long)j->sent, CONN_BYTES, (unsigned long long)j->received, j->why[0] ? "; " : "",
		j->why);
}

static void *conn_writer(void *p)
{
	struct conn_job *j = p;
	uint8_t buf[IO_BUF];

	while (j->sent < CONN_BYTES) {
		size_t n = CONN_BYTES - j->sent < sizeof(buf) ? (size_t)(CONN_BYTES - j->sent) : sizeof(buf);

		gen_fill(j->seed, j->sent, buf, n);
		if (gen_write_all(j->fd, buf, n) < 0) {
			j->write_errno = errno;
			return NULL;
		}
		j->sent += n;
	}
	if (shutdown(j->fd, SHUT_WR) < 0)
		j->write_errno = errno;
	return NULL;
}

static void conn_echo(struct conn_job *j)
{
	uint8_t buf[IO_BUF];
	pthread_t w;

	if (pthread_create(&w, NULL, conn_writer, j) != 0) {
		snprintf(j->why, sizeof(j->why), "pthread_create failed");
		return;
	}
	for (;;) {
		ssize_t n = read(j->fd, buf, sizeof(buf));
		size_t bad;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && !j->why[0])
			snprintf(j->why, sizeof(j->why), "read after %llu bytes: %s",
				 (unsigned long long)j->received, strerror(errno));
		if (n <= 0)
			break;
		if (!j->why[0] && j->received + (uint64_t)n > CONN_BYTES)
			snprintf(j->why, sizeof(j->why), "%llu bytes came back, only %u sent",
				 (unsigned long long)(j->received + (uint64_t)n), CONN_BYTES);
		if (!j->why[0] && (bad = gen_check(j->seed, j->received, buf, (size_t)n)) < (size_t)n)
			snprintf(j->why, sizeof(j->why), "echoed byte %llu differs",
				 (unsigned long long)(j->received + bad));
		j->received += (uint64_t)n;
	}
	pthread_join(w, NULL);
	if (!j->why[0] && j->write_errno)
		snprintf(j->why, sizeof(j->why), "write after %llu bytes: %s", (unsigned long long)j->sent,
			 strerror(j->write_errno));
	if (!j->why[0] && j->received != CONN_BYTES)
		snprintf(j->why, sizeof(j->why), "%llu bytes came back before EOF, want %u",
			 (unsigned long long)j->received, CONN_BYTES);
}

/* ---- the tests, in order -------------------------------------------------- */

START_TEST(test_start)
{
	msvmm_config *cfg = msvmm_config_new();
	msvmm_error err = tu_err();
	struct stat st;
	int rc;

	TEST_LIMIT(600);
	ck_assert_ptr_nonnull(cfg);
	ck_assert_int_eq(msvmm_config_set_data_dirs(cfg, data_dir_arg), 0);
	ck_assert_int_eq(msvmm_config_set_image(cfg, image_arg), 0);
	ck_assert_int_eq(msvmm_config_set_memory_mib(cfg, GUEST_MEM_MIB), 0);
	/* Only guest-init's own failures use the console: show them. */
	ck_assert_int_eq(msvmm_config_set_console_fd(cfg, STDERR_FILENO), 0);
	ck_assert_int_eq(msvmm_config_set_vsock_uds(cfg, uds_path), 0);
	rc = msvmm_sandbox_start(cfg, &sb, &err);
	msvmm_config_free(cfg);
	if (rc)
		sb = NULL;
	ck_assert_msg(rc == 0, "msvmm_sandbox_start: %s", err.message);
	ck_assert_msg(stat(uds_path, &st) == 0 && S_ISSOCK(st.st_mode), "no vsock Unix socket at %s", uds_path);
}
END_TEST

/* (a) every exit code, and a missing command. */
START_TEST(test_exit_codes)
{
	struct capture c = { 0 };
	msvmm_result res;
	msvmm_error err;
	int rc;

	TEST_LIMIT(900);
	NEED_SANDBOX();
	for (int n = 0; n < 256; n++) {
		char script[32];

		snprintf(script, sizeof(script), "exit %d", n);
		err = tu_err();
		rc = run_sh(script, &c, &res, &err);
		capture_free(&c);
		ck_assert_msg(rc == 0, "exit %d: %s", n, err.message);
		ck_assert_msg(res.exited == 1 && res.signaled == 0 && res.exit_code == n && res.status == n &&
				      res.timed_out == 0,
			      "exit %d: exited %d signaled %d exit_code %d status %d timed_out %d", n, res.exited,
			      res.signaled, res.exit_code, res.status, res.timed_out);
	}
	err = tu_err();
	rc = run((const char *const[]){ "/no/such/command", NULL }, &c, &res, &err);
	ck_assert_msg(rc == 0, "missing command: %s", err.message);
	ck_assert_int_eq(res.exited, 1);
	ck_assert_int_eq(res.status, 127);
	ck_assert_msg(c.len[2] > 0, "a missing command says nothing on stderr");
	capture_free(&c);
}
END_TEST

/* The diagnostics of a healthy sandbox: every part there, no deadlock verdict, still running after. */
START_TEST(test_diagnostics)
{
	struct capture c = { 0 };
	msvmm_error err = tu_err();
	char buf[16384];

	TEST_LIMIT(120);
	NEED_SANDBOX();
	ck_assert_msg(diagnostics_read(buf, sizeof(buf), &err) == 0, "%s", err.message);
	ck_assert_uint_gt(strlen(buf), 0);
	ck_assert_msg(strstr(buf, "vcpu 0: rip 0x") && strstr(buf, "  rsp 0x") && strstr(buf, "ioapic: pin "),
		      "no vCPU or IOAPIC state in: %s", buf);
	ck_assert_msg(strstr(buf, "device 19 status 0xf ") && strstr(buf, "queue 1: size 256 ready 1 broken 0"),
		      "no vsock transport state in: %s", buf);
	ck_assert_msg(strstr(buf, "vsock: rx ") && !strstr(buf, "guest kernel deadlock"), "%s", buf);
	ck_assert_int_eq(msvmm_vm_write_diagnostics(NULL, 1, &err), -MSVMM_EINVAL);
	/* Pausing for the samples changed nothing: the next command runs. */
	run_ok((const char *const[]){ "echo", "after", NULL }, &c);
	ck_assert_str_eq(cap_str(&c, 1), "after\n");
	capture_free(&c);
}
END_TEST

/* (b) what one command writes, the next one reads. */
START_TEST(test_state_persists)
{
	struct capture c = { 0 };

	TEST_LIMIT(120);
	NEED_SANDBOX();
	run_ok((const char *const[]){ "sh", "-c", "echo kept-$((6 * 7)) >/tmp/state", NULL }, &c);
	ck_assert_str_eq(cap_str(&c, 1), "");
	capture_free(&c);
	run_ok((const char *const[]){ "cat", "/tmp/state", NULL }, &c);
	ck_assert_str_eq(cap_str(&c, 1), "kept-42\n");
	ck_assert_str_eq(cap_str(&c, 2), "");
	capture_free(&c);
}
END_TEST

/* (c) msvmm_exec_signal from another thread while msvmm_exec_wait runs. */
struct later_signal {
	msvmm_exec *ex;
	int signo, rc;
};

static void *signal_later(void *p)
{
	struct later_signal *s = p;

	sleep_ms(1000);
	s->rc = msvmm_exec_signal(s->ex, s->signo);
	return NULL;
}

static void check_signal(int signo)
{
	msvmm_error err = tu_err();
	struct later_signal s;
	msvmm_exec_opts o;
	msvmm_result res;
	msvmm_exec *ex;
	uint64_t t0 = now_ms(), took;
	pthread_t t;
	int rc;

	msvmm_exec_opts_init(&o);
	o.argv = (const char *const[]){ "sleep", "100", NULL };
	o.timeout_ms = EXEC_TIMEOUT_MS;
	rc = msvmm_exec_start(sb, &o, &ex, &err);
	ck_assert_msg(rc == 0, "exec_start: %s", err.message);
	s = (struct later_signal){ .ex = ex, .signo = signo, .rc = -1 };
	ck_assert_int_eq(pthread_create(&t, NULL, signal_later, &s), 0);
	rc = msvmm_exec_wait(ex, &res, &err);
	pthread_join(t, NULL);
	msvmm_exec_free(ex);
	took = now_ms() - t0;
	ck_assert_int_eq(s.rc, 0);
	ck_assert_msg(rc == 0, "signal %d: %s", signo, err.message);
	ck_assert_msg(res.signaled == 1 && res.exited == 0 && res.term_signal == signo && res.status == 128 + signo &&
			      res.timed_out == 0,
		      "signal %d: signaled %d exited %d term_signal %d status %d timed_out %d", signo, res.signaled,
		      res.exited, res.term_signal, res.status, res.timed_out);
	ck_assert_msg(took < 60000, "signal %d: the command took %llu ms to end", signo, (unsigned long long)took);
}

START_TEST(test_signals)
{
	TEST_LIMIT(300);
	NEED_SANDBOX();
	check_signal(SIGTERM); /* 143 */
	check_signal(SIGKILL); /* 137 */
}
END_TEST

/* (d) an exec timeout kills the command, and the sandbox goes on. */
START_TEST(test_timeout)
{
	struct capture c = { 0 };
	msvmm_error err = tu_err();
	msvmm_exec_opts o;
	msvmm_result res;
	uint64_t t0 = now_ms(), took;
	int rc;

	TEST_LIMIT(300);
	NEED_SANDBOX();
	msvmm_exec_opts_init(&o);
	o.argv = (const char *const[]){ "sleep", "100", NULL };
	o.timeout_ms = 1000;
	rc = sandbox_exec(&o, &res, &err);
	took = now_ms() - t0;
	ck_assert_msg(rc == -MSVMM_ETIMEDOUT, "rc %d (%s), want -MSVMM_ETIMEDOUT", rc, err.message);
	ck_assert_int_eq(err.code, MSVMM_ETIMEDOUT);
	ck_assert_msg(res.timed_out == 1 && res.signaled == 1 && res.term_signal == SIGKILL && res.status == 137,
		      "timed_out %d signaled %d term_signal %d status %d", res.timed_out, res.signaled,
		      res.term_signal, res.status);
	ck_assert_msg(took >= 1000 && took < 30000, "the 1 s timeout took %llu ms", (unsigned long long)took);
	run_ok((const char *const[]){ "echo", "after", NULL }, &c);
	ck_assert_str_eq(cap_str(&c, 1), "after\n");
	capture_free(&c);
}
END_TEST

/* (e) 20 MiB on stdout and 20 MiB on stderr at once, into files. */
START_TEST(test_big_output)
{
	char out_path[PATH_MAX], err_path[PATH_MAX], script[256], why[256];
	int out_fd, err_fd, rc;
	msvmm_error err = tu_err();
	msvmm_exec_opts o;
	msvmm_result res;
	const char *bad;

	TEST_LIMIT(600);
	NEED_SANDBOX();
	out_fd = tmp_open("stdout", out_path, sizeof(out_path));
	err_fd = tmp_open("stderr", err_path, sizeof(err_path));
	ck_assert_msg(out_fd >= 0 && err_fd >= 0, "temp files: %s", strerror(errno));
	snprintf(script, sizeof(script), "mstest gen %d %u & p=$!; mstest gen %d %u >&2 || exit 1; wait $p",
		 STDOUT_SEED, BIG_BYTES, STDERR_SEED, BIG_BYTES);
	msvmm_exec_opts_init(&o);
	o.argv = (const char *const[]){ "sh", "-c", script, NULL };
	o.stdout_fd = out_fd;
	o.stderr_fd = err_fd;
	o.timeout_ms = EXEC_TIMEOUT_MS;
	rc = sandbox_exec(&o, &res, &err);
	unlink(out_path);
	unlink(err_path);
	ck_assert_msg(rc == 0, "%s", err.message);
	ck_assert_int_eq(res.status, 0);
	bad = file_check(out_fd, STDOUT_SEED, BIG_BYTES, why, sizeof(why));
	ck_assert_msg(!bad, "stdout: %s", bad);
	bad = file_check(err_fd, STDERR_SEED, BIG_BYTES, why, sizeof(why));
	ck_assert_msg(!bad, "stderr: %s", bad);
	close(out_fd);
	close(err_fd);
}
END_TEST

/* (f) 20 MiB of stdin through cat, back out exactly. */
START_TEST(test_big_stdin)
{
	char in_path[PATH_MAX], out_path[PATH_MAX], why[256];
	struct capture c = { 0 };
	msvmm_error err = tu_err();
	msvmm_exec_opts o;
	msvmm_result res;
	int in_fd, out_fd, rc;
	const char *bad;

	TEST_LIMIT(600);
	NEED_SANDBOX();
	in_fd = tmp_open("stdin", in_path, sizeof(in_path));
	out_fd = tmp_open("catout", out_path, sizeof(out_path));
	ck_assert_msg(in_fd >= 0 && out_fd >= 0, "temp files: %s", strerror(errno));
	ck_assert_int_eq(file_fill(in_fd, STDIN_SEED, BIG_BYTES), 0);
	ck_assert_int_eq(lseek(in_fd, 0, SEEK_SET), 0);
	msvmm_exec_opts_init(&o);
	o.argv = (const char *const[]){ "cat", NULL };
	o.stdin_fd = in_fd;
	o.stdout_fd = out_fd;
	o.on_output = capture_fn; /* stderr */
	o.opaque = &c;
	o.timeout_ms = EXEC_TIMEOUT_MS;
	rc = sandbox_exec(&o, &res, &err);
	unlink(in_path);
	unlink(out_path);
	ck_assert_msg(rc == 0, "%s", err.message);
	ck_assert_msg(res.status == 0, "status %d, stderr '%s'", res.status, cap_str(&c, 2));
	ck_assert_uint_eq(c.len[1], 0); /* stdout went to the file */
	ck_assert_str_eq(cap_str(&c, 2), "");
	bad = file_check(out_fd, STDIN_SEED, BIG_BYTES, why, sizeof(why));
	ck_assert_msg(!bad, "cat's output: %s", bad);
	capture_free(&c);
	close(in_fd);
	close(out_fd);
}
END_TEST

/* (g) binary bytes (NUL, 0xff) and UTF-8, through on_output and argv. */
START_TEST(test_binary_output)
{
	static const uint8_t want_out[] = { 'a', 0, 'b', 0xc3, 0xa9 };
	static const uint8_t want_err[] = { 0xff, 0, '\n' };
	struct capture c = { 0 };

	TEST_LIMIT(120);
	NEED_SANDBOX();
	run_ok((const char *const[]){ "sh", "-c", "printf 'a\\000b\\303\\251'; printf '\\377\\000\\n' >&2", NULL },
	       &c);
	ck_assert_uint_eq(c.len[1], sizeof(want_out));
	ck_assert(memcmp(c.p[1], want_out, sizeof(want_out)) == 0);
	ck_assert_uint_eq(c.len[2], sizeof(want_err));
	ck_assert(memcmp(c.p[2], want_err, sizeof(want_err)) == 0);
	capture_free(&c);
	run_ok((const char *const[]){ "echo", "h\xc3\xa9llo w\xc3\xb6rld \xe2\x82\xac", NULL }, &c);
	ck_assert_str_eq(cap_str(&c, 1), "h\xc3\xa9llo w\xc3\xb6rld \xe2\x82\xac\n");
	capture_free(&c);
}
END_TEST

/* (h) 50 host->guest connections at once to an echo server in the guest. */
static struct conn_job conns[NR_CONNS];

static void *conn_thread(void *p)
{
	struct conn_job *j = p;
	uint64_t deadline = now_ms() + CONNECT_RETRY_MS;
	msvmm_error err;

	for (;;) {
		err = tu_err();
		if (msvmm_vm_vsock_connect(msvmm_sandbox_vm(sb), ECHO_PORT, 10000, &j->fd, &err) == 0)
			break;
		if (now_ms() >= deadline) {
			snprintf(j->why, sizeof(j->why), "connect: %s", err.message);
			return NULL;
		}
		sleep_ms(100);
	}
	conn_echo(j);
	close(j->fd);
	return NULL;
}

START_TEST(test_vsock_host_to_guest)
{
	struct capture c = { 0 };
	pthread_t t[NR_CONNS];
	int started = 0;

	TEST_LIMIT(600);
	NEED_SANDBOX();
	/* Detached from the command's output, so the exec ends while the server runs on. */
	run_ok((const char *const[]){ "sh", "-c", "mstest vsock-echo 5000 >/dev/null 2>&1 &", NULL }, &c);
	capture_free(&c);
	for (int i = 0; i < NR_CONNS; i++) {
		conns[i] = (struct conn_job){ .seed = (uint64_t)i, .fd = -1 };
		if (pthread_create(&t[i], NULL, conn_thread, &conns[i]) != 0)
			break;
		started++;
	}
	for (int i = 0; i < started; i++)
		pthread_join(t[i], NULL);
	ck_assert_int_eq(started, NR_CONNS);
	for (int i = 0; i < NR_CONNS; i++)
		ck_assert_msg(!conns[i].why[0], "connection %d: %s", i, conns[i].why);
}
END_TEST

/* (i) a guest connection to a port the host listens on. */
struct accept_job {
	uint64_t received;
	char why[640];
};

static void *accept_thread(void *p)
{
	struct accept_job *a = p;
	msvmm_error err = tu_err();
	uint8_t buf[IO_BUF];
	int fd;

	if (msvmm_vm_vsock_accept(msvmm_sandbox_vm(sb), HOST_PORT, ACCEPT_TIMEOUT_MS, &fd, &err) != 0) {
		snprintf(a->why, sizeof(a->why), "accept: %s", err.message);
		return NULL;
	}
	for (;;) {
		ssize_t n = read(fd, buf, sizeof(buf));
		size_t bad;

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0 && !a->why[0])
			snprintf(a->why, sizeof(a->why), "read after %llu bytes: %s",
				 (unsigned long long)a->received, strerror(errno));
		if (n <= 0)
			break;
		if (!a->why[0] && a->received + (uint64_t)n > CONN_BYTES)
			snprintf(a->why, sizeof(a->why), "more than %u bytes", CONN_BYTES);
		if (!a->why[0] && (bad = gen_check(GUEST_TO_HOST_SEED, a->received, buf, (size_t)n)) < (size_t)n)
			snprintf(a->why, sizeof(a->why), "byte %llu differs", (unsigned long long)(a->received + bad));
		a->received += (uint64_t)n;
	}
	if (!a->why[0] && a->received != CONN_BYTES)
		snprintf(a->why, sizeof(a->why), "%llu bytes before EOF, want %u", (unsigned long long)a->received,
			 CONN_BYTES);
	/* Our close is vsock-cat's EOF: it exits once it sees it. */
	close(fd);
	return NULL;
}

START_TEST(test_vsock_guest_to_host)
{
	struct accept_job a = { 0 };
	struct capture c = { 0 };
	msvmm_error err = tu_err();
	msvmm_result res;
	char script[128];
	pthread_t t;
	int rc;

	TEST_LIMIT(600);
	NEED_SANDBOX();
	rc = msvmm_vm_vsock_listen(msvmm_sandbox_vm(sb), HOST_PORT, &err);
	ck_assert_msg(rc == 0, "listen: %s", err.message);
	ck_assert_int_eq(pthread_create(&t, NULL, accept_thread, &a), 0);
	snprintf(script, sizeof(script), "mstest gen %d %u | mstest vsock-cat 2 %d", GUEST_TO_HOST_SEED, CONN_BYTES,
		 HOST_PORT);
	err = tu_err();
	rc = run_sh(script, &c, &res, &err);
	pthread_join(t, NULL);
	ck_assert_msg(rc == 0, "%s", err.message);
	ck_assert_msg(res.status == 0, "status %d, stderr '%s'", res.status, cap_str(&c, 2));
	ck_assert_str_eq(cap_str(&c, 1), "");
	ck_assert_msg(!a.why[0], "host side: %s", a.why);
	capture_free(&c);
}
END_TEST

/* (j) the Firecracker-style Unix socket: CONNECT 5000, OK <port>, then the stream. */
START_TEST(test_vsock_uds)
{
	struct sockaddr_un sa = { .sun_family = AF_UNIX };
	struct conn_job j = { .seed = UDS_SEED };
	char line[64];
	size_t len = 0;
	int fd;

	TEST_LIMIT(600);
	NEED_SANDBOX();
	memcpy(sa.sun_path, uds_path, sizeof(sa.sun_path));
	fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(fd, 0);
	ck_assert_msg(connect(fd, (struct sockaddr *)&sa, sizeof(sa)) == 0, "connect %s: %s", uds_path,
		      strerror(errno));
	ck_assert_int_eq(gen_write_all(fd, "CONNECT 5000\n", 13), 0);
	/* One byte at a time: nothing after the line is ours to swallow. */
	while (len < sizeof(line) - 1) {
		ssize_t n = read(fd, line + len, 1);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		if (line[len++] == '\n')
			break;
	}
	line[len] = '\0';
	ck_assert_msg(len >= 5 && !strncmp(line, "OK ", 3) && line[len - 1] == '\n' &&
			      strspn(line + 3, "0123456789") == len - 4,
		      "handshake answer '%s'", line);
	j.fd = fd;
	wd_job = &j;
	conn_echo(&j);
	wd_job = NULL;
	close(fd);
	ck_assert_msg(!j.why[0], "through the Unix socket: %s", j.why);
}
END_TEST

/* A clean stop removes the Unix socket; the temp dir is empty. */
START_TEST(test_stop)
{
	msvmm_error err = tu_err();
	char left[512] = "";
	struct dirent *d;
	struct stat st;
	int rc, nr_left = 0;
	DIR *dir;

	TEST_LIMIT(300);
	ck_assert_msg(sb != NULL, "no sandbox: test_start failed"); /* a broken guest is stopped too */
	rc = msvmm_sandbox_stop(sb, STOP_TIMEOUT_MS, &err);
	msvmm_sandbox_destroy(sb);
	sb = NULL;
	ck_assert_msg(rc == 0, "msvmm_sandbox_stop: %s", err.message);
	ck_assert_msg(stat(uds_path, &st) < 0 && errno == ENOENT, "%s is still there", uds_path);
	dir = opendir(tmpdir);
	ck_assert_ptr_nonnull(dir);
	while ((d = readdir(dir))) {
		if (!strcmp(d->d_name, ".") || !strcmp(d->d_name, ".."))
			continue;
		nr_left++;
		if (strlen(left) + strlen(d->d_name) + 2 < sizeof(left)) {
			strcat(left, " ");
			strcat(left, d->d_name);
		}
	}
	closedir(dir);
	ck_assert_msg(nr_left == 0, "left in %s:%s", tmpdir, left);
	ck_assert_int_eq(rmdir(tmpdir), 0);
}
END_TEST

static Suite *sandbox_suite(void)
{
	Suite *s = suite_create("sandbox");
	TCase *tc = tcase_create("one sandbox");

	tcase_add_test(tc, test_start);
	tcase_add_test(tc, test_exit_codes);
	tcase_add_test(tc, test_state_persists);
	tcase_add_test(tc, test_diagnostics);
	tcase_add_test(tc, test_signals);
	tcase_add_test(tc, test_timeout);
	tcase_add_test(tc, test_big_output);
	tcase_add_test(tc, test_big_stdin);
	tcase_add_test(tc, test_binary_output);
	tcase_add_test(tc, test_vsock_host_to_guest); /* leaves the echo server running ... */
	tcase_add_test(tc, test_vsock_guest_to_host);
	tcase_add_test(tc, test_vsock_uds);           /* ... which this one uses */
	tcase_add_test(tc, test_stop);
	suite_add_tcase(s, tc);
	return s;
}

int main(int argc, char **argv)
{
	const char *tmp = getenv("TMPDIR");
	struct stat st;
	pthread_t wd;
	SRunner *sr;
	int failed;

	if (stat("/dev/kvm", &st) < 0 && errno == ENOENT) {
		fprintf(stderr, "sandbox: SKIPPED: /dev/kvm does not exist on this host, so no sandbox can run.\n");
		return 0;
	}
	image_arg = argc > 1 ? argv[1] : getenv("MSVMM_E2E_IMAGE");
	data_dir_arg = argc > 2 ? argv[2] : getenv("MSVMM_E2E_DATA_DIR");
	if (argc > 3 || !image_arg || !data_dir_arg) {
		fprintf(stderr, "usage: sandbox IMAGE DATA_DIR (or $MSVMM_E2E_IMAGE, $MSVMM_E2E_DATA_DIR)\n");
		return 2;
	}
	snprintf(tmpdir, sizeof(tmpdir), "%s/msvmm-sandbox-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(tmpdir)) {
		fprintf(stderr, "sandbox: mkdtemp %s: %s\n", tmpdir, strerror(errno));
		return 1;
	}
	/* Room for the "_<port>" the device appends for guest connections. */
	if ((size_t)snprintf(uds_path, sizeof(uds_path), "%s/v.sock", tmpdir) + 11 >= sizeof(uds_path)) {
		fprintf(stderr, "sandbox: %s: too long for a Unix socket path (set TMPDIR)\n", tmpdir);
		rmdir(tmpdir);
		return 1;
	}
	signal(SIGPIPE, SIG_IGN); /* a connection that breaks is a failed write, not the end of us */
	if (pthread_create(&wd, NULL, watchdog, NULL) != 0) {
		fprintf(stderr, "sandbox: cannot start the watchdog thread\n");
		rmdir(tmpdir);
		return 1;
	}
	pthread_detach(wd);

	sr = srunner_create(sandbox_suite());
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_VERBOSE);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	test_limit("the final clean-up", 300);
	/* After a failure: nothing of ours left behind either way. */
	if (sb)
		msvmm_sandbox_destroy(sb);
	if (rmdir(tmpdir) < 0 && errno != ENOENT) {
		static const char *const ours[] = { "stdout", "stderr", "stdin", "catout" };
		char path[PATH_MAX];

		for (size_t i = 0; i < sizeof(ours) / sizeof(ours[0]); i++) {
			snprintf(path, sizeof(path), "%s/%s", tmpdir, ours[i]);
			unlink(path);
		}
		rmdir(tmpdir);
	}
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
