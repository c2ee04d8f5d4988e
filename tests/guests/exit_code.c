// SPDX-License-Identifier: Apache-2.0
/*
 * The smallest useful guest: one line on the console and a status the test
 * can tell apart from 0 and from any error path (42).
 */
#include "guest.h"

int guest_main(const uint8_t *boot_params __attribute__((unused)))
{
	serial_puts("guest says hi\n");
	return 42;
}
