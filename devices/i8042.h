/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Just enough of the i8042 keyboard controller for the guest to reset the
 * machine (reboot=k writes 0xfe to port 0x64): no keyboard, no mouse.
 */
#ifndef MSVMM_I8042_H
#define MSVMM_I8042_H

#include <stdbool.h>
#include <stdint.h>

#define I8042_DATA_PORT 0x60
#define I8042_CMD_PORT 0x64
#define I8042_CMD_RESET 0xfe

struct i8042 {
	void (*reset)(void *opaque);
	void *opaque;
};

/* Registered over ports 0x60..0x64; matches bus_handler. */
void i8042_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

#endif
