/* SPDX-License-Identifier: Apache-2.0 */
/* What the sandbox layer needs of msvmm_vm (private to the library). */
#ifndef MSVMM_LIB_VM_H
#define MSVMM_LIB_VM_H

#include <stdbool.h>

#include "machine.h"
#include "msvmm.h"

/* msvmm_vm_create(), or with agent: guest-init serves the agent (lib/agent-protocol.md). */
int vm_create(const msvmm_config *cfg, bool agent, msvmm_vm **out, msvmm_error *err);
struct machine *vm_machine(msvmm_vm *vm);
/* The image's default command (one word), or /bin/sh. */
const char *vm_default_cmd(const msvmm_vm *vm);
/* The image the VM was made from (its runtimes, for run-code). */
struct image;
const struct image *vm_image(const msvmm_vm *vm);
/* The cache file a ready snapshot should be saved to now that the agent is up, or NULL. */
const char *vm_snapshot_pending(const msvmm_vm *vm);
bool vm_restored(const msvmm_vm *vm);
/*
 * Snapshot the running sandbox VM to path (replace: over an existing file,
 * else it must not exist).  0 or -MSVMM_E*.
 */
int vm_snapshot_save(msvmm_vm *vm, const char *path, bool replace, msvmm_error *err);
/* Timestamps and counters so far (the ns_* and counter fields of res). */
void vm_timings(msvmm_vm *vm, msvmm_result *res);

#endif
