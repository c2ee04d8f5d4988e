/* SPDX-License-Identifier: Apache-2.0 */
/* A restored sandbox's clock and RNG: the agent's S record (restored.c). */
#ifndef MSVMM_GUEST_RESTORED_H
#define MSVMM_GUEST_RESTORED_H

#include <stddef.h>
#include <stdint.h>

#define RESTORED_ARG "--restored"
#define RESTORED_SEED_MAX 64

/*
 * Check "REALTIME_NS:SEED_HEX" (1-64 bytes of seed) and, for the pointers
 * that are not NULL, decode it: 0, or -EINVAL.
 */
int restored_parse(const char *rec, uint64_t *ns, uint8_t *seed, size_t *seed_len);

/* Set the wall clock and reseed the kernel's RNG from rec: 0 or -errno. */
int restored_apply(const char *rec);

/* `/proc/1/exe --restored`: nothing left to do (the S record did it); 0. */
int restored_main(int argc, char **argv);

#endif
