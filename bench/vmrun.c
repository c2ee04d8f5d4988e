// SPDX-License-Identifier: Apache-2.0
/*
 * msvmm-vmrun: boot a kernel with the plain VM API (no sandbox, no agent)
 * and copy its console to stdout.  For bench/blk.sh, whose guest is a
 * freestanding test kernel that has no agent for msx to talk to.
 *
 * usage: msvmm-vmrun KERNEL IMAGE MEM_MIB TIMEOUT_S CMDLINE [DISK]
 * Exit status: the guest's status, or 125 with one line on stderr.
 */
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

#include "msvmm.h"

int main(int argc, char **argv)
{
	msvmm_config *cfg;
	msvmm_result res;
	msvmm_error err;
	msvmm_vm *vm = NULL;
	int rc;

	if (argc < 6 || argc > 7) {
		fprintf(stderr, "usage: %s KERNEL IMAGE MEM_MIB TIMEOUT_S CMDLINE [DISK]\n", argv[0]);
		return 125;
	}
	cfg = msvmm_config_new();
	if (!cfg || msvmm_config_set_kernel(cfg, argv[1]) || msvmm_config_set_image(cfg, argv[2]) ||
	    msvmm_config_set_memory_mib(cfg, (unsigned int)atoi(argv[3])) ||
	    msvmm_config_set_timeout_ms(cfg, strtoull(argv[4], NULL, 10) * 1000) ||
	    msvmm_config_set_extra_cmdline(cfg, argv[5]) || msvmm_config_set_console_fd(cfg, STDOUT_FILENO) ||
	    (argc == 7 && msvmm_config_add_disk(cfg, argv[6], NULL, 0))) {
		fprintf(stderr, "msvmm-vmrun: invalid configuration\n");
		msvmm_config_free(cfg);
		return 125;
	}
	rc = msvmm_vm_create(cfg, &vm, &err);
	if (!rc)
		rc = msvmm_vm_run(vm, &res, &err);
	msvmm_vm_destroy(vm);
	msvmm_config_free(cfg);
	if (rc) {
		fprintf(stderr, "msvmm-vmrun: %s\n", err.message);
		return 125;
	}
	return res.status;
}
