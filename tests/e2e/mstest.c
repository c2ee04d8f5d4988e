// SPDX-License-Identifier: Apache-2.0
/*
 * mstest: a static helper run inside test guests.
 *   mstest upper            copy stdin to stdout in upper case (a fresh
 *                           glibc start-up per call: the pipeline stress test)
 *   mstest vregs SECONDS    fill every vector register with a per-process
 *                           pattern, yield and spin, and check nothing
 *                           changed; prints the count of mismatches and exits
 *                           1 if there was any.  Run two or more at once: a
 *                           VMM/guest that does not save extended state at
 *                           context switch makes processes corrupt each other.
 *   mstest gen SEED BYTES   write BYTES bytes of test stream SEED (gen.h) to
 *                           stdout
 *   mstest vsock-echo PORT  serve AF_VSOCK PORT: every connection gets back
 *                           what it sends, then EOF once it half-closes (one
 *                           process per connection); prints nothing
 *   mstest vsock-cat CID PORT
 *                           connect to CID:PORT, send stdin and half-close
 *                           at its end, while copying what comes back to
 *                           stdout until EOF
 *   mstest tsc-seconds      the TSC in seconds (its rate from the kernel
 *                           command line's lpj= at HZ 100): a VM's TSC
 *                           starts near 0, so this is about its uptime,
 *                           also after a restore
 */
#include <cpuid.h>
#include <ctype.h>
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <x86intrin.h>
#include <sys/socket.h>
#include <time.h>
#include <unistd.h>

#include <linux/vm_sockets.h>

#include "gen.h"

#define NR_ZMM 32
#define NR_YMM 16
#define SPIN 20000
#define IO_CHUNK (64 * 1024)

static int cmd_upper(void)
{
	int c;

	while ((c = getchar()) != EOF)
		putchar(toupper(c));
	return 0;
}

static int has_avx512(void)
{
	unsigned int a, b, c, d;
	uint32_t lo, hi;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27)))
		return 0; /* no OSXSAVE */
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	if ((lo & 0xe6) != 0xe6)
		return 0; /* the OS does not save opmask/ZMM state */
	__cpuid_count(7, 0, a, b, c, d);
	return !!(b & (1u << 16));
}

static int has_avx(void)
{
	unsigned int a, b, c, d;
	uint32_t lo, hi;

	if (!__get_cpuid(1, &a, &b, &c, &d) || !(c & (1u << 27)) || !(c & (1u << 28)))
		return 0;
	__asm__ volatile("xgetbv" : "=a"(lo), "=d"(hi) : "c"(0));
	return (lo & 0x6) == 0x6;
}

/* One round: load all ZMMs, yield and spin with them live, store them back. */
__attribute__((target("avx512f"))) static void round_zmm(const uint8_t *in, uint8_t *out)
{
	__asm__ volatile(
#define L(n) "vmovdqu64 " #n "*64(%0), %%zmm" #n "\n\t"
		L(0) L(1) L(2) L(3) L(4) L(5) L(6) L(7) L(8) L(9) L(10) L(11) L(12) L(13) L(14) L(15)
		L(16) L(17) L(18) L(19) L(20) L(21) L(22) L(23) L(24) L(25) L(26) L(27) L(28) L(29) L(30) L(31)
#undef L
		"mov $24, %%eax\n\t" /* sched_yield */
		"syscall\n\t"
		"mov %2, %%ecx\n"
		"1: dec %%ecx\n\t"
		"jnz 1b\n\t"
#define S(n) "vmovdqu64 %%zmm" #n ", " #n "*64(%1)\n\t"
		S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7) S(8) S(9) S(10) S(11) S(12) S(13) S(14) S(15)
		S(16) S(17) S(18) S(19) S(20) S(21) S(22) S(23) S(24) S(25) S(26) S(27) S(28) S(29) S(30) S(31)
#undef S
		:
		: "r"(in), "r"(out), "i"(SPIN)
		: "rax", "rcx", "r11", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6",
		  "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15", "xmm16",
		  "xmm17", "xmm18", "xmm19", "xmm20", "xmm21", "xmm22", "xmm23", "xmm24", "xmm25", "xmm26",
		  "xmm27", "xmm28", "xmm29", "xmm30", "xmm31");
}

__attribute__((target("avx"))) static void round_ymm(const uint8_t *in, uint8_t *out)
{
	__asm__ volatile(
#define L(n) "vmovdqu " #n "*32(%0), %%ymm" #n "\n\t"
		L(0) L(1) L(2) L(3) L(4) L(5) L(6) L(7) L(8) L(9) L(10) L(11) L(12) L(13) L(14) L(15)
#undef L
		"mov $24, %%eax\n\t"
		"syscall\n\t"
		"mov %2, %%ecx\n"
		"1: dec %%ecx\n\t"
		"jnz 1b\n\t"
#define S(n) "vmovdqu %%ymm" #n ", " #n "*32(%1)\n\t"
		S(0) S(1) S(2) S(3) S(4) S(5) S(6) S(7) S(8) S(9) S(10) S(11) S(12) S(13) S(14) S(15)
#undef S
		:
		: "r"(in), "r"(out), "i"(SPIN)
		: "rax", "rcx", "r11", "memory", "xmm0", "xmm1", "xmm2", "xmm3", "xmm4", "xmm5", "xmm6",
		  "xmm7", "xmm8", "xmm9", "xmm10", "xmm11", "xmm12", "xmm13", "xmm14", "xmm15");
}

static int cmd_vregs(int seconds)
{
	static uint8_t in[NR_ZMM * 64], out[NR_ZMM * 64];
	int zmm = has_avx512();
	size_t len = zmm ? sizeof(in) : NR_YMM * 32;
	unsigned long rounds = 0, bad = 0;
	time_t end = time(NULL) + seconds;
	uint32_t seed = (uint32_t)getpid() * 2654435761u;

	if (!zmm && !has_avx()) {
		printf("mstest vregs: no AVX in this guest\n");
		return 2;
	}
	while (time(NULL) < end) {
		for (size_t i = 0; i < len; i++) {
			seed = seed * 1103515245u + 12345u;
			in[i] = (uint8_t)(seed >> 16);
		}
		if (zmm)
			round_zmm(in, out);
		else
			round_ymm(in, out);
		if (memcmp(in, out, len) != 0)
			bad++;
		rounds++;
	}
	printf("mstest vregs: pid %d, %s, %lu rounds, %lu mismatches\n", (int)getpid(),
	       zmm ? "zmm0-31" : "ymm0-15", rounds, bad);
	return bad ? 1 : 0;
}

/* A decimal number in [0, max]; -1 when s is not one. */
static int parse_u64(const char *s, uint64_t max, uint64_t *out)
{
	char *end;
	unsigned long long v;

	if (*s < '0' || *s > '9')
		return -1;
	errno = 0;
	v = strtoull(s, &end, 10);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}


/* Copy in to out until EOF on in: 0, or -1 (errno says why). */
static int copy_fd(int in, int out)
{
	static uint8_t buf[IO_CHUNK];

	for (;;) {
		ssize_t n = read(in, buf, sizeof(buf));

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		if (n == 0)
			return 0;
		if (gen_write_all(out, buf, (size_t)n) < 0)
			return -1;
	}
}

static int cmd_gen(const char *seed_s, const char *bytes_s)
{
	static uint8_t buf[IO_CHUNK];
	uint64_t seed, bytes, off = 0;

	if (parse_u64(seed_s, UINT64_MAX, &seed) < 0 || parse_u64(bytes_s, UINT64_MAX, &bytes) < 0) {
		fprintf(stderr, "mstest gen: SEED and BYTES must be decimal numbers\n");
		return 2;
	}
	while (off < bytes) {
		size_t n = bytes - off < sizeof(buf) ? (size_t)(bytes - off) : sizeof(buf);

		gen_fill(seed, off, buf, n);
		if (gen_write_all(STDOUT_FILENO, buf, n) < 0) {
			fprintf(stderr, "mstest gen: write: %s\n", strerror(errno));
			return 1;
		}
		off += n;
	}
	return 0;
}

static int vsock_port(const char *s, uint32_t *port)
{
	uint64_t v;

	if (parse_u64(s, UINT32_MAX - 1, &v) < 0)
		return -1;
	*port = (uint32_t)v;
	return 0;
}

/* One connection of vsock-echo: everything back, then our own half close. */
static int echo_conn(int fd)
{
	int rc = copy_fd(fd, fd);

	if (shutdown(fd, SHUT_WR) < 0)
		rc = -1;
	close(fd);
	return rc < 0 ? 1 : 0;
}

static int cmd_vsock_echo(const char *port_s)
{
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK, .svm_cid = VMADDR_CID_ANY };
	int lfd;

	if (vsock_port(port_s, &sa.svm_port) < 0) {
		fprintf(stderr, "mstest vsock-echo: bad port '%s'\n", port_s);
		return 2;
	}
	/* Children are reaped by the kernel; a peer that resets must not kill us. */
	signal(SIGCHLD, SIG_IGN);
	signal(SIGPIPE, SIG_IGN);
	lfd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (lfd < 0 || bind(lfd, (struct sockaddr *)&sa, sizeof(sa)) < 0 || listen(lfd, 128) < 0) {
		fprintf(stderr, "mstest vsock-echo: port %u: %s\n", sa.svm_port, strerror(errno));
		return 1;
	}
	for (;;) {
		int fd = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
		pid_t pid;

		if (fd < 0) {
			if (errno == EINTR || errno == ECONNABORTED)
				continue;
			fprintf(stderr, "mstest vsock-echo: accept: %s\n", strerror(errno));
			return 1;
		}
		pid = fork();
		if (pid == 0) {
			close(lfd);
			_exit(echo_conn(fd));
		}
		if (pid < 0)
			fprintf(stderr, "mstest vsock-echo: fork: %s\n", strerror(errno));
		close(fd);
	}
}

/*
 * vsock-cat's two directions at once: stdin to the socket (then a half
 * close), the socket to stdout until EOF.  Sending everything before reading
 * anything would deadlock with a peer that echoes more than the buffers hold.
 */
static int cat_pump(int fd)
{
	static uint8_t buf[IO_CHUNK];
	int in_open = 1;

	for (;;) {
		struct pollfd p[2] = {
			{ .fd = fd, .events = POLLIN },
			{ .fd = in_open ? STDIN_FILENO : -1, .events = POLLIN },
		};
		ssize_t n;

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			fprintf(stderr, "mstest vsock-cat: poll: %s\n", strerror(errno));
			return 1;
		}
		if (p[1].revents) {
			n = read(STDIN_FILENO, buf, sizeof(buf));
			if (n < 0 && errno != EINTR) {
				fprintf(stderr, "mstest vsock-cat: stdin: %s\n", strerror(errno));
				return 1;
			}
			if (n > 0 && gen_write_all(fd, buf, (size_t)n) < 0) {
				fprintf(stderr, "mstest vsock-cat: sending: %s\n", strerror(errno));
				return 1;
			}
			if (n == 0) {
				in_open = 0;
				if (shutdown(fd, SHUT_WR) < 0) {
					fprintf(stderr, "mstest vsock-cat: shutdown: %s\n", strerror(errno));
					return 1;
				}
			}
		}
		if (p[0].revents) {
			n = read(fd, buf, sizeof(buf));
			if (n < 0 && errno != EINTR) {
				fprintf(stderr, "mstest vsock-cat: receiving: %s\n", strerror(errno));
				return 1;
			}
			if (n == 0 && in_open) {
				fprintf(stderr, "mstest vsock-cat: the peer closed before the end of stdin\n");
				return 1;
			}
			if (n == 0)
				return 0;
			if (n > 0 && gen_write_all(STDOUT_FILENO, buf, (size_t)n) < 0) {
				fprintf(stderr, "mstest vsock-cat: stdout: %s\n", strerror(errno));
				return 1;
			}
		}
	}
}

static int cmd_vsock_cat(const char *cid_s, const char *port_s)
{
	struct sockaddr_vm sa = { .svm_family = AF_VSOCK };
	uint64_t cid;
	int fd, rc;

	if (parse_u64(cid_s, UINT32_MAX, &cid) < 0 || vsock_port(port_s, &sa.svm_port) < 0) {
		fprintf(stderr, "mstest vsock-cat: bad CID '%s' or port '%s'\n", cid_s, port_s);
		return 2;
	}
	sa.svm_cid = (unsigned int)cid;
	signal(SIGPIPE, SIG_IGN);
	fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC, 0);
	if (fd < 0 || connect(fd, (struct sockaddr *)&sa, sizeof(sa)) < 0) {
		fprintf(stderr, "mstest vsock-cat: connect %s:%s: %s\n", cid_s, port_s, strerror(errno));
		return 1;
	}
	rc = cat_pump(fd);
	close(fd);
	return rc;
}

/* lpj= is TSC ticks per jiffy (lib/vm.c), the guest kernel's HZ is 100. */
static int cmd_tsc_seconds(void)
{
	char line[4096];
	FILE *f = fopen("/proc/cmdline", "r");
	const char *p;
	unsigned long long lpj;

	if (!f || !fgets(line, sizeof(line), f)) {
		fprintf(stderr, "mstest tsc-seconds: cannot read /proc/cmdline\n");
		return 2;
	}
	fclose(f);
	p = strstr(line, " lpj=");
	if (!p || (lpj = strtoull(p + 5, NULL, 10)) == 0) {
		fprintf(stderr, "mstest tsc-seconds: no lpj= on the command line\n");
		return 2;
	}
	printf("%.3f\n", (double)__rdtsc() / ((double)lpj * 100.0));
	return 0;
}

int main(int argc, char **argv)
{
	if (argc == 2 && !strcmp(argv[1], "tsc-seconds"))
		return cmd_tsc_seconds();
	if (argc >= 2 && !strcmp(argv[1], "upper"))
		return cmd_upper();
	if (argc >= 3 && !strcmp(argv[1], "vregs"))
		return cmd_vregs(atoi(argv[2]));
	if (argc == 4 && !strcmp(argv[1], "gen"))
		return cmd_gen(argv[2], argv[3]);
	if (argc == 3 && !strcmp(argv[1], "vsock-echo"))
		return cmd_vsock_echo(argv[2]);
	if (argc == 4 && !strcmp(argv[1], "vsock-cat"))
		return cmd_vsock_cat(argv[2], argv[3]);
	fprintf(stderr, "usage: mstest upper | vregs SECONDS | gen SEED BYTES | vsock-echo PORT |"
			" vsock-cat CID PORT\n");
	return 2;
}
