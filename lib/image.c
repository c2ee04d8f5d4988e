// SPDX-License-Identifier: Apache-2.0
#include "image.h"

#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <spawn.h>
#include <sys/wait.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "../vmm/err.h"

#define CPIO_NEWC_MAGIC "070701"

int image_data_dirs(const char *dirs, char *out, size_t len)
{
	char exe[PATH_MAX];
	const char *env = getenv("MSVMM_DATA_DIR");
	ssize_t n;
	char *slash;

	if (dirs && *dirs)
		return snprintf(out, len, "%s", dirs) < (int)len ? 0 : -MSVMM_EINVAL;
	n = readlink("/proc/self/exe", exe, sizeof(exe) - 1);
	exe[n > 0 ? n : 0] = '\0';
	slash = strrchr(exe, '/');
	if (slash)
		*slash = '\0';
	if (snprintf(out, len, "%s%s%s/../share/msvmm:/usr/local/share/msvmm", env ? env : "",
		     env ? ":" : "", exe) >= (int)len)
		return -MSVMM_EINVAL;
	return 0;
}

/* Call fn on each directory of the ':'-separated list until it returns 0. */
static int dirs_each(const char *dirs, int (*fn)(const char *dir, void *arg), void *arg)
{
	char buf[4 * PATH_MAX], *save = NULL;

	if (image_data_dirs(dirs, buf, sizeof(buf)))
		return -1;
	for (char *d = strtok_r(buf, ":", &save); d; d = strtok_r(NULL, ":", &save))
		if (fn(d, arg) == 0)
			return 0;
	return -1;
}

static int is_newc(const char *path, msvmm_error *err)
{
	char magic[6];
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	ssize_t n;

	if (fd < 0)
		return err_set(err, err_from_errno(errno), "image %s: %s", path, strerror(errno));
	n = read(fd, magic, sizeof(magic));
	close(fd);
	if (n != (ssize_t)sizeof(magic) || memcmp(magic, CPIO_NEWC_MAGIC, 6) != 0)
		return err_set(err, MSVMM_EFORMAT, "image %s: not an initramfs (newc cpio) archive", path);
	return 0;
}

/* Resolve an image-relative file name into out; -1 when it does not fit. */
static int conf_path(const struct image *img, const char *val, char *out, size_t len)
{
	size_t dl = val[0] == '/' ? 0 : strlen(img->dir), vl = strlen(val);

	if (dl + 1 + vl >= len)
		return -1;
	memcpy(out, img->dir, dl);
	out[dl] = '/';
	memcpy(out + dl + (dl ? 1 : 0), val, vl + 1);
	return 0;
}

/* runtime=NAME:PROGRAM: -1 when PROGRAM does not fit, -2 when malformed, repeated or one too many. */
static int conf_runtime(struct image *img, const char *val)
{
	const char *colon = strchr(val, ':');
	size_t nl = colon ? (size_t)(colon - val) : 0;
	struct image_runtime *rt;

	if (!nl || nl > IMAGE_RUNTIME_NAME_MAX || strspn(val, "abcdefghijklmnopqrstuvwxyz0123456789_-") != nl ||
	    colon[1] != '/' || img->nr_runtimes == IMAGE_MAX_RUNTIMES)
		return -2;
	for (unsigned int i = 0; i < img->nr_runtimes; i++)
		if (!strncmp(img->runtimes[i].name, val, nl) && !img->runtimes[i].name[nl])
			return -2;
	rt = &img->runtimes[img->nr_runtimes];
	if (strlen(colon + 1) >= sizeof(rt->program))
		return -1;
	memcpy(rt->name, val, nl);
	rt->name[nl] = '\0';
	strcpy(rt->program, colon + 1);
	img->nr_runtimes++;
	return 0;
}

/* Apply one key=value line; -1 when a value does not fit, -2 when it is malformed. */
static int conf_value(struct image *img, const char *key, const char *val)
{
	size_t vl = strlen(val);

	if (!strcmp(key, "initramfs"))
		return conf_path(img, val, img->initramfs, sizeof(img->initramfs));
	if (!strcmp(key, "rootfs"))
		return conf_path(img, val, img->rootfs, sizeof(img->rootfs));
	if (!strcmp(key, "scratch"))
		return conf_path(img, val, img->scratch, sizeof(img->scratch));
	if (!strcmp(key, "runtime"))
		return conf_runtime(img, val);
	if (!strcmp(key, "default_cmd")) {
		if (vl >= sizeof(img->default_cmd))
			return -1;
		memcpy(img->default_cmd, val, vl + 1);
	}
	return 0;
}

static int image_read_conf(struct image *img, msvmm_error *err)
{
	char path[PATH_MAX + 16], line[1024];
	FILE *f;
	int rc;

	snprintf(path, sizeof(path), "%s/image.conf", img->dir);
	f = fopen(path, "re");
	if (!f)
		return err_set(err, MSVMM_ENOENT, "image %s: no image.conf", img->dir);
	while (fgets(line, sizeof(line), f)) {
		char *eq = strchr(line, '=');

		line[strcspn(line, "\r\n")] = '\0';
		if (line[0] == '#' || !eq)
			continue;
		*eq = '\0';
		rc = conf_value(img, line, eq + 1);
		if (rc < 0) {
			fclose(f);
			if (rc == -2)
				return err_set(err, MSVMM_EFORMAT, "image %s: runtime=%s is not NAME:/PROGRAM, or repeats "
					       "a name, or is one more than %d", img->dir, eq + 1, IMAGE_MAX_RUNTIMES);
			return err_set(err, MSVMM_EFORMAT, "image %s: value of '%s' too long", img->dir, line);
		}
	}
	fclose(f);
	if (!img->initramfs[0])
		return err_set(err, MSVMM_EFORMAT, "image %s: image.conf names no initramfs", img->dir);
	if (img->rootfs[0] && access(img->rootfs, R_OK) < 0)
		return err_set(err, err_from_errno(errno), "image %s: root filesystem %s: %s", img->dir,
			       img->rootfs, strerror(errno));
	if (img->scratch[0] && access(img->scratch, R_OK) < 0)
		return err_set(err, err_from_errno(errno), "image %s: scratch template %s: %s", img->dir,
			       img->scratch, strerror(errno));
	return is_newc(img->initramfs, err);
}

static int image_from_path(const char *path, struct image *img, msvmm_error *err)
{
	struct stat st;

	if (stat(path, &st) < 0)
		return err_set(err, err_from_errno(errno), "image %s: %s", path, strerror(errno));
	if (S_ISDIR(st.st_mode)) {
		if (!realpath(path, img->dir))
			return err_set(err, MSVMM_EIO, "image %s: %s", path, strerror(errno));
		return image_read_conf(img, err);
	}
	snprintf(img->initramfs, sizeof(img->initramfs), "%s", path);
	return is_newc(path, err);
}

struct find_arg {
	const char *name;
	char found[PATH_MAX];
};

static int find_image_dir(const char *dir, void *p)
{
	struct find_arg *a = p;
	char conf[PATH_MAX];

	if (snprintf(a->found, sizeof(a->found), "%s/images/%s", dir, a->name) >= (int)sizeof(a->found))
		return -1;
	snprintf(conf, sizeof(conf), "%.4000s/image.conf", a->found);
	return access(conf, R_OK);
}

int image_resolve(const char *dirs, const char *name, struct image *img, msvmm_error *err)
{
	struct find_arg a = { .name = name };

	memset(img, 0, sizeof(*img));
	if (!name || !*name)
		return err_set(err, MSVMM_EINVAL, "no image given");
	if (strchr(name, '/') || !strcmp(name, ".") || !strcmp(name, ".."))
		return image_from_path(name, img, err);
	if (dirs_each(dirs, find_image_dir, &a) != 0)
		return err_set(err, MSVMM_ENOENT, "image '%s' not found (build it with 'make images')", name);
	return image_from_path(a.found, img, err);
}

int image_runtime(const struct image *img, const char *label, const char *name, const struct image_runtime **rt,
		  msvmm_error *err)
{
	const char *what = label ? label : img->dir[0] ? img->dir : img->initramfs;
	char have[IMAGE_MAX_RUNTIMES * (IMAGE_RUNTIME_NAME_MAX + 2) + 1] = "";

	for (unsigned int i = 0; i < img->nr_runtimes; i++) {
		if (!name || !strcmp(name, img->runtimes[i].name)) {
			*rt = &img->runtimes[i];
			return 0;
		}
		strcat(strcat(have, i ? ", " : ""), img->runtimes[i].name);
	}
	if (!img->nr_runtimes)
		return err_set(err, MSVMM_ENOENT, "image '%s' has no runtime to run code in (no runtime= in its image.conf)",
			       what);
	return err_set(err, MSVMM_ENOENT, "image '%s' has no runtime '%s' (it has: %s)", what, name, have);
}

int msvmm_image_has_runtime(const char *data_dirs, const char *name, const char *runtime, msvmm_error *err)
{
	const struct image_runtime *rt;
	struct image img;
	int rc;

	if (err)
		*err = (msvmm_error){ 0 };
	rc = image_resolve(data_dirs, name, &img, err);
	return rc ? rc : image_runtime(&img, name, runtime, &rt, err);
}

struct kernel_arg {
	char *out;
	size_t len;
};

static int find_kernel(const char *dir, void *p)
{
	struct kernel_arg *a = p;

	if (snprintf(a->out, a->len, "%s/vmlinux", dir) >= (int)a->len)
		return -1;
	return access(a->out, R_OK);
}

int image_default_kernel(const char *dirs, char *out, size_t len, msvmm_error *err)
{
	struct kernel_arg a = { out, len };

	if (dirs_each(dirs, find_kernel, &a) != 0)
		return err_set(err, MSVMM_ENOENT, "no guest kernel found (build it with 'make kernel' or pass --kernel)");
	return 0;
}

int msvmm_image_path(const char *data_dirs, const char *name, char *out, size_t len, msvmm_error *err)
{
	struct image img;
	int rc = image_resolve(data_dirs, name, &img, err);

	if (rc)
		return rc;
	if (!img.dir[0])
		return err_set(err, MSVMM_EINVAL, "image %s is a bare initramfs file, not a directory", name);
	if (snprintf(out, len, "%s", img.dir) >= (int)len)
		return err_set(err, MSVMM_EINVAL, "buffer too small for the path of image %s", name);
	return 0;
}

struct list_arg {
	char **names;
	size_t n, cap;
	int failed;
};

static void list_add(struct list_arg *a, const char *name)
{
	for (size_t i = 0; i < a->n; i++)
		if (!strcmp(a->names[i], name))
			return; /* an earlier directory shadows a later one */
	if (a->n == a->cap) {
		size_t cap = a->cap ? a->cap * 2 : 8;
		char **v = realloc(a->names, cap * sizeof(*v));

		if (!v) {
			a->failed = 1;
			return;
		}
		a->names = v;
		a->cap = cap;
	}
	if (!(a->names[a->n] = strdup(name)))
		a->failed = 1;
	else
		a->n++;
}

static int list_dir(const char *dir, void *p)
{
	char path[PATH_MAX], conf[PATH_MAX + 300];
	struct dirent *de;
	DIR *d;

	snprintf(path, sizeof(path), "%s/images", dir);
	d = opendir(path);
	if (!d)
		return -1;
	while ((de = readdir(d))) {
		if (de->d_name[0] == '.')
			continue;
		snprintf(conf, sizeof(conf), "%s/%s/image.conf", path, de->d_name);
		if (access(conf, R_OK) == 0)
			list_add(p, de->d_name);
	}
	closedir(d);
	return -1; /* keep going through every directory */
}

static int name_cmp(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

int msvmm_image_list(const char *data_dirs, char ***names, size_t *count, msvmm_error *err)
{
	struct list_arg a = { 0 };

	dirs_each(data_dirs, list_dir, &a);
	if (a.failed) {
		msvmm_image_list_free(a.names, a.n);
		return err_set(err, MSVMM_ENOMEM, "out of memory listing images");
	}
	if (a.n)
		qsort(a.names, a.n, sizeof(*a.names), name_cmp);
	*names = a.names;
	*count = a.n;
	return 0;
}

void msvmm_image_list_free(char **names, size_t count)
{
	for (size_t i = 0; i < count; i++)
		free(names[i]);
	free(names);
}

struct builder_arg {
	char dir[PATH_MAX];
};

static int find_builder(const char *dir, void *p)
{
	struct builder_arg *a = p;
	char script[PATH_MAX + 32];

	snprintf(script, sizeof(script), "%s/libexec/msvmm-image-build", dir);
	if (access(script, R_OK) < 0 || snprintf(a->dir, sizeof(a->dir), "%s", dir) >= (int)sizeof(a->dir))
		return -1;
	return 0;
}

static int image_name_ok(const char *name)
{
	if (!name || !*name)
		return 0;
	for (const char *c = name; *c; c++)
		if (!((*c >= 'a' && *c <= 'z') || (*c >= '0' && *c <= '9') || *c == '-' || *c == '_'))
			return 0;
	return 1;
}

/* Run the builder with its output on log_fd; the child's status or -errno. */
static int run_builder(const struct builder_arg *a, const char *name, int log_fd)
{
	char script[PATH_MAX + 32], out[PATH_MAX + 16], init[PATH_MAX + 32], mk[PATH_MAX + 48];
	char *argv[] = { "bash", script, out, (char *)name, NULL };
	char *envp[] = { init, mk, "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
			 NULL, NULL, NULL };
	char home[PATH_MAX + 8], cache[PATH_MAX + 16];
	unsigned int ne = 3;
	posix_spawn_file_actions_t fa;
	pid_t pid;
	int rc, status;

	snprintf(script, sizeof(script), "%s/libexec/msvmm-image-build", a->dir);
	snprintf(out, sizeof(out), "%s/images", a->dir);
	snprintf(init, sizeof(init), "INIT_BIN=%s/libexec/init", a->dir);
	snprintf(mk, sizeof(mk), "MKINITRAMFS=%s/libexec/msvmm-mkinitramfs", a->dir);
	/* The builder caches under $MSVMM_CACHE, else $HOME/.cache/msvmm. */
	if (getenv("HOME")) {
		snprintf(home, sizeof(home), "HOME=%s", getenv("HOME"));
		envp[ne++] = home;
	}
	if (getenv("MSVMM_CACHE")) {
		snprintf(cache, sizeof(cache), "MSVMM_CACHE=%s", getenv("MSVMM_CACHE"));
		envp[ne++] = cache;
	}
	posix_spawn_file_actions_init(&fa);
	posix_spawn_file_actions_addopen(&fa, 0, "/dev/null", O_RDONLY, 0);
	if (log_fd >= 0) {
		posix_spawn_file_actions_adddup2(&fa, log_fd, 1);
		posix_spawn_file_actions_adddup2(&fa, log_fd, 2);
	} else {
		posix_spawn_file_actions_addopen(&fa, 1, "/dev/null", O_WRONLY, 0);
		posix_spawn_file_actions_addopen(&fa, 2, "/dev/null", O_WRONLY, 0);
	}
	rc = posix_spawnp(&pid, "bash", &fa, NULL, argv, envp);
	posix_spawn_file_actions_destroy(&fa);
	if (rc)
		return -rc;
	while (waitpid(pid, &status, 0) < 0)
		if (errno != EINTR)
			return -errno;
	return WIFEXITED(status) ? WEXITSTATUS(status) : 128 + WTERMSIG(status);
}

int msvmm_image_build(const char *data_dirs, const char *name, int log_fd, msvmm_error *err)
{
	struct builder_arg a;
	int rc;

	if (!image_name_ok(name))
		return err_set(err, MSVMM_EINVAL, "image name '%s' is not a recipe name", name ? name : "");
	if (dirs_each(data_dirs, find_builder, &a) != 0)
		return err_set(err, MSVMM_ENOENT, "no image builder found (run 'make images' once)");
	rc = run_builder(&a, name, log_fd);
	if (rc < 0)
		return err_set(err, MSVMM_EIO, "cannot run the image builder: %s", strerror(-rc));
	if (rc)
		return err_set(err, MSVMM_EIO, "building image '%s' failed (builder exit status %d)", name, rc);
	return 0;
}
