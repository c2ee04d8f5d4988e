// SPDX-License-Identifier: Apache-2.0
#include "virtio_slots.h"

#include <errno.h>
#include <stdio.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#include "ctl.h"

static void virtio_slot_irq(void *opaque)
{
	struct virtio_slot *sl = opaque;
	uint64_t one = 1;

	/* An eventfd write only fails when the counter would overflow: the IRQ is pending anyway. */
	if (write(sl->irqfd, &one, sizeof(one)) < 0)
		return;
}

static void virtio_slot_kicked(void *opaque, uint32_t events)
{
	struct virtio_slot_kick *k = opaque;
	uint64_t n;

	if (read(k->fd, &n, sizeof(n)) == sizeof(n))
		virtio_mmio_notify(k->slot->dev, k->queue);
}

static int virtio_slot_wire(struct virtio_slot *sl, struct kvm_vm *vm, struct evloop *loop,
			    unsigned int num_queues, msvmm_error *err)
{
	sl->irqfd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (sl->irqfd < 0 || kvm_vm_irqfd(vm, sl->irqfd, sl->gsi) < 0)
		return err_set(err, MSVMM_EKVM, "virtio device at 0x%llx: irqfd: %s",
			       (unsigned long long)sl->base, strerror(errno));
	for (unsigned int q = 0; q < num_queues; q++) {
		struct virtio_slot_kick *k = &sl->kicks[q];

		*k = (struct virtio_slot_kick){ .slot = sl, .queue = q };
		k->fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
		if (k->fd < 0)
			return err_set(err, MSVMM_EIO, "eventfd: %s", strerror(errno));
		sl->nr_kicks++;
		if (kvm_vm_ioeventfd(vm, sl->base + VIRTIO_MMIO_QUEUE_NOTIFY, 4, q, k->fd) < 0 ||
		    evloop_add(loop, k->fd, EPOLLIN, virtio_slot_kicked, k) < 0)
			return err_set(err, MSVMM_EKVM, "virtio device at 0x%llx: queue %u notification set-up failed",
				       (unsigned long long)sl->base, q);
	}
	virtio_mmio_set_irq(sl->dev, virtio_slot_irq, sl);
	virtio_mmio_set_ioeventfd(sl->dev, true);
	return 0;
}

int virtio_slots_add(struct virtio_slots *s, struct kvm_vm *vm, struct bus *mmio, struct evloop *loop,
		     struct virtio_mmio_dev *dev, unsigned int num_queues, void *owner,
		     void (*release)(void *owner), msvmm_error *err)
{
	struct virtio_slot *sl;
	int rc;

	if (s->n == VIRTIO_SLOTS_MAX) {
		release(owner);
		return err_set(err, MSVMM_EINVAL, "too many virtio devices (at most %d)", VIRTIO_SLOTS_MAX);
	}
	sl = &s->slot[s->n];
	*sl = (struct virtio_slot){ .dev = dev, .owner = owner, .release = release, .irqfd = -1,
				    .base = MSVMM_VIRTIO_MMIO_BASE + (uint64_t)s->n * VIRTIO_MMIO_SIZE,
				    .gsi = VIRTIO_SLOTS_GSI_BASE + s->n };
	s->n++;
	if (num_queues > VIRTIO_MMIO_MAX_QUEUES)
		return err_set(err, MSVMM_EINVAL, "virtio device with %u queues", num_queues);
	if (bus_register(mmio, sl->base, VIRTIO_MMIO_SIZE, virtio_mmio_access, dev) < 0)
		return err_set(err, MSVMM_EINTERNAL, "virtio MMIO window overlaps another device");
	rc = virtio_slot_wire(sl, vm, loop, num_queues, err);
	return rc ? rc : (int)(s->n - 1);
}

int virtio_slots_cmdline(const struct virtio_slots *s, char *buf, size_t len)
{
	size_t used = strlen(buf);

	for (unsigned int i = 0; i < s->n; i++) {
		int n = snprintf(buf + used, len - used, " virtio_mmio.device=4K@0x%llx:%u",
				 (unsigned long long)s->slot[i].base, s->slot[i].gsi);

		if (n < 0 || (size_t)n >= len - used)
			return -1;
		used += (size_t)n;
	}
	return 0;
}

void virtio_slots_destroy(struct virtio_slots *s)
{
	for (unsigned int i = 0; i < s->n; i++) {
		struct virtio_slot *sl = &s->slot[i];

		for (unsigned int q = 0; q < sl->nr_kicks; q++)
			close(sl->kicks[q].fd);
		if (sl->irqfd >= 0)
			close(sl->irqfd);
		if (sl->release)
			sl->release(sl->owner);
	}
	s->n = 0;
}
