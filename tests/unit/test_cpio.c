// SPDX-License-Identifier: Apache-2.0
/*
 * lib/cpio: archives are parsed back by an independent reader written here
 * (every header field, the padding, the trailer) and, where GNU cpio is
 * installed, extracted by it too.
 */
#include "cpio.h"

#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define HDR_LEN 110

struct ent {
	const char *name;	/* points into the archive */
	uint32_t ino, mode, uid, gid, nlink, mtime, filesize;
	uint32_t major, minor, rmajor, rminor, namesize, check;
	const unsigned char *data;
};

static uint32_t hex8(const unsigned char *p)
{
	uint32_t v = 0;

	for (int i = 0; i < 8; i++) {
		int c = p[i], d;

		if (c >= '0' && c <= '9')
			d = c - '0';
		else if (c >= 'A' && c <= 'F')
			d = c - 'A' + 10;
		else if (c >= 'a' && c <= 'f')
			d = c - 'a' + 10;
		else
			ck_abort_msg("non-hex header byte 0x%02x", c);
		v = v << 4 | (uint32_t)d;
	}
	return v;
}

static int all_zero(const unsigned char *p, size_t n)
{
	for (size_t i = 0; i < n; i++)
		if (p[i])
			return 0;
	return 1;
}

/* Parse the entry at *off, check its framing, and move *off past it. */
static void parse_entry(const unsigned char *buf, size_t len, size_t *off, struct ent *e)
{
	const unsigned char *h = buf + *off;
	uint32_t *fields[] = { &e->ino, &e->mode, &e->uid, &e->gid, &e->nlink,
			       &e->mtime, &e->filesize, &e->major, &e->minor,
			       &e->rmajor, &e->rminor, &e->namesize, &e->check };
	size_t name_end, data_end;

	ck_assert_uint_eq(*off % 4, 0);
	ck_assert_uint_le(*off + HDR_LEN, len);
	ck_assert_msg(!memcmp(h, "070701", 6), "bad magic at %zu", *off);
	for (int i = 0; i < 13; i++)
		*fields[i] = hex8(h + 6 + 8 * i);

	ck_assert_uint_ge(e->namesize, 2);
	name_end = *off + HDR_LEN + e->namesize;
	ck_assert_uint_le(name_end, len);
	e->name = (const char *)h + HDR_LEN;
	ck_assert_msg(buf[name_end - 1] == '\0', "name not NUL-terminated");
	ck_assert_uint_eq(strlen(e->name), e->namesize - 1);

	/* header+name padded with zeros to 4, then data padded to 4 */
	e->data = buf + ((name_end + 3) & ~(size_t)3);
	ck_assert(all_zero(buf + name_end, (size_t)(e->data - buf) - name_end));
	data_end = (size_t)(e->data - buf) + e->filesize;
	ck_assert_uint_le(data_end, len);
	*off = (data_end + 3) & ~(size_t)3;
	ck_assert_uint_le(*off, len);
	ck_assert(all_zero(buf + data_end, *off - data_end));
}

/* Parse a whole (possibly concatenated) archive into ents; returns count
 * of entries before the first trailer. */
static size_t parse_all(const struct cpio_buf *cb, struct ent *ents, size_t max)
{
	size_t off = 0, n = 0;
	struct ent e;

	ck_assert_uint_eq(cb->len % 4, 0);
	for (;;) {
		parse_entry(cb->data, cb->len, &off, &e);
		if (!strcmp(e.name, "TRAILER!!!"))
			break;
		ck_assert_uint_lt(n, max);
		ents[n++] = e;
	}
	ck_assert_uint_eq(e.filesize, 0);
	ck_assert_uint_eq(off, cb->len);	/* nothing after the trailer */
	return n;
}

static void assert_common(const struct ent *e)
{
	ck_assert_uint_eq(e->uid, 0);
	ck_assert_uint_eq(e->gid, 0);
	ck_assert_uint_eq(e->mtime, 0);
	ck_assert_uint_eq(e->check, 0);
	ck_assert_uint_ne(e->ino, 0);
}

static const char hello[] = "hello, world\n";	/* 13 bytes: not a multiple of 4 */

static void build_sample(struct cpio_buf *cb, int with_node)
{
	cpio_init(cb);
	ck_assert_int_eq(cpio_add_dir(cb, "etc", 0755), 0);
	ck_assert_int_eq(cpio_add_dir(cb, "bin", S_IFDIR | 0700), 0);
	ck_assert_int_eq(cpio_add_file(cb, "etc/hello", 0644, hello, strlen(hello)), 0);
	ck_assert_int_eq(cpio_add_file(cb, "etc/empty", S_IFREG | 0600, NULL, 0), 0);
	ck_assert_int_eq(cpio_add_symlink(cb, "bin/sh", "/bin/busybox"), 0);
	if (with_node)
		ck_assert_int_eq(cpio_add_node(cb, "console", S_IFCHR | 0600, 5, 1), 0);
	ck_assert_int_eq(cpio_finish(cb), 0);
}

START_TEST(test_entries_parse_back)
{
	struct cpio_buf cb;
	struct ent e[8];
	size_t n;

	build_sample(&cb, 1);
	n = parse_all(&cb, e, 8);
	ck_assert_uint_eq(n, 6);
	for (size_t i = 0; i < n; i++) {
		assert_common(&e[i]);
		if (i)
			ck_assert_uint_gt(e[i].ino, e[i - 1].ino);
	}

	ck_assert_str_eq(e[0].name, "etc");
	ck_assert_uint_eq(e[0].mode, S_IFDIR | 0755);
	ck_assert_uint_eq(e[0].filesize, 0);
	ck_assert_uint_eq(e[1].mode, S_IFDIR | 0700);

	ck_assert_str_eq(e[2].name, "etc/hello");
	ck_assert_uint_eq(e[2].mode, S_IFREG | 0644);
	ck_assert_uint_eq(e[2].nlink, 1);
	ck_assert_uint_eq(e[2].filesize, strlen(hello));
	ck_assert(!memcmp(e[2].data, hello, strlen(hello)));

	ck_assert_str_eq(e[3].name, "etc/empty");
	ck_assert_uint_eq(e[3].mode, S_IFREG | 0600);
	ck_assert_uint_eq(e[3].filesize, 0);

	ck_assert_str_eq(e[4].name, "bin/sh");
	ck_assert_uint_eq(e[4].mode, S_IFLNK | 0777);
	ck_assert_uint_eq(e[4].filesize, strlen("/bin/busybox"));
	ck_assert(!memcmp(e[4].data, "/bin/busybox", e[4].filesize));

	ck_assert_str_eq(e[5].name, "console");
	ck_assert_uint_eq(e[5].mode, S_IFCHR | 0600);
	ck_assert_uint_eq(e[5].rmajor, 5);
	ck_assert_uint_eq(e[5].rminor, 1);
	ck_assert_uint_eq(e[5].filesize, 0);
	cpio_free(&cb);
}
END_TEST

/* setuid, setgid and sticky bits survive. */
START_TEST(test_special_mode_bits)
{
	struct cpio_buf cb;
	struct ent e[2];

	cpio_init(&cb);
	ck_assert_int_eq(cpio_add_dir(&cb, "tmp", 01777), 0);
	ck_assert_int_eq(cpio_add_file(&cb, "su", 06755, "x", 1), 0);
	ck_assert_int_eq(cpio_finish(&cb), 0);
	ck_assert_uint_eq(parse_all(&cb, e, 2), 2);
	ck_assert_uint_eq(e[0].mode, S_IFDIR | 01777);
	ck_assert_uint_eq(e[1].mode, S_IFREG | 06755);
	cpio_free(&cb);
}
END_TEST

/* Every data length mod 4 and every name length mod 4 frames correctly. */
START_TEST(test_padding_all_residues)
{
	static const char names[][8] = { "a", "ab", "abc", "abcd", "abcde" };
	unsigned char data[16];
	struct cpio_buf cb;
	struct ent e[64];
	size_t n, k = 0;

	for (size_t i = 0; i < sizeof(data); i++)
		data[i] = (unsigned char)(0xa0 + i);
	cpio_init(&cb);
	for (size_t ni = 0; ni < 5; ni++)
		for (size_t len = 0; len < 9; len++)
			ck_assert_int_eq(cpio_add_file(&cb, names[ni], 0644, data, len), 0);
	ck_assert_int_eq(cpio_finish(&cb), 0);

	n = parse_all(&cb, e, 64);
	ck_assert_uint_eq(n, 45);
	for (size_t ni = 0; ni < 5; ni++) {
		for (size_t len = 0; len < 9; len++, k++) {
			ck_assert_str_eq(e[k].name, names[ni]);
			ck_assert_uint_eq(e[k].filesize, len);
			ck_assert(!memcmp(e[k].data, data, len));
			ck_assert_uint_eq((size_t)(e[k].data - cb.data) % 4, 0);
		}
	}
	cpio_free(&cb);
}
END_TEST

START_TEST(test_long_name_and_big_file)
{
	size_t name_len = 5000, big = 300001;
	char *name = malloc(name_len + 1);
	unsigned char *data = malloc(big);
	struct cpio_buf cb;
	struct ent e[2];

	ck_assert(name && data);
	for (size_t i = 0; i < name_len; i++)
		name[i] = (i % 100 == 99) ? '/' : (char)('a' + i % 26);
	name[name_len] = '\0';
	for (size_t i = 0; i < big; i++)
		data[i] = (unsigned char)(i * 7 + (i >> 9));

	cpio_init(&cb);
	ck_assert_int_eq(cpio_add_file(&cb, name, 0755, data, big), 0);
	ck_assert_int_eq(cpio_add_symlink(&cb, "l", name), 0);
	ck_assert_int_eq(cpio_finish(&cb), 0);
	ck_assert_uint_eq(parse_all(&cb, e, 2), 2);
	ck_assert_str_eq(e[0].name, name);
	ck_assert_uint_eq(e[0].namesize, name_len + 1);
	ck_assert_uint_eq(e[0].filesize, big);
	ck_assert(!memcmp(e[0].data, data, big));
	ck_assert_uint_eq(e[1].filesize, name_len);
	ck_assert(!memcmp(e[1].data, name, name_len));
	cpio_free(&cb);
	free(name);
	free(data);
}
END_TEST

START_TEST(test_invalid_arguments)
{
	struct cpio_buf cb;
	size_t len;

	cpio_init(&cb);
	ck_assert_int_eq(cpio_add_dir(&cb, "d", 0755), 0);
	len = cb.len;
	ck_assert_int_eq(cpio_add_dir(&cb, "/abs", 0755), -EINVAL);
	ck_assert_int_eq(cpio_add_dir(&cb, "", 0755), -EINVAL);
	ck_assert_int_eq(cpio_add_dir(&cb, NULL, 0755), -EINVAL);
	ck_assert_int_eq(cpio_add_dir(&cb, "TRAILER!!!", 0755), -EINVAL);
	ck_assert_int_eq(cpio_add_dir(&cb, "x", S_IFREG | 0755), -EINVAL);
	ck_assert_int_eq(cpio_add_dir(&cb, "x", 0100000000), -EINVAL);
	ck_assert_int_eq(cpio_add_file(&cb, "f", S_IFDIR | 0644, "x", 1), -EINVAL);
	ck_assert_int_eq(cpio_add_file(&cb, "f", 0644, NULL, 1), -EINVAL);
	ck_assert_int_eq(cpio_add_symlink(&cb, "s", ""), -EINVAL);
	ck_assert_int_eq(cpio_add_symlink(&cb, "s", NULL), -EINVAL);
	ck_assert_int_eq(cpio_add_node(&cb, "n", 0600, 1, 3), -EINVAL);
	ck_assert_int_eq(cpio_add_node(&cb, "n", S_IFREG | 0600, 1, 3), -EINVAL);
	ck_assert_uint_eq(cb.len, len);	/* failures change nothing */

	ck_assert_int_eq(cpio_add_node(&cb, "b", S_IFBLK | 0600, 8, 0), 0);
	ck_assert_int_eq(cpio_finish(&cb), 0);
	len = cb.len;
	ck_assert_int_eq(cpio_add_dir(&cb, "late", 0755), -EINVAL);
	ck_assert_int_eq(cpio_finish(&cb), -EINVAL);
	ck_assert_uint_eq(cb.len, len);
	cpio_free(&cb);
	ck_assert_ptr_null(cb.data);
	ck_assert_uint_eq(cb.len, 0);
}
END_TEST

/* The VMM appends a run-spec archive to the image's: both must parse. */
START_TEST(test_concatenated_archives)
{
	static const char spec[] = "Ash\0A-c\0Aecho hi; exit 3";
	struct cpio_buf a, b;
	struct ent e[8];
	size_t off = 0, na;
	struct cpio_buf both;

	build_sample(&a, 1);
	cpio_init(&b);
	ck_assert_int_eq(cpio_add_dir(&b, "msvmm", 0755), 0);
	ck_assert_int_eq(cpio_add_file(&b, "msvmm/run", 0644, spec, sizeof(spec)), 0);
	ck_assert_int_eq(cpio_finish(&b), 0);

	na = parse_all(&a, e, 8);
	ck_assert_uint_eq(na, 6);
	cpio_init(&both);
	both.len = a.len + b.len;
	both.data = malloc(both.len);
	ck_assert_ptr_nonnull(both.data);
	memcpy(both.data, a.data, a.len);
	memcpy(both.data + a.len, b.data, b.len);

	/* Walk past the first trailer; the second archive starts aligned. */
	for (size_t i = 0; i <= na; i++)
		parse_entry(both.data, both.len, &off, &e[0]);
	ck_assert_str_eq(e[0].name, "TRAILER!!!");
	ck_assert_uint_eq(off, a.len);
	parse_entry(both.data, both.len, &off, &e[0]);
	ck_assert_str_eq(e[0].name, "msvmm");
	parse_entry(both.data, both.len, &off, &e[0]);
	ck_assert_str_eq(e[0].name, "msvmm/run");
	ck_assert_uint_eq(e[0].filesize, sizeof(spec));
	ck_assert(!memcmp(e[0].data, spec, sizeof(spec)));
	parse_entry(both.data, both.len, &off, &e[0]);
	ck_assert_str_eq(e[0].name, "TRAILER!!!");
	ck_assert_uint_eq(off, both.len);
	free(both.data);
	cpio_free(&a);
	cpio_free(&b);
}
END_TEST

static const char *cpio_tool = "/usr/bin/cpio";

static void write_file(const char *path, const void *p, size_t len)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, 0644);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, p, len), (ssize_t)len);
	ck_assert_int_eq(close(fd), 0);
}

static char *read_all(const char *path, size_t *len)
{
	static char buf[4096];
	int fd = open(path, O_RDONLY);
	ssize_t n;

	ck_assert_msg(fd >= 0, "%s: %s", path, strerror(errno));
	n = read(fd, buf, sizeof(buf));
	ck_assert_int_ge(n, 0);
	close(fd);
	*len = (size_t)n;
	return buf;
}

static void run_shell(const char *cmd)
{
	int st = system(cmd);

	ck_assert_msg(st == 0, "'%s' failed: %d", cmd, st);
}

/* GNU cpio lists every name, in order, and extracts the same bytes. */
START_TEST(test_gnu_cpio_reads_it)
{
	char dir[] = "/tmp/test_cpio.XXXXXX", path[256], cmd[512], target[64];
	struct cpio_buf cb;
	size_t len;
	ssize_t tl;
	char *got;
	struct stat st;

	if (access(cpio_tool, X_OK) != 0)
		return;	/* no cpio(1) here: the parser tests above still ran */
	ck_assert_ptr_nonnull(mkdtemp(dir));

	/* -t on the full archive, device node included */
	build_sample(&cb, 1);
	snprintf(path, sizeof(path), "%s/a.cpio", dir);
	write_file(path, cb.data, cb.len);
	snprintf(cmd, sizeof(cmd), "%s -t --quiet < %s/a.cpio > %s/list", cpio_tool, dir, dir);
	run_shell(cmd);
	snprintf(path, sizeof(path), "%s/list", dir);
	got = read_all(path, &len);
	ck_assert_uint_eq(len, strlen("etc\nbin\netc/hello\netc/empty\nbin/sh\nconsole\n"));
	ck_assert(!memcmp(got, "etc\nbin\netc/hello\netc/empty\nbin/sh\nconsole\n", len));
	cpio_free(&cb);

	/* -i without the node (mknod needs privileges) */
	build_sample(&cb, 0);
	snprintf(path, sizeof(path), "%s/b.cpio", dir);
	write_file(path, cb.data, cb.len);
	snprintf(cmd, sizeof(cmd), "mkdir %s/x && cd %s/x && %s -i --quiet < %s/b.cpio",
		 dir, dir, cpio_tool, dir);
	run_shell(cmd);
	snprintf(path, sizeof(path), "%s/x/etc/hello", dir);
	got = read_all(path, &len);
	ck_assert_uint_eq(len, strlen(hello));
	ck_assert(!memcmp(got, hello, len));
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_uint_eq(st.st_mode & 07777, 0644);
	snprintf(path, sizeof(path), "%s/x/etc/empty", dir);
	ck_assert_int_eq(stat(path, &st), 0);
	ck_assert_int_eq(st.st_size, 0);
	snprintf(path, sizeof(path), "%s/x/bin/sh", dir);
	tl = readlink(path, target, sizeof(target) - 1);
	ck_assert_int_eq(tl, (ssize_t)strlen("/bin/busybox"));
	target[tl] = '\0';
	ck_assert_str_eq(target, "/bin/busybox");
	cpio_free(&cb);

	snprintf(cmd, sizeof(cmd), "rm -rf %s", dir);
	run_shell(cmd);
}
END_TEST

static Suite *cpio_suite(void)
{
	Suite *s = suite_create("cpio");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_entries_parse_back);
	tcase_add_test(tc, test_special_mode_bits);
	tcase_add_test(tc, test_padding_all_residues);
	tcase_add_test(tc, test_long_name_and_big_file);
	tcase_add_test(tc, test_invalid_arguments);
	tcase_add_test(tc, test_concatenated_archives);
	tcase_add_test(tc, test_gnu_cpio_reads_it);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	SRunner *sr = srunner_create(cpio_suite());
	int failed;

	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
