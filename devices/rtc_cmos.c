// SPDX-License-Identifier: Apache-2.0
#include "rtc_cmos.h"

#include <errno.h>
#include <string.h>

#include "snap_io.h"

#define RTC_SNAP_VERSION 1

#define RTC_SECONDS 0x00
#define RTC_MINUTES 0x02
#define RTC_HOURS 0x04
#define RTC_WEEKDAY 0x06
#define RTC_DAY 0x07
#define RTC_MONTH 0x08
#define RTC_YEAR 0x09
#define RTC_REG_A 0x0a
#define RTC_REG_B 0x0b
#define RTC_REG_C 0x0c
#define RTC_REG_D 0x0d
#define RTC_CENTURY 0x32

#define RTC_B_24H 0x02
#define RTC_D_VALID 0x80
#define RTC_INDEX_MASK 0x7f /* bit 7 of the index port is the NMI mask */

void rtc_cmos_init(struct rtc_cmos *r)
{
	memset(r, 0, sizeof(*r));
}

static uint8_t bcd(int v)
{
	return (uint8_t)(((v / 10) << 4) | (v % 10));
}

/* BCD, because Linux on x86 reads the CMOS clock as BCD whatever register B says. */
static uint8_t rtc_reg(const struct rtc_cmos *r, uint8_t reg)
{
	time_t t = r->now ? r->now(r->opaque) : time(NULL);
	struct tm tm;

	if (!gmtime_r(&t, &tm))
		memset(&tm, 0, sizeof(tm));
	switch (reg) {
	case RTC_SECONDS: return bcd(tm.tm_sec);
	case RTC_MINUTES: return bcd(tm.tm_min);
	case RTC_HOURS: return bcd(tm.tm_hour);
	case RTC_WEEKDAY: return bcd(tm.tm_wday + 1);
	case RTC_DAY: return bcd(tm.tm_mday);
	case RTC_MONTH: return bcd(tm.tm_mon + 1);
	case RTC_YEAR: return bcd((tm.tm_year + 1900) % 100);
	case RTC_CENTURY: return bcd((tm.tm_year + 1900) / 100 % 100);
	case RTC_REG_A: return 0x26; /* 32.768 kHz base, 1024 Hz rate; UIP (bit 7) clear */
	case RTC_REG_B: return RTC_B_24H;
	case RTC_REG_D: return RTC_D_VALID;
	default: return 0; /* C (no interrupt flags) and NVRAM read as zero */
	}
}

void rtc_cmos_access(void *opaque, uint64_t offset, uint8_t *data, uint32_t len, bool is_write)
{
	struct rtc_cmos *r = opaque;

	if (len != 1) {
		if (!is_write)
			memset(data, 0xff, len);
		return;
	}
	if (offset == 0) {
		if (is_write)
			r->index = data[0] & RTC_INDEX_MASK;
		else
			data[0] = 0xff;
		return;
	}
	/* Writes to the data port are ignored: the guest cannot set the host's clock. */
	if (!is_write)
		data[0] = rtc_reg(r, r->index);
}

int rtc_cmos_save(struct rtc_cmos *rtc, struct snap_w *w)
{
	snap_put_u32(w, RTC_SNAP_VERSION);
	snap_put_u8(w, rtc->index);
	return w->err ? -ENOMEM : 0;
}

int rtc_cmos_restore(struct rtc_cmos *rtc, struct snap_r *r)
{
	uint8_t index;

	if (snap_get_u32(r) != RTC_SNAP_VERSION)
		snap_r_fail(r);
	index = snap_get_u8(r);
	if (!snap_r_done(r) || (index & ~RTC_INDEX_MASK)) {
		snap_r_fail(r);
		return -EINVAL;
	}
	rtc->index = index;
	return 0;
}
