/* SPDX-License-Identifier: Apache-2.0 */
/* The run specification handed to guest-init as an extra initramfs archive (format in ctl.h). */
#ifndef MSVMM_LIB_RUNSPEC_H
#define MSVMM_LIB_RUNSPEC_H

#include "cpio.h"

/* Build a finished cpio archive holding MSVMM_RUN_SPEC_PATH; 0 or -errno. */
int runspec_build(struct cpio_buf *out, char *const *argv, char *const *env, const char *workdir);

#endif
