/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Deterministic test data, the same in the guest (mstest gen) and on the
 * host (tests/e2e/sandbox.c, bench/execbench.c).  Byte p of stream 'seed' is
 * byte p % 8 (little-endian) of gen_word(seed, p / 8), a splitmix64 of the
 * word index: every byte value occurs, distinct seeds give distinct streams,
 * and any range can be produced on its own, so a receiver checks a stream
 * chunk by chunk at whatever offsets its reads end.  Also the one
 * write-it-all loop the three programs share.
 */
#ifndef MSVMM_TEST_GEN_H
#define MSVMM_TEST_GEN_H

#include <errno.h>
#include <stddef.h>
#include <stdint.h>
#include <unistd.h>

static inline uint64_t gen_word(uint64_t seed, uint64_t index)
{
	uint64_t z = index + seed * 0xd1b54a32d192ed03ULL + 0x9e3779b97f4a7c15ULL;

	z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
	z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
	return z ^ (z >> 31);
}

/* The len bytes of stream 'seed' that start at offset off. */
static inline void gen_fill(uint64_t seed, uint64_t off, uint8_t *buf, size_t len)
{
	uint64_t w = gen_word(seed, off / 8);

	for (size_t i = 0; i < len; i++, off++) {
		if (i && off % 8 == 0)
			w = gen_word(seed, off / 8);
		buf[i] = (uint8_t)(w >> (8 * (off % 8)));
	}
}

/* Offset of the first byte of buf[0..len) that differs from the stream at off, or len. */
static inline size_t gen_check(uint64_t seed, uint64_t off, const uint8_t *buf, size_t len)
{
	uint8_t want[4096];

	for (size_t done = 0; done < len;) {
		size_t n = len - done < sizeof(want) ? len - done : sizeof(want);

		gen_fill(seed, off + done, want, n);
		for (size_t i = 0; i < n; i++)
			if (buf[done + i] != want[i])
				return done + i;
		done += n;
	}
	return len;
}

/* All of buf to fd; -1 on error (errno says why). */
static inline int gen_write_all(int fd, const void *buf, size_t len)
{
	const uint8_t *p = buf;

	while (len) {
		ssize_t n = write(fd, p, len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		p += n;
		len -= (size_t)n;
	}
	return 0;
}

#endif
