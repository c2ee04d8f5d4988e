/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The image store: where images and the default kernel live, and what an
 * image is.  An image is a directory holding image.conf (key=value lines:
 * name, initramfs, rootfs, scratch, default_cmd, runtime) and the files it
 * names; a bare initramfs (newc cpio) file is accepted as an image too.
 * runtime=NAME:PROGRAM (repeatable) names an interpreter that run-code
 * calls can use: runtime=python:/usr/bin/python3.
 */
#ifndef MSVMM_LIB_IMAGE_H
#define MSVMM_LIB_IMAGE_H

#include <limits.h>

#include "msvmm.h"

#define IMAGE_MAX_RUNTIMES 4
#define IMAGE_RUNTIME_NAME_MAX 32

/* A runtime the image has: guest-init's agent knows how to drive NAME's interpreter. */
struct image_runtime {
	char name[IMAGE_RUNTIME_NAME_MAX + 1];
	char program[256];        /* absolute path in the guest */
};

struct image {
	char dir[PATH_MAX];
	char initramfs[PATH_MAX];
	char rootfs[PATH_MAX];    /* read-only ext4 root, "" when the initramfs is the root */
	char scratch[PATH_MAX];   /* sparse ext4 template for the writable layer, or "" */
	char default_cmd[256];
	struct image_runtime runtimes[IMAGE_MAX_RUNTIMES]; /* the first is the default */
	unsigned int nr_runtimes;
};

/* The search path: 'dirs' if set, else $MSVMM_DATA_DIR, <exe>/../share/msvmm, /usr/local/share/msvmm. */
int image_data_dirs(const char *dirs, char *out, size_t len);
/* Resolve a name or path into an image; 0 or -MSVMM_E* with message. */
int image_resolve(const char *dirs, const char *name, struct image *img, msvmm_error *err);
/*
 * The image's runtime 'name' (NULL: its first) into *rt; 0, or -MSVMM_ENOENT
 * with a message naming the image as label (NULL: its directory).
 */
int image_runtime(const struct image *img, const char *label, const char *name, const struct image_runtime **rt,
		  msvmm_error *err);
/* Find the default kernel (vmlinux) in the data dirs. */
int image_default_kernel(const char *dirs, char *out, size_t len, msvmm_error *err);

#endif
