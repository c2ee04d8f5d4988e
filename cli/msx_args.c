// SPDX-License-Identifier: Apache-2.0
#include "msx_args.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#define MSX_DEFAULT_PROFILE_HZ 1000

static int parse_uint(const char *s, unsigned long long max, unsigned long long *out)
{
	char *end;

	if (!s || *s < '0' || *s > '9') /* digits only: no sign, no leading space */
		return -1;
	errno = 0;
	*out = strtoull(s, &end, 10);
	return (errno || *end || *out > max) ? -1 : 0;
}

/* Split "--opt=value" or take the next argument as the value. */
static const char *opt_value(int argc, char **argv, int *i, const char *eq)
{
	if (eq)
		return eq + 1;
	if (*i + 1 >= argc)
		return NULL;
	return argv[++*i];
}

static int opt_match(const char *arg, const char *s, const char *l, const char **eq)
{
	size_t n = l ? strlen(l) : 0;

	*eq = NULL;
	if (s && !strcmp(arg, s))
		return 1;
	if (l && !strncmp(arg, l, n) && (arg[n] == '\0' || arg[n] == '=')) {
		if (arg[n] == '=')
			*eq = arg + n;
		return 1;
	}
	return 0;
}

#define FAIL(...) (snprintf(errbuf, errlen, __VA_ARGS__), MSX_PARSE_ERROR)

/* -v HOST_IMAGE[:GUEST_PATH[:ro|:rw]], split from the right as Docker does. */
static int parse_volume(const char *v, struct msx_volume *vol, char *errbuf, size_t errlen)
{
	size_t len = strlen(v);
	const char *colon;

	memset(vol, 0, sizeof(*vol));
	if (len > 3 && (!strcmp(v + len - 3, ":ro") || !strcmp(v + len - 3, ":rw"))) {
		vol->read_only = v[len - 1] == 'o';
		len -= 3;
	}
	colon = memrchr(v, ':', len);
	if (colon) {
		size_t gl = len - (size_t)(colon - v) - 1;

		if (gl == 0 || gl >= sizeof(vol->guest) || colon[1] != '/')
			return FAIL("--volume '%s': the guest path must be absolute", v);
		memcpy(vol->guest, colon + 1, gl);
		len = (size_t)(colon - v);
	}
	if (len == 0 || len >= sizeof(vol->host))
		return FAIL("--volume '%s': no host image", v);
	memcpy(vol->host, v, len);
	return 0;
}

/* One option at argv[*i]; returns 0, or MSX_PARSE_ERROR. */
static int msx_option(int argc, char **argv, int *i, struct msx_args *a, char *errbuf, size_t errlen)
{
	const char *arg = argv[*i], *eq, *v;
	unsigned long long n;

	if (opt_match(arg, "-h", "--help", &eq)) {
		a->help = 1;
	} else if (!strcmp(arg, "-it") || !strcmp(arg, "-ti")) {
		a->interactive = a->tty = 1; /* docker's usual pair */
	} else if (opt_match(arg, "-i", "--interactive", &eq)) {
		a->interactive = 1;
	} else if (opt_match(arg, "-t", "--tty", &eq)) {
		a->tty = 1;
	} else if (opt_match(arg, "-u", "--user", &eq)) {
		if (!(v = opt_value(argc, argv, i, eq)) || !*v)
			return FAIL("--user needs a user name or UID[:GID]");
		a->user = v;
	} else if (opt_match(arg, NULL, "--version", &eq)) {
		a->version = 1;
	} else if (opt_match(arg, NULL, "--console", &eq)) {
		a->console = 1;
	} else if (opt_match(arg, NULL, "--timings", &eq)) {
		a->timings = 1;
	} else if (opt_match(arg, NULL, "--no-snapshot", &eq)) {
		a->no_snapshot = 1;
	} else if (opt_match(arg, NULL, "--code", &eq)) {
		if (!(v = opt_value(argc, argv, i, eq)))
			return FAIL("--code needs the code, or - to read it from stdin");
		a->code = v;
	} else if (opt_match(arg, NULL, "--profile", &eq)) {
		a->profile_hz = MSX_DEFAULT_PROFILE_HZ;
		if (eq && (parse_uint(eq + 1, 100000, &n) || !n))
			return FAIL("--profile: '%s' is not a sampling rate in Hz (1..100000)", eq + 1);
		if (eq)
			a->profile_hz = (unsigned int)n;
	} else if (opt_match(arg, "-m", "--memory", &eq)) {
		if (!(v = opt_value(argc, argv, i, eq)))
			return FAIL("%s needs a size in MiB", arg);
		if (parse_uint(v, 65536, &n) || n < 16)
			return FAIL("--memory: '%s' is not a size in MiB between 16 and 65536", v);
		a->memory_mib = (unsigned int)n;
	} else if (opt_match(arg, "-c", "--cpus", &eq)) {
		if (!(v = opt_value(argc, argv, i, eq)) || parse_uint(v, 64, &n) || !n)
			return FAIL("--cpus: need a vCPU count between 1 and 64");
		a->cpus = (unsigned int)n;
	} else if (opt_match(arg, NULL, "--timeout", &eq)) {
		if (!(v = opt_value(argc, argv, i, eq)) || parse_uint(v, 86400 * 365, &n) || !n)
			return FAIL("--timeout: need a positive number of seconds");
		a->timeout_ms = n * 1000;
	} else if (opt_match(arg, NULL, "--kernel", &eq)) {
		if (!(v = opt_value(argc, argv, i, eq)) || !*v)
			return FAIL("--kernel needs a path");
		a->kernel = v;
	} else if (opt_match(arg, NULL, "--cmdline", &eq)) {
		if (!(v = opt_value(argc, argv, i, eq)))
			return FAIL("--cmdline needs kernel command-line words");
		a->cmdline_extra = v;
	} else if (opt_match(arg, "-w", "--workdir", &eq)) {
		if (!(v = opt_value(argc, argv, i, eq)) || v[0] != '/')
			return FAIL("--workdir needs an absolute guest path");
		a->workdir = v;
	} else if (opt_match(arg, "-v", "--volume", &eq)) {
		if (!(v = opt_value(argc, argv, i, eq)))
			return FAIL("--volume needs HOST_IMAGE[:GUEST_PATH[:ro]]");
		if (a->nr_vols == MSX_MAX_VOLUMES)
			return FAIL("--volume: more than %d disks", MSX_MAX_VOLUMES);
		if (parse_volume(v, &a->vols[a->nr_vols], errbuf, errlen))
			return MSX_PARSE_ERROR;
		a->nr_vols++;
	} else if (opt_match(arg, "-e", "--env", &eq)) {
		if (!(v = opt_value(argc, argv, i, eq)) || !strchr(v, '=') || v[0] == '=')
			return FAIL("--env needs KEY=VALUE");
		if (a->nr_env == MSX_MAX_ENV)
			return FAIL("--env: more than %d variables", MSX_MAX_ENV);
		a->env[a->nr_env++] = v;
	} else {
		return FAIL("unknown option '%s' (see msx --help)", arg);
	}
	return 0;
}

/* --code runs in the image's shared interpreter: no command, and nothing a command alone can have. */
static int msx_code_check(const struct msx_args *a, char *errbuf, size_t errlen)
{
	if (!a->code)
		return MSX_PARSE_OK;
	if (a->cmd)
		return FAIL("--code and a COMMAND ('%s') do not go together", a->cmd[0]);
	if (a->interactive || a->tty || a->user)
		return FAIL("--code takes no -i, -t or -u (the interpreter runs as root, its stdin is /dev/null)");
	return MSX_PARSE_OK;
}

int msx_parse_args(int argc, char **argv, struct msx_args *a, char *errbuf, size_t errlen)
{
	const char *eq;
	int i;

	memset(a, 0, sizeof(*a));
	/* Options stop at the image name: everything after it belongs to the command. */
	for (i = 1; i < argc && argv[i][0] == '-' && argv[i][1] != '\0'; i++) {
		if (!strcmp(argv[i], "--")) {
			i++;
			break;
		}
		if (msx_option(argc, argv, &i, a, errbuf, errlen))
			return MSX_PARSE_ERROR;
		if (a->help || a->version)
			return MSX_PARSE_OK;
	}
	if (i >= argc)
		return FAIL("no image given (usage: msx [OPTIONS] IMAGE [--] [COMMAND [ARG...]])");
	a->image = argv[i++];
	/* "IMAGE --code CODE" reads best: right after the image, --code is still msx's. */
	if (i < argc && opt_match(argv[i], NULL, "--code", &eq)) {
		if (msx_option(argc, argv, &i, a, errbuf, errlen))
			return MSX_PARSE_ERROR;
		i++;
	}
	if (i < argc && !strcmp(argv[i], "--"))
		i++;
	a->cmd = i < argc ? &argv[i] : NULL;
	return msx_code_check(a, errbuf, errlen);
}
