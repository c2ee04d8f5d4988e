/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A sandbox's writable disk: a private, sparse copy of the image's empty
 * ext4 template in an unnamed temporary file (O_TMPFILE), so it disappears
 * with the sandbox whatever way the process ends.
 */
#ifndef MSVMM_LIB_SCRATCH_H
#define MSVMM_LIB_SCRATCH_H

#include <sys/types.h>

/* Returns an fd open for reading and writing, or -errno. */
int scratch_create(const char *template_path);
/* The same from [off, off + len) of an open file (a snapshot's saved disk). */
int scratch_create_from(int fd, off_t off, off_t len);

#endif
