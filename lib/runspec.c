// SPDX-License-Identifier: Apache-2.0
#include "runspec.h"

#include <errno.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

struct spec_buf {
	char *p;
	size_t len, cap;
	int failed;
};

static void spec_put(struct spec_buf *b, char type, const char *s)
{
	size_t n = strlen(s) + 2;

	if (b->failed)
		return;
	if (b->len + n > b->cap) {
		size_t cap = (b->cap + n) * 2;
		char *q = realloc(b->p, cap);

		if (!q) {
			b->failed = 1;
			return;
		}
		b->p = q;
		b->cap = cap;
	}
	b->p[b->len] = type;
	memcpy(b->p + b->len + 1, s, n - 1);
	b->len += n;
}

int runspec_build(struct cpio_buf *out, char *const *argv, char *const *env, const char *workdir,
		  char *const *records)
{
	struct spec_buf b = { 0 };
	int rc;

	if (!argv || !argv[0])
		spec_put(&b, 'D', "1");
	for (char *const *a = argv; a && *a; a++)
		spec_put(&b, 'A', *a);
	for (char *const *e = env; e && *e; e++)
		spec_put(&b, 'E', *e);
	if (workdir)
		spec_put(&b, 'W', workdir);
	for (char *const *r = records; r && *r; r++)
		if (**r)
			spec_put(&b, **r, *r + 1);
	if (b.failed) {
		free(b.p);
		return -ENOMEM;
	}
	cpio_init(out);
	/* Path without its leading '/': cpio names are relative. */
	rc = cpio_add_dir(out, "msvmm", 0755);
	if (!rc)
		rc = cpio_add_file(out, &MSVMM_RUN_SPEC_PATH[1], 0600, b.p ? b.p : "", b.len);
	if (!rc)
		rc = cpio_finish(out);
	free(b.p);
	if (rc)
		cpio_free(out);
	return rc;
}
