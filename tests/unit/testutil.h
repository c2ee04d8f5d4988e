/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers shared by the unit tests (header-only; each test is one program). */
#ifndef MSVMM_TESTUTIL_H
#define MSVMM_TESTUTIL_H

#include <check.h>
#include <errno.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "msvmm.h"

/* Assert that an msvmm_error carries 'code' and a message containing 'needle'. */
#define ck_assert_err(e, want_code, needle)                                                    \
	do {                                                                                   \
		ck_assert_int_eq((e).code, (want_code));                                       \
		ck_assert_msg(strstr((e).message, (needle)) != NULL,                           \
			      "error message '%s' does not mention '%s'", (e).message, (needle)); \
	} while (0)

/* Fresh error object whose message is junk, so a test sees what was written. */
static inline msvmm_error tu_err(void)
{
	msvmm_error e;

	memset(&e, 0, sizeof(e));
	e.code = -12345;
	strcpy(e.message, "<unset>");
	return e;
}

static inline void tu_put16(uint8_t *p, uint16_t v) { memcpy(p, &v, 2); }
static inline void tu_put32(uint8_t *p, uint32_t v) { memcpy(p, &v, 4); }
static inline uint16_t tu_get16(const uint8_t *p) { uint16_t v; memcpy(&v, p, 2); return v; }
static inline uint32_t tu_get32(const uint8_t *p) { uint32_t v; memcpy(&v, p, 4); return v; }
static inline uint64_t tu_get64(const uint8_t *p) { uint64_t v; memcpy(&v, p, 8); return v; }

/* Where temp files go: $TMPDIR, else /tmp. */
static inline const char *tu_tmpdir(void)
{
	const char *t = getenv("TMPDIR");

	return t && *t ? t : "/tmp";
}

/* All of p to fd; -1 on error (errno says why). */
static inline int tu_write_all(int fd, const void *p, size_t len)
{
	const unsigned char *b = p;

	while (len) {
		ssize_t n = write(fd, b, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
	}
	return 0;
}

/*
 * A freestanding test guest (tests/guests/NAME.c, built as NAME.elf):
 * $MSVMM_BUILD/guests, else BUILD/guests next to this test binary (it runs
 * from BUILD/tests or BUILD/tests-san), else build/guests.
 */
static inline void tu_guest_elf_path(const char *name, char *out, size_t len)
{
	const char *build = getenv("MSVMM_BUILD");
	char exe[PATH_MAX];
	ssize_t n;

	if (build && *build) {
		snprintf(out, len, "%s/guests/%s.elf", build, name);
		return;
	}
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	if (n > 0) {
		char *slash;

		exe[n] = '\0';
		slash = strrchr(exe, '/');
		if (slash) {
			*slash = '\0';
			if (snprintf(out, len, "%s/../guests/%s.elf", exe, name) < (int)len && access(out, R_OK) == 0)
				return;
		}
	}
	snprintf(out, len, "build/guests/%s.elf", name);
}

/* Dead: gone, or a zombie waiting for a reaper that is not the test. */
static inline int tu_proc_gone(pid_t pid)
{
	char path[64], stat[256] = "";
	FILE *f;

	if (kill(pid, 0) < 0 && errno == ESRCH)
		return 1;
	snprintf(path, sizeof(path), "/proc/%d/stat", (int)pid);
	f = fopen(path, "r");
	if (!f)
		return 1;
	if (!fgets(stat, sizeof(stat), f))
		stat[0] = '\0';
	fclose(f);
	return strstr(stat, ") Z ") != NULL;
}

/* Wait up to ms for pid to be dead, and assert it is. */
static inline void tu_assert_gone(pid_t pid, unsigned int ms)
{
	for (unsigned int i = 0; i < ms / 10 && !tu_proc_gone(pid); i++)
		usleep(10000);
	ck_assert_msg(tu_proc_gone(pid), "process %d still runs", (int)pid);
}

/* Run one suite; the process exit status says whether every test passed. */
static inline int tu_run(Suite *s)
{
	SRunner *sr = srunner_create(s);
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}

#endif
