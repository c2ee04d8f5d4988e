// SPDX-License-Identifier: Apache-2.0
#include "kvm.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <string.h>
#include <sys/ioctl.h>
#include <unistd.h>

static const struct {
	int cap;
	const char *name;
} kvm_required_caps[] = {
	{ KVM_CAP_IRQCHIP, "KVM_CAP_IRQCHIP" },
	{ KVM_CAP_USER_MEMORY, "KVM_CAP_USER_MEMORY" },
	{ KVM_CAP_SET_TSS_ADDR, "KVM_CAP_SET_TSS_ADDR" },
	{ KVM_CAP_PIT2, "KVM_CAP_PIT2" },
	{ KVM_CAP_EXT_CPUID, "KVM_CAP_EXT_CPUID" },
};

static int kvm_open(struct kvm_vm *vm, const char *path, msvmm_error *err)
{
	int ver;

	vm->kvm_fd = open(path, O_RDWR | O_CLOEXEC);
	if (vm->kvm_fd < 0) {
		int e = errno;

		if (e == ENOENT)
			return err_set(err, MSVMM_ENOENT, "%s does not exist: KVM is not available on this host", path);
		return err_set(err, err_from_errno(e), "cannot open %s: %s", path, strerror(e));
	}
	ver = ioctl(vm->kvm_fd, KVM_GET_API_VERSION, 0);
	if (ver != KVM_API_VERSION)
		return err_set(err, MSVMM_EKVM, "%s: unsupported KVM API version %d", path, ver);
	for (size_t i = 0; i < sizeof(kvm_required_caps) / sizeof(kvm_required_caps[0]); i++)
		if (ioctl(vm->kvm_fd, KVM_CHECK_EXTENSION, kvm_required_caps[i].cap) <= 0)
			return err_set(err, MSVMM_EKVM, "KVM lacks %s", kvm_required_caps[i].name);
	vm->run_size = ioctl(vm->kvm_fd, KVM_GET_VCPU_MMAP_SIZE, 0);
	if (vm->run_size <= 0)
		return err_set(err, MSVMM_EKVM, "KVM_GET_VCPU_MMAP_SIZE failed");
	return 0;
}

static int kvm_vm_add_ram(struct kvm_vm *vm, msvmm_error *err)
{
	for (unsigned int i = 0; i < vm->mem.nr_regions; i++) {
		const struct guest_mem_region *r = &vm->mem.regions[i];
		struct kvm_userspace_memory_region kr = {
			.slot = i,
			.guest_phys_addr = r->gpa,
			.memory_size = r->size,
			.userspace_addr = (uintptr_t)r->host,
		};

		if (ioctl(vm->vm_fd, KVM_SET_USER_MEMORY_REGION, &kr) < 0)
			return err_set(err, MSVMM_EKVM, "KVM_SET_USER_MEMORY_REGION: %s", strerror(errno));
	}
	vm->nr_slots = vm->mem.nr_regions;
	return 0;
}

static int kvm_vm_platform(struct kvm_vm *vm, msvmm_error *err)
{
	struct kvm_pit_config pit = { .flags = KVM_PIT_SPEAKER_DUMMY };

	if (ioctl(vm->vm_fd, KVM_SET_TSS_ADDR, (unsigned long)KVM_TSS_ADDR) < 0)
		return err_set(err, MSVMM_EKVM, "KVM_SET_TSS_ADDR: %s", strerror(errno));
	/* PIC, IOAPIC and LAPICs in the kernel: must exist before any vCPU. */
	if (ioctl(vm->vm_fd, KVM_CREATE_IRQCHIP, 0) < 0)
		return err_set(err, MSVMM_EKVM, "KVM_CREATE_IRQCHIP: %s", strerror(errno));
	if (ioctl(vm->vm_fd, KVM_CREATE_PIT2, &pit) < 0)
		return err_set(err, MSVMM_EKVM, "KVM_CREATE_PIT2: %s", strerror(errno));
	return 0;
}

int kvm_vm_create(struct kvm_vm *vm, const char *kvm_path, uint64_t ram_bytes, int mem_fd, uint64_t mem_off,
		  msvmm_error *err)
{
	int rc;

	memset(vm, 0, sizeof(*vm));
	vm->kvm_fd = vm->vm_fd = -1;
	rc = kvm_open(vm, kvm_path ? kvm_path : "/dev/kvm", err);
	if (rc)
		goto fail;
	vm->vm_fd = ioctl(vm->kvm_fd, KVM_CREATE_VM, 0);
	if (vm->vm_fd < 0) {
		rc = err_set(err, MSVMM_EKVM, "KVM_CREATE_VM: %s", strerror(errno));
		goto fail;
	}
	rc = kvm_vm_platform(vm, err);
	if (rc)
		goto fail;
	rc = mem_fd >= 0 ? guest_mem_init_file(&vm->mem, ram_bytes, mem_fd, mem_off)
			 : guest_mem_init(&vm->mem, ram_bytes);
	if (rc) {
		rc = err_set(err, MSVMM_ENOMEM, "cannot allocate %llu MiB of guest RAM: %s",
			     (unsigned long long)(ram_bytes >> 20), strerror(-rc));
		goto fail;
	}
	rc = kvm_vm_add_ram(vm, err);
	if (rc)
		goto fail;
	return 0;
fail:
	kvm_vm_destroy(vm);
	return rc;
}

void kvm_vm_destroy(struct kvm_vm *vm)
{
	if (vm->vm_fd >= 0)
		close(vm->vm_fd);
	if (vm->kvm_fd >= 0)
		close(vm->kvm_fd);
	guest_mem_free(&vm->mem);
	vm->vm_fd = vm->kvm_fd = -1;
}

int kvm_vm_irq_line(struct kvm_vm *vm, uint32_t gsi, int level)
{
	struct kvm_irq_level irq = { .irq = gsi, .level = (uint32_t)level };

	return ioctl(vm->vm_fd, KVM_IRQ_LINE, &irq) < 0 ? -errno : 0;
}

int kvm_vm_ioeventfd(struct kvm_vm *vm, uint64_t addr, uint32_t len, uint64_t datamatch, int fd)
{
	struct kvm_ioeventfd io = {
		.datamatch = datamatch, .addr = addr, .len = len, .fd = fd,
		.flags = KVM_IOEVENTFD_FLAG_DATAMATCH,
	};

	return ioctl(vm->vm_fd, KVM_IOEVENTFD, &io) < 0 ? -errno : 0;
}

int kvm_vm_irqfd(struct kvm_vm *vm, int fd, uint32_t gsi)
{
	struct kvm_irqfd irq = { .fd = (uint32_t)fd, .gsi = gsi };

	return ioctl(vm->vm_fd, KVM_IRQFD, &irq) < 0 ? -errno : 0;
}
