/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device part of a machine snapshot: every device model's state, in
 * the machine's fixed order (UART, i8042, RTC, control page, then each
 * virtio slot).  Restore runs on a machine given the same devices in the
 * same order; a section that does not fit is refused.
 */
#ifndef MSVMM_SNAPSHOT_DEVICES_H
#define MSVMM_SNAPSHOT_DEVICES_H

#include "machine.h"
#include "snap_io.h"

/* 0 or -errno. */
int snapshot_devices_save(struct machine *m, struct snap_w *w);
/* 0 or -EINVAL. */
int snapshot_devices_restore(struct machine *m, struct snap_r *r);

#endif
