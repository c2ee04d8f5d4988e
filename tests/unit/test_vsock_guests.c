// SPDX-License-Identifier: Apache-2.0
/*
 * virtio-vsock end to end: the freestanding guests vsock_io and
 * vsock_hostile (tests/guests/) booted through the public API, with host
 * threads on the other end of their connections through
 * msvmm_vm_vsock_listen / _accept / _connect while msvmm_vm_run runs.
 *
 *   - vsock_io: an echo service on host port 5000 (the guest sends 200 KiB
 *     and must get it back; this side checks it saw exactly those bytes),
 *     and a client that connects to guest port 6000 (retrying while the
 *     guest refuses), sends 64 KiB and reads the guest's 4-byte count;
 *   - the same with one echoed byte flipped: the guest must notice;
 *   - vsock_hostile: the echo service (one connection at a time, which the
 *     guest's flood relies on) and a service on 5001 that accepts and never
 *     reads; the guest's status, the echoed bytes of its clean rounds, the
 *     VMM's RSS staying bounded, and msvmm_vm_run returning normally.
 *
 * Guests are found like test_vblk_guests.c finds them.  With no /dev/kvm at
 * all the whole program skips, saying so; a /dev/kvm that exists but does
 * not work fails.
 */
#include <check.h>
#include <errno.h>
#include <limits.h>
#include <pthread.h>
#include <stdatomic.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cpio.h"
#include "msvmm.h"
#include "testutil.h"

#define GUEST_MEM_MIB 64
#define GUEST_TIMEOUT_MS 60000
#define TEST_TIMEOUT_S 120
#define POLL_MS 200          /* accept timeout: how often host threads look at 'stop' */
#define CONNECT_TIMEOUT_MS 2000
#define RSS_GROWTH_MAX_KIB (16 * 1024)

/* Must match tests/guests/vsock_io.c. */
#define IO_HOST_PORT 5000
#define IO_GUEST_PORT 6000
#define IO_A_BYTES (200U * 1024)
#define IO_B_BYTES (64U * 1024)
#define IO_C_ECHO_DATA 8
/* Must match tests/guests/vsock_hostile.c. */
#define HOSTILE_HOST_PORT 5000
#define HOSTILE_HOLD_PORT 5001
#define HOSTILE_ECHO_BYTES 4096
#define HOSTILE_ECHO_ROUNDS 4

#define MAX_ECHO_CONNS 256
#define MAX_HOLD 8

/* vsock_io.c pat_a: what the guest sends to the echo service. */
static uint8_t pat_a(uint64_t i)
{
	uint32_t x = (uint32_t)i;

	return (uint8_t)(x * 7 + (x >> 8) * 13 + (x >> 16) * 0x61 + 0x29);
}

/* vsock_io.c pat_b: what this side sends to guest port 6000. */
static uint8_t pat_b(uint64_t i)
{
	uint32_t x = (uint32_t)i;

	return (uint8_t)(x * 3 + (x >> 9) * 0x55 + 0x77);
}

/* vsock_hostile.c pat_h: each clean echo round. */
static uint8_t pat_h(uint64_t i)
{
	uint32_t x = (uint32_t)i;

	return (uint8_t)(x * 11 + (x >> 8) * 0x3b + 0x4d);
}

/* Everything the host threads share with the test; counters are read after they are joined. */
struct host {
	msvmm_vm *vm;
	atomic_int stop;
	/* echo service */
	uint32_t echo_port;
	uint8_t (*echo_pat)(uint64_t);
	int64_t corrupt_at;          /* flip this byte of the echo (-1: none) */
	unsigned int echo_conns;     /* accepted */
	uint64_t echo_bytes[MAX_ECHO_CONNS]; /* per accepted connection */
	uint64_t echo_bad;           /* received bytes that were not echo_pat */
	bool echo_eof[MAX_ECHO_CONNS]; /* the connection ended in EOF, not an error */
	int echo_rc;                 /* first accept error other than a timeout */
	char echo_msg[512];
	/* hold service: accept, never read */
	uint32_t hold_port;
	unsigned int hold_conns;
	int hold_fds[MAX_HOLD];
	/* client to a guest port */
	uint32_t client_port;
	unsigned int client_attempts;
	bool client_connected, client_sent;
	int client_count_len;        /* bytes of the count read */
	uint32_t client_count;
	bool client_eof;
	int client_rc;
	char client_msg[512];
};

struct guest_run {
	const char *name;
	int create_rc, run_rc;
	msvmm_error err;
	msvmm_result res;
	char console[16384];
	size_t console_len;
	double ms;
	long rss_before_kib, rss_after_kib;
};

/* Sockets: send(), so that a peer gone away is EPIPE, not SIGPIPE. */
static int send_all(int fd, const void *p, size_t len)
{
	const unsigned char *b = p;

	while (len) {
		ssize_t n = send(fd, b, len, MSG_NOSIGNAL);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

static void make_initramfs(char *path, size_t len)
{
	struct cpio_buf c;
	int fd;

	cpio_init(&c);
	ck_assert_int_eq(cpio_add_file(&c, "hello.txt", 0644, "vsock\n", 6), 0);
	ck_assert_int_eq(cpio_finish(&c), 0);
	snprintf(path, len, "%s/msvmm-test-vsock-initrd-XXXXXX", tu_tmpdir());
	fd = mkstemp(path);
	ck_assert_msg(fd >= 0, "mkstemp %s: %s", path, strerror(errno));
	if (tu_write_all(fd, c.data, c.len) < 0) {
		close(fd);
		unlink(path);
		ck_abort_msg("writing %s: %s", path, strerror(errno));
	}
	close(fd);
	cpio_free(&c);
}

static int make_console(void)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/msvmm-test-console-XXXXXX", tu_tmpdir());
	fd = mkstemp(path);
	ck_assert_msg(fd >= 0, "mkstemp %s: %s", path, strerror(errno));
	unlink(path);
	return fd;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/* VmRSS of this process in KiB, or -1. */
static long rss_kib(void)
{
	FILE *f = fopen("/proc/self/status", "r");
	char line[256];
	long kib = -1;

	if (!f)
		return -1;
	while (fgets(line, sizeof(line), f))
		if (sscanf(line, "VmRSS: %ld kB", &kib) == 1)
			break;
	fclose(f);
	return kib;
}

/* ---- host threads ---- */

/* Echo one connection until EOF, checking what arrives against echo_pat. */
static void echo_conn(struct host *h, unsigned int idx, int fd)
{
	uint8_t buf[16384];
	uint64_t off = 0;
	ssize_t n;

	for (;;) {
		n = read(fd, buf, sizeof(buf));
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		for (ssize_t i = 0; i < n; i++)
			if (buf[i] != h->echo_pat(off + (uint64_t)i))
				h->echo_bad++;
		if (h->corrupt_at >= 0 && (uint64_t)h->corrupt_at >= off && (uint64_t)h->corrupt_at < off + (uint64_t)n)
			buf[h->corrupt_at - (int64_t)off] ^= 0xff;
		off += (uint64_t)n;
		if (send_all(fd, buf, (size_t)n) < 0) {
			n = -1;
			break;
		}
	}
	h->echo_bytes[idx] = off;
	h->echo_eof[idx] = n == 0;
}

/* Accept on echo_port, one connection at a time, each echoed until EOF, until 'stop'. */
static void *echo_thread(void *arg)
{
	struct host *h = arg;

	while (!atomic_load(&h->stop) && h->echo_conns < MAX_ECHO_CONNS) {
		msvmm_error err;
		int fd = -1;
		int rc = msvmm_vm_vsock_accept(h->vm, h->echo_port, POLL_MS, &fd, &err);

		if (rc == -MSVMM_ETIMEDOUT)
			continue;
		if (rc) {
			h->echo_rc = rc;
			snprintf(h->echo_msg, sizeof(h->echo_msg), "%s", err.message);
			break;
		}
		echo_conn(h, h->echo_conns, fd);
		h->echo_conns++;
		close(fd);
	}
	return NULL;
}

/* Accept on hold_port and keep every connection open without reading it, until 'stop'. */
static void *hold_thread(void *arg)
{
	struct host *h = arg;

	while (!atomic_load(&h->stop)) {
		msvmm_error err;
		int fd = -1;
		int rc = msvmm_vm_vsock_accept(h->vm, h->hold_port, POLL_MS, &fd, &err);

		if (rc == -MSVMM_ETIMEDOUT)
			continue;
		if (rc)
			break;
		if (h->hold_conns < MAX_HOLD)
			h->hold_fds[h->hold_conns] = fd;
		else
			close(fd);
		h->hold_conns++;
	}
	for (unsigned int i = 0; i < h->hold_conns && i < MAX_HOLD; i++)
		close(h->hold_fds[i]);
	return NULL;
}

/* Connect to client_port (retrying while refused), send 64 KiB of pat_b, read the le32 count, then EOF. */
static void *client_thread(void *arg)
{
	static uint8_t data[IO_B_BYTES];
	struct host *h = arg;
	double deadline = now_ms() + GUEST_TIMEOUT_MS;
	uint8_t count[4];
	int fd = -1;

	for (uint32_t i = 0; i < IO_B_BYTES; i++)
		data[i] = pat_b(i);
	while (!atomic_load(&h->stop) && now_ms() < deadline) {
		msvmm_error err;
		int rc = msvmm_vm_vsock_connect(h->vm, h->client_port, CONNECT_TIMEOUT_MS, &fd, &err);

		h->client_attempts++;
		if (rc == 0)
			break;
		if (rc != -MSVMM_ECONNREFUSED && rc != -MSVMM_ETIMEDOUT) {
			h->client_rc = rc;
			snprintf(h->client_msg, sizeof(h->client_msg), "%s", err.message);
			return NULL;
		}
		/* Refused: the guest does not listen yet; timed out: its device is not up yet. */
		usleep(20000);
		fd = -1;
	}
	if (fd < 0)
		return NULL;
	h->client_connected = true;
	h->client_sent = send_all(fd, data, sizeof(data)) == 0;
	while (h->client_count_len < 4) {
		ssize_t n = read(fd, count + h->client_count_len, 4 - (size_t)h->client_count_len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		h->client_count_len += (int)n;
	}
	if (h->client_count_len == 4)
		h->client_count = (uint32_t)count[0] | (uint32_t)count[1] << 8 | (uint32_t)count[2] << 16 |
				  (uint32_t)count[3] << 24;
	/* The guest shuts down both ways after the count: EOF, nothing more. */
	for (;;) {
		uint8_t extra;
		ssize_t n = read(fd, &extra, 1);

		if (n < 0 && errno == EINTR)
			continue;
		h->client_eof = n == 0;
		break;
	}
	close(fd);
	return NULL;
}

/* ---- running a guest ---- */

/*
 * Boot guest 'name' with the host threads of 'h' (echo on h->echo_port if
 * set, hold on h->hold_port if set, client to h->client_port if set) and
 * run it to the end; the threads are joined before the VM is destroyed.
 */
static void run_guest(const char *name, struct host *h, struct guest_run *g)
{
	static const char *const argv[] = { "true", NULL };
	char elf[PATH_MAX], initramfs[PATH_MAX], extra[64];
	pthread_t echo_t, hold_t, client_t;
	bool echo_on = false, hold_on = false, client_on = false;
	msvmm_config *cfg;
	msvmm_vm *vm = NULL;
	ssize_t n;
	double t0;
	int con;

	memset(g, 0, sizeof(*g));
	g->name = name;
	g->rss_before_kib = g->rss_after_kib = -1;
	tu_guest_elf_path(name, elf, sizeof(elf));
	snprintf(extra, sizeof(extra), "msvmm.test=%s", name);
	cfg = msvmm_config_new();
	if (access(elf, R_OK) || !cfg || msvmm_config_set_kernel(cfg, elf) ||
	    msvmm_config_set_memory_mib(cfg, GUEST_MEM_MIB) || msvmm_config_set_timeout_ms(cfg, GUEST_TIMEOUT_MS) ||
	    msvmm_config_set_argv(cfg, argv) || msvmm_config_set_extra_cmdline(cfg, extra))
		ck_abort_msg("guest %s: cannot configure (missing? build it: make %s)", elf, elf);
	con = make_console();
	make_initramfs(initramfs, sizeof(initramfs));
	msvmm_config_set_console_fd(cfg, con);
	msvmm_config_set_image(cfg, initramfs);

	t0 = now_ms();
	g->create_rc = msvmm_vm_create(cfg, &vm, &g->err);
	unlink(initramfs);
	msvmm_config_free(cfg);
	if (g->create_rc == 0) {
		msvmm_error lerr;

		h->vm = vm;
		atomic_store(&h->stop, 0);
		/* Listening before the guest runs: its first REQUEST must not find the port closed. */
		if (h->echo_port) {
			ck_assert_msg(msvmm_vm_vsock_listen(vm, h->echo_port, &lerr) == 0, "listen %u: %s", h->echo_port,
				      lerr.message);
			echo_on = pthread_create(&echo_t, NULL, echo_thread, h) == 0;
			ck_assert(echo_on);
		}
		if (h->hold_port) {
			ck_assert_msg(msvmm_vm_vsock_listen(vm, h->hold_port, &lerr) == 0, "listen %u: %s", h->hold_port,
				      lerr.message);
			hold_on = pthread_create(&hold_t, NULL, hold_thread, h) == 0;
			ck_assert(hold_on);
		}
		if (h->client_port) {
			client_on = pthread_create(&client_t, NULL, client_thread, h) == 0;
			ck_assert(client_on);
		}
		g->rss_before_kib = rss_kib();
		g->run_rc = msvmm_vm_run(vm, &g->res, &g->err);
		g->rss_after_kib = rss_kib();
		/* The VM is over: every connection has seen EOF; accept and connect time out. */
		atomic_store(&h->stop, 1);
		if (echo_on)
			pthread_join(echo_t, NULL);
		if (hold_on)
			pthread_join(hold_t, NULL);
		if (client_on)
			pthread_join(client_t, NULL);
		msvmm_vm_destroy(vm);
		h->vm = NULL;
	}
	g->ms = now_ms() - t0;

	n = pread(con, g->console, sizeof(g->console) - 1, 0);
	g->console_len = n > 0 ? (size_t)n : 0;
	g->console[g->console_len] = '\0';
	close(con);

	fprintf(stderr, "test_vsock_guests: %s: create %d, run %d, status %d; %.1f ms, %llu exits, RSS %ld -> %ld KiB\n",
		name, g->create_rc, g->run_rc, g->res.status, g->ms, (unsigned long long)g->res.exits,
		g->rss_before_kib, g->rss_after_kib);
	if (getenv("MSVMM_TEST_CONSOLE"))
		fprintf(stderr, "%s", g->console);
}

static void assert_ran(const struct guest_run *g)
{
	ck_assert_msg(g->create_rc == 0, "%s: msvmm_vm_create: %d %s", g->name, g->create_rc, g->err.message);
	ck_assert_msg(g->run_rc == 0, "%s: msvmm_vm_run: %d %s; console:\n%s", g->name, g->run_rc, g->err.message,
		      g->console);
	ck_assert_msg(g->res.exited && !g->res.signaled, "%s: no exit status reported", g->name);
}

static void host_init(struct host *h)
{
	memset(h, 0, sizeof(*h));
	h->corrupt_at = -1;
}

/* vsock_io with an echo that flips byte 'corrupt_at' (-1: a faithful echo). */
static void run_io(int64_t corrupt_at, struct host *h, struct guest_run *g)
{
	host_init(h);
	h->echo_port = IO_HOST_PORT;
	h->echo_pat = pat_a;
	h->corrupt_at = corrupt_at;
	h->client_port = IO_GUEST_PORT;
	run_guest("vsock_io", h, g);
	assert_ran(g);
}

START_TEST(test_vsock_io)
{
	static struct host h;
	static struct guest_run g;

	run_io(-1, &h, &g);
	ck_assert_msg(g.res.status == 0,
		      "vsock_io: check %d failed (host client: %u attempts, connected %d, rc %d %s); console:\n%s",
		      g.res.status, h.client_attempts, h.client_connected, h.client_rc, h.client_msg, g.console);
	ck_assert_msg(strstr(g.console, "vsock_io: ok\n"), "vsock_io: no ok line; console:\n%s", g.console);
	/* (a): one connection to the echo service carried exactly the guest's 200 KiB, then EOF. */
	ck_assert_msg(h.echo_rc == 0, "echo service: %s", h.echo_msg);
	ck_assert_uint_eq(h.echo_conns, 1);
	ck_assert_msg(h.echo_bytes[0] == IO_A_BYTES, "echo service got %llu bytes, want %u",
		      (unsigned long long)h.echo_bytes[0], IO_A_BYTES);
	ck_assert_msg(h.echo_bad == 0, "echo service: %llu bytes differ from the guest's pattern",
		      (unsigned long long)h.echo_bad);
	ck_assert_msg(h.echo_eof[0], "echo service: the guest's SHUTDOWN(SEND) did not show as EOF");
	/* (b): the client got through (after refusals while the guest did not listen) and was counted. */
	ck_assert_msg(h.client_rc == 0, "client: %s", h.client_msg);
	ck_assert_msg(h.client_connected, "client: never connected to guest port %u in %u attempts", IO_GUEST_PORT,
		      h.client_attempts);
	ck_assert(h.client_sent);
	ck_assert_int_eq(h.client_count_len, 4);
	ck_assert_uint_eq(h.client_count, IO_B_BYTES);
	ck_assert_msg(h.client_eof, "client: no EOF after the count");
}
END_TEST

/* The checker must not pass vacuously: one flipped echo byte is check 8 (C_A_ECHO_DATA). */
START_TEST(test_vsock_io_catches_bad_echo)
{
	static struct host h;
	static struct guest_run g;

	run_io(IO_A_BYTES / 2 + 17, &h, &g);
	ck_assert_msg(g.res.status == IO_C_ECHO_DATA, "vsock_io: status %d, want %d (echo differs); console:\n%s",
		      g.res.status, IO_C_ECHO_DATA, g.console);
	ck_assert_msg(strstr(g.console, "vsock_io: echo differs at byte 102417,"),
		      "vsock_io: the flipped byte was not located; console:\n%s", g.console);
	ck_assert_uint_eq(h.echo_bytes[0], IO_A_BYTES);
	ck_assert_uint_eq(h.echo_bad, 0);
}
END_TEST

START_TEST(test_vsock_hostile)
{
	static struct host h;
	static struct guest_run g;
	unsigned int data_conns = 0;
	uint64_t total = 0;

	host_init(&h);
	h.echo_port = HOSTILE_HOST_PORT;
	h.echo_pat = pat_h;
	h.hold_port = HOSTILE_HOLD_PORT;
	run_guest("vsock_hostile", &h, &g);
	/* The VMM survived all of it: create and run worked, and the guest says how it went. */
	assert_ran(&g);
	ck_assert_msg(g.res.status == 0, "vsock_hostile: check %d failed; console:\n%s", g.res.status, g.console);
	ck_assert_msg(strstr(g.console, "vsock_hostile: ok, flood accepted "), "vsock_hostile: no ok line:\n%s",
		      g.console);
	/* Only the clean rounds carried data: ECHO_ROUNDS connections of 4 KiB each, the guest's bytes. */
	ck_assert_msg(h.echo_rc == 0, "echo service: %s", h.echo_msg);
	for (unsigned int i = 0; i < h.echo_conns; i++) {
		total += h.echo_bytes[i];
		if (h.echo_bytes[i]) {
			data_conns++;
			ck_assert_msg(h.echo_bytes[i] == HOSTILE_ECHO_BYTES, "echo connection %u carried %llu bytes", i,
				      (unsigned long long)h.echo_bytes[i]);
		}
	}
	ck_assert_uint_eq(data_conns, HOSTILE_ECHO_ROUNDS);
	ck_assert_uint_eq(total, (uint64_t)HOSTILE_ECHO_ROUNDS * HOSTILE_ECHO_BYTES);
	ck_assert_uint_eq(h.echo_bad, 0);
	/* The lying connection was the hold port's only one. */
	ck_assert_uint_eq(h.hold_conns, 1);
	/* Bounded: a flood and a lying peer cost the VMM next to nothing. */
	ck_assert_msg(g.rss_before_kib > 0 && g.rss_after_kib > 0, "cannot read VmRSS");
	ck_assert_msg(g.rss_after_kib - g.rss_before_kib < RSS_GROWTH_MAX_KIB, "VmRSS grew from %ld to %ld KiB",
		      g.rss_before_kib, g.rss_after_kib);
}
END_TEST

static Suite *vsock_suite(void)
{
	Suite *s = suite_create("vsock_guests");
	TCase *tc = tcase_create("vsock");

	tcase_set_timeout(tc, TEST_TIMEOUT_S);
	tcase_add_test(tc, test_vsock_io);
	tcase_add_test(tc, test_vsock_io_catches_bad_echo);
	tcase_add_test(tc, test_vsock_hostile);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	struct stat st;
	SRunner *sr;
	int failed;

	if (stat("/dev/kvm", &st) < 0 && errno == ENOENT) {
		fprintf(stderr, "test_vsock_guests: SKIPPED: /dev/kvm does not exist on this host, so no guest can run.\n");
		return 0;
	}
	sr = srunner_create(vsock_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
