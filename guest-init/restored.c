// SPDX-License-Identifier: Apache-2.0
/*
 * `/proc/1/exe --restored REALTIME_NS SEED_HEX`: what the host runs first in
 * a sandbox restored from a snapshot.  Every restore of one snapshot starts
 * with the same kernel random state and the wall clock of the moment it was
 * saved, so: set the clock to the host's, mix the host's fresh random bytes
 * into the pool and reseed the kernel's generator now (RNDRESEEDCRNG), so two
 * restored sandboxes never hand out the same random numbers.  Run through
 * /proc/1/exe because guest-init's file is gone from view after switch_root.
 */
#include "restored.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/random.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>
#include <unistd.h>

#define SEED_MAX 64

static int hexval(char c)
{
	if (c >= '0' && c <= '9')
		return c - '0';
	if (c >= 'a' && c <= 'f')
		return c - 'a' + 10;
	return -1;
}

static int restored_seed(const char *hex)
{
	uint8_t seed[SEED_MAX];
	size_t n = strlen(hex) / 2;
	int fd, rc = 0;

	if (strlen(hex) % 2 || n == 0 || n > SEED_MAX)
		return -EINVAL;
	for (size_t i = 0; i < n; i++) {
		int hi = hexval(hex[2 * i]), lo = hexval(hex[2 * i + 1]);

		if (hi < 0 || lo < 0)
			return -EINVAL;
		seed[i] = (uint8_t)(hi << 4 | lo);
	}
	fd = open("/dev/urandom", O_WRONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	if (write(fd, seed, n) != (ssize_t)n || ioctl(fd, RNDRESEEDCRNG) < 0)
		rc = -errno;
	close(fd);
	return rc;
}

int restored_main(int argc, char **argv)
{
	struct timespec ts;
	char *end;
	unsigned long long ns;
	int rc;

	if (argc != 4) {
		fprintf(stderr, "usage: %s --restored REALTIME_NS SEED_HEX\n", argv[0]);
		return 2;
	}
	errno = 0;
	ns = strtoull(argv[2], &end, 10);
	if (errno || *end || end == argv[2]) {
		fprintf(stderr, "guest-init --restored: bad time '%s'\n", argv[2]);
		return 2;
	}
	ts.tv_sec = (time_t)(ns / 1000000000ULL);
	ts.tv_nsec = (long)(ns % 1000000000ULL);
	if (clock_settime(CLOCK_REALTIME, &ts) < 0) {
		fprintf(stderr, "guest-init --restored: clock_settime: %s\n", strerror(errno));
		return 1;
	}
	rc = restored_seed(argv[3]);
	if (rc) {
		fprintf(stderr, "guest-init --restored: reseeding the RNG: %s\n", strerror(-rc));
		return 1;
	}
	return 0;
}
