/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Where a configuration's ready snapshot lives and what it depends on.  The
 * identity string names every input that shapes the guest up to the point
 * the agent is ready: the kernel and image files (path, size, mtime, inode),
 * memory, vCPUs, kernel log and extra command line, the host CPU model,
 * and the snapshot format.  It is stored in the snapshot and
 * compared exactly on restore; the cache file is named by its hash, so a
 * collision can only miss, never restore the wrong thing.
 */
#ifndef MSVMM_LIB_SNAPCACHE_H
#define MSVMM_LIB_SNAPCACHE_H

#include <stdbool.h>
#include <stddef.h>

#include "config.h"
#include "image.h"

/* Snapshots are used for this configuration (sandbox, no extra disks, no profile, not PVM). */
bool snapcache_eligible(const msvmm_config *cfg, bool pvm);
/* 0, or -MSVMM_E* with message (a file cannot be examined; too long). */
int snapcache_ident(const msvmm_config *cfg, const char *kernel, const struct image *img, char *buf,
		    size_t len, msvmm_error *err);
/* cfg's snapshot path, or the cache file for ident (its directory created when 'create'). */
int snapcache_path(const msvmm_config *cfg, const char *ident, bool create, char *buf, size_t len,
		   msvmm_error *err);

#endif
