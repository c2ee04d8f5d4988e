// SPDX-License-Identifier: Apache-2.0
#include "ctl_dev.h"

#include <errno.h>
#include <string.h>

#include "snap_io.h"

#define CTL_SNAP_VERSION 1
#define CTL_DEV_REPORTS (CTL_DEV_BOOTED | CTL_DEV_READY | CTL_DEV_EXITED)

void ctl_dev_init(struct ctl_dev *c, const struct ctl_dev_ops *ops, void *opaque)
{
	memset(c, 0, sizeof(*c));
	c->ops = ops;
	c->opaque = opaque;
}

/* Each report is recorded before the VMM hears it, so a save after it has it. */
static void ctl_dev_boot(struct ctl_dev *c)
{
	atomic_fetch_or(&c->reported, CTL_DEV_BOOTED);
	if (c->ops->boot)
		c->ops->boot(c->opaque);
}

static void ctl_dev_ready(struct ctl_dev *c)
{
	atomic_fetch_or(&c->reported, CTL_DEV_READY);
	if (c->ops->ready)
		c->ops->ready(c->opaque);
}

static void ctl_dev_exit(struct ctl_dev *c, uint32_t status)
{
	atomic_store(&c->exit_status, status);
	atomic_fetch_or(&c->reported, CTL_DEV_EXITED);
	if (c->ops->exit)
		c->ops->exit(c->opaque, status);
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
		ctl_dev_boot(c);
		break;
	case MSVMM_CTL_EXIT:
		ctl_dev_exit(c, v);
		break;
	case MSVMM_CTL_PHASE:
		if (c->ops->phase)
			c->ops->phase(c->opaque, v);
		break;
	case MSVMM_CTL_READY:
		ctl_dev_ready(c);
		break;
	default:
		break;
	}
}

int ctl_dev_save(struct ctl_dev *c, struct snap_w *w)
{
	snap_put_u32(w, CTL_SNAP_VERSION);
	snap_put_u32(w, atomic_load(&c->reported));
	snap_put_u32(w, atomic_load(&c->exit_status));
	return w->err ? -ENOMEM : 0;
}

int ctl_dev_restore(struct ctl_dev *c, struct snap_r *r)
{
	uint32_t reported, status;

	if (snap_get_u32(r) != CTL_SNAP_VERSION)
		snap_r_fail(r);
	reported = snap_get_u32(r);
	status = snap_get_u32(r);
	/* Any EXIT value is one the guest can write, but only EXIT writes one. */
	if (!snap_r_done(r) || (reported & ~CTL_DEV_REPORTS) ||
	    (!(reported & CTL_DEV_EXITED) && status)) {
		snap_r_fail(r);
		return -EINVAL;
	}
	if (reported & CTL_DEV_BOOTED)
		ctl_dev_boot(c);
	if (reported & CTL_DEV_READY)
		ctl_dev_ready(c);
	if (reported & CTL_DEV_EXITED)
		ctl_dev_exit(c, status);
	return 0;
}
