/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The msvmm control device: one MMIO page through which guest-init tells the
 * VMM that it has started (the boot timer) and how the command ended.  This
 * header is shared by the VMM and guest-init; guest-init reaches the page by
 * mmap()ing /dev/mem, as Firecracker's boot timer does.
 *
 * Registers are 32 bits wide:
 *   0x00 MAGIC  read: MSVMM_CTL_MAGIC_VALUE
 *   0x04 BOOT   write: guest-init is running (any value)
 *   0x08 EXIT   write: the command's status; the VM stops at once
 *               bits 0-7: exit code, or the signal number when bit 8 is set
 *   0x0c PHASE  write: a numbered progress marker (timings only)
 *   0x10 READY  write: the vsock agent listens (lib/agent-protocol.md)
 */
#ifndef MSVMM_CTL_H
#define MSVMM_CTL_H

#define MSVMM_CTL_BASE 0xd0000000ULL
#define MSVMM_CTL_SIZE 0x1000
#define MSVMM_CTL_MAGIC 0x00
#define MSVMM_CTL_BOOT 0x04
#define MSVMM_CTL_EXIT 0x08
#define MSVMM_CTL_PHASE 0x0c
#define MSVMM_CTL_READY 0x10
#define MSVMM_CTL_MAGIC_VALUE 0x4d56534dU /* "MSVM" little-endian */
#define MSVMM_CTL_EXIT_SIGNALED 0x100U

/* virtio-mmio devices follow the control page. */
#define MSVMM_VIRTIO_MMIO_BASE (MSVMM_CTL_BASE + MSVMM_CTL_SIZE)

/*
 * The run specification: the VMM appends a second newc cpio archive to the
 * image's initramfs holding this file.  It is a sequence of records, each a
 * type byte followed by a NUL-terminated string:
 *   'A' one argv element (in order)    'E' one KEY=VALUE environment entry
 *   'W' working directory               'D' 1 = run the image default command
 *   'R' block device holding the image's read-only root filesystem (ext4)
 *   'S' block device of the sandbox's writable scratch disk (ext4); without
 *       it the writable layer is a tmpfs
 *   'G' 1 = agent mode, instead of 'A'/'D'/'W': serve the vsock agent
 *       (lib/agent-protocol.md) for any number of commands; 'E' is their
 *       base environment
 * With 'R', guest-init mounts an overlay (lower: R, upper: S or tmpfs) and
 * switches root into it before running the command.
 */
#define MSVMM_RUN_SPEC_PATH "/msvmm/run"

#endif
