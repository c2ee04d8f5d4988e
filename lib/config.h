/* SPDX-License-Identifier: Apache-2.0 */
/* The configuration object behind msvmm_config (private to the library). */
#ifndef MSVMM_LIB_CONFIG_H
#define MSVMM_LIB_CONFIG_H

#include <stdint.h>

#include "msvmm.h"

#define MSVMM_DEFAULT_MEMORY_MIB 256
#define MSVMM_MAX_MEMORY_MIB (64u * 1024)
#define MSVMM_MAX_VCPUS 64
#define MSVMM_DEFAULT_BOOT_TIMEOUT_MS 120000
#define MSVMM_MAX_DISKS 6 /* extra disks, after the image's root and scratch */

struct msvmm_disk {
	char *path;       /* host image file */
	char *guest_path; /* where guest-init mounts it, or NULL */
	int read_only;
};

struct msvmm_config {
	char *kernel;
	char *image;
	char *data_dirs;
	unsigned int memory_mib;
	unsigned int vcpus;
	char **argv;
	char **env;
	unsigned int nr_env;
	char *workdir;
	int console_fd;
	int kernel_log;
	char *extra_cmdline;
	unsigned int profile_hz;
	uint64_t timeout_ms;
	uint64_t boot_timeout_ms; /* sandboxes: until the agent is up */
	char *vsock_uds;
	int snapshot_mode;   /* MSVMM_SNAPSHOT_* */
	char *snapshot_path; /* NULL: the cache */
	struct msvmm_disk disks[MSVMM_MAX_DISKS];
	unsigned int nr_disks;
};

/* NULL-terminated string arrays: a deep copy (NULL on no memory; an empty one for NULL), and its free. */
char **strv_dup(const char *const *v);
void strv_free(char **v);

#endif
