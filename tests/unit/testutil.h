/* SPDX-License-Identifier: Apache-2.0 */
/* Small helpers shared by the unit tests (header-only; each test is one program). */
#ifndef MSVMM_TESTUTIL_H
#define MSVMM_TESTUTIL_H

#include <check.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>

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
