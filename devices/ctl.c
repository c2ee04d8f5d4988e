// SPDX-License-Identifier: Apache-2.0
#include "ctl_dev.h"

#include <string.h>

void ctl_dev_init(struct ctl_dev *c, const struct ctl_dev_ops *ops, void *opaque)
{
	memset(c, 0, sizeof(*c));
	c->ops = ops;
	c->opaque = opaque;
}

void ctl_dev_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct ctl_dev *c = opaque;
	uint32_t v = 0;

	if (len != 4 || (offset & 3)) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	if (!is_write) {
		v = offset == MSVMM_CTL_MAGIC ? MSVMM_CTL_MAGIC_VALUE : 0;
		memcpy(data, &v, 4);
		return;
	}
	memcpy(&v, data, 4);
	switch (offset) {
	case MSVMM_CTL_BOOT:
		if (c->ops->boot)
			c->ops->boot(c->opaque);
		break;
	case MSVMM_CTL_EXIT:
		if (c->ops->exit)
			c->ops->exit(c->opaque, v);
		break;
	case MSVMM_CTL_PHASE:
		if (c->ops->phase)
			c->ops->phase(c->opaque, v);
		break;
	case MSVMM_CTL_READY:
		if (c->ops->ready)
			c->ops->ready(c->opaque);
		break;
	default:
		break;
	}
}
