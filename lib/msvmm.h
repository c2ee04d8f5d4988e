/* SPDX-License-Identifier: Apache-2.0 */
/*
 * msvmm: hardware-isolated sandboxes that start like processes.
 *
 * Public API, version 0.  A program fills a configuration, creates a VM from
 * it, runs it to completion and reads back how the guest command ended:
 *
 *	msvmm_config *cfg = msvmm_config_new();
 *	msvmm_config_set_kernel(cfg, "vmlinux");
 *	msvmm_config_set_image(cfg, "busybox");
 *	msvmm_config_set_argv(cfg, argv);
 *	msvmm_error err;
 *	msvmm_vm *vm;
 *	if (msvmm_vm_create(cfg, &vm, &err) < 0) { puts(err.message); ... }
 *	msvmm_result res;
 *	msvmm_vm_run(vm, &res, &err);
 *	msvmm_vm_destroy(vm);
 *	msvmm_config_free(cfg);
 *
 * The library never prints and never exits: every failure is a negative
 * MSVMM_E* code returned to the caller, with a one-line human message in the
 * caller's msvmm_error.  There is no global mutable state: everything hangs
 * off a config or VM object, so independent VMs may live in one process.
 */
#ifndef MSVMM_H
#define MSVMM_H

#include <stddef.h>
#include <stdint.h>

#ifdef __cplusplus
extern "C" {
#endif

#define MSVMM_VERSION_MAJOR 0
#define MSVMM_VERSION_MINOR 1
#define MSVMM_VERSION_STRING "0.1.0"

/* Error codes.  Library calls return 0 on success or the negated code. */
enum msvmm_errcode {
	MSVMM_OK = 0,
	MSVMM_EINVAL = 1,    /* invalid argument or configuration */
	MSVMM_ENOMEM = 2,    /* out of host memory */
	MSVMM_ENOENT = 3,    /* a named file or image does not exist */
	MSVMM_EACCES = 4,    /* permission denied (e.g. /dev/kvm) */
	MSVMM_EKVM = 5,      /* KVM refused an operation or lacks a capability */
	MSVMM_EFORMAT = 6,   /* a kernel, image or file is malformed */
	MSVMM_EGUEST = 7,    /* the guest failed (crash, unhandled instruction) */
	MSVMM_EIO = 8,       /* host I/O error */
	MSVMM_ETIMEDOUT = 9, /* the guest did not finish in time */
	MSVMM_EINTERNAL = 10,
	MSVMM_ESTOPPED = 11, /* the VM was stopped by msvmm_vm_stop() */
};

typedef struct msvmm_error {
	int code;           /* enum msvmm_errcode, MSVMM_OK when no error */
	char message[512];  /* one line, no trailing newline */
} msvmm_error;

/* A short, static description of an error code. */
const char *msvmm_strerror(int code);

/* How the guest command ended. */
typedef struct msvmm_result {
	int exited;          /* 1: the command exited with exit_code */
	int exit_code;       /* 0..255 when exited */
	int signaled;        /* 1: the command was killed by term_signal */
	int term_signal;
	int status;          /* shell-style: exit_code, or 128 + term_signal */
	/* Timestamps in nanoseconds since msvmm_vm_create() was entered. */
	uint64_t ns_vm_ready;     /* VM built, about to enter the guest */
	uint64_t ns_first_run;    /* first KVM_RUN issued */
	uint64_t ns_init_started; /* guest-init's boot marker seen (0: never) */
	uint64_t ns_exited;       /* guest reported the command's status */
	/* Counters: VM exits handled in the VMM, and instructions msvmm emulated on PVM. */
	uint64_t exits;
	uint64_t pvm_int3, pvm_fwait, pvm_xsave, pvm_xrstor, pvm_faults_injected;
} msvmm_result;

typedef struct msvmm_config msvmm_config;
typedef struct msvmm_vm msvmm_vm;

msvmm_config *msvmm_config_new(void);
void msvmm_config_free(msvmm_config *cfg);

/* Guest kernel: an ELF vmlinux or a bzImage.  Default: the installed one. */
int msvmm_config_set_kernel(msvmm_config *cfg, const char *path);
/* Image: a name from the image store ("busybox") or a path to an image
 * directory or an initramfs (newc cpio) file. */
int msvmm_config_set_image(msvmm_config *cfg, const char *name_or_path);
/* Directories searched for images and the default kernel, ':'-separated. */
int msvmm_config_set_data_dirs(msvmm_config *cfg, const char *dirs);
int msvmm_config_set_memory_mib(msvmm_config *cfg, unsigned int mib);
int msvmm_config_set_vcpus(msvmm_config *cfg, unsigned int n);
/* The command to run; NULL-terminated.  Empty or NULL: the image default. */
int msvmm_config_set_argv(msvmm_config *cfg, const char *const *argv);
/* Add "KEY=VALUE" to the command's environment. */
int msvmm_config_add_env(msvmm_config *cfg, const char *key_value);
int msvmm_config_set_workdir(msvmm_config *cfg, const char *dir);
/* Where guest console output goes (-1: discarded).  Default: -1. */
int msvmm_config_set_console_fd(msvmm_config *cfg, int fd);
/* 1: let the guest kernel print its log to the console (not quiet). */
int msvmm_config_set_kernel_log(msvmm_config *cfg, int on);
/* Extra words appended to the guest kernel command line. */
int msvmm_config_set_extra_cmdline(msvmm_config *cfg, const char *words);
/* Sample the guest RIP at 'hz' while running (0: off); see msvmm_vm_profile_report. */
int msvmm_config_set_profile_hz(msvmm_config *cfg, unsigned int hz);
/*
 * Attach a raw disk image (at most 6).  guest_path: where guest-init mounts
 * it (ext4), or NULL to only attach it.  A read-only disk is opened
 * read-only and the guest cannot write it.
 */
int msvmm_config_add_disk(msvmm_config *cfg, const char *host_path, const char *guest_path, int read_only);
/* Give up after this many milliseconds of run time (0: never). */
int msvmm_config_set_timeout_ms(msvmm_config *cfg, uint64_t ms);

/* Build a VM from cfg (cfg may be freed afterwards). */
int msvmm_vm_create(const msvmm_config *cfg, msvmm_vm **out, msvmm_error *err);
/* Run the VM until the guest command ends or the guest stops. */
int msvmm_vm_run(msvmm_vm *vm, msvmm_result *res, msvmm_error *err);
/* Ask a running VM to stop (async-signal-safe; callable from any thread). */
void msvmm_vm_stop(msvmm_vm *vm);
/* Write the profile (hottest guest symbols) to fd; 0 or -MSVMM_E*. */
int msvmm_vm_profile_report(msvmm_vm *vm, int fd, unsigned int top, msvmm_error *err);
/* 1 when the host's /dev/kvm is PVM (workarounds active), else 0. */
int msvmm_vm_is_pvm(const msvmm_vm *vm);
void msvmm_vm_destroy(msvmm_vm *vm);

/*
 * The image store.  data_dirs: ':'-separated directories holding images/
 * (NULL: $MSVMM_DATA_DIR, then <exe>/../share/msvmm, /usr/local/share/msvmm).
 * Images are built from their recipes by `make images` (guest-init/images).
 */
/* The directory of image 'name' into out; 0 or -MSVMM_E*. */
int msvmm_image_path(const char *data_dirs, const char *name, char *out, size_t len, msvmm_error *err);
/* Names of the images found, sorted and without duplicates; free with msvmm_image_list_free. */
int msvmm_image_list(const char *data_dirs, char ***names, size_t *count, msvmm_error *err);
void msvmm_image_list_free(char **names, size_t count);
/*
 * Build (or find cached) image 'name' ("busybox", "python") into the first
 * data directory that has the image builder (libexec/msvmm-image-build,
 * installed by `make images`).  Progress goes to log_fd (-1: discarded).
 * Building the python image needs root and the Debian archive.
 */
int msvmm_image_build(const char *data_dirs, const char *name, int log_fd, msvmm_error *err);

#ifdef __cplusplus
}
#endif
#endif
