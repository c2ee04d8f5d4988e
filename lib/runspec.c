// SPDX-License-Identifier: Apache-2.0
#include "runspec.h"

#include <errno.h>
#include <stdbool.h>
#include <stdlib.h>
#include <string.h>

#include "ctl.h"

void runspec_put(struct runspec_buf *b, char type, const char *s)
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
	struct runspec_buf b = { 0 };
	int rc;

	bool agent = false;

	for (char *const *r = records; r && *r; r++)
		agent |= **r == 'G';
	/* An agent-mode spec ('G') runs no command of its own. */
	if ((!argv || !argv[0]) && !agent)
		runspec_put(&b, 'D', "1");
	for (char *const *a = argv; a && *a; a++)
		runspec_put(&b, 'A', *a);
	for (char *const *e = env; e && *e; e++)
		runspec_put(&b, 'E', *e);
	if (workdir)
		runspec_put(&b, 'W', workdir);
	for (char *const *r = records; r && *r; r++)
		if (**r)
			runspec_put(&b, **r, *r + 1);
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
