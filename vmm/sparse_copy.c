// SPDX-License-Identifier: Apache-2.0
#include "sparse_copy.h"

#include <errno.h>
#include <stdbool.h>
#include <string.h>
#include <unistd.h>

static bool sparse_all_zero(const char *p, size_t n)
{
	return n == 0 || (p[0] == 0 && !memcmp(p, p + 1, n - 1));
}

/*
 * pread/pwrite for [o, end) (destination at o + delta): copy_file_range()
 * refuses a copy between two filesystems (EXDEV since Linux 5.19), the usual
 * case of a template on disk and a scratch file on a tmpfs /tmp.  Zero
 * blocks are not written, so the copy stays sparse also where SEEK_DATA
 * reports the whole file as data (9p, for one).
 */
static int sparse_copy_plain(int in, int out, off_t o, off_t end, off_t delta)
{
	char buf[65536];

	while (o < end) {
		size_t want = end - o < (off_t)sizeof(buf) ? (size_t)(end - o) : sizeof(buf);
		ssize_t n = pread(in, buf, want, o);

		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		if (sparse_all_zero(buf, (size_t)n)) {
			o += n;
			continue;
		}
		for (ssize_t done = 0; done < n;) {
			ssize_t w = pwrite(out, buf + done, (size_t)(n - done), o + delta + done);

			if (w < 0)
				return -errno;
			done += w;
		}
		o += n;
	}
	return 0;
}

/* One data extent [o, end). */
static int sparse_copy_extent(int in, int out, off_t o, off_t end, off_t delta)
{
	while (o < end) {
		off_t src = o, dst = o + delta;
		ssize_t n = copy_file_range(in, &src, out, &dst, (size_t)(end - o), 0);

		if (n < 0 && (errno == EXDEV || errno == EINVAL || errno == ENOSYS || errno == EOPNOTSUPP))
			return sparse_copy_plain(in, out, o, end, delta);
		if (n <= 0)
			return n < 0 ? -errno : -EIO;
		o += n;
	}
	return 0;
}

int sparse_copy(int in, off_t in_off, int out, off_t out_off, off_t len)
{
	off_t pos = in_off, end = in_off + len, delta = out_off - in_off;

	while (pos < end) {
		off_t data = lseek(in, pos, SEEK_DATA), hole;
		int rc;

		if (data < 0)
			return errno == ENXIO ? 0 : -errno;
		if (data >= end)
			return 0;
		hole = lseek(in, data, SEEK_HOLE);
		if (hole < 0)
			return -errno;
		if (hole > end)
			hole = end;
		rc = sparse_copy_extent(in, out, data, hole, delta);
		if (rc)
			return rc;
		pos = hole;
	}
	return 0;
}
