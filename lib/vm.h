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
/* Timestamps and counters so far (the ns_* and counter fields of res). */
void vm_timings(msvmm_vm *vm, msvmm_result *res);

#endif
