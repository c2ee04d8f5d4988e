// SPDX-License-Identifier: Apache-2.0
/*
 * A running machine's state for someone debugging a guest that stopped
 * making progress: where each vCPU is (a few RIP samples, with symbols),
 * what interrupts are pending or in service, the IOAPIC pins of the
 * devices, and every virtio device's registers and rings.  Nothing here
 * changes guest state: the vCPUs are paused only to read their registers.
 */
#include "diag.h"

#include <errno.h>
#include <stdbool.h>
#include <linux/kvm.h>
#include <stdio.h>
#include <string.h>
#include <sys/ioctl.h>
#include <time.h>

#include "virtio_vsock.h"

#define DIAG_SAMPLES 3
#define DIAG_PAUSE_MS 2000
#define DIAG_GAP_MS 200
#define DIAG_STACK_BYTES (16 * 1024) /* THREAD_SIZE on x86-64 */
#define DIAG_STACK_MAX 48
/* Where the kernel image's text can be (no KASLR in our guests: it loads at 16 MiB). */
#define DIAG_KTEXT_LO 0xffffffff80000000ULL
#define DIAG_KTEXT_HI 0xffffffffc0000000ULL
#define DIAG_CR4_LA57 (1ULL << 12)
#define DIAG_KERNEL_LO 0xffff800000000000ULL

/* LAPIC register page offsets (Intel SDM vol. 3, table 11-1). */
#define LAPIC_TPR 0x80
#define LAPIC_ISR 0x100
#define LAPIC_IRR 0x200

static void diag_sleep_ms(unsigned int ms)
{
	struct timespec ts = { .tv_sec = ms / 1000, .tv_nsec = (long)(ms % 1000) * 1000000L };

	while (nanosleep(&ts, &ts) < 0 && errno == EINTR)
		;
}

/* The vectors set in one of the LAPIC's 256-bit registers (8 words, 16 bytes apart). */
static void diag_vectors(int fd, const char *what, const struct kvm_lapic_state *l, unsigned int base)
{
	dprintf(fd, " %s", what);
	for (unsigned int w = 0; w < 8; w++) {
		uint32_t bits;

		memcpy(&bits, l->regs + base + 16 * w, 4);
		for (unsigned int b = 0; b < 32; b++)
			if (bits & (1u << b))
				dprintf(fd, " %u", w * 32 + b);
	}
}

/* A guest virtual address through the guest's 4-level page tables; false when not mapped. */
static bool diag_translate(const struct guest_mem *gm, uint64_t cr3, uint64_t va, uint64_t *gpa)
{
	const uint64_t addr_mask = 0x000ffffffffff000ULL;
	uint64_t table = cr3 & addr_mask, e = 0;

	for (int level = 3; level >= 0; level--) {
		unsigned int idx = (unsigned int)(va >> (12 + 9 * level)) & 511;

		if (guest_mem_read(gm, table + 8ULL * idx, &e, 8) < 0 || !(e & 1))
			return false;
		/* A 1 GiB or 2 MiB page ends the walk early. */
		if ((level == 2 || level == 1) && (e & 0x80)) {
			uint64_t span = 1ULL << (12 + 9 * level);

			*gpa = (e & addr_mask & ~(span - 1)) | (va & (span - 1));
			return true;
		}
		table = e & addr_mask;
	}
	*gpa = table | (va & 0xfff);
	return true;
}

/*
 * The kernel text addresses on the stack from rsp up (a scan, not an unwind:
 * stale return addresses show up too), enough to see what a spinning vCPU
 * was doing and what it interrupted.
 */
static void diag_stack_scan(struct machine *m, const struct symbols *syms, uint64_t cr3, uint64_t rsp, int fd)
{
	unsigned int shown = 0;

	dprintf(fd, "  stack:");
	for (uint64_t va = rsp; va < rsp + DIAG_STACK_BYTES && shown < DIAG_STACK_MAX; va += 8) {
		const struct symbol *s;
		uint64_t gpa, word;

		if (!diag_translate(&m->vm.mem, cr3, va, &gpa) || guest_mem_read(&m->vm.mem, gpa, &word, 8) < 0)
			break;
		if (word < DIAG_KTEXT_LO || word >= DIAG_KTEXT_HI || !(s = symbols_lookup(syms, word)))
			continue;
		if (s->size && word - s->addr >= s->size)
			continue;
		dprintf(fd, " %s+%#llx", s->name, (unsigned long long)(word - s->addr));
		shown++;
	}
	dprintf(fd, "\n");
}

/* Kernel code, runnable, interrupts off: a sample of a vCPU that may be stuck. */
static bool diag_irqs_off_in_kernel(const struct kvm_regs *r, const struct kvm_mp_state *mp)
{
	return r->rip >= DIAG_KERNEL_LO && !(r->rflags & (1u << 9)) && mp->mp_state == KVM_MP_STATE_RUNNABLE;
}

/* Returns whether this sample caught the vCPU in kernel code with interrupts off. */
static bool diag_vcpu(struct machine *m, const struct symbols *syms, struct vcpu *v, int fd, bool stack)
{
	struct kvm_sregs sregs;
	struct kvm_regs regs;
	struct kvm_vcpu_events ev;
	struct kvm_mp_state mp;
	struct kvm_lapic_state l;
	const struct symbol *s;
	uint32_t tpr;

	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0 || ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0 ||
	    ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0 ||
	    ioctl(v->fd, KVM_GET_MP_STATE, &mp) < 0 || ioctl(v->fd, KVM_GET_LAPIC, &l) < 0) {
		dprintf(fd, "vcpu %u: cannot read its state: %s\n", v->id, strerror(errno));
		return false;
	}
	bool irqs_off = diag_irqs_off_in_kernel(&regs, &mp);

	s = syms ? symbols_lookup(syms, regs.rip) : NULL;
	memcpy(&tpr, l.regs + LAPIC_TPR, 4);
	dprintf(fd, "vcpu %u: rip %#llx", v->id, (unsigned long long)regs.rip);
	if (s)
		dprintf(fd, " <%s+%#llx>", s->name, (unsigned long long)(regs.rip - s->addr));
	dprintf(fd, " rflags %#llx (IF %d) mp_state %u exits %llu | injected %u vector %u shadow %u nmi %u | tpr %#x",
		(unsigned long long)regs.rflags, (int)((regs.rflags >> 9) & 1), mp.mp_state,
		(unsigned long long)atomic_load(&m->nr_exits), ev.interrupt.injected, ev.interrupt.nr,
		ev.interrupt.shadow, ev.nmi.pending, tpr);
	diag_vectors(fd, "| isr", &l, LAPIC_ISR);
	diag_vectors(fd, "| irr", &l, LAPIC_IRR);
	dprintf(fd, "\n");
	if (!stack || (sregs.cr4 & DIAG_CR4_LA57))
		return irqs_off;
	/* rdi is a spinning function's first argument: for a lock, what its word holds. */
	uint64_t gpa;
	uint32_t word = 0;
	bool mapped = diag_translate(&m->vm.mem, sregs.cr3, regs.rdi, &gpa) &&
		      guest_mem_read(&m->vm.mem, gpa, &word, 4) == 0;

	dprintf(fd, "  rsp %#llx rdi %#llx (*rdi %s%#x) rsi %#llx rax %#llx cr3 %#llx\n",
		(unsigned long long)regs.rsp, (unsigned long long)regs.rdi, mapped ? "" : "unmapped ", word,
		(unsigned long long)regs.rsi, (unsigned long long)regs.rax, (unsigned long long)sregs.cr3);
	if (syms)
		diag_stack_scan(m, syms, sregs.cr3, regs.rsp, fd);
	return irqs_off;
}

/* The IOAPIC pins the devices use: masked, level/edge, remote IRR, vector. */
static void diag_ioapic(struct machine *m, int fd)
{
	struct kvm_irqchip chip = { .chip_id = KVM_IRQCHIP_IOAPIC };

	if (ioctl(m->vm.vm_fd, KVM_GET_IRQCHIP, &chip) < 0) {
		dprintf(fd, "ioapic: KVM_GET_IRQCHIP: %s\n", strerror(errno));
		return;
	}
	dprintf(fd, "ioapic: irr %#x\n", chip.chip.ioapic.irr);
	for (unsigned int i = 0; i < m->virtio.n; i++) {
		uint32_t gsi = m->virtio.slot[i].gsi;

		if (gsi >= KVM_IOAPIC_NUM_PINS)
			continue;
		dprintf(fd, "ioapic: pin %u: vector %u mask %u trig %u remote_irr %u delivery_status %u dest %u\n",
			gsi, chip.chip.ioapic.redirtbl[gsi].fields.vector,
			chip.chip.ioapic.redirtbl[gsi].fields.mask, chip.chip.ioapic.redirtbl[gsi].fields.trig_mode,
			chip.chip.ioapic.redirtbl[gsi].fields.remote_irr,
			chip.chip.ioapic.redirtbl[gsi].fields.delivery_status,
			chip.chip.ioapic.redirtbl[gsi].fields.dest_id);
	}
}

int machine_diagnose(struct machine *m, int fd)
{
	unsigned int irqs_off[MACHINE_MAX_VCPUS] = { 0 }, samples = 0;
	/* Loaded (once per machine) before the first pause, not while the guest stands still. */
	const struct symbols *syms = machine_symbols(m);

	for (unsigned int n = 0; n < DIAG_SAMPLES; n++) {
		if (n)
			diag_sleep_ms(DIAG_GAP_MS);
		if (machine_pause(m, DIAG_PAUSE_MS) < 0) {
			dprintf(fd, "vcpus: did not pause within %u ms\n", DIAG_PAUSE_MS);
			break;
		}
		for (unsigned int i = 0; i < m->nr_vcpus; i++)
			irqs_off[i] += diag_vcpu(m, syms, &m->vcpus[i], fd, n == DIAG_SAMPLES - 1);
		if (n == DIAG_SAMPLES - 1)
			diag_ioapic(m, fd);
		machine_resume(m);
		samples++;
	}
	/*
	 * A healthy kernel keeps interrupts off for microseconds; off in every
	 * sample, DIAG_GAP_MS apart, is a vCPU spinning on a lock (or in a loop)
	 * that nothing can interrupt: a deadlock in the guest kernel.
	 */
	for (unsigned int i = 0; i < m->nr_vcpus && samples == DIAG_SAMPLES; i++)
		if (irqs_off[i] == DIAG_SAMPLES)
			dprintf(fd, "vcpu %u: guest kernel deadlock: kernel code with interrupts off in all %u samples, %u ms apart\n",
				i, DIAG_SAMPLES, DIAG_GAP_MS);
	for (unsigned int i = 0; i < m->virtio.n; i++) {
		char name[48];

		snprintf(name, sizeof(name), "virtio@%#llx/gsi %u", (unsigned long long)m->virtio.slot[i].base,
			 m->virtio.slot[i].gsi);
		virtio_mmio_describe(m->virtio.slot[i].dev, fd, name);
	}
	if (m->vsock)
		virtio_vsock_describe(m->vsock, fd);
	return 0;
}
