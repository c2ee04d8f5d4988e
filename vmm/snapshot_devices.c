// SPDX-License-Identifier: Apache-2.0
#include "snapshot_devices.h"

#include <errno.h>
#include <stdint.h>
#include <unistd.h>

#include "virtio_blk.h"
#include "virtio_vsock.h"

/* Each device's part is framed (kind, length) so that its restore sees exactly its own bytes. */
enum snap_dev_kind {
	SNAP_DEV_UART = 1,
	SNAP_DEV_I8042,
	SNAP_DEV_RTC,
	SNAP_DEV_CTL,
	SNAP_DEV_BLK,
	SNAP_DEV_VSOCK,
};

#define SNAP_DEVICES_VERSION 1
#define SNAP_DEV_F_VSOCK_CONNS 0x1u /* the guest had vsock connections when saved */

static void snap_dev_begin(struct snap_w *w, enum snap_dev_kind kind, size_t *at)
{
	snap_put_u32(w, kind);
	*at = w->len;
	snap_put_u32(w, 0);
}

static void snap_dev_end(struct snap_w *w, size_t at)
{
	snap_patch_u32(w, at, (uint32_t)(w->len - at - 4));
}

static enum snap_dev_kind snap_slot_kind(const struct machine *m, const struct virtio_slot *s)
{
	return s->owner == m->vsock ? SNAP_DEV_VSOCK : SNAP_DEV_BLK;
}

static int snap_dev_save(struct machine *m, enum snap_dev_kind kind, void *dev, struct snap_w *w)
{
	size_t at;
	int rc;

	snap_dev_begin(w, kind, &at);
	switch (kind) {
	case SNAP_DEV_UART: rc = uart8250_save(dev, w); break;
	case SNAP_DEV_I8042: rc = i8042_save(dev, w); break;
	case SNAP_DEV_RTC: rc = rtc_cmos_save(dev, w); break;
	case SNAP_DEV_CTL: rc = ctl_dev_save(dev, w); break;
	case SNAP_DEV_BLK: rc = virtio_blk_save(dev, w); break;
	case SNAP_DEV_VSOCK: rc = virtio_vsock_save(dev, w); break;
	default: rc = -EINVAL; break;
	}
	(void)m;
	snap_dev_end(w, at);
	return rc ? rc : w->err ? -ENOMEM : 0;
}

int snapshot_devices_save(struct machine *m, struct snap_w *w)
{
	int rc;

	snap_put_u32(w, SNAP_DEVICES_VERSION);
	snap_put_u32(w, 4 + m->virtio.n);
	rc = snap_dev_save(m, SNAP_DEV_UART, &m->uart, w);
	if (!rc)
		rc = snap_dev_save(m, SNAP_DEV_I8042, &m->kbd, w);
	if (!rc)
		rc = snap_dev_save(m, SNAP_DEV_RTC, &m->rtc, w);
	if (!rc)
		rc = snap_dev_save(m, SNAP_DEV_CTL, &m->ctl, w);
	for (unsigned int i = 0; !rc && i < m->virtio.n; i++)
		rc = snap_dev_save(m, snap_slot_kind(m, &m->virtio.slot[i]), m->virtio.slot[i].owner, w);
	/* Connections are not saved: only if the guest had some must it be told they are gone. */
	snap_put_u32(w, m->vsock && virtio_vsock_nr_conns(m->vsock) ? SNAP_DEV_F_VSOCK_CONNS : 0);
	return rc ? rc : w->err ? -ENOMEM : 0;
}

/* The next device's bytes, which must be of 'kind'. */
static int snap_dev_restore(enum snap_dev_kind kind, void *dev, struct snap_r *all)
{
	struct snap_r r;
	uint32_t got = snap_get_u32(all), len = snap_get_u32(all);

	if (all->err || got != kind || len > all->len - all->pos) {
		snap_r_fail(all);
		return -EINVAL;
	}
	snap_r_init(&r, all->buf + all->pos, len);
	all->pos += len;
	switch (kind) {
	case SNAP_DEV_UART: return uart8250_restore(dev, &r);
	case SNAP_DEV_I8042: return i8042_restore(dev, &r);
	case SNAP_DEV_RTC: return rtc_cmos_restore(dev, &r);
	case SNAP_DEV_CTL: return ctl_dev_restore(dev, &r);
	case SNAP_DEV_BLK: return virtio_blk_restore(dev, &r);
	case SNAP_DEV_VSOCK: return virtio_vsock_restore(dev, &r);
	}
	return -EINVAL;
}

/*
 * A kick the device had not served when the snapshot was taken is not in
 * it: every queue's ioeventfd is signalled once (idle rings cost nothing).
 */
static void snap_kick_all(struct machine *m)
{
	uint64_t one = 1;

	for (unsigned int i = 0; i < m->virtio.n; i++)
		for (unsigned int q = 0; q < m->virtio.slot[i].nr_kicks; q++)
			if (write(m->virtio.slot[i].kicks[q].fd, &one, sizeof(one)) < 0)
				continue; /* a full eventfd counter is a kick pending anyway */
}

int snapshot_devices_restore(struct machine *m, struct snap_r *r)
{
	int rc;

	if (snap_get_u32(r) != SNAP_DEVICES_VERSION || snap_get_u32(r) != 4 + m->virtio.n || r->err)
		return -EINVAL;
	rc = snap_dev_restore(SNAP_DEV_UART, &m->uart, r);
	if (!rc)
		rc = snap_dev_restore(SNAP_DEV_I8042, &m->kbd, r);
	if (!rc)
		rc = snap_dev_restore(SNAP_DEV_RTC, &m->rtc, r);
	if (!rc)
		rc = snap_dev_restore(SNAP_DEV_CTL, &m->ctl, r);
	for (unsigned int i = 0; !rc && i < m->virtio.n; i++)
		rc = snap_dev_restore(snap_slot_kind(m, &m->virtio.slot[i]), m->virtio.slot[i].owner, r);
	if (!rc) {
		uint32_t flags = snap_get_u32(r);

		if (r->err || (flags & ~SNAP_DEV_F_VSOCK_CONNS))
			return -EINVAL;
		m->vsock_reset_owed = (flags & SNAP_DEV_F_VSOCK_CONNS) != 0;
		snap_kick_all(m);
	}
	return rc;
}
