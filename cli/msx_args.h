/* SPDX-License-Identifier: Apache-2.0 */
/* msx command-line parsing, kept apart from main() so it can be unit-tested. */
#ifndef MSVMM_MSX_ARGS_H
#define MSVMM_MSX_ARGS_H

#include <stddef.h>
#include <stdint.h>

#define MSX_MAX_ENV 256
#define MSX_MAX_VOLUMES 6

struct msx_volume {
	char host[4096];
	char guest[256]; /* "": attach only */
	int read_only;
};

struct msx_args {
	const char *image;
	char **cmd;            /* points into argv; NULL: the image's default */
	const char *kernel;
	unsigned int memory_mib; /* 0: library default */
	unsigned int cpus;       /* 0: library default */
	uint64_t timeout_ms;
	const char *workdir;
	const char *env[MSX_MAX_ENV];
	unsigned int nr_env;
	struct msx_volume vols[MSX_MAX_VOLUMES];
	unsigned int nr_vols;
	unsigned int profile_hz;
	const char *cmdline_extra;
	const char *user;        /* NULL: root */
	int interactive, tty;    /* -i: forward stdin; -t: a pty */
	int console, timings, help, version;
	int no_snapshot;         /* --no-snapshot: always boot cold */
	const char *code;        /* --code: code for the image's runtime ("-": read stdin); NULL: a command */
};

enum msx_parse { MSX_PARSE_OK = 0, MSX_PARSE_ERROR = -1 };

/* Parse argv; on error writes one line (no newline) to errbuf. */
int msx_parse_args(int argc, char **argv, struct msx_args *a, char *errbuf, size_t errlen);

#endif
