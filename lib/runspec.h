/* SPDX-License-Identifier: Apache-2.0 */
/* The run specification handed to guest-init as an extra initramfs archive (format in ctl.h). */
#ifndef MSVMM_LIB_RUNSPEC_H
#define MSVMM_LIB_RUNSPEC_H

#include "cpio.h"

/*
 * Build a finished cpio archive holding MSVMM_RUN_SPEC_PATH; 0 or -errno.
 * 'records' are further records, each its type letter followed by the value
 * (e.g. "R/dev/vda"), NULL-terminated; may be NULL.
 */
int runspec_build(struct cpio_buf *out, char *const *argv, char *const *env, const char *workdir,
		  char *const *records);

#endif
