/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Machine snapshots: a paused machine's whole state in one file, and a
 * machine resumed from it.
 *
 * File layout (all integers little-endian):
 *   [0, 4096)        header: magic "MSVMMSNP", format version, the offsets
 *                    and sizes below, the RAM size and vCPU count, the
 *                    identity string of what the snapshot belongs to (kernel,
 *                    image, configuration: the caller's), a CRC-32 of the
 *                    state blob and a CRC-32 of the header itself;
 *   [state_off, +state_len)
 *                    the state blob: sections (u32 tag, u32 length, payload)
 *                    for each vCPU, the irqchip, the PIT and each device;
 *   [mem_off, +mem_len)
 *                    guest RAM as the host mapping lays it out, page aligned,
 *                    sparse (zero pages are holes);
 *   [disk_off, +disk_len)
 *                    optionally, the contents of the machine's writable
 *                    scratch disk at the moment of the snapshot (sparse),
 *                    from which each restore makes its own private copy: in
 *                    one file, so RAM and disk can never come from two
 *                    different saves.
 * Restore checks the header, both CRCs, the identity and every size before
 * anything is mapped; guest RAM is then mapped privately from the file
 * (pages are read when the guest first touches them and the file is never
 * written), so restores are cheap and any number can share one file.  RAM
 * itself carries no checksum: checking it would mean reading all of it.
 */
#ifndef MSVMM_SNAPSHOT_H
#define MSVMM_SNAPSHOT_H

#include <stddef.h>
#include <stdint.h>

#include "err.h"
#include "machine.h"

#define SNAP_FORMAT_VERSION 1
#define SNAP_IDENT_MAX 1024

/* An opened, validated snapshot file (its state blob in memory). */
struct snap_file {
	int fd;
	uint64_t ram_size;
	unsigned int nr_vcpus;
	uint64_t mem_off;
	uint64_t disk_off, disk_len; /* disk_len 0: none */
	uint8_t *state;
	size_t state_len;
};

/*
 * Save the paused machine (machine_pause) to fd, which must be empty and
 * seekable, with the contents of disk_fd (-1: none).  ident names what the
 * snapshot belongs to.  0 or -MSVMM_E*.
 */
int snapshot_save(struct machine *m, int fd, const char *ident, int disk_fd, msvmm_error *err);

/*
 * Open path and validate everything but RAM against 'ident' (what the
 * caller is about to build); 0 or -MSVMM_E* with a message naming the
 * problem (not a snapshot, corrupt, truncated, made for something else).
 */
int snapshot_open(const char *path, const char *ident, struct snap_file *sf, msvmm_error *err);
void snapshot_close(struct snap_file *sf);

/*
 * Apply a snapshot's vCPU, interrupt-controller, PIT and device state to a
 * machine created with machine_init(..., sf->fd, sf->mem_off) and given the
 * same devices, in the same order, as the one that was saved.
 */
int snapshot_restore(struct machine *m, const struct snap_file *sf, msvmm_error *err);

#endif
