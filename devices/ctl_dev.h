/* SPDX-License-Identifier: Apache-2.0 */
/* The VMM side of the msvmm control device (registers in ctl.h). */
#ifndef MSVMM_CTL_DEV_H
#define MSVMM_CTL_DEV_H

#include <stdbool.h>
#include <stdint.h>

#include "ctl.h"

struct ctl_dev_ops {
	void (*boot)(void *opaque);
	void (*exit)(void *opaque, uint32_t status);
	void (*phase)(void *opaque, uint32_t phase);
	void (*ready)(void *opaque);
};

struct ctl_dev {
	const struct ctl_dev_ops *ops;
	void *opaque;
};

void ctl_dev_init(struct ctl_dev *c, const struct ctl_dev_ops *ops, void *opaque);
void ctl_dev_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

#endif
