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

/*
 * Snapshots.  The controller keeps no guest-visible state (status reads 0,
 * the reset command acts at once), so the section is only its version
 * (u32), which a later version with state can tell apart.  save: 0, or
 * -ENOMEM when the writer ran out of memory.  restore: 'r' holds exactly
 * this section; 0 or -EINVAL.
 */
struct snap_w;
struct snap_r;
int i8042_save(struct i8042 *k, struct snap_w *w);
int i8042_restore(struct i8042 *k, struct snap_r *r);

#endif
