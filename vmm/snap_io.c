// SPDX-License-Identifier: Apache-2.0
#include "snap_io.h"

#include <stdlib.h>
#include <string.h>

void snap_w_init(struct snap_w *w)
{
	memset(w, 0, sizeof(*w));
}

void snap_w_free(struct snap_w *w)
{
	free(w->buf);
	memset(w, 0, sizeof(*w));
}

void snap_put(struct snap_w *w, const void *p, size_t n)
{
	if (w->err)
		return;
	if (n > w->cap - w->len) {
		size_t cap = w->cap ? w->cap : 256;
		uint8_t *nb;

		while (cap - w->len < n) {
			if (cap > SIZE_MAX / 2) {
				w->err = true;
				return;
			}
			cap *= 2;
		}
		nb = realloc(w->buf, cap);
		if (!nb) {
			w->err = true;
			return;
		}
		w->buf = nb;
		w->cap = cap;
	}
	if (n)
		memcpy(w->buf + w->len, p, n);
	w->len += n;
}

static void snap_put_le(struct snap_w *w, uint64_t v, unsigned int n)
{
	uint8_t b[8];

	for (unsigned int i = 0; i < n; i++)
		b[i] = (uint8_t)(v >> (8 * i));
	snap_put(w, b, n);
}

void snap_put_u8(struct snap_w *w, uint8_t v) { snap_put_le(w, v, 1); }
void snap_put_u16(struct snap_w *w, uint16_t v) { snap_put_le(w, v, 2); }
void snap_put_u32(struct snap_w *w, uint32_t v) { snap_put_le(w, v, 4); }
void snap_put_u64(struct snap_w *w, uint64_t v) { snap_put_le(w, v, 8); }

void snap_patch_u32(struct snap_w *w, size_t at, uint32_t v)
{
	if (w->err || at > w->len || w->len - at < 4)
		return;
	for (unsigned int i = 0; i < 4; i++)
		w->buf[at + i] = (uint8_t)(v >> (8 * i));
}

void snap_r_init(struct snap_r *r, const void *buf, size_t len)
{
	r->buf = buf;
	r->len = len;
	r->pos = 0;
	r->err = false;
}

void snap_get(struct snap_r *r, void *p, size_t n)
{
	if (r->err || n > r->len - r->pos) {
		r->err = true;
		memset(p, 0, n);
		return;
	}
	memcpy(p, r->buf + r->pos, n);
	r->pos += n;
}

static uint64_t snap_get_le(struct snap_r *r, unsigned int n)
{
	uint8_t b[8];
	uint64_t v = 0;

	snap_get(r, b, n);
	for (unsigned int i = 0; i < n; i++)
		v |= (uint64_t)b[i] << (8 * i);
	return v;
}

uint8_t snap_get_u8(struct snap_r *r) { return (uint8_t)snap_get_le(r, 1); }
uint16_t snap_get_u16(struct snap_r *r) { return (uint16_t)snap_get_le(r, 2); }
uint32_t snap_get_u32(struct snap_r *r) { return (uint32_t)snap_get_le(r, 4); }
uint64_t snap_get_u64(struct snap_r *r) { return snap_get_le(r, 8); }

bool snap_get_bool(struct snap_r *r)
{
	uint8_t v = snap_get_u8(r);

	if (v > 1)
		r->err = true;
	return v == 1;
}

void snap_r_fail(struct snap_r *r)
{
	r->err = true;
}

bool snap_r_done(const struct snap_r *r)
{
	return !r->err && r->pos == r->len;
}
