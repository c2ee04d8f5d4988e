/* SPDX-License-Identifier: Apache-2.0 */
/*
 * Wiring virtio-mmio devices into a machine: each gets a 4 KiB MMIO window
 * after the control page, its own interrupt line (delivered through an
 * irqfd), an ioeventfd per queue so a guest kick costs no exit to the VMM,
 * and an entry on the guest kernel command line.  Queue work runs on the
 * machine's event-loop thread, never on a vCPU thread.
 */
#ifndef MSVMM_VIRTIO_SLOTS_H
#define MSVMM_VIRTIO_SLOTS_H

#include <stddef.h>
#include <stdint.h>

#include "bus.h"
#include "err.h"
#include "evloop.h"
#include "kvm.h"
#include "virtio_mmio.h"

/* An image's root and scratch disks, 6 extra disks (MSVMM_MAX_DISKS) and the vsock device. */
#define VIRTIO_SLOTS_MAX 9
#define VIRTIO_SLOTS_GSI_BASE 5 /* 4 is COM1; 5..13 raise nothing else here (no RTC or mouse IRQs) */

struct virtio_slot;

struct virtio_slot_kick {
	struct virtio_slot *slot;
	unsigned int queue;
	int fd;
};

struct virtio_slot {
	struct virtio_mmio_dev *dev;
	void *owner;                /* the device model, freed by 'release' */
	void (*release)(void *owner);
	uint64_t base;
	uint32_t gsi;
	int irqfd;
	struct virtio_slot_kick kicks[VIRTIO_MMIO_MAX_QUEUES];
	unsigned int nr_kicks;
};

struct virtio_slots {
	struct virtio_slot slot[VIRTIO_SLOTS_MAX];
	unsigned int n;
};

/*
 * Attach 'dev' (with num_queues queues); 'owner' and 'release' free the
 * device model when the machine goes.  Returns the slot index or -MSVMM_E*.
 */
int virtio_slots_add(struct virtio_slots *s, struct kvm_vm *vm, struct bus *mmio, struct evloop *loop,
		     struct virtio_mmio_dev *dev, unsigned int num_queues, void *owner,
		     void (*release)(void *owner), msvmm_error *err);
/* Append " virtio_mmio.device=4K@BASE:GSI" per device; 0 or -1 if it does not fit. */
int virtio_slots_cmdline(const struct virtio_slots *s, char *buf, size_t len);
void virtio_slots_destroy(struct virtio_slots *s);

#endif
