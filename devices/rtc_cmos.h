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

#endif
