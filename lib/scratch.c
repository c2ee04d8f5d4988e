// SPDX-License-Identifier: Apache-2.0
#include "scratch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

/* An unnamed file in the first usable directory; nothing to clean up later. */
static int scratch_tmpfile(void)
{
	const char *dirs[] = { getenv("TMPDIR"), "/var/tmp", "/tmp" };

	for (size_t i = 0; i < sizeof(dirs) / sizeof(dirs[0]); i++) {
		int fd;

		if (!dirs[i] || !*dirs[i])
			continue;
		fd = open(dirs[i], O_TMPFILE | O_RDWR | O_CLOEXEC, 0600);
		if (fd >= 0)
			return fd;
	}
	return -errno;
}

/*
 * pread/pwrite for [o, end): copy_file_range() refuses a copy between two
 * filesystems (EXDEV since Linux 5.19), which is the usual case of a
 * template on disk and a scratch file on a tmpfs /tmp.  Zero blocks are
 * not written (the file is already that long, so they read as zeros): the
 * copy stays sparse also where SEEK_DATA reports the whole file as data.
 */
static bool scratch_all_zero(const char *p, size_t n)
{
	return n == 0 || (p[0] == 0 && !memcmp(p, p + 1, n - 1));
}

static int scratch_copy_plain(int in, int out, off_t o, off_t end)
{
	char buf[65536];

	while (o < end) {
		size_t want = end - o < (off_t)sizeof(buf) ? (size_t)(end - o) : sizeof(buf);
		ssize_t n = pread(in, buf, want, o);

		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		if (scratch_all_zero(buf, (size_t)n)) {
			o += n;
			continue;
		}
		for (ssize_t done = 0; done < n;) {
			ssize_t w = pwrite(out, buf + done, (size_t)(n - done), o + done);

			if (w < 0)
				return -errno;
			done += w;
		}
		o += n;
	}
	return 0;
}

/* Copy only the data extents: the template is mostly holes. */
static int scratch_copy_data(int in, int out, off_t size)
{
	off_t pos = 0;

	while (pos < size) {
		off_t data = lseek(in, pos, SEEK_DATA), hole;

		if (data < 0)
			return errno == ENXIO ? 0 : -errno;
		hole = lseek(in, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		for (off_t o = data; o < hole;) {
			off_t src = o, dst = o;
			ssize_t n = copy_file_range(in, &src, out, &dst, (size_t)(hole - o), 0);

			if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS ||
				      errno == EOPNOTSUPP)) {
				int rc = scratch_copy_plain(in, out, o, hole);

				if (rc)
					return rc;
				break;
			}
			if (n <= 0)
				return n < 0 ? -errno : -EIO;
			o += n;
		}
		pos = hole;
	}
	return 0;
}

int scratch_create(const char *template_path)
{
	struct stat st;
	int in, out, rc;

	in = open(template_path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out = scratch_tmpfile();
	rc = out < 0 ? out : fstat(in, &st) < 0 ? -errno : 0;
	if (!rc)
		rc = ftruncate(out, st.st_size) < 0 ? -errno : scratch_copy_data(in, out, st.st_size);
	close(in);
	if (rc) {
		if (out >= 0)
			close(out);
		return rc;
	}
	return out;
}
