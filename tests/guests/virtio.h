/* SPDX-License-Identifier: Apache-2.0 */
/*
 * A minimal guest-side virtio-mmio (modern, version 2) driver for the
 * freestanding test guests: probe, negotiate, one split virtqueue (queue 0)
 * driven by polling the used ring, and virtio-blk requests on top.
 *
 * Written from the virtio 1.x specification, not from devices/: these guests
 * test the VMM's device model, and sharing its headers would let a mistake
 * on both sides agree with itself.  Everything is static inline (each guest
 * is one C file).  No interrupts: the guests run with IF clear, so completion
 * is found by polling used.idx, with a TSC deadline so that a device that
 * never answers turns into a reported failure rather than a hung guest.
 *
 * Guest RAM is identity-mapped, so the address of a static object is its
 * guest-physical address: rings and buffers live in aligned .bss arrays.
 */
#ifndef MSVMM_TEST_VIRTIO_H
#define MSVMM_TEST_VIRTIO_H

#include "guest.h"

/* ---- virtio-mmio registers (virtio 1.x 4.2.2) ---- */

#define VIO_MAGIC_VALUE 0x000
#define VIO_VERSION 0x004
#define VIO_DEVICE_ID 0x008
#define VIO_DEVICE_FEATURES 0x010
#define VIO_DEVICE_FEATURES_SEL 0x014
#define VIO_DRIVER_FEATURES 0x020
#define VIO_DRIVER_FEATURES_SEL 0x024
#define VIO_QUEUE_SEL 0x030
#define VIO_QUEUE_NUM_MAX 0x034
#define VIO_QUEUE_NUM 0x038
#define VIO_QUEUE_READY 0x044
#define VIO_QUEUE_NOTIFY 0x050
#define VIO_INTERRUPT_STATUS 0x060
#define VIO_INTERRUPT_ACK 0x064
#define VIO_STATUS 0x070
#define VIO_QUEUE_DESC_LOW 0x080
#define VIO_QUEUE_DESC_HIGH 0x084
#define VIO_QUEUE_AVAIL_LOW 0x090
#define VIO_QUEUE_AVAIL_HIGH 0x094
#define VIO_QUEUE_USED_LOW 0x0a0
#define VIO_QUEUE_USED_HIGH 0x0a4
#define VIO_CONFIG 0x100

#define VIO_MAGIC 0x74726976U /* "virt" */

#define VIO_INT_VRING 0x1U
#define VIO_INT_CONFIG 0x2U

#define VIO_S_ACKNOWLEDGE 0x01U
#define VIO_S_DRIVER 0x02U
#define VIO_S_DRIVER_OK 0x04U
#define VIO_S_FEATURES_OK 0x08U
#define VIO_S_NEEDS_RESET 0x40U
#define VIO_S_FAILED 0x80U

/* Feature bit numbers. */
#define VIO_F_INDIRECT_DESC 28
#define VIO_F_EVENT_IDX 29
#define VIO_F_VERSION_1 32
#define VIO_BIT(n) (1ULL << (n))

#define VQ_DESC_F_NEXT 1
#define VQ_DESC_F_WRITE 2
#define VQ_DESC_F_INDIRECT 4

/* ---- virtio-blk (virtio 1.x 5.2) ---- */

#define VIRTIO_DEV_BLOCK 2

#define VBLK_F_SIZE_MAX 1
#define VBLK_F_SEG_MAX 2
#define VBLK_F_RO 5
#define VBLK_F_BLK_SIZE 6
#define VBLK_F_FLUSH 9

#define VBLK_T_IN 0
#define VBLK_T_OUT 1
#define VBLK_T_FLUSH 4
#define VBLK_T_GET_ID 8

#define VBLK_S_OK 0
#define VBLK_S_IOERR 1
#define VBLK_S_UNSUPP 2

#define VBLK_SECTOR 512
#define VBLK_ID_BYTES 20

/* Config space offsets (struct virtio_blk_config). */
#define VBLK_CFG_CAPACITY 0
#define VBLK_CFG_SIZE_MAX 8
#define VBLK_CFG_SEG_MAX 12
#define VBLK_CFG_BLK_SIZE 20

/* ---- the ring memory ---- */

/* Largest queue these guests drive; the ring block below is sized for it. */
#define VQ_SIZE_MAX 256

struct vq_desc {
	uint64_t addr;
	uint32_t len;
	uint16_t flags;
	uint16_t next;
};

struct vq_used_elem {
	uint32_t id;
	uint32_t len;
};

/*
 * One queue's rings, laid out for the largest size: for a smaller queue the
 * entries simply stop earlier, and with EVENT_IDX the used_event and
 * avail_event fields of a queue of size n sit right after its n entries,
 * still inside this block (vq_avail_event() finds the device's).  Page-aligned parts satisfy every
 * alignment the spec asks for (16, 2, 4).
 */
struct vq_rings {
	struct vq_desc desc[VQ_SIZE_MAX];
	struct {
		uint16_t flags;
		uint16_t idx;
		uint16_t ring[VQ_SIZE_MAX];
		uint16_t used_event;
	} avail __attribute__((aligned(4096)));
	struct {
		uint16_t flags;
		uint16_t idx;
		struct vq_used_elem ring[VQ_SIZE_MAX];
		uint16_t avail_event;
	} used __attribute__((aligned(4096)));
} __attribute__((aligned(4096)));

/* One device with its queue 0 as this driver sees it. */
struct vdev {
	uint64_t base;
	uint64_t features;       /* negotiated */
	uint16_t qsize;
	struct vq_rings *rings;
	uint16_t avail_idx;      /* next avail idx the driver publishes */
	uint16_t used_seen;      /* used entries consumed */
	uint64_t timeout_ticks;  /* TSC ticks vq_wait() gives a request */
};

/* Results; the guests turn them into their own failure codes. */
enum {
	VIO_OK = 0,
	VIO_E_MAGIC,     /* no virtio-mmio device at base */
	VIO_E_VERSION,   /* not the modern (version 2) interface */
	VIO_E_DEVID,     /* a different device type */
	VIO_E_RESET,     /* status did not read back 0 after a reset */
	VIO_E_NO_V1,     /* VERSION_1 not offered */
	VIO_E_FEATURES,  /* FEATURES_OK did not stick */
	VIO_E_QUEUE,     /* queue 0 absent, too small, or QueueReady refused */
	VIO_E_DRIVER_OK, /* DRIVER_OK did not stick */
	VIO_E_TIMEOUT,   /* a request never completed */
	VIO_E_BROKEN,    /* the device set DEVICE_NEEDS_RESET */
	VIO_E_USED,      /* the used ring returned something we did not submit */
};

static inline const char *vio_strerror(int e)
{
	static const char *const s[] = {
		"ok", "bad magic", "not version 2", "wrong device id", "reset did not stick",
		"VERSION_1 not offered", "FEATURES_OK refused", "queue set-up refused",
		"DRIVER_OK refused", "request timed out", "device needs reset", "bogus used entry",
	};

	return e >= 0 && e < (int)(sizeof(s) / sizeof(s[0])) ? s[e] : "?";
}

/* Keeps the compiler from moving ring accesses across it; x86 is TSO, so that is all a polled ring needs. */
static inline void vio_barrier(void)
{
	__asm__ volatile("" ::: "memory");
}

static inline uint64_t rdtsc(void)
{
	uint32_t lo, hi;

	__asm__ volatile("rdtsc" : "=a"(lo), "=d"(hi));
	return (uint64_t)hi << 32 | lo;
}

static inline uint32_t vio_read(const struct vdev *d, uint32_t off)
{
	return mmio_read32(d->base + off);
}

static inline void vio_write(const struct vdev *d, uint32_t off, uint32_t v)
{
	mmio_write32(d->base + off, v);
}

static inline uint32_t vio_status(const struct vdev *d)
{
	return vio_read(d, VIO_STATUS);
}

/* Is there a modern virtio-mmio device of type 'device_id' at 'base'? */
static inline int vio_probe(uint64_t base, uint32_t device_id)
{
	if (mmio_read32(base + VIO_MAGIC_VALUE) != VIO_MAGIC)
		return VIO_E_MAGIC;
	if (mmio_read32(base + VIO_VERSION) != 2)
		return VIO_E_VERSION;
	if (mmio_read32(base + VIO_DEVICE_ID) != device_id)
		return VIO_E_DEVID;
	return VIO_OK;
}

/* Write 0 to status and wait for it to read back 0 (the spec's reset handshake). */
static inline int vio_reset(struct vdev *d)
{
	vio_write(d, VIO_STATUS, 0);
	for (unsigned int i = 0; i < 1000; i++)
		if (vio_status(d) == 0)
			return VIO_OK;
	return VIO_E_RESET;
}

static inline uint64_t vio_device_features(const struct vdev *d)
{
	uint64_t lo, hi;

	vio_write(d, VIO_DEVICE_FEATURES_SEL, 0);
	lo = vio_read(d, VIO_DEVICE_FEATURES);
	vio_write(d, VIO_DEVICE_FEATURES_SEL, 1);
	hi = vio_read(d, VIO_DEVICE_FEATURES);
	return hi << 32 | lo;
}

/* Set status bits on top of those already set (the register only moves forward). */
static inline bool vio_add_status(struct vdev *d, uint32_t bits)
{
	vio_write(d, VIO_STATUS, vio_status(d) | bits);
	return (vio_status(d) & bits) == bits;
}

/*
 * Reset, ACKNOWLEDGE + DRIVER, accept the offered subset of 'want' plus
 * VERSION_1, FEATURES_OK, and check that it stuck (virtio 1.x 3.1.1 steps 1-6).
 */
static inline int vio_negotiate(struct vdev *d, uint64_t want)
{
	uint64_t offered, accept;
	int r = vio_reset(d);

	if (r)
		return r;
	if (!vio_add_status(d, VIO_S_ACKNOWLEDGE) || !vio_add_status(d, VIO_S_DRIVER))
		return VIO_E_FEATURES;
	offered = vio_device_features(d);
	if (!(offered & VIO_BIT(VIO_F_VERSION_1)))
		return VIO_E_NO_V1;
	accept = offered & (want | VIO_BIT(VIO_F_VERSION_1));
	vio_write(d, VIO_DRIVER_FEATURES_SEL, 0);
	vio_write(d, VIO_DRIVER_FEATURES, (uint32_t)accept);
	vio_write(d, VIO_DRIVER_FEATURES_SEL, 1);
	vio_write(d, VIO_DRIVER_FEATURES, (uint32_t)(accept >> 32));
	if (!vio_add_status(d, VIO_S_FEATURES_OK))
		return VIO_E_FEATURES;
	d->features = accept;
	return VIO_OK;
}

/*
 * Point queue 0 at explicit ring addresses and ask for QueueReady.  Returns
 * VIO_OK only if the device took it (QueueReady reads back 1); hostile tests
 * pass bad addresses on purpose and expect VIO_E_QUEUE.
 */
static inline int vio_queue_setup(struct vdev *d, uint16_t size, uint64_t desc, uint64_t avail, uint64_t used)
{
	vio_write(d, VIO_QUEUE_SEL, 0);
	if (vio_read(d, VIO_QUEUE_READY) != 0)
		return VIO_E_QUEUE;
	if (vio_read(d, VIO_QUEUE_NUM_MAX) < size)
		return VIO_E_QUEUE;
	vio_write(d, VIO_QUEUE_NUM, size);
	vio_write(d, VIO_QUEUE_DESC_LOW, (uint32_t)desc);
	vio_write(d, VIO_QUEUE_DESC_HIGH, (uint32_t)(desc >> 32));
	vio_write(d, VIO_QUEUE_AVAIL_LOW, (uint32_t)avail);
	vio_write(d, VIO_QUEUE_AVAIL_HIGH, (uint32_t)(avail >> 32));
	vio_write(d, VIO_QUEUE_USED_LOW, (uint32_t)used);
	vio_write(d, VIO_QUEUE_USED_HIGH, (uint32_t)(used >> 32));
	vio_write(d, VIO_QUEUE_READY, 1);
	return vio_read(d, VIO_QUEUE_READY) == 1 ? VIO_OK : VIO_E_QUEUE;
}

/* A 64-bit safe default deadline: ~10 s at 2 GHz, ~5 s at 4 GHz. */
#define VIO_DEFAULT_TIMEOUT_TICKS 20000000000ULL

/*
 * Full bring-up of device 'base' with queue 0 of 'qsize' entries in 'rings'
 * (zeroed here): everything up to and including DRIVER_OK.
 */
static inline int vio_init(struct vdev *d, uint64_t base, uint32_t device_id, uint64_t want, uint16_t qsize,
			   struct vq_rings *rings)
{
	int r;

	d->base = base;
	d->rings = rings;
	d->qsize = qsize;
	d->avail_idx = d->used_seen = 0;
	if (!d->timeout_ticks)
		d->timeout_ticks = VIO_DEFAULT_TIMEOUT_TICKS;
	r = vio_probe(base, device_id);
	if (!r)
		r = vio_negotiate(d, want);
	if (r)
		return r;
	memset(rings, 0, sizeof(*rings));
	r = vio_queue_setup(d, qsize, (uint64_t)(uintptr_t)rings->desc, (uint64_t)(uintptr_t)&rings->avail,
			    (uint64_t)(uintptr_t)&rings->used);
	if (r)
		return r;
	return vio_add_status(d, VIO_S_DRIVER_OK) ? VIO_OK : VIO_E_DRIVER_OK;
}

/* ---- the queue ---- */

static inline void vq_set_desc(struct vdev *d, uint16_t i, uint64_t addr, uint32_t len, uint16_t flags,
			       uint16_t next)
{
	d->rings->desc[i] = (struct vq_desc){ .addr = addr, .len = len, .flags = flags, .next = next };
}

/* Put 'head' in the next avail slot, then publish it; 'notify' kicks the device. */
static inline void vq_publish(struct vdev *d, uint16_t head, bool notify)
{
	d->rings->avail.ring[d->avail_idx % d->qsize] = head;
	vio_barrier(); /* the entry before the idx that exposes it */
	d->avail_idx++;
	*(volatile uint16_t *)&d->rings->avail.idx = d->avail_idx;
	vio_barrier();
	if (notify)
		vio_write(d, VIO_QUEUE_NOTIFY, 0);
}

/* Set avail.idx to anything (hostile tests), then kick. */
static inline void vq_set_avail_idx(struct vdev *d, uint16_t idx)
{
	d->avail_idx = idx;
	*(volatile uint16_t *)&d->rings->avail.idx = idx;
	vio_barrier();
	vio_write(d, VIO_QUEUE_NOTIFY, 0);
}

static inline uint16_t vq_used_idx(const struct vdev *d)
{
	return *(volatile uint16_t *)&d->rings->used.idx;
}

/*
 * With EVENT_IDX: the avail_event field the device writes after the used
 * ring of the negotiated size ("notify me when avail idx passes this").
 */
static inline uint16_t vq_avail_event(const struct vdev *d)
{
	return *(volatile uint16_t *)((uint8_t *)&d->rings->used + 4 + sizeof(struct vq_used_elem) * d->qsize);
}

/* Take one used entry if there is one: true and *e filled. */
static inline bool vq_poll(struct vdev *d, struct vq_used_elem *e)
{
	if (vq_used_idx(d) == d->used_seen)
		return false;
	vio_barrier(); /* the element after the idx that covers it */
	*e = *(volatile struct vq_used_elem *)&d->rings->used.ring[d->used_seen % d->qsize];
	d->used_seen++;
	return true;
}

/*
 * Wait for one used entry.  The status register costs an exit to read, so it
 * is looked at only every so often: often enough that a device which gave
 * up on the queue (DEVICE_NEEDS_RESET) is noticed at once, not at the deadline.
 */
static inline int vq_wait(struct vdev *d, struct vq_used_elem *e)
{
	uint64_t start = rdtsc();

	for (unsigned int spin = 0;; spin++) {
		if (vq_poll(d, e))
			return VIO_OK;
		if (!(spin & 63)) {
			if (vio_status(d) & VIO_S_NEEDS_RESET)
				return VIO_E_BROKEN;
			if (rdtsc() - start > d->timeout_ticks)
				return VIO_E_TIMEOUT;
		}
		__asm__ volatile("pause");
	}
}

/* One buffer of a chain. */
struct vq_buf {
	const void *addr;
	uint32_t len;
	bool writable; /* device-writable */
};

/*
 * Run one chain of 'n' buffers from descriptor 'first' (consecutive
 * descriptors, NEXT-linked) and wait for it.  *used_len gets the device's
 * byte count.  Only one chain is in flight, so the used entry must name it.
 */
static inline int vq_run_at(struct vdev *d, uint16_t first, const struct vq_buf *b, unsigned int n,
			    uint32_t *used_len)
{
	struct vq_used_elem e;
	int r;

	for (unsigned int i = 0; i < n; i++)
		vq_set_desc(d, (uint16_t)(first + i), (uint64_t)(uintptr_t)b[i].addr, b[i].len,
			    (uint16_t)((b[i].writable ? VQ_DESC_F_WRITE : 0) | (i + 1 < n ? VQ_DESC_F_NEXT : 0)),
			    (uint16_t)(i + 1 < n ? first + i + 1 : 0));
	vq_publish(d, first, true);
	r = vq_wait(d, &e);
	if (r)
		return r;
	if (e.id != first)
		return VIO_E_USED;
	if (used_len)
		*used_len = e.len;
	return VIO_OK;
}

static inline int vq_run(struct vdev *d, const struct vq_buf *b, unsigned int n, uint32_t *used_len)
{
	return vq_run_at(d, 0, b, n, used_len);
}

/* ---- virtio-blk requests ---- */

struct vblk_hdr {
	uint32_t type;
	uint32_t reserved;
	uint64_t sector;
};

/* Header and status in guest RAM for one request in flight per device. */
struct vblk {
	struct vdev v;
	struct vblk_hdr hdr __attribute__((aligned(16)));
	uint8_t status;
};

static inline uint64_t vblk_cfg64(const struct vdev *d, uint32_t off)
{
	/* Two 32-bit reads: config space is little-endian, and this stays within what any transport allows. */
	return (uint64_t)mmio_read32(d->base + VIO_CONFIG + off + 4) << 32 | mmio_read32(d->base + VIO_CONFIG + off);
}

static inline uint32_t vblk_cfg32(const struct vdev *d, uint32_t off)
{
	return mmio_read32(d->base + VIO_CONFIG + off);
}

/*
 * A request whose data is 'nseg' buffers (all device-readable for OUT,
 * all device-writable otherwise), framed by the header and the status byte
 * in their own descriptors, as Linux does.  Returns a VIO_* transport
 * result; the request's own outcome is in *status (0xff if never written).
 */
static inline int vblk_request_segs(struct vblk *b, uint32_t type, uint64_t sector, const struct vq_buf *segs,
				    unsigned int nseg, uint8_t *status, uint32_t *used_len)
{
	struct vq_buf chain[VQ_SIZE_MAX];
	unsigned int n = 0;
	uint32_t used = 0;
	int r;

	if (nseg + 2 > b->v.qsize)
		return VIO_E_QUEUE;
	b->hdr = (struct vblk_hdr){ .type = type, .sector = sector };
	b->status = 0xff;
	chain[n++] = (struct vq_buf){ &b->hdr, sizeof(b->hdr), false };
	for (unsigned int i = 0; i < nseg; i++)
		chain[n++] = (struct vq_buf){ segs[i].addr, segs[i].len, type != VBLK_T_OUT };
	chain[n++] = (struct vq_buf){ &b->status, 1, true };
	r = vq_run(&b->v, chain, n, &used);
	*status = *(volatile uint8_t *)&b->status;
	if (used_len)
		*used_len = used;
	return r;
}

/* The common case: one data buffer (or none, len 0). */
static inline int vblk_request(struct vblk *b, uint32_t type, uint64_t sector, void *buf, uint32_t len,
			       uint8_t *status, uint32_t *used_len)
{
	struct vq_buf seg = { buf, len, false };

	return vblk_request_segs(b, type, sector, &seg, len ? 1 : 0, status, used_len);
}

/* ---- command line ---- */

static inline const char *vio_cmdline(const uint8_t *bp)
{
	return (const char *)(uintptr_t)bp_u32(bp, BP_CMD_LINE_PTR);
}

/* Decimal, or hex with 0x; stops at the first non-digit.  false if no digit. */
static inline bool vio_parse_u64(const char *s, size_t len, uint64_t *out, size_t *used)
{
	unsigned int basis = 10;
	size_t i = 0, first;
	uint64_t v = 0;

	if (len > 2 && s[0] == '0' && (s[1] == 'x' || s[1] == 'X')) {
		basis = 16;
		i = 2;
	}
	first = i;
	for (; i < len; i++) {
		char c = s[i];
		unsigned int dg;

		if (c >= '0' && c <= '9')
			dg = (unsigned int)(c - '0');
		else if (basis == 16 && c >= 'a' && c <= 'f')
			dg = (unsigned int)(c - 'a' + 10);
		else if (basis == 16 && c >= 'A' && c <= 'F')
			dg = (unsigned int)(c - 'A' + 10);
		else
			break;
		v = v * basis + dg;
	}
	if (i == first)
		return false;
	*out = v;
	if (used)
		*used = i;
	return true;
}

/* "key=NUMBER" on the command line, or 'dflt'. */
static inline uint64_t vio_cmdline_u64(const char *cl, const char *key, uint64_t dflt)
{
	size_t len;
	const char *v = cmdline_value(cl, key, &len);
	uint64_t n;

	return v && vio_parse_u64(v, len, &n, NULL) ? n : dflt;
}

/*
 * Base address of the n-th "virtio_mmio.device=SIZE@BASE:IRQ" word (the
 * form Linux parses, which both msvmm and QEMU microvm emit), or 0.
 */
static inline uint64_t vio_cmdline_device(const char *cl, unsigned int n)
{
	static const char key[] = "virtio_mmio.device=";
	const size_t kl = sizeof(key) - 1;

	for (const char *p = cl; *p;) {
		size_t w = 0;

		while (*p == ' ')
			p++;
		while (p[w] && p[w] != ' ')
			w++;
		if (w > kl && !memcmp(p, key, kl)) {
			size_t at = kl;
			uint64_t base;

			while (at < w && p[at] != '@')
				at++;
			if (at < w && vio_parse_u64(p + at + 1, w - at - 1, &base, NULL) && n-- == 0)
				return base;
		}
		p += w;
	}
	return 0;
}

#endif
