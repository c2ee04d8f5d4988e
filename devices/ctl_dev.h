/* SPDX-License-Identifier: Apache-2.0 */
/* The VMM side of the msvmm control device (registers in ctl.h). */
#ifndef MSVMM_CTL_DEV_H
#define MSVMM_CTL_DEV_H

#include <stdatomic.h>
#include <stdbool.h>
#include <stdint.h>

#include "ctl.h"

/* What the guest has reported through the page (struct ctl_dev.reported). */
#define CTL_DEV_BOOTED 0x1U /* BOOT written */
#define CTL_DEV_READY 0x2U  /* READY written */
#define CTL_DEV_EXITED 0x4U /* EXIT written; ctl_dev.exit_status holds the last value */

struct ctl_dev_ops {
	void (*boot)(void *opaque);
	void (*exit)(void *opaque, uint32_t status);
	void (*phase)(void *opaque, uint32_t phase);
	void (*ready)(void *opaque);
};

struct ctl_dev {
	const struct ctl_dev_ops *ops;
	void *opaque;
	/*
	 * The reports so far, for snapshots: guest-init reports each once, so
	 * a restored guest will not tell the fresh machine again.  Written by
	 * vCPU threads.
	 */
	_Atomic uint32_t reported; /* CTL_DEV_* */
	_Atomic uint32_t exit_status;
};

void ctl_dev_init(struct ctl_dev *c, const struct ctl_dev_ops *ops, void *opaque);
void ctl_dev_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/*
 * Snapshots.  The section: a version (u32), the CTL_DEV_* reports (u32) and
 * the EXIT value (u32; 0 unless EXITED).  PHASE markers are host timings
 * and not kept.  restore replays the reports into the fresh device's ops,
 * in the guest's order (boot, ready, exit), as if the guest had written
 * them again: a machine waiting for READY sees the agent up, and one saved
 * after EXIT ends with the same status.
 *
 * save: 0, or -ENOMEM when the writer ran out of memory.  restore: 'r'
 * holds exactly this section and 'c' was just set up by ctl_dev_init();
 * 0, or -EINVAL (malformed) with nothing called and 'c' unchanged.
 */
struct snap_w;
struct snap_r;
int ctl_dev_save(struct ctl_dev *c, struct snap_w *w);
int ctl_dev_restore(struct ctl_dev *c, struct snap_r *r);

#endif
