// SPDX-License-Identifier: Apache-2.0
#include "i8042.h"

#include <errno.h>
#include <string.h>

#include "snap_io.h"

#define I8042_SNAP_VERSION 1

void i8042_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct i8042 *k = opaque;
	uint64_t port = I8042_DATA_PORT + offset;

	if (!is_write) {
		/* Status 0: output buffer empty, input buffer empty, so kb_wait() never spins. */
		memset(data, 0, len);
		return;
	}
	if (port == I8042_CMD_PORT && len == 1 && data[0] == I8042_CMD_RESET && k->reset)
		k->reset(k->opaque);
}

int i8042_save(struct i8042 *k, struct snap_w *w)
{
	snap_put_u32(w, I8042_SNAP_VERSION);
	return w->err ? -ENOMEM : 0;
}

int i8042_restore(struct i8042 *k, struct snap_r *r)
{
	if (snap_get_u32(r) != I8042_SNAP_VERSION || !snap_r_done(r)) {
		snap_r_fail(r);
		return -EINVAL;
	}
	return 0;
}
