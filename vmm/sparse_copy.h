/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Copy a byte range of one file into another, data extents only: holes in
 * the source stay holes in the destination (which must already be at least
 * that long, or be extended by the caller), so copying a mostly empty disk
 * image costs what it holds, not its size.
 */
#ifndef MSVMM_SPARSE_COPY_H
#define MSVMM_SPARSE_COPY_H

#include <sys/types.h>

/* [in_off, in_off + len) of in to out at out_off; 0 or -errno. */
int sparse_copy(int in, off_t in_off, int out, off_t out_off, off_t len);

#endif
