/* SPDX-License-Identifier: Apache-2.0 */
/* Guest RIP samples, and the report that names the hottest guest symbols. */
#ifndef MSVMM_PROFILE_H
#define MSVMM_PROFILE_H

#include <pthread.h>
#include <stddef.h>
#include <stdint.h>

#include "symbols.h"

#define PROFILE_MAX_SAMPLES (1u << 22)

struct profile {
	pthread_mutex_t lock;
	uint64_t *rips;
	size_t n, cap;
	uint64_t dropped;
};

void profile_init(struct profile *p);
void profile_free(struct profile *p);
void profile_add(struct profile *p, uint64_t rip);
/* Write the 'top' hottest symbols to fd; 0 or -errno. */
int profile_report(struct profile *p, const struct symbols *syms, int fd, unsigned int top);

#endif
