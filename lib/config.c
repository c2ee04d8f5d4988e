// SPDX-License-Identifier: Apache-2.0
#include "config.h"

#include <stdlib.h>
#include <string.h>

msvmm_config *msvmm_config_new(void)
{
	msvmm_config *c = calloc(1, sizeof(*c));

	if (!c)
		return NULL;
	c->memory_mib = MSVMM_DEFAULT_MEMORY_MIB;
	c->vcpus = 1;
	c->console_fd = -1;
	c->boot_timeout_ms = MSVMM_DEFAULT_BOOT_TIMEOUT_MS;
	return c;
}

void strv_free(char **v)
{
	for (char **p = v; p && *p; p++)
		free(*p);
	free(v);
}

void msvmm_config_free(msvmm_config *c)
{
	if (!c)
		return;
	free(c->kernel);
	free(c->image);
	free(c->data_dirs);
	strv_free(c->argv);
	strv_free(c->env);
	free(c->workdir);
	free(c->extra_cmdline);
	free(c->vsock_uds);
	free(c->snapshot_path);
	for (unsigned int i = 0; i < c->nr_disks; i++) {
		free(c->disks[i].path);
		free(c->disks[i].guest_path);
	}
	free(c);
}

char **strv_dup(const char *const *v)
{
	size_t n = 0;
	char **d;

	while (v && v[n])
		n++;
	d = calloc(n + 1, sizeof(*d));
	for (size_t i = 0; d && i < n; i++)
		if (!(d[i] = strdup(v[i]))) {
			strv_free(d);
			return NULL;
		}
	return d;
}

/* Replace *slot with a copy of s (NULL clears); 0 or -MSVMM_ENOMEM. */
static int set_str(char **slot, const char *s)
{
	char *d = NULL;

	if (s && !(d = strdup(s)))
		return -MSVMM_ENOMEM;
	free(*slot);
	*slot = d;
	return 0;
}

int msvmm_config_set_kernel(msvmm_config *c, const char *path)
{
	return c ? set_str(&c->kernel, path) : -MSVMM_EINVAL;
}

int msvmm_config_set_image(msvmm_config *c, const char *name)
{
	if (!c || (name && !*name))
		return -MSVMM_EINVAL;
	return set_str(&c->image, name);
}

int msvmm_config_set_data_dirs(msvmm_config *c, const char *dirs)
{
	return c ? set_str(&c->data_dirs, dirs) : -MSVMM_EINVAL;
}

int msvmm_config_set_memory_mib(msvmm_config *c, unsigned int mib)
{
	/* Below 16 MiB not even the kernel's own image fits. */
	if (!c || mib < 16 || mib > MSVMM_MAX_MEMORY_MIB)
		return -MSVMM_EINVAL;
	c->memory_mib = mib;
	return 0;
}

int msvmm_config_set_vcpus(msvmm_config *c, unsigned int n)
{
	if (!c || n == 0 || n > MSVMM_MAX_VCPUS)
		return -MSVMM_EINVAL;
	c->vcpus = n;
	return 0;
}

int msvmm_config_set_argv(msvmm_config *c, const char *const *argv)
{
	size_t n = 0;
	char **v;

	if (!c)
		return -MSVMM_EINVAL;
	while (argv && argv[n])
		n++;
	v = strv_dup(argv);
	if (!v)
		return -MSVMM_ENOMEM;
	strv_free(c->argv);
	c->argv = n ? v : NULL;
	if (!n)
		free(v);
	return 0;
}

int msvmm_config_add_env(msvmm_config *c, const char *kv)
{
	char **v;

	if (!c || !kv || !strchr(kv, '=') || kv[0] == '=')
		return -MSVMM_EINVAL;
	v = realloc(c->env, (c->nr_env + 2) * sizeof(*v));
	if (!v)
		return -MSVMM_ENOMEM;
	c->env = v;
	if (!(v[c->nr_env] = strdup(kv)))
		return -MSVMM_ENOMEM;
	v[++c->nr_env] = NULL;
	return 0;
}

int msvmm_config_set_workdir(msvmm_config *c, const char *dir)
{
	if (!c || (dir && dir[0] != '/'))
		return -MSVMM_EINVAL;
	return set_str(&c->workdir, dir);
}

int msvmm_config_set_console_fd(msvmm_config *c, int fd)
{
	if (!c || fd < -1)
		return -MSVMM_EINVAL;
	c->console_fd = fd;
	return 0;
}

int msvmm_config_set_kernel_log(msvmm_config *c, int on)
{
	if (!c)
		return -MSVMM_EINVAL;
	c->kernel_log = !!on;
	return 0;
}

int msvmm_config_set_extra_cmdline(msvmm_config *c, const char *words)
{
	return c ? set_str(&c->extra_cmdline, words) : -MSVMM_EINVAL;
}

int msvmm_config_set_profile_hz(msvmm_config *c, unsigned int hz)
{
	if (!c || hz > 100000)
		return -MSVMM_EINVAL;
	c->profile_hz = hz;
	return 0;
}

int msvmm_config_set_timeout_ms(msvmm_config *c, uint64_t ms)
{
	if (!c)
		return -MSVMM_EINVAL;
	c->timeout_ms = ms;
	return 0;
}

int msvmm_config_set_boot_timeout_ms(msvmm_config *c, uint64_t ms)
{
	if (!c || !ms)
		return -MSVMM_EINVAL;
	c->boot_timeout_ms = ms;
	return 0;
}

int msvmm_config_set_vsock_uds(msvmm_config *c, const char *path)
{
	if (!c || (path && !*path))
		return -MSVMM_EINVAL;
	return set_str(&c->vsock_uds, path);
}

int msvmm_config_set_snapshot(msvmm_config *c, int mode, const char *path)
{
	int base = mode & ~MSVMM_SNAPSHOT_FALLBACK;

	if (!c || (base != MSVMM_SNAPSHOT_OFF && base != MSVMM_SNAPSHOT_CACHE) || (path && !*path))
		return -MSVMM_EINVAL;
	c->snapshot_mode = mode;
	return set_str(&c->snapshot_path, path);
}

int msvmm_config_add_disk(msvmm_config *c, const char *host_path, const char *guest_path, int read_only)
{
	struct msvmm_disk *d;

	/* The guest path travels in a ':'-separated run-spec record. */
	if (!c || !host_path || !*host_path ||
	    (guest_path && (guest_path[0] != '/' || strchr(guest_path, ':'))))
		return -MSVMM_EINVAL;
	if (c->nr_disks == MSVMM_MAX_DISKS)
		return -MSVMM_EINVAL;
	d = &c->disks[c->nr_disks];
	d->path = strdup(host_path);
	d->guest_path = guest_path ? strdup(guest_path) : NULL;
	if (!d->path || (guest_path && !d->guest_path)) {
		free(d->path);
		free(d->guest_path);
		return -MSVMM_ENOMEM;
	}
	d->read_only = !!read_only;
	c->nr_disks++;
	return 0;
}
