// SPDX-License-Identifier: Apache-2.0
#include "bus.h"

int bus_register(struct bus *b, uint64_t base, uint64_t size, bus_handler fn, void *opaque)
{
	if (b->n == BUS_MAX_DEVICES || size == 0 || base + size < base)
		return -1;
	for (unsigned int i = 0; i < b->n; i++) {
		const struct bus_range *r = &b->ranges[i];

		if (base < r->base + r->size && r->base < base + size)
			return -1;
	}
	b->ranges[b->n++] = (struct bus_range){ base, size, fn, opaque };
	return 0;
}

bool bus_access(const struct bus *b, uint64_t addr, uint8_t *data, uint32_t len, bool is_write)
{
	for (unsigned int i = 0; i < b->n; i++) {
		const struct bus_range *r = &b->ranges[i];

		/* The whole access must fall inside the range. */
		if (addr >= r->base && addr - r->base < r->size && len <= r->size - (addr - r->base)) {
			r->fn(r->opaque, addr - r->base, data, len, is_write);
			return true;
		}
	}
	return false;
}
