/* SPDX-License-Identifier: Apache-2.0 */
/*
 * An in-memory writer for "newc" (070701) cpio archives, the format the Linux
 * kernel unpacks as an initramfs.  It builds the image initramfs (through
 * msvmm-mkinitramfs) and the small run-spec archive the VMM appends to it;
 * the kernel accepts such concatenated archives.
 *
 * Every entry is owned by root with mtime 0, so the same input always gives
 * the same bytes (images are cached by content).  Names are relative: no
 * leading '/'.  Parent directories are not created implicitly.
 *
 * All calls return 0 or a negative errno (-EINVAL, -ENOMEM).  A failed call
 * leaves the archive as it was before the call.
 */
#ifndef MSVMM_CPIO_H
#define MSVMM_CPIO_H

#include <stddef.h>
#include <stdint.h>

struct cpio_buf {
	unsigned char *data;
	size_t len;
	size_t cap;
	uint32_t next_ino;
	int finished;		/* the trailer is written: no more entries */
};

void cpio_init(struct cpio_buf *buf);

/* mode: permission bits; the file type bits may be given but must match. */
int cpio_add_dir(struct cpio_buf *buf, const char *path, uint32_t mode);
int cpio_add_file(struct cpio_buf *buf, const char *path, uint32_t mode,
		  const void *data, size_t len);
int cpio_add_symlink(struct cpio_buf *buf, const char *path, const char *target);
/* mode must carry S_IFCHR or S_IFBLK, e.g. S_IFCHR | 0600. */
int cpio_add_node(struct cpio_buf *buf, const char *path, uint32_t mode,
		  uint32_t major, uint32_t minor);

/* Write the TRAILER!!! entry; buf->data[0..len) is then the archive. */
int cpio_finish(struct cpio_buf *buf);

/* Release the buffer; buf may be reused after cpio_init(). */
void cpio_free(struct cpio_buf *buf);

#endif
