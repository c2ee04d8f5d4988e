// SPDX-License-Identifier: Apache-2.0
/*
 * msvmm-mkinitramfs OUT.cpio < LIST
 *
 * Packs a newc initramfs from a list in the style of the kernel's
 * gen_init_cpio, one entry a line ('#' starts a comment):
 *
 *	dir   PATH MODE
 *	file  PATH HOSTFILE MODE
 *	slink PATH TARGET
 *	nod   PATH MODE c|b MAJOR MINOR
 *
 * MODE is octal.  A leading '/' on PATH is dropped, as gen_init_cpio lists
 * write them.  OUT is replaced atomically: a failed run leaves no partial
 * archive behind.
 */
#include "cpio.h"

#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define PROG "msvmm-mkinitramfs"
#define MAX_FIELDS 7

struct list_pos {
	unsigned long line;
};

static void errorf(const struct list_pos *pos, const char *fmt, ...)
	__attribute__((format(printf, 2, 3)));

static void errorf(const struct list_pos *pos, const char *fmt, ...)
{
	va_list ap;

	if (pos)
		fprintf(stderr, "%s: <stdin>:%lu: ", PROG, pos->line);
	else
		fprintf(stderr, "%s: ", PROG);
	va_start(ap, fmt);
	vfprintf(stderr, fmt, ap);
	va_end(ap);
	fputc('\n', stderr);
}

/* Split line in place on blanks; stops at a '#' comment. */
static int split_fields(char *line, char **field, int max)
{
	int n = 0;
	char *p = line;

	for (;;) {
		while (*p == ' ' || *p == '\t' || *p == '\n' || *p == '\r')
			p++;
		if (!*p || *p == '#')
			return n;
		if (n == max)
			return max + 1;
		field[n++] = p;
		while (*p && *p != ' ' && *p != '\t' && *p != '\n' && *p != '\r')
			p++;
		if (*p)
			*p++ = '\0';
	}
}

static int parse_ulong(const char *s, int base, unsigned long max, unsigned long *out)
{
	char *end;
	unsigned long v;

	if (!*s || *s == '-' || *s == '+')
		return -1;
	errno = 0;
	v = strtoul(s, &end, base);
	if (errno || *end || v > max)
		return -1;
	*out = v;
	return 0;
}

static const char *entry_path(const char *path)
{
	while (*path == '/')
		path++;
	return path;
}

/* Read a whole regular host file into a malloc'd buffer. */
static int read_host_file(const char *name, unsigned char **data, size_t *len)
{
	struct stat st;
	unsigned char *buf;
	size_t got = 0;
	int fd, e;

	fd = open(name, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (fstat(fd, &st) < 0) {
		e = errno;
		close(fd);
		return -e;
	}
	if (!S_ISREG(st.st_mode)) {
		close(fd);
		return -EINVAL;
	}
	buf = malloc(st.st_size ? (size_t)st.st_size : 1);
	if (!buf) {
		close(fd);
		return -ENOMEM;
	}
	while (got < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + got, (size_t)st.st_size - got);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			e = n < 0 ? errno : EIO;	/* shrank under us */
			free(buf);
			close(fd);
			return -e;
		}
		got += (size_t)n;
	}
	close(fd);
	*data = buf;
	*len = got;
	return 0;
}

static int do_file(struct cpio_buf *cb, const struct list_pos *pos, char **f, uint32_t mode)
{
	unsigned char *data = NULL;
	size_t len = 0;
	int ret;

	ret = read_host_file(f[2], &data, &len);
	if (ret) {
		errorf(pos, "%s: %s", f[2],
		       ret == -EINVAL ? "not a regular file" : strerror(-ret));
		return -1;
	}
	ret = cpio_add_file(cb, entry_path(f[1]), mode, data, len);
	free(data);
	if (ret)
		errorf(pos, "file %s: %s", f[1], strerror(-ret));
	return ret ? -1 : 0;
}

static int do_nod(struct cpio_buf *cb, const struct list_pos *pos, char **f, uint32_t mode)
{
	unsigned long major, minor;
	uint32_t type;
	int ret;

	if (!strcmp(f[3], "c"))
		type = S_IFCHR;
	else if (!strcmp(f[3], "b"))
		type = S_IFBLK;
	else {
		errorf(pos, "nod %s: device type must be 'c' or 'b', not '%s'", f[1], f[3]);
		return -1;
	}
	if (parse_ulong(f[4], 10, UINT32_MAX, &major) ||
	    parse_ulong(f[5], 10, UINT32_MAX, &minor)) {
		errorf(pos, "nod %s: bad device number '%s %s'", f[1], f[4], f[5]);
		return -1;
	}
	ret = cpio_add_node(cb, entry_path(f[1]), mode | type, major, minor);
	if (ret)
		errorf(pos, "nod %s: %s", f[1], strerror(-ret));
	return ret ? -1 : 0;
}

/* The field holding MODE, per entry type, and the expected field count. */
static int entry_shape(const char *type, int *mode_idx)
{
	if (!strcmp(type, "dir")) {
		*mode_idx = 2;
		return 3;
	}
	if (!strcmp(type, "file")) {
		*mode_idx = 3;
		return 4;
	}
	if (!strcmp(type, "slink")) {
		*mode_idx = 0;
		return 3;
	}
	if (!strcmp(type, "nod")) {
		*mode_idx = 2;
		return 6;
	}
	return -1;
}

static int do_line(struct cpio_buf *cb, const struct list_pos *pos, char *line)
{
	char *f[MAX_FIELDS];
	unsigned long mode = 0;
	int n, want, mode_idx, ret;

	n = split_fields(line, f, MAX_FIELDS);
	if (n == 0)
		return 0;
	want = entry_shape(f[0], &mode_idx);
	if (want < 0) {
		errorf(pos, "unknown entry type '%s'", f[0]);
		return -1;
	}
	if (n != want) {
		errorf(pos, "'%s' takes %d arguments, got %d", f[0], want - 1, n - 1);
		return -1;
	}
	if (!*entry_path(f[1])) {
		errorf(pos, "%s: bad path '%s'", f[0], f[1]);
		return -1;
	}
	if (mode_idx && parse_ulong(f[mode_idx], 8, 07777, &mode)) {
		errorf(pos, "%s %s: bad mode '%s' (octal, at most 7777)", f[0], f[1], f[mode_idx]);
		return -1;
	}

	if (!strcmp(f[0], "file"))
		return do_file(cb, pos, f, mode);
	if (!strcmp(f[0], "nod"))
		return do_nod(cb, pos, f, mode);
	if (!strcmp(f[0], "dir"))
		ret = cpio_add_dir(cb, entry_path(f[1]), mode);
	else
		ret = cpio_add_symlink(cb, entry_path(f[1]), f[2]);
	if (ret)
		errorf(pos, "%s %s: %s", f[0], f[1], strerror(-ret));
	return ret ? -1 : 0;
}

static int read_list(struct cpio_buf *cb, FILE *in)
{
	struct list_pos pos = { 0 };
	char *line = NULL;
	size_t cap = 0;
	ssize_t n;
	int ret = 0;

	while ((n = getline(&line, &cap, in)) >= 0) {
		pos.line++;
		if (strlen(line) != (size_t)n) {
			errorf(&pos, "NUL byte in line");
			ret = -1;
			break;
		}
		ret = do_line(cb, &pos, line);
		if (ret)
			break;
	}
	if (!ret && ferror(in)) {
		errorf(NULL, "reading the list: %s", strerror(errno));
		ret = -1;
	}
	free(line);
	return ret;
}

static int write_all(int fd, const unsigned char *p, size_t len)
{
	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

/* Write to a temporary file next to out, then rename it into place. */
static int write_archive(const char *out, const struct cpio_buf *cb)
{
	const char *slash = strrchr(out, '/');
	int dirlen = slash ? (int)(slash - out + 1) : 0;
	char tmp[PATH_MAX];
	int fd, e;

	if (snprintf(tmp, sizeof(tmp), "%.*s.%s.XXXXXX", dirlen, out,
		     out + dirlen) >= (int)sizeof(tmp)) {
		errorf(NULL, "%s: path too long", out);
		return -1;
	}
	fd = mkstemp(tmp);
	if (fd < 0) {
		errorf(NULL, "%s: cannot create a temporary file: %s", out, strerror(errno));
		return -1;
	}
	if (fchmod(fd, 0644) < 0 || write_all(fd, cb->data, cb->len) < 0)
		goto fail;
	if (close(fd) < 0) {
		fd = -1;
		goto fail;
	}
	if (rename(tmp, out) < 0) {
		fd = -1;
		goto fail;
	}
	return 0;
fail:
	e = errno;
	if (fd >= 0)
		close(fd);
	unlink(tmp);
	errorf(NULL, "%s: %s", out, strerror(e));
	return -1;
}

int main(int argc, char **argv)
{
	struct cpio_buf cb;
	int ret;

	if (argc == 2 && (!strcmp(argv[1], "-h") || !strcmp(argv[1], "--help"))) {
		printf("usage: %s OUT.cpio < LIST\n", PROG);
		return 0;
	}
	if (argc != 2 || !argv[1][0]) {
		fprintf(stderr, "usage: %s OUT.cpio < LIST\n", PROG);
		return 1;
	}
	cpio_init(&cb);
	ret = read_list(&cb, stdin);
	if (!ret) {
		ret = cpio_finish(&cb);
		if (ret)
			errorf(NULL, "finishing the archive: %s", strerror(-ret));
	}
	if (!ret)
		ret = write_archive(argv[1], &cb);
	cpio_free(&cb);
	return ret ? 1 : 0;
}
