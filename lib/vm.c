// SPDX-License-Identifier: Apache-2.0
/*
 * msvmm_vm: a configuration turned into a booted-to-be machine.  Building
 * the VM (kernel, initramfs, run spec, zero page, MP table) happens in
 * create; run enters the guest and turns how the machine ended into a result.
 */
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "agent_proto.h"
#include "boot.h"
#include "config.h"
#include "diag.h"
#include "image.h"
#include "loader.h"
#include "machine.h"
#include "mptable.h"
#include "runspec.h"
#include "scratch.h"
#include "snapcache.h"
#include "snapshot.h"
#include "virtio_vsock.h"
#include "vm.h"

/* The guest kernel's HZ (guest-init/kernel/msvmm.config): lpj = TSC ticks per jiffy. */
#define GUEST_HZ 100

/*
 * Every word here saves guest-kernel work (measured with the instruction
 * counter in guest-init/kernel/test): known-good TSC, no clocksource
 * watchdog, no timer check, CPU-seeded RNG, per-CPU areas by page instead of
 * a zeroed 2 MiB chunk, and msvmm.lean_sysfs=1 (guest-init/kernel/patches).
 */
static const char cmdline_base[] =
	"console=ttyS0 reboot=k panic=-1 tsc=reliable no_timer_check random.trust_cpu=on "
	"percpu_alloc=page msvmm.lean_sysfs=1 rdinit=/init";

#define VM_MAX_RECORDS (3 + MSVMM_MAX_DISKS)
/* How long a snapshot waits for the vCPUs to stop. */
#define VM_SNAPSHOT_PAUSE_MS 5000

/* Root, scratch, every extra disk and the vsock device each take a virtio slot. */
_Static_assert(2 + MSVMM_MAX_DISKS + 1 <= VIRTIO_SLOTS_MAX, "not enough virtio slots for the disks and vsock");

struct msvmm_vm {
	struct machine m;
	/* Run-spec records naming the disks for guest-init ('R', 'S', 'M'). */
	char *records[VM_MAX_RECORDS + 1];
	unsigned int nr_records;
	char kernel[PATH_MAX];
	struct image img;
	uint64_t timeout_ms;
	uint64_t t_create, t_ready;
	bool agent; /* guest-init serves the agent instead of running one command */
	int scratch_fd;             /* the scratch disk's fd (its device owns it), or -1 */
	bool restored;              /* the state came from a snapshot */
	char ident[SNAP_IDENT_MAX]; /* what a snapshot of this VM depends on ("": snapshots off) */
	char snap_save[PATH_MAX];   /* save a ready snapshot here once the agent is up, or "" */
	uint64_t t_snap_opened, t_state_restored;
	bool machine_inited; /* machine_init() ran (whatever it returned) */
};

static int vm_load_kernel(struct msvmm_vm *vm, struct kernel_image *k, msvmm_error *err)
{
	struct stat st;
	void *p;
	int fd, rc;

	fd = open(vm->kernel, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, err_from_errno(errno), "kernel %s: %s", vm->kernel, strerror(errno));
	if (fstat(fd, &st) < 0 || !S_ISREG(st.st_mode) || st.st_size == 0) {
		close(fd);
		return err_set(err, MSVMM_EFORMAT, "kernel %s: not a regular, non-empty file", vm->kernel);
	}
	p = mmap(NULL, (size_t)st.st_size, PROT_READ, MAP_PRIVATE, fd, 0);
	if (p == MAP_FAILED) {
		close(fd);
		return err_set(err, MSVMM_EIO, "kernel %s: %s", vm->kernel, strerror(errno));
	}
	rc = kernel_load_fd(&vm->m.vm.mem, fd, p, (size_t)st.st_size, k, err);
	munmap(p, (size_t)st.st_size);
	close(fd);
	if (rc) {
		/* Name the file: loader messages say what is wrong, not where. */
		msvmm_error inner = *err;

		return err_set(err, inner.code, "kernel %s: %s", vm->kernel, inner.message);
	}
	return 0;
}

/*
 * Put the whole file into guest memory at the page-aligned gpa: mapped
 * copy-on-write (no copy; bytes past EOF in the last page read as zero),
 * or read when mapping fails.
 */
static int vm_read_into(struct msvmm_vm *vm, int fd, uint64_t gpa, uint64_t size, msvmm_error *err)
{
	uint64_t map_len = (size + 4095) & ~4095ULL;
	uint8_t *dst = guest_mem_ptr(&vm->m.vm.mem, gpa, map_len);
	uint64_t done = 0;

	if (!dst)
		return err_set(err, MSVMM_EINVAL, "initramfs does not fit in guest RAM");
	if (mmap(dst, map_len, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_FIXED, fd, 0) != MAP_FAILED)
		return 0;
	while (done < size) {
		ssize_t n = pread(fd, dst + done, size - done, (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return err_set(err, MSVMM_EIO, "image %s: read failed", vm->img.initramfs);
		done += (uint64_t)n;
	}
	return 0;
}

/* Place image initramfs + run-spec archive in guest RAM; returns address and size. */
static int vm_load_initrd(struct msvmm_vm *vm, const msvmm_config *cfg, const struct kernel_image *k,
			  uint64_t *addr, uint64_t *size, msvmm_error *err)
{
	struct cpio_buf spec;
	struct stat st;
	uint64_t base_len;
	int fd, rc;

	/* No command: the image's default, else guest-init's own (/bin/sh). */
	char *dflt[] = { vm->img.default_cmd, NULL };
	char *const *argv = vm->agent ? NULL : cfg->argv ? cfg->argv : vm->img.default_cmd[0] ? dflt : NULL;

	/* An agent gets environment and directory with each command. */
	if (runspec_build(&spec, argv, vm->agent ? NULL : cfg->env, vm->agent ? NULL : cfg->workdir,
			  vm->records) < 0)
		return err_set(err, MSVMM_ENOMEM, "cannot build the run specification");
	fd = open(vm->img.initramfs, O_RDONLY | O_CLOEXEC);
	if (fd < 0 || fstat(fd, &st) < 0) {
		rc = err_set(err, err_from_errno(errno), "image %s: %s", vm->img.initramfs, strerror(errno));
		goto out;
	}
	/* The kernel finds the appended archive at the next 4-byte boundary. */
	base_len = ((uint64_t)st.st_size + 3) & ~3ULL;
	*size = base_len + spec.len;
	*addr = boot_initrd_addr(&vm->m.vm.mem, k, *size);
	if (!*addr) {
		rc = err_set(err, MSVMM_EINVAL, "image %s (%llu MiB) does not fit in %llu MiB of guest RAM",
			     vm->img.initramfs, (unsigned long long)(*size >> 20),
			     (unsigned long long)(vm->m.vm.mem.ram_size >> 20));
		goto out;
	}
	rc = vm_read_into(vm, fd, *addr, (uint64_t)st.st_size, err);
	if (!rc) {
		memset(guest_mem_ptr(&vm->m.vm.mem, *addr + (uint64_t)st.st_size, base_len - (uint64_t)st.st_size),
		       0, base_len - (uint64_t)st.st_size);
		guest_mem_write(&vm->m.vm.mem, *addr + base_len, spec.data, spec.len);
	}
out:
	if (fd >= 0)
		close(fd);
	cpio_free(&spec);
	return rc;
}

static int vm_cmdline(struct msvmm_vm *vm, const msvmm_config *cfg, char *buf, size_t len, msvmm_error *err)
{
	char tsc[96] = "";
	int khz = ioctl(vm->m.vcpus[0].fd, KVM_GET_TSC_KHZ, 0);

	/* Known TSC rate: skip the kernel's PIT calibration and its delay-loop calibration. */
	if (khz > 0)
		snprintf(tsc, sizeof(tsc), " tsc_early_khz=%d lpj=%llu", khz,
			 (unsigned long long)khz * 1000ULL / GUEST_HZ);
	/* One vCPU: the kernel need not patch SMP lock prefixes out and back. */
	if ((size_t)snprintf(buf, len, "%s %s%s%s %s %s", cmdline_base,
			     cfg->kernel_log ? "loglevel=7 earlycon=uart8250,io,0x3f8" : "quiet loglevel=1", tsc,
			     vm->m.nr_vcpus == 1 ? " noreplace-smp" : "", pvm_cmdline(&vm->m.pvm),
			     cfg->extra_cmdline ? cfg->extra_cmdline : "") >= len ||
	    virtio_slots_cmdline(&vm->m.virtio, buf, len) < 0)
		return err_set(err, MSVMM_EINVAL, "kernel command line too long");
	return 0;
}

static int vm_record(struct msvmm_vm *vm, const char *fmt, const char *a, const char *b, const char *c,
		     msvmm_error *err)
{
	char *r;

	if (vm->nr_records == VM_MAX_RECORDS || asprintf(&r, fmt, a, b, c) < 0)
		return err_set(err, MSVMM_ENOMEM, "out of memory");
	vm->records[vm->nr_records++] = r;
	return 0;
}

/* Attach disk fd (owned from here on) as the next /dev/vdX; its name goes in dev. */
static int vm_attach(struct msvmm_vm *vm, int fd, bool ro, const char *what, char dev[16], msvmm_error *err)
{
	int idx = machine_add_blk(&vm->m, fd, ro, what, err);

	if (idx < 0)
		return idx;
	snprintf(dev, 16, "/dev/vd%c", 'a' + idx);
	return 0;
}

/*
 * The image's root (read-only) and a private scratch copy become vda and
 * vdb; restored from a snapshot, the scratch copy is of the disk saved in it.
 */
static int vm_image_disks(struct msvmm_vm *vm, const struct snap_file *sf, msvmm_error *err)
{
	char dev[16];
	int fd, rc;

	if (!vm->img.rootfs[0])
		return 0;
	fd = open(vm->img.rootfs, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return err_set(err, err_from_errno(errno), "image root %s: %s", vm->img.rootfs, strerror(errno));
	rc = vm_attach(vm, fd, true, "msvmm-root", dev, err);
	if (!rc)
		rc = vm_record(vm, "R%s%s%s", dev, "", "", err);
	if (rc || !vm->img.scratch[0])
		return rc;
	if (sf && !sf->disk_len)
		return err_set(err, MSVMM_EFORMAT, "the snapshot holds no scratch disk for image %s", vm->img.dir);
	fd = sf ? scratch_create_from(sf->fd, (off_t)sf->disk_off, (off_t)sf->disk_len)
		: scratch_create(vm->img.scratch);
	if (fd < 0)
		return err_set(err, err_from_errno(-fd), "scratch disk from %s: %s",
			       sf ? "the snapshot" : vm->img.scratch, strerror(-fd));
	vm->scratch_fd = fd;
	rc = vm_attach(vm, fd, false, "msvmm-scratch", dev, err);
	return rc ? rc : vm_record(vm, "S%s%s%s", dev, "", "", err);
}

static int vm_extra_disks(struct msvmm_vm *vm, const msvmm_config *cfg, msvmm_error *err)
{
	for (unsigned int i = 0; i < cfg->nr_disks; i++) {
		const struct msvmm_disk *d = &cfg->disks[i];
		int fd = open(d->path, (d->read_only ? O_RDONLY : O_RDWR) | O_CLOEXEC);
		struct stat st;
		char dev[16];
		int rc;

		if (fd < 0)
			return err_set(err, err_from_errno(errno), "disk %s: %s", d->path, strerror(errno));
		if (fstat(fd, &st) < 0 || !(S_ISREG(st.st_mode) || S_ISBLK(st.st_mode))) {
			close(fd);
			return err_set(err, MSVMM_EINVAL, "disk %s: not a regular file or block device", d->path);
		}
		rc = vm_attach(vm, fd, d->read_only, "msvmm-disk", dev, err);
		if (!rc && d->guest_path)
			rc = vm_record(vm, "M%s:%s:%s", dev, d->guest_path, d->read_only ? "ro" : "rw", err);
		if (rc)
			return rc;
	}
	return 0;
}

/* Every VM gets the vsock device: the agent's channel, and the caller's. */
static int vm_vsock(struct msvmm_vm *vm, const msvmm_config *cfg, msvmm_error *err)
{
	int rc = machine_add_vsock(&vm->m, AGENT_GUEST_CID, err);

	if (rc || !cfg->vsock_uds)
		return rc;
	rc = virtio_vsock_set_uds(vm->m.vsock, cfg->vsock_uds);
	if (rc)
		return err_set(err, err_from_errno(-rc), "vsock socket %s: %s", cfg->vsock_uds, strerror(-rc));
	return 0;
}

static int vm_build(struct msvmm_vm *vm, const msvmm_config *cfg, msvmm_error *err)
{
	char cmdline[BOOT_CMDLINE_MAX];
	struct kernel_image k;
	uint64_t initrd = 0, initrd_size = 0;
	int rc;

	rc = vm_image_disks(vm, NULL, err);
	if (!rc)
		rc = vm_extra_disks(vm, cfg, err);
	if (!rc)
		rc = vm_vsock(vm, cfg, err);
	if (!rc)
		rc = vm_load_kernel(vm, &k, err);
	if (!rc)
		rc = vm_load_initrd(vm, cfg, &k, &initrd, &initrd_size, err);
	if (!rc)
		rc = vm_cmdline(vm, cfg, cmdline, sizeof(cmdline), err);
	if (!rc)
		rc = boot_setup(&vm->m.vm.mem, &k, cmdline, initrd, initrd_size, err);
	if (rc)
		return rc;
	if (mptable_write(&vm->m.vm.mem, vm->m.nr_vcpus) < 0)
		return err_set(err, MSVMM_EINTERNAL, "cannot write the MP table");
	if (!k.is_bzimage)
		vm->m.vmlinux_path = vm->kernel;
	return vcpu_setup_boot(&vm->m.vcpus[0], k.entry, BOOT_ZERO_PAGE_ADDR, err);
}

static int vm_resolve(struct msvmm_vm *vm, const msvmm_config *cfg, msvmm_error *err)
{
	int rc;

	if (!cfg->image)
		return err_set(err, MSVMM_EINVAL, "no image given");
	if (cfg->kernel) {
		if (snprintf(vm->kernel, sizeof(vm->kernel), "%s", cfg->kernel) >= (int)sizeof(vm->kernel))
			return err_set(err, MSVMM_EINVAL, "kernel path too long");
		if (access(vm->kernel, R_OK) < 0)
			return err_set(err, err_from_errno(errno), "kernel %s: %s", vm->kernel, strerror(errno));
	} else {
		rc = image_default_kernel(cfg->data_dirs, vm->kernel, sizeof(vm->kernel), err);
		if (rc)
			return rc;
	}
	return image_resolve(cfg->data_dirs, cfg->image, &vm->img, err);
}

static void vm_free(struct msvmm_vm *vm)
{
	/* A machine never initialised is all zeros: "fd 0" there is not its own. */
	if (vm->machine_inited)
		machine_destroy(&vm->m);
	for (unsigned int i = 0; i < vm->nr_records; i++)
		free(vm->records[i]);
	free(vm);
}

/*
 * A machine resumed from sf: the same devices in the same order as the
 * saved one had (its kernel command line, in the restored RAM, names them),
 * then its state.  The agent was up when the snapshot was taken.
 */
static int vm_build_restored(struct msvmm_vm *vm, const msvmm_config *cfg, const struct snap_file *sf,
			     msvmm_error *err)
{
	static const char elf_magic[4] = { 0x7f, 'E', 'L', 'F' };
	char magic[4] = { 0 };
	int rc, fd;

	rc = vm_image_disks(vm, sf, err);
	if (!rc)
		rc = vm_vsock(vm, cfg, err);
	if (!rc)
		rc = snapshot_restore(&vm->m, sf, err);
	if (rc)
		return rc;
	/* t_boot and t_ready: the control page's restore replays its boot and ready reports. */
	vm->t_state_restored = machine_now_ns();
	/* The guest drops whatever connections it had when the snapshot was taken. */
	if (vm->m.vsock_reset_owed)
		virtio_vsock_transport_reset(vm->m.vsock);
	/* Symbols for error messages: only an ELF vmlinux has them. */
	fd = open(vm->kernel, O_RDONLY | O_CLOEXEC);
	if (fd >= 0 && read(fd, magic, 4) == 4 && !memcmp(magic, elf_magic, 4))
		vm->m.vmlinux_path = vm->kernel;
	if (fd >= 0)
		close(fd);
	return 0;
}

/* Boot (snap NULL) or restore from the snapshot file snap; ident names this configuration's snapshots. */
static int vm_create_once(const msvmm_config *cfg, bool agent, const char *ident, const char *snap,
			  msvmm_vm **out, msvmm_error *err)
{
	uint64_t t0 = machine_now_ns();
	struct snap_file sf = { .fd = -1 };
	struct msvmm_vm *vm;
	int rc;

	vm = calloc(1, sizeof(*vm));
	if (!vm)
		return err_set(err, MSVMM_ENOMEM, "out of memory");
	vm->t_create = t0;
	vm->timeout_ms = agent ? 0 : cfg->timeout_ms;
	vm->agent = agent;
	vm->scratch_fd = -1;
	if (ident)
		snprintf(vm->ident, sizeof(vm->ident), "%s", ident);
	if (agent && (rc = vm_record(vm, "G%s%s%s", "1", "", "", err))) {
		free(vm);
		return rc;
	}
	rc = vm_resolve(vm, cfg, err);
	/* Any sandbox may be snapshotted on request: it needs its identity. */
	if (!rc && agent && !vm->ident[0] &&
	    snapcache_ident(cfg, vm->kernel, &vm->img, vm->ident, sizeof(vm->ident), NULL) < 0)
		vm->ident[0] = '\0';
	if (!rc && snap) {
		rc = snapshot_open(snap, ident, &sf, err);
		vm->t_snap_opened = machine_now_ns();
	}
	if (!rc) {
		vm->machine_inited = true;
		rc = machine_init(&vm->m, (uint64_t)cfg->memory_mib << 20, cfg->vcpus, cfg->console_fd,
				  pvm_detect(), sf.fd, sf.mem_off, err);
	}
	if (!rc) {
		vm->m.profile_hz = cfg->profile_hz;
		rc = snap ? vm_build_restored(vm, cfg, &sf, err) : vm_build(vm, cfg, err);
	}
	if (snap)
		snapshot_close(&sf); /* the RAM mapping keeps what it needs of the file */
	if (rc) {
		vm_free(vm);
		return rc;
	}
	vm->restored = snap != NULL;
	vm->t_ready = machine_now_ns();
	*out = vm;
	return 0;
}

/* This configuration's snapshot identity and file, when it uses snapshots. */
static int vm_snapshot_plan(const msvmm_config *cfg, char *ident, size_t ilen, char *path, size_t plen,
			    msvmm_error *err)
{
	struct msvmm_vm *tmp = calloc(1, sizeof(*tmp));
	int rc;

	if (!tmp)
		return err_set(err, MSVMM_ENOMEM, "out of memory");
	rc = vm_resolve(tmp, cfg, err);
	if (!rc)
		rc = snapcache_ident(cfg, tmp->kernel, &tmp->img, ident, ilen, err);
	if (!rc)
		rc = snapcache_path(cfg, ident, false, path, plen, err);
	free(tmp);
	return rc;
}

int vm_create(const msvmm_config *cfg, bool agent, msvmm_vm **out, msvmm_error *err)
{
	char ident[SNAP_IDENT_MAX], path[PATH_MAX];
	int rc;

	if (err)
		*err = (msvmm_error){ 0 };
	if (!cfg || !out)
		return err_set(err, MSVMM_EINVAL, "invalid arguments");
	*out = NULL;
	if (!agent || !snapcache_eligible(cfg, pvm_detect()))
		return vm_create_once(cfg, agent, NULL, NULL, out, err);
	rc = vm_snapshot_plan(cfg, ident, sizeof(ident), path, sizeof(path), err);
	if (rc)
		return rc;
	if (access(path, F_OK) == 0) {
		rc = vm_create_once(cfg, agent, ident, path, out, err);
		if (!rc || !(cfg->snapshot_mode & MSVMM_SNAPSHOT_FALLBACK))
			return rc;
		/* Allowed to: boot instead, and replace the snapshot that failed. */
	}
	rc = vm_create_once(cfg, agent, ident, NULL, out, err);
	if (!rc)
		snprintf((*out)->snap_save, sizeof((*out)->snap_save), "%s", path);
	return rc;
}

int msvmm_vm_create(const msvmm_config *cfg, msvmm_vm **out, msvmm_error *err)
{
	return vm_create(cfg, false, out, err);
}

static uint64_t since(uint64_t t0, uint64_t t)
{
	return t > t0 ? t - t0 : 0;
}

static void vm_fill_result(struct msvmm_vm *vm, msvmm_result *res)
{
	uint32_t st = vm->m.exit_status;

	memset(res, 0, sizeof(*res));
	if (st & MSVMM_CTL_EXIT_SIGNALED) {
		res->signaled = 1;
		res->term_signal = (int)(st & 0xff);
		res->status = 128 + res->term_signal;
	} else {
		res->exited = 1;
		res->exit_code = (int)(st & 0xff);
		res->status = res->exit_code;
	}
}

static void vm_fill_times(struct msvmm_vm *vm, msvmm_result *res)
{
	const struct pvm *p = &vm->m.pvm;

	res->ns_vm_ready = since(vm->t_create, vm->t_ready);
	res->ns_first_run = since(vm->t_create, vm->m.t_first_run);
	res->ns_init_started = since(vm->t_create, vm->m.t_boot);
	res->ns_exited = since(vm->t_create, vm->m.t_exit);
	res->ns_snapshot_opened = since(vm->t_create, vm->t_snap_opened);
	res->ns_state_restored = since(vm->t_create, vm->t_state_restored);
	res->exits = vm->m.nr_exits;
	res->pvm_int3 = p->nr_int3;
	res->pvm_fwait = p->nr_fwait;
	res->pvm_xsave = p->nr_xsave;
	res->pvm_xrstor = p->nr_xrstor;
	res->pvm_faults_injected = p->nr_pf_injected + p->nr_gp_injected;
}

/* The guest went away on its own: say so, with its last console line when there is one. */
static int vm_died(struct msvmm_vm *vm, const char *how, msvmm_error *err)
{
	char line[200];

	if (uart8250_last_line(&vm->m.uart, line, sizeof(line)))
		return err_set(err, MSVMM_EGUEST, "the guest %s before guest-init reported the command's status; "
			       "its console said: %s", how, line);
	return err_set(err, MSVMM_EGUEST,
		       "the guest %s before guest-init reported the command's status (kernel panic? rerun with --console)",
		       how);
}

int msvmm_vm_run(msvmm_vm *vm, msvmm_result *res, msvmm_error *err)
{
	enum machine_end end;
	msvmm_result tmp;

	if (err)
		*err = (msvmm_error){ 0 };
	if (!vm)
		return err_set(err, MSVMM_EINVAL, "invalid arguments");
	if (!res)
		res = &tmp;
	end = machine_run(&vm->m, vm->timeout_ms);
	memset(res, 0, sizeof(*res));
	if (end == MACHINE_END_EXIT)
		vm_fill_result(vm, res);
	vm_fill_times(vm, res);
	switch (end) {
	case MACHINE_END_EXIT:
		return 0;
	case MACHINE_END_RESET:
	case MACHINE_END_SHUTDOWN:
		return vm_died(vm, end == MACHINE_END_RESET ? "rebooted" : "shut down", err);
	case MACHINE_END_TIMEOUT:
		return err_set(err, MSVMM_ETIMEDOUT, "the guest did not finish within %llu ms",
			       (unsigned long long)vm->timeout_ms);
	case MACHINE_END_STOPPED:
		return err_set(err, MSVMM_ESTOPPED, "the VM was stopped");
	default:
		if (err)
			*err = vm->m.end_err;
		return -(vm->m.end_err.code ? vm->m.end_err.code : MSVMM_EINTERNAL);
	}
}

void msvmm_vm_stop(msvmm_vm *vm)
{
	if (vm)
		machine_stop(&vm->m);
}

int msvmm_vm_profile_report(msvmm_vm *vm, int fd, unsigned int top, msvmm_error *err)
{
	int rc;

	if (!vm)
		return err_set(err, MSVMM_EINVAL, "invalid arguments");
	rc = profile_report(&vm->m.prof, machine_symbols(&vm->m), fd, top);
	return rc ? err_set(err, MSVMM_EIO, "cannot write the profile: %s", strerror(-rc)) : 0;
}

int msvmm_vm_write_diagnostics(msvmm_vm *vm, int fd, msvmm_error *err)
{
	if (!vm || fd < 0)
		return err_set(err, MSVMM_EINVAL, "invalid arguments");
	return machine_diagnose(&vm->m, fd);
}

int msvmm_vm_is_pvm(const msvmm_vm *vm)
{
	return vm && vm->m.pvm.active;
}

void msvmm_vm_destroy(msvmm_vm *vm)
{
	if (!vm)
		return;
	vm_free(vm);
}

struct machine *vm_machine(msvmm_vm *vm)
{
	return &vm->m;
}

const char *vm_default_cmd(const msvmm_vm *vm)
{
	return vm->img.default_cmd[0] ? vm->img.default_cmd : "/bin/sh";
}

const struct image *vm_image(const msvmm_vm *vm)
{
	return &vm->img;
}

void vm_timings(msvmm_vm *vm, msvmm_result *res)
{
	memset(res, 0, sizeof(*res));
	vm_fill_times(vm, res);
}

static int vm_vsock_errno(int rc, uint32_t port, const char *what, msvmm_error *err)
{
	switch (rc) {
	case -ECONNREFUSED:
		return err_set(err, MSVMM_ECONNREFUSED, "vsock %s port %u: refused by the guest (nothing listens there)",
			       what, port);
	case -ETIMEDOUT:
		return err_set(err, MSVMM_ETIMEDOUT, "vsock %s port %u: timed out", what, port);
	case -EAGAIN:
		return err_set(err, MSVMM_EINVAL, "vsock %s port %u: too many connections (at most %d)", what, port,
			       VSOCK_MAX_CONNS);
	default:
		return err_set(err, err_from_errno(-rc), "vsock %s port %u: %s", what, port, strerror(-rc));
	}
}

int msvmm_vm_vsock_connect(msvmm_vm *vm, uint32_t port, unsigned int timeout_ms, int *fd, msvmm_error *err)
{
	int rc;

	if (!vm || !fd || !vm->m.vsock)
		return err_set(err, MSVMM_EINVAL, "invalid arguments");
	rc = virtio_vsock_connect(vm->m.vsock, port, timeout_ms);
	if (rc < 0)
		return vm_vsock_errno(rc, port, "connect to guest", err);
	*fd = rc;
	return 0;
}

int msvmm_vm_vsock_listen(msvmm_vm *vm, uint32_t port, msvmm_error *err)
{
	int rc;

	if (!vm || !vm->m.vsock)
		return err_set(err, MSVMM_EINVAL, "invalid arguments");
	rc = virtio_vsock_listen(vm->m.vsock, port);
	return rc < 0 ? vm_vsock_errno(rc, port, "listen on host", err) : 0;
}

int msvmm_vm_vsock_accept(msvmm_vm *vm, uint32_t port, unsigned int timeout_ms, int *fd, msvmm_error *err)
{
	int rc;

	if (!vm || !fd || !vm->m.vsock)
		return err_set(err, MSVMM_EINVAL, "invalid arguments");
	rc = virtio_vsock_accept(vm->m.vsock, port, timeout_ms);
	if (rc < 0)
		return rc == -EINVAL ? err_set(err, MSVMM_EINVAL, "vsock accept: host port %u is not listened on", port)
				     : vm_vsock_errno(rc, port, "accept on host", err);
	*fd = rc;
	return 0;
}

const char *vm_snapshot_pending(const msvmm_vm *vm)
{
	return vm->snap_save[0] ? vm->snap_save : NULL;
}

bool vm_restored(const msvmm_vm *vm)
{
	return vm->restored;
}

/* mkdir -p of path's directory (the snapshot cache). */
static void vm_mkdir_parent(const char *path)
{
	char dir[PATH_MAX];
	char *slash;

	snprintf(dir, sizeof(dir), "%s", path);
	slash = strrchr(dir, '/');
	if (!slash || slash == dir)
		return;
	*slash = '\0';
	for (char *p = dir + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(dir, 0755);
			*p = '/';
		}
	mkdir(dir, 0755);
}

/* Pause, save into tmp_fd, resume: the vCPUs and the device thread stand still meanwhile. */
static int vm_snapshot_write(struct msvmm_vm *vm, int fd, msvmm_error *err)
{
	struct machine *m = &vm->m;
	int rc;

	if (machine_pause(m, VM_SNAPSHOT_PAUSE_MS) < 0)
		return err_set(err, MSVMM_ESTOPPED, "cannot snapshot: the VM stopped or would not pause");
	evloop_pause(&m->loop);
	rc = snapshot_save(m, fd, vm->ident, vm->scratch_fd, err);
	evloop_resume(&m->loop);
	machine_resume(m);
	return rc;
}

int vm_snapshot_save(msvmm_vm *vm, const char *path, bool replace, msvmm_error *err)
{
	char tmp[PATH_MAX + 64];
	int fd, rc;

	if (!vm->agent || !vm->ident[0] || vm->m.pvm.active)
		return err_set(err, MSVMM_EINVAL, "this VM cannot be snapshotted (%s)",
			       vm->m.pvm.active ? "PVM host" : "not a sandbox");
	if (replace)
		vm_mkdir_parent(path);
	if (snprintf(tmp, sizeof(tmp), "%s.tmp-%d-%llu", path, (int)getpid(),
		     (unsigned long long)machine_now_ns()) >= (int)sizeof(tmp))
		return err_set(err, MSVMM_EINVAL, "snapshot path too long");
	fd = open(tmp, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0644);
	if (fd < 0)
		return err_set(err, err_from_errno(errno), "snapshot %s: %s", tmp, strerror(errno));
	rc = vm_snapshot_write(vm, fd, err);
	close(fd);
	/* Into place whole or not at all; without 'replace' an existing file stays. */
	if (!rc && (replace ? rename(tmp, path) : link(tmp, path)) < 0)
		rc = err_set(err, err_from_errno(errno), "snapshot %s: %s", path, strerror(errno));
	if (rc || !replace)
		unlink(tmp);
	return rc;
}
