// SPDX-License-Identifier: Apache-2.0
#include "i8042.h"

#include <string.h>

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
