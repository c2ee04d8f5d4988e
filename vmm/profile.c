// SPDX-License-Identifier: Apache-2.0
#include "profile.h"

#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define GUEST_KERNEL_START 0xffff800000000000ULL

void profile_init(struct profile *p)
{
	memset(p, 0, sizeof(*p));
	pthread_mutex_init(&p->lock, NULL);
}

void profile_free(struct profile *p)
{
	free(p->rips);
	pthread_mutex_destroy(&p->lock);
	p->rips = NULL;
}

void profile_add(struct profile *p, uint64_t rip)
{
	pthread_mutex_lock(&p->lock);
	if (p->n == p->cap && p->cap < PROFILE_MAX_SAMPLES) {
		size_t cap = p->cap ? p->cap * 2 : 4096;
		uint64_t *r = realloc(p->rips, cap * sizeof(*r));

		if (r) {
			p->rips = r;
			p->cap = cap;
		}
	}
	if (p->n < p->cap)
		p->rips[p->n++] = rip;
	else
		p->dropped++;
	pthread_mutex_unlock(&p->lock);
}

struct profile_row {
	const char *name;
	uint64_t count;
};

static int row_cmp(const void *a, const void *b)
{
	const struct profile_row *x = a, *y = b;

	return x->count < y->count ? 1 : x->count > y->count ? -1 : 0;
}

/* Count samples per symbol: rows are keyed by symbol, so sort RIPs by address first. */
static size_t profile_rows(struct profile *p, const struct symbols *syms, struct profile_row *rows)
{
	size_t nrows = 0;
	const char *prev = NULL;

	for (size_t i = 0; i < p->n; i++) {
		uint64_t rip = p->rips[i];
		const struct symbol *s = rip >= GUEST_KERNEL_START ? symbols_lookup(syms, rip) : NULL;
		const char *name = rip < GUEST_KERNEL_START ? "[guest user space]" : s ? s->name : "[unknown kernel]";

		if (name != prev) {
			rows[nrows++] = (struct profile_row){ name, 0 };
			prev = name;
		}
		rows[nrows - 1].count++;
	}
	return nrows;
}

static int u64_cmp(const void *a, const void *b)
{
	uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;

	return x < y ? -1 : x > y;
}

int profile_report(struct profile *p, const struct symbols *syms, int fd, unsigned int top)
{
	struct profile_row *rows;
	size_t nrows;
	FILE *f;

	pthread_mutex_lock(&p->lock);
	qsort(p->rips, p->n, sizeof(*p->rips), u64_cmp);
	rows = calloc(p->n ? p->n : 1, sizeof(*rows));
	if (!rows) {
		pthread_mutex_unlock(&p->lock);
		return -ENOMEM;
	}
	nrows = profile_rows(p, syms, rows);
	/* Rows of one symbol can be split when user samples interleave: merge by name. */
	for (size_t i = 0; i < nrows; i++)
		for (size_t j = i + 1; j < nrows && rows[i].count; j++)
			if (rows[j].count && rows[j].name == rows[i].name) {
				rows[i].count += rows[j].count;
				rows[j].count = 0;
			}
	qsort(rows, nrows, sizeof(*rows), row_cmp);
	f = fdopen(dup(fd), "w");
	if (!f) {
		free(rows);
		pthread_mutex_unlock(&p->lock);
		return -errno;
	}
	fprintf(f, "profile: %zu samples of the guest RIP\n", p->n);
	for (size_t i = 0; i < nrows && i < top && rows[i].count; i++)
		fprintf(f, "%6.2f%% %8llu  %s\n", 100.0 * (double)rows[i].count / (double)p->n,
			(unsigned long long)rows[i].count, rows[i].name);
	fclose(f);
	free(rows);
	pthread_mutex_unlock(&p->lock);
	return 0;
}
