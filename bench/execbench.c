// SPDX-License-Identifier: Apache-2.0
/*
 * msvmm-execbench: the timer behind bench/exec.sh.
 *
 *   msvmm-execbench first-byte RUNS -- COMMAND [ARG...]
 *	Runs COMMAND RUNS times, one after another, with its stdout on a pipe,
 *	and prints "MIN MEDIAN": milliseconds from fork to the first byte read.
 *	Every run is read to EOF and must exit 0.
 *
 *   msvmm-execbench vsock IMAGE DATA_DIR [ROUNDS [MIB]]
 *	Boots one sandbox from IMAGE (which must have tests/e2e/mstest as
 *	mstest in PATH), starts `mstest vsock-echo` in it and measures through
 *	msvmm_vm_vsock_connect: the median 1-byte round trip over ROUNDS
 *	(1000) ping-pongs, and MIB (64) MiB sent and echoed back at once.  The
 *	same work through a host AF_UNIX socketpair with an echo thread is
 *	the peer.  Prints aligned lines with units and msvmm/host ratios.
 *
 *   msvmm-execbench runcode IMAGE DATA_DIR [ROUNDS]
 *	Boots one sandbox from IMAGE (which must have a python runtime) and
 *	times, call by call (output dropped): the first run-code call (it
 *	starts the interpreter), then the median over ROUNDS (20) of run-code
 *	`print(1)` and of the command `python3 -c 'print(1)'`.
 */
#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "gen.h"
#include "msvmm.h"

#define ECHO_PORT 5000
#define CONNECT_RETRY_MS 60000
#define IO_BUF (64 * 1024)
#define GUEST_MEM_MIB 512

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

/* Sorts v. */
static double median(double *v, size_t n)
{
	qsort(v, n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}


/* ---- first-byte ------------------------------------------------------------ */

/* One run: ms to the first byte of cmd's stdout; -1 when it printed nothing or failed. */
static double first_byte_once(char **cmd)
{
	char buf[4096];
	double t0, t1 = -1;
	int p[2], status;
	ssize_t n;
	pid_t pid;

	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	t0 = now_ms();
	pid = fork();
	if (pid == 0) {
		dup2(p[1], STDOUT_FILENO);
		execvp(cmd[0], cmd);
		_exit(127);
	}
	close(p[1]);
	if (pid < 0) {
		close(p[0]);
		return -1;
	}
	while ((n = read(p[0], buf, 1)) < 0 && errno == EINTR)
		;
	if (n == 1)
		t1 = now_ms();
	while ((n = read(p[0], buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		;
	close(p[0]);
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -1;
	if (!WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "msvmm-execbench: %s: exit status %d\n", cmd[0],
			WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status));
		return -1;
	}
	return t1 < 0 ? -1 : t1 - t0;
}

static int cmd_first_byte(int runs, char **cmd)
{
	double *v = calloc((size_t)runs, sizeof(*v)), min;

	if (!v)
		return 1;
	for (int i = 0; i < runs; i++) {
		v[i] = first_byte_once(cmd);
		if (v[i] < 0) {
			fprintf(stderr, "msvmm-execbench: %s: run %d printed nothing or failed\n", cmd[0], i + 1);
			free(v);
			return 1;
		}
	}
	min = v[0];
	for (int i = 1; i < runs; i++)
		if (v[i] < min)
			min = v[i];
	printf("%.3f %.3f\n", min, median(v, (size_t)runs));
	free(v);
	return 0;
}

/* ---- vsock ------------------------------------------------------------------ */

/* Median microseconds of one 1-byte write and the 1-byte read of its echo. */
static int ping_pong(int fd, int rounds, double *median_us)
{
	double *v = calloc((size_t)rounds, sizeof(*v));

	if (!v)
		return -1;
	for (int i = 0; i < rounds; i++) {
		char out = (char)i, in = 0;
		double t0 = now_ms();
		ssize_t n;

		if (gen_write_all(fd, &out, 1) < 0) {
			fprintf(stderr, "msvmm-execbench: round %d: write: %s\n", i, strerror(errno));
			free(v);
			return -1;
		}
		while ((n = read(fd, &in, 1)) < 0 && errno == EINTR)
			;
		if (n != 1 || in != out) {
			fprintf(stderr, "msvmm-execbench: round %d: %s\n", i, n == 1 ? "wrong byte back" : "no echo");
			free(v);
			return -1;
		}
		v[i] = (now_ms() - t0) * 1e3;
	}
	*median_us = median(v, (size_t)rounds);
	free(v);
	return 0;
}

struct stream_writer {
	int fd;
	uint64_t bytes;
	int failed;
};

static void *stream_write(void *p)
{
	struct stream_writer *w = p;
	static uint8_t buf[IO_BUF];

	gen_fill(1, 0, buf, sizeof(buf));
	for (uint64_t sent = 0; sent < w->bytes;) {
		size_t n = w->bytes - sent < sizeof(buf) ? (size_t)(w->bytes - sent) : sizeof(buf);

		if (gen_write_all(w->fd, buf, n) < 0) {
			w->failed = 1;
			return NULL;
		}
		sent += n;
	}
	if (shutdown(w->fd, SHUT_WR) < 0)
		w->failed = 1;
	return NULL;
}

/* MiB/s of 'mib' MiB sent through fd while its echo is read back to EOF. */
static int echo_stream(int fd, unsigned int mib, double *mibps)
{
	struct stream_writer w = { .fd = fd, .bytes = (uint64_t)mib << 20 };
	static uint8_t buf[IO_BUF];
	uint64_t got = 0;
	double t0 = now_ms();
	pthread_t t;
	ssize_t n;

	if (pthread_create(&t, NULL, stream_write, &w) != 0)
		return -1;
	while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		if (n > 0)
			got += (uint64_t)n;
	pthread_join(t, NULL);
	if (w.failed || got != w.bytes) {
		fprintf(stderr, "msvmm-execbench: %llu of %llu bytes echoed%s\n", (unsigned long long)got,
			(unsigned long long)w.bytes, w.failed ? ", write failed" : "");
		return -1;
	}
	*mibps = (double)mib / ((now_ms() - t0) / 1e3);
	return 0;
}

/* The host peer: an echo thread on the other end of a socketpair. */
static void *host_echo(void *p)
{
	int fd = *(int *)p;
	static uint8_t buf[IO_BUF];
	ssize_t n;

	while ((n = read(fd, buf, sizeof(buf))) > 0 || (n < 0 && errno == EINTR))
		if (n > 0 && gen_write_all(fd, buf, (size_t)n) < 0)
			break;
	shutdown(fd, SHUT_WR);
	return NULL;
}

/* fn's work on a fresh host socketpair with host_echo on its far end. */
static int host_pair_run(int (*fn)(int fd, void *arg), void *arg)
{
	int sv[2], rc;
	pthread_t t;

	if (socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv) < 0)
		return -1;
	if (pthread_create(&t, NULL, host_echo, &sv[1]) != 0) {
		close(sv[0]);
		close(sv[1]);
		return -1;
	}
	rc = fn(sv[0], arg);
	shutdown(sv[0], SHUT_WR); /* the echo thread ends at EOF */
	pthread_join(t, NULL);
	close(sv[0]);
	close(sv[1]);
	return rc;
}

static int guest_conn_run(msvmm_vm *vm, int (*fn)(int fd, void *arg), void *arg)
{
	double deadline = now_ms() + CONNECT_RETRY_MS;
	msvmm_error err;
	int fd, rc;

	/* The echo server was started in the background: it may not listen yet. */
	while (msvmm_vm_vsock_connect(vm, ECHO_PORT, 10000, &fd, &err) < 0) {
		if (now_ms() >= deadline) {
			fprintf(stderr, "msvmm-execbench: %s\n", err.message);
			return -1;
		}
		usleep(100000);
	}
	rc = fn(fd, arg);
	close(fd);
	return rc;
}

struct rt_arg {
	int rounds;
	double us;
};

static int do_ping_pong(int fd, void *p)
{
	struct rt_arg *a = p;

	return ping_pong(fd, a->rounds, &a->us);
}

struct tp_arg {
	unsigned int mib;
	double mibps;
};

static int do_stream(int fd, void *p)
{
	struct tp_arg *a = p;

	return echo_stream(fd, a->mib, &a->mibps);
}

static int start_echo_server(msvmm_sandbox *sb)
{
	msvmm_exec_opts o;
	msvmm_result res;
	msvmm_error err;

	msvmm_exec_opts_init(&o);
	o.argv = (const char *const[]){ "sh", "-c", "mstest vsock-echo 5000 >/dev/null 2>&1 &", NULL };
	o.stderr_fd = STDERR_FILENO;
	o.timeout_ms = 60000;
	if (msvmm_sandbox_exec(sb, &o, &res, &err) < 0) {
		fprintf(stderr, "msvmm-execbench: starting the echo server: %s\n", err.message);
		return -1;
	}
	if (res.status) {
		fprintf(stderr, "msvmm-execbench: starting the echo server: status %d\n", res.status);
		return -1;
	}
	return 0;
}

/* A booted sandbox of image from data_dir: 0, or 1 with the reason printed. */
static int bench_sandbox(const char *image, const char *data_dir, msvmm_sandbox **sb)
{
	msvmm_config *cfg = msvmm_config_new();
	msvmm_error err;
	int rc;

	if (!cfg || msvmm_config_set_data_dirs(cfg, data_dir) || msvmm_config_set_image(cfg, image) ||
	    msvmm_config_set_memory_mib(cfg, GUEST_MEM_MIB) || msvmm_config_set_console_fd(cfg, STDERR_FILENO)) {
		fprintf(stderr, "msvmm-execbench: invalid configuration\n");
		msvmm_config_free(cfg);
		return 1;
	}
	rc = msvmm_sandbox_start(cfg, sb, &err);
	if (rc < 0)
		fprintf(stderr, "msvmm-execbench: %s\n", err.message);
	msvmm_config_free(cfg);
	return rc < 0;
}

static int cmd_vsock(const char *image, const char *data_dir, int rounds, unsigned int mib)
{
	struct rt_arg rt_g = { .rounds = rounds }, rt_h = { .rounds = rounds };
	struct tp_arg tp_g = { .mib = mib }, tp_h = { .mib = mib };
	msvmm_sandbox *sb;
	int rc = 1;

	if (bench_sandbox(image, data_dir, &sb))
		return 1;
	if (start_echo_server(sb) == 0 && guest_conn_run(msvmm_sandbox_vm(sb), do_ping_pong, &rt_g) == 0 &&
	    guest_conn_run(msvmm_sandbox_vm(sb), do_stream, &tp_g) == 0 && host_pair_run(do_ping_pong, &rt_h) == 0 &&
	    host_pair_run(do_stream, &tp_h) == 0) {
		char what[64];

		printf("%-44s %12s %12s %11s\n", "vsock (guest mstest vsock-echo)", "msvmm", "host unix", "msvmm/host");
		snprintf(what, sizeof(what), "1-byte round trip, median of %d (us)", rounds);
		printf("%-44s %12.1f %12.1f %10.2fx\n", what, rt_g.us, rt_h.us, rt_g.us / rt_h.us);
		snprintf(what, sizeof(what), "%u MiB sent and echoed (MiB/s)", mib);
		printf("%-44s %12.1f %12.1f %10.2fx\n", what, tp_g.mibps, tp_h.mibps, tp_g.mibps / tp_h.mibps);
		rc = 0;
	}
	msvmm_sandbox_destroy(sb);
	return rc;
}

/* One call's wall time in ms (code: run-code, else the command argv), -1 when it failed. */
static double timed_call(msvmm_sandbox *sb, const char *code, const char *const *argv)
{
	msvmm_exec_opts o;
	msvmm_result res;
	msvmm_error err;
	double t0 = now_ms();
	int rc;

	msvmm_exec_opts_init(&o);
	o.argv = code ? NULL : argv;
	rc = code ? msvmm_sandbox_run_code(sb, NULL, code, strlen(code), &o, &res, &err)
		  : msvmm_sandbox_exec(sb, &o, &res, &err);
	if (rc < 0 || res.status) {
		fprintf(stderr, "msvmm-execbench: %s: %s\n", code ? code : argv[0],
			rc < 0 ? err.message : "non-zero status");
		return -1;
	}
	return now_ms() - t0;
}

static int cmd_runcode(const char *image, const char *data_dir, int rounds)
{
	static const char *const py[] = { "python3", "-c", "print(1)", NULL };
	double *code = calloc((size_t)rounds, sizeof(double)), *cmd = calloc((size_t)rounds, sizeof(double));
	double first = -1;
	msvmm_sandbox *sb;
	int rc = 1, i = 0;

	if (!code || !cmd || bench_sandbox(image, data_dir, &sb)) {
		free(code);
		free(cmd);
		return 1;
	}
	first = timed_call(sb, "pass", NULL);
	for (; first >= 0 && i < rounds && (code[i] = timed_call(sb, "print(1)", NULL)) >= 0 &&
	       (cmd[i] = timed_call(sb, NULL, py)) >= 0;
	     i++)
		;
	if (i == rounds) {
		char what[64];

		printf("%-44s %12s\n", "run-code in one sandbox (ms)", "msvmm");
		printf("%-44s %12.1f\n", "first run-code call (starts python)", first);
		snprintf(what, sizeof(what), "run-code print(1), median of %d", rounds);
		printf("%-44s %12.1f\n", what, median(code, (size_t)rounds));
		snprintf(what, sizeof(what), "command python3 -c 'print(1)', median of %d", rounds);
		printf("%-44s %12.1f\n", what, median(cmd, (size_t)rounds));
		rc = 0;
	}
	msvmm_sandbox_destroy(sb);
	free(code);
	free(cmd);
	return rc;
}

int main(int argc, char **argv)
{
	struct stat st;

	signal(SIGPIPE, SIG_IGN);
	if (argc >= 5 && !strcmp(argv[1], "first-byte") && !strcmp(argv[3], "--") && atoi(argv[2]) > 0)
		return cmd_first_byte(atoi(argv[2]), &argv[4]);
	if (argc >= 4 && argc <= 6 && !strcmp(argv[1], "vsock")) {
		int rounds = argc > 4 ? atoi(argv[4]) : 1000;
		int mib = argc > 5 ? atoi(argv[5]) : 64;

		if (stat("/dev/kvm", &st) < 0) {
			fprintf(stderr, "bench: /dev/kvm missing\n");
			return 1;
		}
		if (rounds > 0 && mib > 0)
			return cmd_vsock(argv[2], argv[3], rounds, (unsigned int)mib);
	}
	if (argc >= 4 && argc <= 5 && !strcmp(argv[1], "runcode") && (argc == 4 || atoi(argv[4]) > 0))
		return cmd_runcode(argv[2], argv[3], argc > 4 ? atoi(argv[4]) : 20);
	fprintf(stderr, "usage: msvmm-execbench first-byte RUNS -- COMMAND [ARG...]\n"
			"       msvmm-execbench vsock IMAGE DATA_DIR [ROUNDS [MIB]]\n"
			"       msvmm-execbench runcode IMAGE DATA_DIR [ROUNDS]\n");
	return 2;
}
