// SPDX-License-Identifier: Apache-2.0
/*
 * Triple fault: with an IDT of limit 0, any exception finds no gate (#GP),
 * that #GP finds none either (#DF), and #DF failing shuts the CPU down.
 * The VMM must turn the shutdown into an error from msvmm_vm_run, not hang
 * or report a status.
 *
 * "msvmm.fault=int3" on the command line raises the first exception with
 * INT3 instead of UD2: on PVM hosts INT3 at CPL0 cannot be emulated and the
 * VMM injects #BP itself, so that path must cope with a broken IDT too.
 */
#include "guest.h"

int guest_main(const uint8_t *bp)
{
	static const struct desc_ptr no_idt = { 0, 0 };
	const char *cmdline = (const char *)(uint64_t)bp_u32(bp, BP_CMD_LINE_PTR);
	bool int3 = cmdline_has_word(cmdline, "msvmm.fault=int3");

	serial_puts(int3 ? "triple_fault: int3\n" : "triple_fault: ud2\n");
	load_idt(&no_idt);
	if (int3)
		__asm__ volatile("int3");
	else
		__asm__ volatile("ud2");
	/* Still here: the exception was swallowed.  Say so; the test expects no status. */
	serial_puts("triple_fault: survived the fault?!\n");
	return 99;
}
