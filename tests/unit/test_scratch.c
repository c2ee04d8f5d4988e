// SPDX-License-Identifier: Apache-2.0
/*
 * scratch_create(): the sandbox's writable disk is a byte-exact, sparse
 * copy of the template, also when the temporary directory is on another
 * filesystem than the template (tmpfs /dev/shm against the build tree).
 */
#include <fcntl.h>
#include <sys/stat.h>
#include <sys/vfs.h>

#include "scratch.h"
#include "testutil.h"

#define TMPL_SIZE (64ull << 20)

/* A sparse template: a few data extents, the rest holes. */
static char *make_template(void)
{
	static char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "build-scratch-tmpl-%d", (int)getpid());
	fd = open(path, O_CREAT | O_TRUNC | O_RDWR, 0600);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(ftruncate(fd, TMPL_SIZE), 0);
	for (int i = 0; i < 5; i++) {
		char buf[12345];

		memset(buf, 'a' + i, sizeof(buf));
		ck_assert_int_eq(pwrite(fd, buf, sizeof(buf), (off_t)i * (13 << 20) + 777),
				 (ssize_t)sizeof(buf));
	}
	close(fd);
	return path;
}

static void assert_same(int in, int out)
{
	struct stat st;
	static char a[1 << 20], b[1 << 20];

	ck_assert_int_ge(in, 0);
	ck_assert_int_eq(fstat(out, &st), 0);
	ck_assert_uint_eq((uint64_t)st.st_size, TMPL_SIZE);
	/* Sparse: far less than the file's size is allocated. */
	ck_assert_uint_lt((uint64_t)st.st_blocks * 512, 8ull << 20);
	for (off_t o = 0; o < (off_t)TMPL_SIZE; o += sizeof(a)) {
		ck_assert_int_eq(pread(in, a, sizeof(a), o), (ssize_t)sizeof(a));
		ck_assert_int_eq(pread(out, b, sizeof(b), o), (ssize_t)sizeof(b));
		ck_assert_msg(!memcmp(a, b, sizeof(a)), "scratch differs in the MiB at %lld",
			      (long long)o);
	}
	close(in);
}

static void check_in(const char *tmpdir)
{
	char *tmpl = make_template();
	const char *old = getenv("TMPDIR");
	char *saved = old ? strdup(old) : NULL;
	int fd, in;

	setenv("TMPDIR", tmpdir, 1);
	fd = scratch_create(tmpl);
	/* Gone before any assertion can fail: a failed test leaves nothing behind. */
	in = open(tmpl, O_RDONLY);
	unlink(tmpl);
	if (saved)
		setenv("TMPDIR", saved, 1);
	else
		unsetenv("TMPDIR");
	free(saved);
	ck_assert_msg(fd >= 0, "scratch_create in %s: %s", tmpdir, strerror(-fd));
	assert_same(in, fd);
	close(fd);
}

START_TEST(test_same_filesystem)
{
	check_in(".");
}
END_TEST

START_TEST(test_other_filesystem)
{
	struct statfs here, shm;

	/* Only meaningful where /dev/shm is a different filesystem from the tree. */
	if (statfs(".", &here) || statfs("/dev/shm", &shm) || here.f_type == shm.f_type)
		return;
	check_in("/dev/shm");
}
END_TEST

START_TEST(test_missing_template)
{
	ck_assert_int_eq(scratch_create("/nonexistent/template.ext4"), -ENOENT);
}
END_TEST

static Suite *scratch_suite(void)
{
	Suite *s = suite_create("scratch");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_same_filesystem);
	tcase_add_test(tc, test_other_filesystem);
	tcase_add_test(tc, test_missing_template);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(scratch_suite());
}
