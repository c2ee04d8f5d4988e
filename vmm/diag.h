/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Diagnostics for a guest that stopped making progress (see diag.c).
 */
#ifndef MSVMM_DIAG_H
#define MSVMM_DIAG_H

#include "machine.h"

/* Write the machine's vCPU, interrupt and device state to fd as lines.  0. */
int machine_diagnose(struct machine *m, int fd);

#endif
