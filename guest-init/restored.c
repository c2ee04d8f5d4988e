// SPDX-License-Identifier: Apache-2.0
/*
 * A sandbox restored from a snapshot starts with the kernel random state and
 * the wall clock of the moment it was saved, the same in every restore.  So
 * the host's first requests to it carry an S record, "REALTIME_NS:SEED_HEX",
 * which the agent applies before it runs anything: set the clock to the
 * host's, mix the host's fresh random bytes into the pool and reseed the
 * kernel's generator now (RNDRESEEDCRNG), so two restored sandboxes never
 * hand out the same random numbers.  Riding on a request the caller makes
 * anyway, it costs no round trip of its own.
 */
#include "restored.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

int restored_parse(const char *rec, uint64_t *ns, uint8_t *seed, size_t *seed_len)
{
	const char *colon = strchr(rec, ':'), *hex;
	size_t digits = strspn(rec, "0123456789"), n;
	unsigned long long v = 0;

	/* 20 digits overflow 64 bits for some values: at most 19. */
	if (!colon || digits == 0 || digits > 19 || rec + digits != colon)
		return -EINVAL;
	hex = colon + 1;
	n = strlen(hex);
	if (n == 0 || n % 2 || n / 2 > RESTORED_SEED_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n / 2; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		if (seed)
			seed[i] = (uint8_t)(hi << 4 | lo);
	}
	for (size_t i = 0; i < digits; i++)
		v = v * 10 + (unsigned long long)(rec[i] - '0');
	if (ns)
		*ns = v;
	if (seed_len)
		*seed_len = n / 2;
	return 0;
}

static int restored_seed(const uint8_t *seed, size_t n)
{
	int fd, rc = 0;

	fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, seed, n) != (ssize_t)n || ioctl(fd, RNDRESEEDCRNG) < 0)
		rc = errno ? -errno : -EIO;
	close(fd);
	return rc;
}

int restored_apply(const char *rec)
{
	uint8_t seed[RESTORED_SEED_MAX];
	struct timespec ts;
	size_t n;
	uint64_t ns;

	if (restored_parse(rec, &ns, seed, &n) < 0)
		return -EINVAL;
	ts.tv_sec = (time_t)(ns / 1000000000ULL);
	ts.tv_nsec = (long)(ns % 1000000000ULL);
	if (clock_settime(CLOCK_REALTIME, &ts) < 0)
		return -errno;
	return restored_seed(seed, n);
}

int restored_main(int argc, char **argv)
{
	(void)argc;
	(void)argv;
	return 0;
}
