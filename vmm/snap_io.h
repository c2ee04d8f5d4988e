/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The byte codec of snapshot sections: a growable little-endian writer and
 * a bounded reader.  A snapshot file is input the VMM did not just write
 * (it may be truncated, corrupted or made by someone else), so every read is
 * checked against the section's end: a short or malformed section sets
 * 'err' and reads as zeros from then on, and the caller refuses the whole
 * snapshot when err is set.  No allocation on the read side.
 */
#ifndef MSVMM_SNAP_IO_H
#define MSVMM_SNAP_IO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

struct snap_w {
	uint8_t *buf;
	size_t len, cap;
	bool err; /* out of memory: the writer's contents are not usable */
};

struct snap_r {
	const uint8_t *buf;
	size_t len, pos;
	bool err; /* read past the end, or a value a device refused */
};

void snap_w_init(struct snap_w *w);
void snap_w_free(struct snap_w *w);
void snap_put(struct snap_w *w, const void *p, size_t n);
void snap_put_u8(struct snap_w *w, uint8_t v);
void snap_put_u16(struct snap_w *w, uint16_t v);
void snap_put_u32(struct snap_w *w, uint32_t v);
void snap_put_u64(struct snap_w *w, uint64_t v);
/* Overwrite the u32 written at offset 'at' (a length or count known only later). */
void snap_patch_u32(struct snap_w *w, size_t at, uint32_t v);

void snap_r_init(struct snap_r *r, const void *buf, size_t len);
/* Copies n bytes to p (zeros once err is set). */
void snap_get(struct snap_r *r, void *p, size_t n);
uint8_t snap_get_u8(struct snap_r *r);
uint16_t snap_get_u16(struct snap_r *r);
uint32_t snap_get_u32(struct snap_r *r);
uint64_t snap_get_u64(struct snap_r *r);
bool snap_get_bool(struct snap_r *r); /* 0 or 1; anything else sets err */
/* Mark the section malformed (a device found a value out of range). */
void snap_r_fail(struct snap_r *r);
/* True when the whole section was consumed without error. */
bool snap_r_done(const struct snap_r *r);

#endif
