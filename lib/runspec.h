/* SPDX-License-Identifier: Apache-2.0 */
/* The run specification handed to guest-init as an extra initramfs archive (format in ctl.h). */
#ifndef MSVMM_LIB_RUNSPEC_H
#define MSVMM_LIB_RUNSPEC_H

#include "cpio.h"

/* A growing sequence of records (type byte + NUL-terminated string). */
struct runspec_buf {
	char *p;
	size_t len, cap;
	int failed; /* out of memory at some point: the buffer is incomplete */
};

void runspec_put(struct runspec_buf *b, char type, const char *s);

/*
 * Build a finished cpio archive holding MSVMM_RUN_SPEC_PATH; 0 or -errno.
 * 'records' are further records, each its type letter followed by the value
 * (e.g. "R/dev/vda"), NULL-terminated; may be NULL.  With a 'G' (agent)
 * record and no argv, no 'D' (default command) record is added.
 */
int runspec_build(struct cpio_buf *out, char *const *argv, char *const *env, const char *workdir,
		  char *const *records);

#endif
