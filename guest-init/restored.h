/* SPDX-License-Identifier: Apache-2.0 */
/* guest-init --restored: a restored sandbox's clock and RNG (restored.c). */
#ifndef MSVMM_GUEST_RESTORED_H
#define MSVMM_GUEST_RESTORED_H

#define RESTORED_ARG "--restored"

int restored_main(int argc, char **argv);

#endif
