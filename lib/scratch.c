// SPDX-License-Identifier: Apache-2.0
#include "scratch.h"

#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
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
