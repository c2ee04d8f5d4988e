// SPDX-License-Identifier: Apache-2.0
#include "scratch.h"

#include "sparse_copy.h"

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

int scratch_create_from(int in, off_t off, off_t len)
{
	int out = scratch_tmpfile(), rc;

	if (out < 0)
		return out;
	rc = ftruncate(out, len) < 0 ? -errno : sparse_copy(in, off, out, 0, len);
	if (rc) {
		close(out);
		return rc;
	}
	return out;
}

int scratch_create(const char *template_path)
{
	struct stat st;
	int in, out;

	in = open(template_path, O_RDONLY | O_CLOEXEC);
	if (in < 0)
		return -errno;
	out = fstat(in, &st) < 0 ? -errno : scratch_create_from(in, 0, st.st_size);
	close(in);
	return out;
}
