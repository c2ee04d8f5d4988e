// SPDX-License-Identifier: Apache-2.0
/*
 * lib/image: resolving an image name or path against an explicit data path
 * built in a temporary directory (never the installed store or $MSVMM_DATA_DIR).
 */
#include "image.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <sys/stat.h>
#include <unistd.h>

#include "testutil.h"

static char base[PATH_MAX - 64], root[PATH_MAX];

static void write_file(const char *path, const char *data, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);

	ck_assert_msg(fd >= 0, "open %s: %s", path, strerror(errno));
	ck_assert_int_eq(write(fd, data, len), (ssize_t)len);
	close(fd);
}

/* A newc header's worth of bytes: the magic is what the resolver checks. */
static void write_cpio(const char *path)
{
	static const char hdr[] = "0707010000000000000000000000000000000000000000000000000000000000"
				  "00000000000000000000000000000000000000000000000B00000000TRAILER!!!";

	write_file(path, hdr, sizeof(hdr) - 1);
}

static void pathf(char *out, const char *fmt, const char *a)
{
	ck_assert_int_lt(snprintf(out, PATH_MAX, fmt, root, a), PATH_MAX);
}

static void mkdirf(const char *fmt, const char *a)
{
	char p[PATH_MAX];

	pathf(p, fmt, a);
	ck_assert_msg(mkdir(p, 0755) == 0, "mkdir %s: %s", p, strerror(errno));
}

/* <root>/images/<name>/image.conf with 'conf' as its text. */
static void make_image_dir(const char *name, const char *conf)
{
	char p[PATH_MAX];

	mkdirf("%s/images/%s", name);
	pathf(p, "%s/images/%s/image.conf", name);
	write_file(p, conf, strlen(conf));
}

/* Once per run, in the parent: every test's tree lives under base, removed at the end. */
static void base_setup(void)
{
	snprintf(base, sizeof(base), "%s/msvmm-image-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(base));
}

static void base_teardown(void)
{
	char cmd[PATH_MAX + 16];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", base);
	ck_assert_int_eq(system(cmd), 0);
}

static void setup(void)
{
	char p[PATH_MAX];

	unsetenv("MSVMM_DATA_DIR");
	ck_assert_int_lt(snprintf(root, sizeof(root), "%s/t-XXXXXX", base), (int)sizeof(root));
	ck_assert_ptr_nonnull(mkdtemp(root));
	mkdirf("%s/images%s", "");
	make_image_dir("busybox", "# a test image\nname=busybox\ninitramfs=busybox.cpio\n"
				  "default_cmd=/bin/sh -c 'echo hi'\n");
	pathf(p, "%s/images/%s/busybox.cpio", "busybox");
	write_cpio(p);
}

START_TEST(test_directory_image_by_name)
{
	struct image img;
	msvmm_error err = tu_err();
	char want_dir[PATH_MAX], want_cpio[PATH_MAX + 16], p[PATH_MAX];

	ck_assert_int_eq(image_resolve(root, "busybox", &img, &err), 0);
	pathf(p, "%s/images/%s", "busybox");
	ck_assert_ptr_nonnull(realpath(p, want_dir));
	ck_assert_str_eq(img.dir, want_dir);
	snprintf(want_cpio, sizeof(want_cpio), "%s/busybox.cpio", want_dir);
	ck_assert_str_eq(img.initramfs, want_cpio);
	ck_assert_str_eq(img.default_cmd, "/bin/sh -c 'echo hi'");
	ck_assert_int_eq(access(img.initramfs, R_OK), 0);
}
END_TEST

START_TEST(test_directory_image_by_path)
{
	struct image img;
	msvmm_error err = tu_err();
	char p[PATH_MAX];

	pathf(p, "%s/images/%s/", "busybox"); /* a '/' makes it a path: no search */
	ck_assert_int_eq(image_resolve("/nonexistent", p, &img, &err), 0);
	ck_assert_ptr_nonnull(strstr(img.initramfs, "/images/busybox/busybox.cpio"));
	ck_assert_str_eq(img.default_cmd, "/bin/sh -c 'echo hi'");
}
END_TEST

START_TEST(test_search_path_order)
{
	struct image img;
	msvmm_error err = tu_err();
	char dirs[3 * PATH_MAX], p[PATH_MAX];

	/* Missing directories and empty elements in the path are skipped. */
	snprintf(dirs, sizeof(dirs), "/nonexistent-msvmm::%s/none:%s", root, root);
	ck_assert_int_eq(image_resolve(dirs, "busybox", &img, &err), 0);
	ck_assert_ptr_nonnull(strstr(img.initramfs, "/images/busybox/busybox.cpio"));

	/* The first directory that has the image wins. */
	mkdirf("%s/%s", "second");
	mkdirf("%s/%s/images", "second");
	make_image_dir("../second/images/busybox", "initramfs=other.cpio\n");
	pathf(p, "%s/second/images/busybox/%s", "other.cpio");
	write_cpio(p);
	snprintf(dirs, sizeof(dirs), "%s/second:%s", root, root);
	err = tu_err();
	ck_assert_int_eq(image_resolve(dirs, "busybox", &img, &err), 0);
	ck_assert_ptr_nonnull(strstr(img.initramfs, "/second/images/busybox/other.cpio"));
	ck_assert_str_eq(img.default_cmd, "");
}
END_TEST

START_TEST(test_absolute_initramfs_in_conf)
{
	struct image img;
	msvmm_error err = tu_err();
	char conf[PATH_MAX + 32], cpio[PATH_MAX];

	pathf(cpio, "%s/%s", "elsewhere.cpio");
	write_cpio(cpio);
	snprintf(conf, sizeof(conf), "initramfs=%s\r\n", cpio);
	make_image_dir("abs", conf);
	ck_assert_int_eq(image_resolve(root, "abs", &img, &err), 0);
	ck_assert_str_eq(img.initramfs, cpio);
}
END_TEST

START_TEST(test_bare_cpio_file)
{
	struct image img;
	msvmm_error err = tu_err();
	char p[PATH_MAX];

	pathf(p, "%s/%s", "rootfs.cpio");
	write_cpio(p);
	ck_assert_int_eq(image_resolve(root, p, &img, &err), 0);
	ck_assert_str_eq(img.initramfs, p);
	ck_assert_str_eq(img.dir, "");
	ck_assert_str_eq(img.default_cmd, "");
}
END_TEST

START_TEST(test_missing_name)
{
	struct image img;
	msvmm_error err = tu_err();

	ck_assert_int_eq(image_resolve(root, "no-such-image", &img, &err), -MSVMM_ENOENT);
	ck_assert_err(err, MSVMM_ENOENT, "'no-such-image'");
	ck_assert_err(err, MSVMM_ENOENT, "not found");
	/* A directory without image.conf is not an image either. */
	mkdirf("%s/images/%s", "bare");
	err = tu_err();
	ck_assert_int_eq(image_resolve(root, "bare", &img, &err), -MSVMM_ENOENT);
	ck_assert_err(err, MSVMM_ENOENT, "'bare'");
}
END_TEST

START_TEST(test_missing_path)
{
	struct image img;
	msvmm_error err = tu_err();
	char p[PATH_MAX];

	pathf(p, "%s/%s", "absent.cpio");
	ck_assert_int_eq(image_resolve(root, p, &img, &err), -MSVMM_ENOENT);
	ck_assert_err(err, MSVMM_ENOENT, p);
}
END_TEST

START_TEST(test_empty_name)
{
	struct image img;
	msvmm_error err = tu_err();

	ck_assert_int_eq(image_resolve(root, "", &img, &err), -MSVMM_EINVAL);
	ck_assert_err(err, MSVMM_EINVAL, "no image");
	err = tu_err();
	ck_assert_int_eq(image_resolve(root, NULL, &img, &err), -MSVMM_EINVAL);
	ck_assert_int_eq(err.code, MSVMM_EINVAL);
}
END_TEST

START_TEST(test_not_a_cpio_file)
{
	struct image img;
	msvmm_error err = tu_err();
	char p[PATH_MAX];

	pathf(p, "%s/%s", "vmlinux");
	write_file(p, "\177ELF\2\1\1\0\0\0\0\0\0\0\0\0", 16);
	ck_assert_int_eq(image_resolve(root, p, &img, &err), -MSVMM_EFORMAT);
	ck_assert_err(err, MSVMM_EFORMAT, "not an initramfs (newc cpio)");
	ck_assert_err(err, MSVMM_EFORMAT, p);
	/* Old binary cpio and "odc" cpio are not newc; nor is a short file. */
	write_file(p, "070707000000", 12);
	err = tu_err();
	ck_assert_int_eq(image_resolve(root, p, &img, &err), -MSVMM_EFORMAT);
	write_file(p, "07070", 5);
	err = tu_err();
	ck_assert_int_eq(image_resolve(root, p, &img, &err), -MSVMM_EFORMAT);
	write_file(p, "", 0);
	err = tu_err();
	ck_assert_int_eq(image_resolve(root, p, &img, &err), -MSVMM_EFORMAT);
	ck_assert_err(err, MSVMM_EFORMAT, "not an initramfs");
}
END_TEST

START_TEST(test_conf_names_non_cpio)
{
	struct image img;
	msvmm_error err = tu_err();
	char p[PATH_MAX];

	make_image_dir("broken", "initramfs=junk.bin\n");
	pathf(p, "%s/images/broken/%s", "junk.bin");
	write_file(p, "this is not an archive", 22);
	ck_assert_int_eq(image_resolve(root, "broken", &img, &err), -MSVMM_EFORMAT);
	ck_assert_err(err, MSVMM_EFORMAT, "junk.bin: not an initramfs");
}
END_TEST

START_TEST(test_conf_names_missing_file)
{
	struct image img;
	msvmm_error err = tu_err();

	make_image_dir("dangling", "initramfs=gone.cpio\n");
	ck_assert_int_eq(image_resolve(root, "dangling", &img, &err), -MSVMM_ENOENT);
	ck_assert_err(err, MSVMM_ENOENT, "gone.cpio");
}
END_TEST

START_TEST(test_conf_without_initramfs)
{
	struct image img;
	msvmm_error err = tu_err();

	make_image_dir("empty", "name=empty\ndefault_cmd=/bin/true\n# initramfs=x.cpio\n");
	ck_assert_int_eq(image_resolve(root, "empty", &img, &err), -MSVMM_EFORMAT);
	ck_assert_err(err, MSVMM_EFORMAT, "names no initramfs");
}
END_TEST

START_TEST(test_conf_value_too_long)
{
	struct image img;
	msvmm_error err = tu_err();
	char conf[400];

	memset(conf, 'x', sizeof(conf));
	memcpy(conf, "default_cmd=", 12);
	conf[sizeof(conf) - 2] = '\n';
	conf[sizeof(conf) - 1] = '\0';
	make_image_dir("long", conf);
	ck_assert_int_eq(image_resolve(root, "long", &img, &err), -MSVMM_EFORMAT);
	ck_assert_err(err, MSVMM_EFORMAT, "value of 'default_cmd' too long");
}
END_TEST

/* runtime=NAME:PROGRAM lines: in order, the first the default; looked up by name. */
START_TEST(test_runtimes)
{
	const struct image_runtime *rt;
	struct image img;
	msvmm_error err = tu_err();
	char p[PATH_MAX];

	make_image_dir("py", "name=py\ninitramfs=py.cpio\nruntime=python:/usr/bin/python3\n"
			     "runtime=node_2:/opt/node/bin/node\n");
	pathf(p, "%s/images/%s/py.cpio", "py");
	write_cpio(p);
	ck_assert_int_eq(image_resolve(root, "py", &img, &err), 0);
	ck_assert_uint_eq(img.nr_runtimes, 2);
	ck_assert_int_eq(image_runtime(&img, "py", NULL, &rt, &err), 0);
	ck_assert_str_eq(rt->name, "python");
	ck_assert_str_eq(rt->program, "/usr/bin/python3");
	ck_assert_int_eq(image_runtime(&img, "py", "node_2", &rt, &err), 0);
	ck_assert_str_eq(rt->program, "/opt/node/bin/node");
	ck_assert_int_eq(image_runtime(&img, "py", "ruby", &rt, &err), -MSVMM_ENOENT);
	ck_assert_err(err, MSVMM_ENOENT, "image 'py' has no runtime 'ruby' (it has: python, node_2)");
	ck_assert_int_eq(msvmm_image_has_runtime(root, "py", "python", &err), 0);
	ck_assert_int_eq(msvmm_image_has_runtime(root, "py", NULL, &err), 0);
	ck_assert_int_eq(msvmm_image_has_runtime(root, "py", "perl", &err), -MSVMM_ENOENT);
	/* An image without runtime= has none; a missing image says so, not "no runtime". */
	ck_assert_int_eq(msvmm_image_has_runtime(root, "busybox", NULL, &err), -MSVMM_ENOENT);
	ck_assert_err(err, MSVMM_ENOENT, "image 'busybox' has no runtime to run code in (no runtime= in its image.conf)");
	ck_assert_int_eq(msvmm_image_has_runtime(root, "nosuch", NULL, &err), -MSVMM_ENOENT);
	ck_assert_err(err, MSVMM_ENOENT, "image 'nosuch' not found");
}
END_TEST

START_TEST(test_runtime_malformed)
{
	static const char *const bad[] = {
		"python", "python:", ":/usr/bin/python3", "Python:/usr/bin/python3", "py thon:/x",
		"python:usr/bin/python3", "python:/a\nruntime=python:/b",
		"a:/a\nruntime=b:/b\nruntime=c:/c\nruntime=d:/d\nruntime=e:/e",
		"a-name-longer-than-thirty-two-chars:/x",
	};
	struct image img;
	msvmm_error err;
	char name[16], conf[256], p[PATH_MAX];

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		snprintf(name, sizeof(name), "bad%zu", i);
		snprintf(conf, sizeof(conf), "initramfs=x.cpio\nruntime=%s\n", bad[i]);
		make_image_dir(name, conf);
		pathf(p, "%s/images/%s/x.cpio", name);
		write_cpio(p);
		err = tu_err();
		ck_assert_msg(image_resolve(root, name, &img, &err) == -MSVMM_EFORMAT, "runtime=%s accepted", bad[i]);
		ck_assert_err(err, MSVMM_EFORMAT, "is not NAME:/PROGRAM");
	}
}
END_TEST

START_TEST(test_data_dirs_explicit)
{
	char out[64], big[4 * PATH_MAX];

	ck_assert_int_eq(image_data_dirs("/a:/b", out, sizeof(out)), 0);
	ck_assert_str_eq(out, "/a:/b");
	ck_assert_int_eq(image_data_dirs("/a-path-that-is-far-too-long-for-the-buffer-given-here-0123456789",
					 out, sizeof(out)),
			 -MSVMM_EINVAL);
	/* Unset: the environment first, then next to the executable, then /usr/local. */
	setenv("MSVMM_DATA_DIR", "/env/dir", 1);
	ck_assert_int_eq(image_data_dirs(NULL, big, sizeof(big)), 0);
	ck_assert_int_eq(strncmp(big, "/env/dir:", 9), 0);
	ck_assert_ptr_nonnull(strstr(big, "/../share/msvmm:/usr/local/share/msvmm"));
	ck_assert_int_eq(image_data_dirs("", big, sizeof(big)), 0); /* empty means unset */
	ck_assert_int_eq(strncmp(big, "/env/dir:", 9), 0);
	unsetenv("MSVMM_DATA_DIR");
	ck_assert_int_eq(image_data_dirs(NULL, big, sizeof(big)), 0);
	ck_assert_msg(big[0] == '/' && strstr(big, "/env/dir") == NULL, "'%s'", big);
	/* Too small for the default path: an error, not a truncated path. */
	ck_assert_int_eq(image_data_dirs(NULL, out, 8), -MSVMM_EINVAL);
}
END_TEST

START_TEST(test_public_list_and_path)
{
	msvmm_error err = tu_err();
	char **names = NULL, p[PATH_MAX], dirs[2 * PATH_MAX + 16];
	size_t n = 0;

	/* A directory without image.conf is not an image; a second data dir adds and shadows. */
	make_image_dir("python", "initramfs=python.cpio\nrootfs=rootfs.ext4\n");
	pathf(p, "%s/images/%s/python.cpio", "python");
	write_cpio(p);
	pathf(p, "%s/images/%s/rootfs.ext4", "python");
	write_file(p, "x", 1);
	mkdirf("%s/images/%s", "not-an-image");
	mkdirf("%s/%s", "more");
	mkdirf("%s/%s/images", "more");
	make_image_dir("../more/images/alpine", "initramfs=a.cpio\n");
	make_image_dir("../more/images/busybox", "initramfs=a.cpio\n");
	snprintf(dirs, sizeof(dirs), "%s:%s/more", root, root);
	ck_assert_int_eq(msvmm_image_list(dirs, &names, &n, &err), 0);
	ck_assert_uint_eq(n, 3);
	ck_assert_str_eq(names[0], "alpine");
	ck_assert_str_eq(names[1], "busybox");
	ck_assert_str_eq(names[2], "python");
	msvmm_image_list_free(names, n);

	ck_assert_int_eq(msvmm_image_path(root, "python", p, sizeof(p), &err), 0);
	ck_assert_ptr_nonnull(strstr(p, "/images/python"));
	ck_assert_int_eq(msvmm_image_path(root, "nope", p, sizeof(p), &err), -MSVMM_ENOENT);
	ck_assert_ptr_nonnull(strstr(err.message, "nope"));
	/* A rootfs named in image.conf must exist. */
	make_image_dir("broken", "initramfs=../busybox/busybox.cpio\nrootfs=missing.ext4\n");
	err = tu_err();
	ck_assert_int_eq(msvmm_image_path(root, "broken", p, sizeof(p), &err), -MSVMM_ENOENT);
	ck_assert_ptr_nonnull(strstr(err.message, "missing.ext4"));
}
END_TEST

/* The real builder, as `make images` installed it, run through the library. */
START_TEST(test_public_build_busybox)
{
	const char *b = getenv("MSVMM_BUILD") ? getenv("MSVMM_BUILD") : "build";
	char cmd[3 * PATH_MAX], p[PATH_MAX], **names = NULL;
	msvmm_error err = tu_err();
	size_t n = 0;

	snprintf(cmd, sizeof(cmd), "cp -r '%s/share/msvmm/libexec' '%s/libexec'", b, root);
	ck_assert_msg(system(cmd) == 0, "no image builder under %s/share/msvmm (run make images)", b);
	ck_assert_int_eq(msvmm_image_build(root, "busybox", -1, &err), 0);
	pathf(p, "%s/images/%s/initramfs.cpio", "busybox");
	ck_assert_int_eq(access(p, R_OK), 0);
	ck_assert_int_eq(msvmm_image_list(root, &names, &n, &err), 0);
	ck_assert_uint_eq(n, 1);
	ck_assert_str_eq(names[0], "busybox");
	msvmm_image_list_free(names, n);
	/* Refused names never reach the builder; unknown recipes fail in it. */
	ck_assert_int_eq(msvmm_image_build(root, "../etc", -1, &err), -MSVMM_EINVAL);
	ck_assert_int_eq(msvmm_image_build(root, "nosuchimage", -1, &err), -MSVMM_EIO);
	ck_assert_ptr_nonnull(strstr(err.message, "nosuchimage"));
	ck_assert_int_eq(msvmm_image_build(base, "busybox", -1, &err), -MSVMM_ENOENT);
}
END_TEST

static Suite *image_suite(void)
{
	Suite *s = suite_create("image");
	TCase *tc = tcase_create("core");

	tcase_add_unchecked_fixture(tc, base_setup, base_teardown);
	tcase_add_checked_fixture(tc, setup, NULL);
	tcase_add_test(tc, test_directory_image_by_name);
	tcase_add_test(tc, test_directory_image_by_path);
	tcase_add_test(tc, test_search_path_order);
	tcase_add_test(tc, test_absolute_initramfs_in_conf);
	tcase_add_test(tc, test_bare_cpio_file);
	tcase_add_test(tc, test_missing_name);
	tcase_add_test(tc, test_missing_path);
	tcase_add_test(tc, test_empty_name);
	tcase_add_test(tc, test_not_a_cpio_file);
	tcase_add_test(tc, test_conf_names_non_cpio);
	tcase_add_test(tc, test_conf_names_missing_file);
	tcase_add_test(tc, test_conf_without_initramfs);
	tcase_add_test(tc, test_conf_value_too_long);
	tcase_add_test(tc, test_runtimes);
	tcase_add_test(tc, test_runtime_malformed);
	tcase_add_test(tc, test_data_dirs_explicit);
	tcase_add_test(tc, test_public_list_and_path);
	tcase_add_test(tc, test_public_build_busybox);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(image_suite());
}
