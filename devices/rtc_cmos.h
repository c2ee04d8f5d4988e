/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A read-only MC146818 CMOS real-time clock at ports 0x70/0x71 that reports
 * the host's UTC time in binary, 24-hour mode.  It gives the guest a correct
 * wall clock at boot, and because "update in progress" is never set the
 * guest's RTC driver never busy-waits (which costs seconds on PVM).
 */
#ifndef MSVMM_RTC_CMOS_H
#define MSVMM_RTC_CMOS_H

#include <stdbool.h>
#include <stdint.h>
#include <time.h>

#define RTC_CMOS_PORT 0x70
#define RTC_CMOS_NR_PORTS 2

struct rtc_cmos {
	uint8_t index;
	/* Where the time comes from; NULL means time(). For tests. */
	time_t (*now)(void *opaque);
	void *opaque;
};

void rtc_cmos_init(struct rtc_cmos *r);
/* Registered over ports 0x70..0x71; matches bus_handler. */
void rtc_cmos_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write);

/*
 * Snapshots.  The section: a version (u32) and the selected register index
 * (u8, 0..0x7f).  The time is not state: a restored guest reads the host's
 * clock, as it would after any pause.  save: 0, or -ENOMEM when the writer
 * ran out of memory.  restore: 'r' holds exactly this section and 'rtc' was
 * just set up by rtc_cmos_init(); 0, or -EINVAL with the device unchanged.
 */
struct snap_w;
struct snap_r;
int rtc_cmos_save(struct rtc_cmos *rtc, struct snap_w *w);
int rtc_cmos_restore(struct rtc_cmos *rtc, struct snap_r *r);

#endif
