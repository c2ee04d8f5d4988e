/* SPDX-License-Identifier: Apache-2.0 */
/* Filling a caller's msvmm_error: the library's only way to say what failed. */
#ifndef MSVMM_ERR_H
#define MSVMM_ERR_H

#include "../lib/msvmm.h"

/* Record code and a formatted one-line message in err (may be NULL); return -code. */
int err_set(msvmm_error *err, int code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* Map an errno value to an msvmm error code. */
int err_from_errno(int e);

#endif
