// SPDX-License-Identifier: Apache-2.0
/* In-memory newc cpio writer; see cpio.h. */
#include "cpio.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#define CPIO_HDR_LEN 110	/* "070701" and 13 eight-digit hex fields */
#define CPIO_TRAILER "TRAILER!!!"
#define CPIO_MAX_FIELD 0xffffffffULL

static size_t align4(size_t n)
{
	return (n + 3) & ~(size_t)3;
}

void cpio_init(struct cpio_buf *buf)
{
	buf->data = NULL;
	buf->len = 0;
	buf->cap = 0;
	/* Inode 0 looks like "no inode" to some readers: start at 1. */
	buf->next_ino = 1;
	buf->finished = 0;
}

void cpio_free(struct cpio_buf *buf)
{
	free(buf->data);
	cpio_init(buf);
}

/* Make room for 'more' bytes after buf->len. */
static int cpio_reserve(struct cpio_buf *buf, size_t more)
{
	size_t need, cap;
	unsigned char *p;

	if (more > SIZE_MAX - buf->len)
		return -ENOMEM;
	need = buf->len + more;
	if (need <= buf->cap)
		return 0;
	cap = buf->cap ? buf->cap : 4096;
	while (cap < need) {
		if (cap > SIZE_MAX / 2) {
			cap = need;
			break;
		}
		cap *= 2;
	}
	p = realloc(buf->data, cap);
	if (!p)
		return -ENOMEM;
	buf->data = p;
	buf->cap = cap;
	return 0;
}

struct cpio_entry {
	const char *name;
	uint32_t mode;
	uint32_t nlink;
	uint32_t rmajor, rminor;
	const void *data;
	size_t len;
};

/* Append one header, name and data with their 4-byte padding. */
static int cpio_put(struct cpio_buf *buf, const struct cpio_entry *e)
{
	char hdr[CPIO_HDR_LEN + 1];
	size_t namesize = strlen(e->name) + 1;
	size_t head, total;
	unsigned char *p;
	int ret;

	if (buf->finished)
		return -EINVAL;
	if (namesize > CPIO_MAX_FIELD || (uint64_t)e->len > CPIO_MAX_FIELD)
		return -EINVAL;
	if (buf->next_ino == 0)	/* wrapped: 2^32 entries */
		return -EINVAL;
	head = align4(CPIO_HDR_LEN + namesize);
	if (e->len > SIZE_MAX - head - 3)
		return -ENOMEM;
	total = head + align4(e->len);
	ret = cpio_reserve(buf, total);
	if (ret)
		return ret;

	snprintf(hdr, sizeof(hdr),
		 "070701%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X%08X",
		 buf->next_ino, e->mode, 0u, 0u, e->nlink, 0u,
		 (unsigned int)e->len, 0u, 0u, e->rmajor, e->rminor,
		 (unsigned int)namesize, 0u);

	/* Zero the whole entry first: that writes every padding byte. */
	p = buf->data + buf->len;
	memset(p, 0, total);
	memcpy(p, hdr, CPIO_HDR_LEN);
	memcpy(p + CPIO_HDR_LEN, e->name, namesize);
	if (e->len)
		memcpy(p + head, e->data, e->len);
	buf->len += total;
	buf->next_ino++;
	return 0;
}

static int cpio_valid_name(const char *path)
{
	if (!path || !*path || path[0] == '/')
		return 0;
	/* The kernel would stop unpacking at an entry named like the trailer. */
	return strcmp(path, CPIO_TRAILER) != 0;
}

/* Accept bare permission bits, or permission bits with the right type. */
static int cpio_mode(uint32_t mode, uint32_t type, uint32_t *out)
{
	if (mode & ~(uint32_t)(S_IFMT | 07777))
		return -EINVAL;
	if ((mode & S_IFMT) && (mode & S_IFMT) != type)
		return -EINVAL;
	*out = (mode & 07777) | type;
	return 0;
}

int cpio_add_dir(struct cpio_buf *buf, const char *path, uint32_t mode)
{
	struct cpio_entry e = { .name = path, .nlink = 2 };

	if (!cpio_valid_name(path) || cpio_mode(mode, S_IFDIR, &e.mode))
		return -EINVAL;
	return cpio_put(buf, &e);
}

int cpio_add_file(struct cpio_buf *buf, const char *path, uint32_t mode,
		  const void *data, size_t len)
{
	struct cpio_entry e = { .name = path, .nlink = 1, .data = data, .len = len };

	if (!cpio_valid_name(path) || cpio_mode(mode, S_IFREG, &e.mode))
		return -EINVAL;
	if (len && !data)
		return -EINVAL;
	return cpio_put(buf, &e);
}

int cpio_add_symlink(struct cpio_buf *buf, const char *path, const char *target)
{
	struct cpio_entry e = { .name = path, .mode = S_IFLNK | 0777, .nlink = 1 };

	/* The target is the entry's data, without a NUL. */
	if (!cpio_valid_name(path) || !target || !*target)
		return -EINVAL;
	e.data = target;
	e.len = strlen(target);
	return cpio_put(buf, &e);
}

int cpio_add_node(struct cpio_buf *buf, const char *path, uint32_t mode,
		  uint32_t major, uint32_t minor)
{
	struct cpio_entry e = { .name = path, .nlink = 1, .rmajor = major, .rminor = minor };
	uint32_t type = mode & S_IFMT;

	if (!cpio_valid_name(path) || (type != S_IFCHR && type != S_IFBLK))
		return -EINVAL;
	if (cpio_mode(mode, type, &e.mode))
		return -EINVAL;
	return cpio_put(buf, &e);
}

int cpio_finish(struct cpio_buf *buf)
{
	struct cpio_entry e = { .name = CPIO_TRAILER, .nlink = 1 };
	int ret;

	ret = cpio_put(buf, &e);
	if (ret)
		return ret;
	buf->finished = 1;
	/*
	 * Every entry already ends on a 4-byte boundary, so the archive does
	 * too and a second archive can be appended directly after it.
	 */
	return 0;
}
