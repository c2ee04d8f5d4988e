// SPDX-License-Identifier: Apache-2.0
#include "snapcache.h"

#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include "err.h"
#include "snapshot.h"

bool snapcache_eligible(const msvmm_config *cfg, bool pvm)
{
	/* PVM: its instruction-emulation state is not part of a snapshot yet. */
	return (cfg->snapshot_mode & ~MSVMM_SNAPSHOT_FALLBACK) == MSVMM_SNAPSHOT_CACHE && cfg->nr_disks == 0 &&
	       cfg->profile_hz == 0 && !pvm;
}

/* " key=path@size.mtime.inode", or nothing for an empty path. */
static int snapcache_file(char *buf, size_t len, size_t *at, const char *key, const char *path,
			  msvmm_error *err)
{
	struct stat st;
	int n;

	if (!path[0])
		return 0;
	if (stat(path, &st) < 0)
		return err_set(err, err_from_errno(errno), "%s: %s", path, strerror(errno));
	n = snprintf(buf + *at, len - *at, " %s=%s@%lld.%lld.%ld.%llu", key, path, (long long)st.st_size,
		     (long long)st.st_mtim.tv_sec, st.st_mtim.tv_nsec, (unsigned long long)st.st_ino);
	if (n < 0 || (size_t)n >= len - *at)
		return err_set(err, MSVMM_EINVAL, "snapshot identity too long");
	*at += (size_t)n;
	return 0;
}

/* The host CPU's model name: a snapshot's CPU state only fits the CPU it came from. */
static void snapcache_cpu(char *out, size_t len)
{
	FILE *f = fopen("/proc/cpuinfo", "re");
	char line[256];

	snprintf(out, len, "?");
	while (f && fgets(line, sizeof(line), f))
		if (!strncmp(line, "model name", 10) && strchr(line, ':')) {
			char *v = strchr(line, ':') + 1;

			v += strspn(v, " \t");
			v[strcspn(v, "\n")] = '\0';
			for (char *p = v; *p; p++)
				if (*p == ' ')
					*p = '_';
			snprintf(out, len, "%s", v);
			break;
		}
	if (f)
		fclose(f);
}

int snapcache_ident(const msvmm_config *cfg, const char *kernel, const struct image *img, char *buf,
		    size_t len, msvmm_error *err)
{
	char cpu[128];
	size_t at;
	int n, rc;

	snapcache_cpu(cpu, sizeof(cpu));
	n = snprintf(buf, len, "msvmm-snapshot/%d mem=%u vcpus=%u log=%d cpu=%s cmdline=[%s]",
		     SNAP_FORMAT_VERSION, cfg->memory_mib, cfg->vcpus, cfg->kernel_log ? 1 : 0, cpu,
		     cfg->extra_cmdline ? cfg->extra_cmdline : "");
	if (n < 0 || (size_t)n >= len)
		return err_set(err, MSVMM_EINVAL, "snapshot identity too long");
	at = (size_t)n;
	rc = snapcache_file(buf, len, &at, "kernel", kernel, err);
	if (!rc)
		rc = snapcache_file(buf, len, &at, "initramfs", img->initramfs, err);
	if (!rc)
		rc = snapcache_file(buf, len, &at, "rootfs", img->rootfs, err);
	if (!rc)
		rc = snapcache_file(buf, len, &at, "scratch", img->scratch, err);
	return rc;
}

/* FNV-1a, 64 bits: a file name, not a security boundary (the identity inside is compared). */
static uint64_t snapcache_hash(const char *s)
{
	uint64_t h = 0xcbf29ce484222325ULL;

	for (; *s; s++)
		h = (h ^ (uint8_t)*s) * 0x100000001b3ULL;
	return h;
}

static int snapcache_mkdir(char *dir)
{
	for (char *p = dir + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			if (mkdir(dir, 0755) < 0 && errno != EEXIST) {
				*p = '/';
				return -errno;
			}
			*p = '/';
		}
	return mkdir(dir, 0755) < 0 && errno != EEXIST ? -errno : 0;
}

int snapcache_path(const msvmm_config *cfg, const char *ident, bool create, char *buf, size_t len,
		   msvmm_error *err)
{
	const char *cache = getenv("MSVMM_CACHE"), *home = getenv("HOME");
	char dir[4096];
	int n, rc;

	if (cfg->snapshot_path) {
		n = snprintf(buf, len, "%s", cfg->snapshot_path);
		return n < 0 || (size_t)n >= len ? err_set(err, MSVMM_EINVAL, "snapshot path too long") : 0;
	}
	if (cache && *cache)
		n = snprintf(dir, sizeof(dir), "%s/snapshots", cache);
	else if (home && *home)
		n = snprintf(dir, sizeof(dir), "%s/.cache/msvmm/snapshots", home);
	else
		return err_set(err, MSVMM_EINVAL, "no snapshot cache: neither MSVMM_CACHE nor HOME is set");
	if (n < 0 || (size_t)n >= sizeof(dir))
		return err_set(err, MSVMM_EINVAL, "snapshot cache path too long");
	if (create && (rc = snapcache_mkdir(dir)) < 0)
		return err_set(err, err_from_errno(-rc), "snapshot cache %s: %s", dir, strerror(-rc));
	n = snprintf(buf, len, "%s/%016llx.snap", dir, (unsigned long long)snapcache_hash(ident));
	return n < 0 || (size_t)n >= len ? err_set(err, MSVMM_EINVAL, "snapshot cache path too long") : 0;
}
