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
 */
#include <cpuid.h>
#include <ctype.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#define NR_ZMM 32
#define NR_YMM 16
#define SPIN 20000

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

int main(int argc, char **argv)
{
	if (argc >= 2 && !strcmp(argv[1], "upper"))
		return cmd_upper();
	if (argc >= 3 && !strcmp(argv[1], "vregs"))
		return cmd_vregs(atoi(argv[2]));
	fprintf(stderr, "usage: mstest upper | mstest vregs SECONDS\n");
	return 2;
}
