// SPDX-License-Identifier: Apache-2.0
/*
 * Snapshots through the public API, with real guests: a running sandbox
 * saved with msvmm_sandbox_snapshot(), restored (state from before the
 * snapshot is there, what came after is not), and every kind of bad
 * snapshot refused with a message that names the problem, not silently
 * replaced by a boot unless MSVMM_SNAPSHOT_FALLBACK allows it.  The file
 * itself never changes.
 *
 *   snapshot IMAGE DATA_DIR   (as tests/e2e/sandbox.c; temp files in $TMPDIR)
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zlib.h>

#include "msvmm.h"
#include "testutil.h"

#define STOP_MS 30000

static const char *image_arg, *data_dir_arg;
static char dir[PATH_MAX / 2], snap[PATH_MAX];

static msvmm_config *config(unsigned int mib, int mode, const char *path)
{
	msvmm_config *cfg = msvmm_config_new();

	ck_assert_ptr_nonnull(cfg);
	ck_assert_int_eq(msvmm_config_set_image(cfg, image_arg), 0);
	ck_assert_int_eq(msvmm_config_set_data_dirs(cfg, data_dir_arg), 0);
	ck_assert_int_eq(msvmm_config_set_memory_mib(cfg, mib), 0);
	ck_assert_int_eq(msvmm_config_set_snapshot(cfg, mode, path), 0);
	return cfg;
}

/* sh -c script in sb: its status; its stdout in out. */
static int sh(msvmm_sandbox *sb, const char *script, char *out, size_t len)
{
	const char *argv[] = { "sh", "-c", script, NULL };
	char path[PATH_MAX];
	msvmm_exec_opts o;
	msvmm_result res;
	msvmm_error err;
	int fd, rc;
	ssize_t n;

	snprintf(path, sizeof(path), "%s/out", dir);
	fd = open(path, O_RDWR | O_CREAT | O_TRUNC, 0600);
	ck_assert_int_ge(fd, 0);
	msvmm_exec_opts_init(&o);
	o.argv = argv;
	o.stdout_fd = fd;
	rc = msvmm_sandbox_exec(sb, &o, &res, &err);
	ck_assert_msg(rc == 0, "exec '%s': %s", script, err.message);
	n = pread(fd, out, len - 1, 0);
	out[n > 0 ? n : 0] = '\0';
	close(fd);
	unlink(path);
	return res.status;
}

static uint32_t file_crc(const char *path)
{
	static unsigned char buf[1 << 20];
	uint32_t crc = 0;
	int fd = open(path, O_RDONLY);
	ssize_t n;

	ck_assert_int_ge(fd, 0);
	while ((n = read(fd, buf, sizeof(buf))) > 0)
		crc = (uint32_t)crc32(crc, buf, (uInt)n);
	close(fd);
	return crc;
}

/* A copy of the snapshot, then 'how' done to it. */
static void bad_copy(const char *name, char *path, size_t len, void (*how)(int fd))
{
	char cmd[3 * PATH_MAX];
	int fd;

	snprintf(path, len, "%s/%s", dir, name);
	snprintf(cmd, sizeof(cmd), "cp --sparse=always '%s' '%s'", snap, path);
	ck_assert_int_eq(system(cmd), 0);
	fd = open(path, O_RDWR);
	ck_assert_int_ge(fd, 0);
	how(fd);
	close(fd);
}

static void flip_state(int fd)
{
	char c;

	ck_assert_int_eq(pread(fd, &c, 1, 4096 + 200), 1);
	c ^= 0x5a;
	ck_assert_int_eq(pwrite(fd, &c, 1, 4096 + 200), 1);
}

static void cut_short(int fd)
{
	struct stat st;

	ck_assert_int_eq(fstat(fd, &st), 0);
	ck_assert_int_eq(ftruncate(fd, st.st_size / 2), 0);
}

static void not_a_snapshot(int fd)
{
	ck_assert_int_eq(ftruncate(fd, 0), 0);
	ck_assert_int_eq(pwrite(fd, "hello, world\n", 13, 0), 13);
	ck_assert_int_eq(ftruncate(fd, 8192), 0);
}

/* Starting from path is refused: code and a message containing needle; nothing was started. */
static void expect_refused(const char *path, unsigned int mib, int code, const char *needle)
{
	msvmm_config *cfg = config(mib, MSVMM_SNAPSHOT_CACHE, path);
	msvmm_sandbox *sb = NULL;
	msvmm_error err = tu_err();

	ck_assert_int_eq(msvmm_sandbox_start(cfg, &sb, &err), -code);
	ck_assert_ptr_null(sb);
	ck_assert_err(err, code, needle);
	msvmm_config_free(cfg);
}

START_TEST(test_save_and_restore)
{
	msvmm_config *cfg = config(256, MSVMM_SNAPSHOT_OFF, NULL);
	msvmm_sandbox *a, *b;
	msvmm_error err;
	char out[256];
	uint32_t crc;

	ck_assert_msg(msvmm_sandbox_start(cfg, &a, &err) == 0, "start: %s", err.message);
	ck_assert_int_eq(msvmm_sandbox_restored(a), 0);
	ck_assert_int_eq(sh(a, "echo before >/tmp/before", out, sizeof(out)), 0);
	ck_assert_msg(msvmm_sandbox_snapshot(a, snap, &err) == 0, "snapshot: %s", err.message);
	/* The sandbox goes on after its snapshot. */
	ck_assert_int_eq(sh(a, "echo after >/tmp/after; cat /tmp/before", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "before\n");
	/* An existing file is not overwritten. */
	err = tu_err();
	ck_assert_int_lt(msvmm_sandbox_snapshot(a, snap, &err), 0);
	ck_assert_msg(strstr(err.message, snap) != NULL, "message '%s' does not name the file", err.message);
	ck_assert_int_eq(msvmm_sandbox_stop(a, STOP_MS, &err), 0);
	msvmm_sandbox_destroy(a);
	msvmm_config_free(cfg);

	crc = file_crc(snap);
	cfg = config(256, MSVMM_SNAPSHOT_CACHE, snap);
	ck_assert_msg(msvmm_sandbox_start(cfg, &b, &err) == 0, "restore: %s", err.message);
	ck_assert_int_eq(msvmm_sandbox_restored(b), 1);
	ck_assert_int_eq(sh(b, "cat /tmp/before; test -e /tmp/after || echo no-after", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "before\nno-after\n");
	ck_assert_int_eq(sh(b, "exit 7", out, sizeof(out)), 7);
	ck_assert_int_eq(msvmm_sandbox_stop(b, STOP_MS, &err), 0);
	msvmm_sandbox_destroy(b);
	msvmm_config_free(cfg);
	ck_assert_uint_eq(file_crc(snap), crc);
}
END_TEST

START_TEST(test_bad_snapshots_refused)
{
	char path[PATH_MAX];

	bad_copy("corrupt.snap", path, sizeof(path), flip_state);
	expect_refused(path, 256, MSVMM_EFORMAT, "corrupt");
	bad_copy("short.snap", path, sizeof(path), cut_short);
	expect_refused(path, 256, MSVMM_EFORMAT, "truncated");
	bad_copy("junk.snap", path, sizeof(path), not_a_snapshot);
	expect_refused(path, 256, MSVMM_EFORMAT, "not an msvmm snapshot");
	/* Made for 256 MiB: not for 128. */
	expect_refused(snap, 128, MSVMM_EINVAL, "made for");
	/* Made under one kernel: not under another (here, a copy of it elsewhere). */
	{
		char kernel[PATH_MAX], cmd[3 * PATH_MAX];
		msvmm_config *cfg = config(256, MSVMM_SNAPSHOT_CACHE, snap);
		msvmm_sandbox *sb = NULL;
		msvmm_error err = tu_err();

		snprintf(kernel, sizeof(kernel), "%s/vmlinux-other", dir);
		snprintf(cmd, sizeof(cmd), "cp '%s/vmlinux' '%s'", data_dir_arg, kernel);
		ck_assert_int_eq(system(cmd), 0);
		ck_assert_int_eq(msvmm_config_set_kernel(cfg, kernel), 0);
		ck_assert_int_eq(msvmm_sandbox_start(cfg, &sb, &err), -MSVMM_EINVAL);
		ck_assert_err(err, MSVMM_EINVAL, "made for");
		msvmm_config_free(cfg);
	}
}
END_TEST

/* No file there yet: the sandbox boots and leaves its ready snapshot there. */
START_TEST(test_missing_is_made)
{
	char path[PATH_MAX];
	msvmm_config *cfg;
	msvmm_sandbox *sb;
	msvmm_error err;
	struct stat st;

	snprintf(path, sizeof(path), "%s/made.snap", dir);
	cfg = config(256, MSVMM_SNAPSHOT_CACHE, path);
	ck_assert_msg(msvmm_sandbox_start(cfg, &sb, &err) == 0, "start: %s", err.message);
	ck_assert_int_eq(msvmm_sandbox_restored(sb), 0);
	msvmm_sandbox_destroy(sb);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_msg(msvmm_sandbox_start(cfg, &sb, &err) == 0, "restore: %s", err.message);
	ck_assert_int_eq(msvmm_sandbox_restored(sb), 1);
	msvmm_sandbox_destroy(sb);
	msvmm_config_free(cfg);
}
END_TEST

START_TEST(test_fallback_boots)
{
	char path[PATH_MAX], out[64];
	msvmm_config *cfg;
	msvmm_sandbox *sb;
	msvmm_error err;

	bad_copy("fallback.snap", path, sizeof(path), flip_state);
	cfg = config(256, MSVMM_SNAPSHOT_CACHE | MSVMM_SNAPSHOT_FALLBACK, path);
	ck_assert_msg(msvmm_sandbox_start(cfg, &sb, &err) == 0, "start: %s", err.message);
	ck_assert_int_eq(msvmm_sandbox_restored(sb), 0);
	ck_assert_int_eq(sh(sb, "echo ok", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "ok\n");
	msvmm_sandbox_destroy(sb);
	/* The bad one was replaced by a good one. */
	ck_assert_msg(msvmm_sandbox_start(cfg, &sb, &err) == 0, "start: %s", err.message);
	ck_assert_int_eq(msvmm_sandbox_restored(sb), 1);
	msvmm_sandbox_destroy(sb);
	msvmm_config_free(cfg);
}
END_TEST

int main(int argc, char **argv)
{
	const char *tmp = getenv("TMPDIR");
	struct stat st;
	Suite *s;
	TCase *tc;
	SRunner *sr;
	int failed;

	if (stat("/dev/kvm", &st) < 0 && errno == ENOENT) {
		fprintf(stderr, "snapshot: SKIPPED: /dev/kvm does not exist on this host.\n");
		return 0;
	}
	image_arg = argc > 1 ? argv[1] : NULL;
	data_dir_arg = argc > 2 ? argv[2] : NULL;
	if (!image_arg || !data_dir_arg) {
		fprintf(stderr, "usage: snapshot IMAGE DATA_DIR\n");
		return 2;
	}
	snprintf(dir, sizeof(dir), "%s/msvmm-snapshot-XXXXXX", tmp && *tmp ? tmp : "/tmp");
	if (!mkdtemp(dir)) {
		fprintf(stderr, "snapshot: mkdtemp %s: %s\n", dir, strerror(errno));
		return 1;
	}
	snprintf(snap, sizeof(snap), "%s/ready.snap", dir);
	s = suite_create("snapshot");
	tc = tcase_create("snapshot");
	tcase_add_test(tc, test_save_and_restore);
	tcase_add_test(tc, test_bad_snapshots_refused);
	tcase_add_test(tc, test_fallback_boots);
	tcase_add_test(tc, test_missing_is_made);
	suite_add_tcase(s, tc);
	sr = srunner_create(s);
	srunner_set_fork_status(sr, CK_NOFORK);
	srunner_run_all(sr, CK_VERBOSE);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	{
		char cmd[PATH_MAX];

		snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
		if (system(cmd) != 0)
			fprintf(stderr, "snapshot: could not remove %s\n", dir);
	}
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
