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
#define MSVMM_VERSION_MINOR 2
#define MSVMM_VERSION_STRING "0.2.0"

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
	MSVMM_ECONNREFUSED = 12, /* nothing listens on that vsock port (yet) */
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
	/* Restores only (else 0): snapshot validated, state applied to the new VM. */
	uint64_t ns_snapshot_opened, ns_state_restored;
	/* Counters: VM exits handled in the VMM, and instructions msvmm emulated on PVM. */
	uint64_t exits;
	uint64_t pvm_int3, pvm_fwait, pvm_xsave, pvm_xrstor, pvm_faults_injected;
	/* msvmm_exec_wait(): 1 when the exec's timeout expired and the command was killed. */
	int timed_out;
	/*
	 * Run-code only: 1 when the interpreter itself ended during the call
	 * (killed after a timeout, os._exit(), a crash): its state is gone and
	 * the next call starts a new one.
	 */
	int runtime_ended;
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
/* Give up after this many milliseconds of run time (0: never).  msvmm_vm_run() only. */
int msvmm_config_set_timeout_ms(msvmm_config *cfg, uint64_t ms);
/* Sandboxes: how long msvmm_sandbox_start() waits for the guest agent.  Default 120 s. */
int msvmm_config_set_boot_timeout_ms(msvmm_config *cfg, uint64_t ms);
/*
 * Also serve the VM's vsock on the Unix socket 'path' (must not exist; removed
 * when the VM goes), as Firecracker does: a client connects, writes
 * "CONNECT <port>\n" and reads "OK <host_port>\n" once the guest accepted,
 * then the socket is the connection.  A guest connection to host port P that
 * msvmm_vm_vsock_listen() does not claim goes to the Unix socket "<path>_P".
 */
int msvmm_config_set_vsock_uds(msvmm_config *cfg, const char *path);
/*
 * Snapshots (sandboxes only).  A "ready" snapshot is the VM just after its
 * agent came up: nothing of any command is in it.  With MSVMM_SNAPSHOT_CACHE
 * msvmm_sandbox_start() restores the configuration's ready snapshot instead
 * of booting, and when there is none yet boots, saves one, and goes on.
 * 'path' names the file (NULL: a file in the cache directory,
 * $MSVMM_CACHE/snapshots or ~/.cache/msvmm/snapshots, named by a hash of
 * what the snapshot depends on: kernel, image, memory, vCPUs, command line).
 * A snapshot that cannot be used (corrupt, truncated, made for another
 * kernel or image) is an error, unless MSVMM_SNAPSHOT_FALLBACK is added:
 * then the sandbox boots cold and replaces it.  Configurations with extra
 * disks, a profile, or on PVM hosts always boot cold.
 */
#define MSVMM_SNAPSHOT_OFF 0      /* default: always boot */
#define MSVMM_SNAPSHOT_CACHE 1
#define MSVMM_SNAPSHOT_FALLBACK 0x100
int msvmm_config_set_snapshot(msvmm_config *cfg, int mode, const char *path);

/* Build a VM from cfg (cfg may be freed afterwards). */
int msvmm_vm_create(const msvmm_config *cfg, msvmm_vm **out, msvmm_error *err);
/* Run the VM until the guest command ends or the guest stops. */
int msvmm_vm_run(msvmm_vm *vm, msvmm_result *res, msvmm_error *err);
/* Ask a running VM to stop (async-signal-safe; callable from any thread). */
void msvmm_vm_stop(msvmm_vm *vm);
/* Write the profile (hottest guest symbols) to fd; 0 or -MSVMM_E*. */
int msvmm_vm_profile_report(msvmm_vm *vm, int fd, unsigned int top, msvmm_error *err);
/*
 * For a guest that stopped making progress: write its state to fd as text
 * lines (vCPU RIP samples, pending interrupts, IOAPIC pins, virtio
 * registers and rings, vsock connections).  Pauses the vCPUs for a moment;
 * changes nothing in the guest.  The format is for people, not parsers.
 * 0 or -MSVMM_E*.
 */
int msvmm_vm_write_diagnostics(msvmm_vm *vm, int fd, msvmm_error *err);
/* 1 when the host's /dev/kvm is PVM (workarounds active), else 0. */
int msvmm_vm_is_pvm(const msvmm_vm *vm);
void msvmm_vm_destroy(msvmm_vm *vm);

/*
 * vsock: the guest is CID 3, the host CID 2.  These work while
 * msvmm_vm_run() (or a sandbox) runs the VM in another thread.  A connection
 * is a stream socket fd owned by the caller: write and read it, shutdown
 * (SHUT_WR) for a half close, close() to end it.
 */
/*
 * Connect to a guest port; waits up to timeout_ms for the guest to accept.
 * -MSVMM_ECONNREFUSED: nothing listens there (a service still starting may
 * be retried); -MSVMM_ETIMEDOUT: the guest did not answer.
 */
int msvmm_vm_vsock_connect(msvmm_vm *vm, uint32_t port, unsigned int timeout_ms, int *fd, msvmm_error *err);
/* Accept guest connections to host port (1 .. 2^30-1) from now on. */
int msvmm_vm_vsock_listen(msvmm_vm *vm, uint32_t port, msvmm_error *err);
/* The next guest connection to a listened port, waiting up to timeout_ms. */
int msvmm_vm_vsock_accept(msvmm_vm *vm, uint32_t port, unsigned int timeout_ms, int *fd, msvmm_error *err);

/*
 * Sandboxes: a VM whose guest-init serves the agent (lib/agent-protocol.md),
 * so that any number of commands run in it, one after another or at once.
 * State persists between them (files, processes) until the sandbox stops.
 *
 *	msvmm_sandbox *sb;
 *	msvmm_sandbox_start(cfg, &sb, &err);       // boots, waits for the agent
 *	msvmm_exec_opts o;
 *	msvmm_exec_opts_init(&o);
 *	o.argv = (const char *[]){ "sh", "-c", "echo hi", NULL };
 *	o.stdout_fd = 1;
 *	msvmm_sandbox_exec(sb, &o, &res, &err);   // res.status as a shell has it
 *	msvmm_sandbox_destroy(sb);               // syncs the guest's disks, stops
 *
 * The config's argv is not used; its env and workdir are every command's
 * defaults, its timeout is not used (each exec has its own).
 */
typedef struct msvmm_sandbox msvmm_sandbox;
typedef struct msvmm_exec msvmm_exec;

int msvmm_sandbox_start(const msvmm_config *cfg, msvmm_sandbox **out, msvmm_error *err);
/* The sandbox's VM (vsock calls, msvmm_vm_is_pvm, profiles). */
msvmm_vm *msvmm_sandbox_vm(msvmm_sandbox *sb);
/* Boot timings of the sandbox's VM (ns_* since create; exits and PVM counters so far). */
void msvmm_sandbox_timings(msvmm_sandbox *sb, msvmm_result *res);
/*
 * Ask the agent to sync the guest's disks and power off, waiting up to
 * timeout_ms to reach the agent and as long again for the power-off; then
 * the VM is stopped in any case.  0, or -MSVMM_E* when the guest did not
 * shut down cleanly, or had already stopped on its own (it is stopped
 * either way).  Once stopped, 0.
 */
int msvmm_sandbox_stop(msvmm_sandbox *sb, unsigned int timeout_ms, msvmm_error *err);
/* Stop (if still running) and free. */
void msvmm_sandbox_destroy(msvmm_sandbox *sb);
/*
 * Save the running sandbox's whole VM to 'path' (created; must not exist),
 * pausing it meanwhile.  Connections open at that moment are reset in every
 * sandbox restored from it.  0 or -MSVMM_E*.
 */
int msvmm_sandbox_snapshot(msvmm_sandbox *sb, const char *path, msvmm_error *err);
/* 1 when the sandbox started from a snapshot, 0 when it booted. */
int msvmm_sandbox_restored(const msvmm_sandbox *sb);

/* Output callback: stream 1 stdout, 2 stderr; called on the exec_wait thread. */
typedef void (*msvmm_output_fn)(void *opaque, int stream, const void *data, size_t len);

typedef struct msvmm_exec_opts {
	const char *const *argv;   /* argv[0] is looked up in PATH; NULL: the image's default command */
	const char *const *env;    /* extra KEY=VALUE entries, NULL-terminated, or NULL */
	const char *workdir;       /* NULL: the config's, else / */
	const char *user;          /* NULL: root; a name from the guest's /etc/passwd, or UID[:GID] */
	int tty;                   /* 1: run on a pty of rows x cols (stderr joins stdout) */
	unsigned int rows, cols;
	int stdin_fd;              /* -1: /dev/null; else read to EOF and forwarded */
	int stdout_fd, stderr_fd;  /* -1: use on_output, or discard */
	msvmm_output_fn on_output;
	void *opaque;
	uint64_t timeout_ms;       /* 0: none; else SIGKILL to the command's group, res.timed_out */
} msvmm_exec_opts;

void msvmm_exec_opts_init(msvmm_exec_opts *o);
/*
 * Start a command: it is running (or about to) when this returns; its
 * stdin and output are pumped by msvmm_exec_wait() (output it writes before
 * then waits in bounded buffers, so a chatty command blocks until then).
 * Processes it leaves in the background keep running in the sandbox after
 * it exits; their later output is not forwarded.
 */
int msvmm_exec_start(msvmm_sandbox *sb, const msvmm_exec_opts *o, msvmm_exec **out, msvmm_error *err);
/* From any thread, while msvmm_exec_wait() runs: deliver a signal to the command's process group. */
int msvmm_exec_signal(msvmm_exec *ex, int signo);
/* From any thread: the pty's new size (tty execs only). */
int msvmm_exec_resize(msvmm_exec *ex, unsigned int rows, unsigned int cols);
/*
 * Pump input and output until the command ends; res gets its status.  A
 * timeout returns -MSVMM_ETIMEDOUT with res->timed_out set and the status of
 * a SIGKILL (137), also when the guest never confirmed the kill.
 */
int msvmm_exec_wait(msvmm_exec *ex, msvmm_result *res, msvmm_error *err);
void msvmm_exec_free(msvmm_exec *ex);
/* start + wait + free. */
int msvmm_sandbox_exec(msvmm_sandbox *sb, const msvmm_exec_opts *o, msvmm_result *res, msvmm_error *err);

/*
 * Run-code: hand code to one of the image's runtimes, an interpreter that
 * the guest keeps running for the sandbox's life (image.conf's runtime=
 * lines; the python image has "python").  State persists between calls,
 * as in a notebook: a variable one call sets is there for the next.
 *
 *	msvmm_sandbox_run_code(sb, "python", "x = 6 * 7", 9, &o, &res, &err);
 *	msvmm_sandbox_run_code(sb, "python", "print(x)", 8, &o, &res, &err); // 42
 *
 * runtime NULL: the image's first.  The interpreter starts with the first
 * call that needs it (its env and workdir are that call's: o->env, o->workdir
 * over the sandbox's); later calls share it, one at a time: a call made
 * while another runs waits for it.  o may be NULL (output discarded); it
 * takes no argv, tty, stdin_fd or user (the interpreter runs as root, on
 * /dev/null).  Output streams to o's fds or callback as a command's does.
 * res.status: 0; 1 for an uncaught exception (its traceback on stderr); n
 * for SystemExit(n); 130 when interrupted (KeyboardInterrupt).  timeout_ms
 * interrupts the code (SIGINT): -MSVMM_ETIMEDOUT, res.timed_out, status
 * 130, the runtime and its state kept; code that does not stop on SIGINT
 * within 2 s is killed with its interpreter (status 137, res.runtime_ended).
 * -MSVMM_ENOENT when the image has no such runtime.  The code is at most
 * 1 MiB, without NUL bytes.  msvmm_exec_signal() reaches the interpreter's
 * process group (SIGINT: KeyboardInterrupt).
 */
int msvmm_run_code_start(msvmm_sandbox *sb, const char *runtime, const char *code, size_t len,
			 const msvmm_exec_opts *o, msvmm_exec **out, msvmm_error *err);
/* msvmm_run_code_start() + msvmm_exec_wait() + msvmm_exec_free(). */
int msvmm_sandbox_run_code(msvmm_sandbox *sb, const char *runtime, const char *code, size_t len,
			   const msvmm_exec_opts *o, msvmm_result *res, msvmm_error *err);

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
/*
 * 0 when image 'name' has the runtime 'runtime' for run-code (NULL: any
 * runtime), else -MSVMM_ENOENT (or the image's own error) with a message.
 */
int msvmm_image_has_runtime(const char *data_dirs, const char *name, const char *runtime, msvmm_error *err);

#ifdef __cplusplus
}
#endif
#endif
