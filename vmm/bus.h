/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Port-I/O and MMIO dispatch: devices register address ranges with a
 * handler; the vCPU loop hands each exit to the device that owns it.
 */
#ifndef MSVMM_BUS_H
#define MSVMM_BUS_H

#include <stdbool.h>
#include <stdint.h>

#define BUS_MAX_DEVICES 32

/* Read (is_write false: fill data) or write 'len' bytes at 'offset' in the range. */
typedef void (*bus_handler)(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

struct bus_range {
	uint64_t base, size;
	bus_handler fn;
	void *opaque;
};

struct bus {
	struct bus_range ranges[BUS_MAX_DEVICES];
	unsigned int n;
};

/* Register [base, base+size); fails (-1) on overlap or when full. */
int bus_register(struct bus *b, uint64_t base, uint64_t size, bus_handler fn, void *opaque);
/* Dispatch one access; returns false when no device owns the address. */
bool bus_access(const struct bus *b, uint64_t addr, uint8_t *data, uint32_t len, bool is_write);

#endif
