// SPDX-License-Identifier: Apache-2.0
/*
 * The device snapshot sections (the *_save / *_restore pairs in devices/).
 *
 * Round trips: each device is driven through its registers (over fake guest
 * RAM for virtio) into a state worth keeping, saved, and restored into a
 * fresh device set up as the machine sets it up.  The fresh one must save
 * to the same bytes, read back the same registers and keep working: the
 * uart's last line and irq level, the control page's reports replayed,
 * virtio-blk serving the next request on the same rings, virtio-vsock
 * taking a new guest connection after its TRANSPORT_RESET.
 *
 * Hostile sections: for every device, every truncation of a valid section
 * and NR_CORRUPTIONS seeded random corruptions must either be refused with
 * the fresh device unchanged, or restore into a state that passes the
 * device's invariants (checked here from the headers' rules, not with the
 * devices' own checks), saves and restores again to the same bytes, and
 * survives being driven.  Then the specific refusals, each made by changing
 * one thing in a section that restores without it.
 */
#include "ctl_dev.h"
#include "i8042.h"
#include "rtc_cmos.h"
#include "snap_io.h"
#include "uart8250.h"
#include "virtio_blk.h"
#include "virtio_vsock.h"

#include <errno.h>
#include <fcntl.h>
#include <pthread.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"
#include "virtio_driver.h"
#include "vsock_driver.h"

#define NR_CORRUPTIONS 3000
#define BIT(n) (1ULL << (n))

#define ACK VIRTIO_STATUS_ACKNOWLEDGE
#define DRV VIRTIO_STATUS_DRIVER
#define FOK VIRTIO_STATUS_FEATURES_OK
#define DOK VIRTIO_STATUS_DRIVER_OK
#define NEEDS_RESET VIRTIO_STATUS_DEVICE_NEEDS_RESET
#define FAILED VIRTIO_STATUS_FAILED

/* Guest RAM of the virtio tests. */
#define RAM_SIZE (1u << 20)

/* ---- sections ---------------------------------------------------------- */

/*
 * One device model as the generic tests drive it.  Devices live in a "box"
 * with what their callbacks saw; 'ctx' is the fixture they are created over.
 */
struct kind {
	void *(*create)(void *ctx); /* as the machine sets it up */
	void (*destroy)(void *dev);
	int (*save)(void *dev, struct snap_w *w);
	int (*restore)(void *dev, struct snap_r *r);
	/* The invariants a restored device must keep, written from the headers. */
	void (*check)(void *dev, void *ctx);
	/* Use it as a guest would: nothing may crash or reach out of bounds. */
	void (*exercise)(void *dev, void *ctx);
	/* The transport, for virtio devices. */
	struct virtio_mmio_dev *(*mmio)(void *dev);
	/* Some corruptions give states the guest can reach, which restore. */
	bool has_free_fields;
};

static bool sec_eq(const struct snap_w *a, const struct snap_w *b)
{
	return a->len == b->len && !memcmp(a->buf, b->buf, a->len);
}

static struct snap_w kind_save(const struct kind *k, void *dev)
{
	struct snap_w w;

	snap_w_init(&w);
	ck_assert_int_eq(k->save(dev, &w), 0);
	ck_assert(!w.err);
	return w;
}

/* Restore buf into dev: 0 with every byte consumed, or -EINVAL with the reader failed. */
static int kind_restore(const struct kind *k, void *dev, const void *buf, size_t len)
{
	struct snap_r r;
	int rc;

	snap_r_init(&r, buf, len);
	rc = k->restore(dev, &r);
	if (rc == 0) {
		ck_assert(snap_r_done(&r));
	} else {
		ck_assert_int_eq(rc, -EINVAL);
		ck_assert(r.err);
	}
	return rc;
}

/* Restore buf into a fresh device (*out, the caller's to destroy); a refusal leaves it fresh. */
static int try_fresh(const struct kind *k, void *ctx, const void *buf, size_t len, void **out)
{
	void *dev = k->create(ctx);
	struct snap_w before = kind_save(k, dev), after;
	int rc = kind_restore(k, dev, buf, len);

	if (rc) {
		after = kind_save(k, dev);
		ck_assert_msg(sec_eq(&before, &after), "a refused restore changed the device");
		snap_w_free(&after);
	}
	snap_w_free(&before);
	*out = dev;
	return rc;
}

/* The kind's save/restore hooks for a device kept as 'field' of struct 'box'. */
#define KIND_SNAPSHOT_HOOKS(prefix, box, field, dev_prefix)                  \
	static int prefix##_save_fn(void *dev, struct snap_w *w)             \
	{                                                                    \
		return dev_prefix##_save(&((struct box *)dev)->field, w);    \
	}                                                                    \
	static int prefix##_restore_fn(void *dev, struct snap_r *r)          \
	{                                                                    \
		return dev_prefix##_restore(&((struct box *)dev)->field, r); \
	}

/* A fresh device with sec restored into it (which must succeed). */
static void *restored(const struct kind *k, void *ctx, const struct snap_w *sec)
{
	void *dev;

	ck_assert_int_eq(try_fresh(k, ctx, sec->buf, sec->len, &dev), 0);
	return dev;
}

static void expect_refused(const struct kind *k, void *ctx, const void *buf, size_t len)
{
	void *dev;

	ck_assert_int_eq(try_fresh(k, ctx, buf, len, &dev), -EINVAL);
	k->destroy(dev);
}

static void expect_restores(const struct kind *k, void *ctx, const struct snap_w *sec)
{
	void *dev;

	ck_assert_int_eq(try_fresh(k, ctx, sec->buf, sec->len, &dev), 0);
	k->destroy(dev);
}

/* A restored device: sound, the same after another round trip, and drivable. */
static void check_restored(const struct kind *k, void *ctx, void *dev)
{
	struct snap_w once = kind_save(k, dev), twice;
	void *again;

	k->check(dev, ctx);
	ck_assert_int_eq(try_fresh(k, ctx, once.buf, once.len, &again), 0);
	twice = kind_save(k, again);
	ck_assert_msg(sec_eq(&once, &twice), "a restored state does not save back to itself");
	k->destroy(again);
	snap_w_free(&once);
	snap_w_free(&twice);
	k->exercise(dev, ctx);
}

static uint64_t rng_next(uint64_t *s)
{
	*s ^= *s << 13;
	*s ^= *s >> 7;
	*s ^= *s << 17;
	return *s;
}

/*
 * One to three bit flips or byte changes, half of them in the first 64
 * bytes, where the registers are (not the uart's tail ring, say).
 */
static void corrupt(uint8_t *buf, size_t len, uint64_t *rng)
{
	unsigned int n = 1 + (unsigned int)(rng_next(rng) % 3);

	for (unsigned int i = 0; i < n; i++) {
		uint64_t pick = rng_next(rng);
		size_t span = (pick & 1) && len > 64 ? 64 : len;
		size_t at = (size_t)((pick >> 1) % span);
		uint64_t x = rng_next(rng);

		if (x & 1)
			buf[at] ^= (uint8_t)(1u << ((x >> 1) % 8));
		else
			buf[at] ^= (uint8_t)(1 + (x >> 8) % 255);
	}
}

/* Every truncation, a trailing byte, and NR_CORRUPTIONS corruptions of 'valid'. */
static void fuzz(const struct kind *k, void *ctx, const struct snap_w *valid)
{
	uint64_t rng = 0x2545f4914f6cdd1dULL;
	unsigned int accepted = 0, refused = 0;
	uint8_t *buf = malloc(valid->len + 1);
	void *dev;

	ck_assert_ptr_nonnull(buf);
	dev = restored(k, ctx, valid);
	check_restored(k, ctx, dev);
	k->destroy(dev);
	for (size_t n = 0; n < valid->len; n++)
		expect_refused(k, ctx, valid->buf, n);
	memcpy(buf, valid->buf, valid->len);
	buf[valid->len] = 0;
	expect_refused(k, ctx, buf, valid->len + 1);
	for (unsigned int i = 0; i < NR_CORRUPTIONS; i++) {
		memcpy(buf, valid->buf, valid->len);
		corrupt(buf, valid->len, &rng);
		if (!memcmp(buf, valid->buf, valid->len))
			continue; /* two changes undid each other */
		if (try_fresh(k, ctx, buf, valid->len, &dev) == 0) {
			ck_assert_msg(k->has_free_fields, "corruption %u accepted", i);
			check_restored(k, ctx, dev);
			accepted++;
		} else {
			refused++;
		}
		k->destroy(dev);
	}
	free(buf);
	/* Both outcomes happened, so both branches above were tested. */
	ck_assert_uint_gt(refused, 0);
	if (k->has_free_fields)
		ck_assert_uint_gt(accepted, 0);
}

/* A copy of sec with n bytes at off set to v (little-endian). */
static struct snap_w patched(const struct snap_w *sec, size_t off, uint64_t v, unsigned int n)
{
	struct snap_w w;

	snap_w_init(&w);
	snap_put(&w, sec->buf, sec->len);
	ck_assert(!w.err);
	ck_assert_uint_le(off + n, w.len);
	vd_put_le(w.buf + off, v, n);
	return w;
}

static void expect_patch_refused(const struct kind *k, void *ctx, const struct snap_w *sec, size_t off,
				 uint64_t v, unsigned int n)
{
	struct snap_w bad = patched(sec, off, v, n);

	expect_refused(k, ctx, bad.buf, bad.len);
	snap_w_free(&bad);
}

/* What every section refuses: other versions (the first u32) and trailing bytes. */
static void expect_framing_refusals(const struct kind *k, void *ctx, const struct snap_w *good)
{
	uint32_t v = (uint32_t)good->buf[0] | (uint32_t)good->buf[1] << 8 | (uint32_t)good->buf[2] << 16 |
		     (uint32_t)good->buf[3] << 24;
	/* The one before (an older format), the next, and nonsense. */
	const uint32_t versions[] = { 0, v - 1, v + 1, 0x100, UINT32_MAX };
	struct snap_w longer;

	expect_restores(k, ctx, good);
	for (unsigned int i = 0; i < sizeof(versions) / sizeof(versions[0]); i++)
		expect_patch_refused(k, ctx, good, 0, versions[i], 4);
	for (unsigned int extra = 1; extra <= 8; extra *= 8) {
		snap_w_init(&longer);
		snap_put(&longer, good->buf, good->len);
		for (unsigned int i = 0; i < extra; i++)
			snap_put_u8(&longer, 0);
		ck_assert(!longer.err);
		expect_refused(k, ctx, longer.buf, longer.len);
		snap_w_free(&longer);
	}
}

/* The boxes of the devices without host resources are plain allocations. */
static void box_free(void *dev)
{
	free(dev);
}

/* ---- uart -------------------------------------------------------------- */

enum { RBR_THR = 0, IER = 1, IIR_FCR = 2, LCR = 3, MCR = 4, LSR = 5, MSR = 6, SCR = 7 };

struct uart_box {
	struct uart8250 u;
	int irq_calls, irq_level; /* what the irq callback saw */
};

static void uart_box_irq(void *opaque, int level)
{
	struct uart_box *b = opaque;

	b->irq_calls++;
	b->irq_level = level;
}

/* ctx: the console fd (int *), or NULL for none. */
static void *uart_create(void *ctx)
{
	struct uart_box *b = calloc(1, sizeof(*b));

	ck_assert_ptr_nonnull(b);
	uart8250_init(&b->u, ctx ? *(int *)ctx : -1, uart_box_irq, b);
	return b;
}

KIND_SNAPSHOT_HOOKS(uart, uart_box, u, uart8250)

static uint8_t uart_rd(struct uart_box *b, unsigned int reg)
{
	uint8_t v = 0x5c;

	uart8250_access(&b->u, reg, &v, 1, false);
	return v;
}

static void uart_wr(struct uart_box *b, unsigned int reg, uint8_t v)
{
	uart8250_access(&b->u, reg, &v, 1, true);
}

static void uart_puts(struct uart_box *b, const char *s)
{
	while (*s)
		uart_wr(b, RBR_THR, (uint8_t)*s++);
}

static void uart_check(void *dev, void *ctx)
{
	struct uart_box *b = dev;
	const struct uart8250 *u = &b->u;

	ck_assert_uint_eq(u->ier & ~0x0fu, 0);
	ck_assert_uint_eq(u->fcr & ~0xc9u, 0);
	ck_assert_uint_eq(u->mcr & ~0x1fu, 0);
	ck_assert_int_eq(u->irq_level, (u->ier & 0x02) && u->thri_pending);
	ck_assert_uint_lt(u->tail_pos, UART_TAIL_SIZE);
	ck_assert_uint_eq(u->tail_pos, u->bytes_out % UART_TAIL_SIZE);
	/* The restore drove the line once, to the restored level. */
	ck_assert_int_eq(b->irq_calls, 1);
	ck_assert_int_eq(b->irq_level, u->irq_level);
}

static void uart_exercise(void *dev, void *ctx)
{
	struct uart_box *b = dev;
	char line[UART_TAIL_SIZE + 1];

	for (unsigned int reg = 0; reg < UART_NR_REGS; reg++)
		uart_rd(b, reg);
	uart_wr(b, IER, 0x0f);
	uart_puts(b, "x\n");
	ck_assert_int_eq(b->irq_level, b->u.irq_level);
	ck_assert_uint_le(uart8250_last_line(&b->u, line, sizeof(line)), UART_TAIL_SIZE);
}

static const struct kind uart_kind = {
	.create = uart_create,
	.destroy = box_free,
	.save = uart_save_fn,
	.restore = uart_restore_fn,
	.check = uart_check,
	.exercise = uart_exercise,
	.has_free_fields = true,
};

/* What Linux's 8250 driver leaves behind, then a console that wrapped its tail ring. */
static void uart_drive(struct uart_box *b)
{
	uart_wr(b, LCR, 0x83);
	uart_wr(b, RBR_THR, 0x01); /* DLL: 115200 baud */
	uart_wr(b, IER, 0x00);     /* DLM */
	uart_wr(b, LCR, 0x03);
	uart_wr(b, IIR_FCR, 0xc7);
	uart_wr(b, MCR, 0x0b);
	uart_wr(b, SCR, 0x5a);
	uart_wr(b, IER, 0x02); /* THRI: raised at once */
	for (int i = 0; i < 40; i++)
		uart_puts(b, "[    0.000000] an early line of the guest's boot log\n");
	uart_puts(b, "the guest's last line\r\n");
	ck_assert_uint_gt(b->u.bytes_out, UART_TAIL_SIZE);
	ck_assert_int_eq(b->irq_level, 1);
}

static struct snap_w uart_section(void)
{
	struct uart_box *b = uart_create(NULL);
	struct snap_w w;

	uart_drive(b);
	w = kind_save(&uart_kind, b);
	box_free(b);
	return w;
}

START_TEST(test_uart_round_trip)
{
	int pa[2], pb[2];
	struct uart_box *a, *b;
	struct snap_w sa, sb;
	char line[128], out[64];

	ck_assert_int_eq(pipe2(pa, O_CLOEXEC | O_NONBLOCK), 0);
	ck_assert_int_eq(pipe2(pb, O_CLOEXEC | O_NONBLOCK), 0);
	a = uart_create(&pa[1]);
	uart_drive(a);
	sa = kind_save(&uart_kind, a);
	b = uart_create(&pb[1]);
	ck_assert_int_eq(kind_restore(&uart_kind, b, sa.buf, sa.len), 0);
	/* The fresh machine's line goes up to the guest's level. */
	ck_assert_int_eq(b->irq_calls, 1);
	ck_assert_int_eq(b->irq_level, 1);
	ck_assert_uint_eq(uart8250_last_line(&b->u, line, sizeof(line)), 21);
	ck_assert_str_eq(line, "the guest's last line");
	sb = kind_save(&uart_kind, b);
	ck_assert(sec_eq(&sa, &sb));
	/* The registers read back alike, the divisor latch too. */
	for (unsigned int reg = IER; reg < UART_NR_REGS; reg++)
		ck_assert_uint_eq(uart_rd(b, reg), uart_rd(a, reg));
	uart_wr(a, LCR, 0x83);
	uart_wr(b, LCR, 0x83);
	ck_assert_uint_eq(uart_rd(b, RBR_THR), 0x01);
	ck_assert_uint_eq(uart_rd(b, IER), 0x00);
	uart_wr(b, LCR, 0x03);
	/* That IIR read took the THRE interrupt, so the line fell. */
	ck_assert_int_eq(b->irq_level, 0);
	ck_assert_uint_eq(uart_rd(b, IIR_FCR), 0xc1);
	/* It keeps working: output goes to the fresh console, and the tail moves on. */
	ck_assert_int_eq(read(pb[0], out, sizeof(out)), -1);
	uart_puts(b, "after the restore\n");
	ck_assert_int_eq(read(pb[0], out, sizeof(out)), 18);
	ck_assert(!memcmp(out, "after the restore\n", 18));
	ck_assert_int_eq(b->irq_level, 1);
	uart8250_last_line(&b->u, line, sizeof(line));
	ck_assert_str_eq(line, "after the restore");
	snap_w_free(&sa);
	snap_w_free(&sb);
	box_free(a);
	box_free(b);
	for (int i = 0; i < 2; i++) {
		close(pa[i]);
		close(pb[i]);
	}
}
END_TEST

START_TEST(test_uart_hostile)
{
	struct snap_w sec = uart_section();

	fuzz(&uart_kind, NULL, &sec);
	snap_w_free(&sec);
}
END_TEST

/* A good section with one register changed in the device before saving. */
enum uart_fault { UF_IER, UF_FCR, UF_MCR, UF_LEVEL_LOW, UF_LEVEL_UNDUE, NR_UART_FAULTS };

static void uart_fault(struct uart8250 *u, enum uart_fault f)
{
	switch (f) {
	case UF_IER: u->ier |= 0x10; break;
	case UF_FCR: u->fcr |= 0x02; break; /* FCR's self-clearing reset bits are never stored */
	case UF_MCR: u->mcr |= 0x20; break;
	case UF_LEVEL_LOW: u->irq_level = 0; break; /* THRI enabled and pending */
	case UF_LEVEL_UNDUE: u->ier = 0; u->irq_level = 1; break;
	case NR_UART_FAULTS: break;
	}
}

START_TEST(test_uart_refusals)
{
	struct snap_w good = uart_section(), bad;

	expect_framing_refusals(&uart_kind, NULL, &good);
	for (int f = 0; f < NR_UART_FAULTS; f++) {
		struct uart_box *m = restored(&uart_kind, NULL, &good);

		uart_fault(&m->u, (enum uart_fault)f);
		snap_w_init(&bad);
		ck_assert_int_eq(uart8250_save(&m->u, &bad), 0);
		ck_assert_msg(!sec_eq(&good, &bad), "uart fault %d changed nothing", f);
		expect_refused(&uart_kind, NULL, bad.buf, bad.len);
		snap_w_free(&bad);
		box_free(m);
	}
	/* Layout (uart8250.h): version, 7 registers, thri_pending at 11, the level at 12. */
	expect_patch_refused(&uart_kind, NULL, &good, 11, 2, 1);
	expect_patch_refused(&uart_kind, NULL, &good, 12, 2, 1);
	snap_w_free(&good);
}
END_TEST

/* ---- i8042 ------------------------------------------------------------- */

struct kbd_box {
	struct i8042 k;
	int resets;
};

static void kbd_reset(void *opaque)
{
	((struct kbd_box *)opaque)->resets++;
}

static void *kbd_create(void *ctx)
{
	struct kbd_box *b = calloc(1, sizeof(*b));

	ck_assert_ptr_nonnull(b);
	b->k = (struct i8042){ .reset = kbd_reset, .opaque = b };
	return b;
}

KIND_SNAPSHOT_HOOKS(kbd, kbd_box, k, i8042)

static void kbd_check(void *dev, void *ctx)
{
	ck_assert_int_eq(((struct kbd_box *)dev)->resets, 0);
}

/* The reset command still reaches the machine. */
static void kbd_exercise(void *dev, void *ctx)
{
	struct kbd_box *b = dev;
	uint8_t v = I8042_CMD_RESET;

	i8042_access(&b->k, I8042_CMD_PORT - I8042_DATA_PORT, &v, 1, true);
	ck_assert_int_eq(b->resets, 1);
}

static const struct kind kbd_kind = {
	.create = kbd_create,
	.destroy = box_free,
	.save = kbd_save_fn,
	.restore = kbd_restore_fn,
	.check = kbd_check,
	.exercise = kbd_exercise,
	.has_free_fields = false,
};

/* ---- rtc --------------------------------------------------------------- */

struct rtc_box {
	struct rtc_cmos r;
	time_t now;
};

static time_t rtc_box_now(void *opaque)
{
	return ((struct rtc_box *)opaque)->now;
}

static void *rtc_create(void *ctx)
{
	struct rtc_box *b = calloc(1, sizeof(*b));

	ck_assert_ptr_nonnull(b);
	rtc_cmos_init(&b->r);
	b->r.now = rtc_box_now;
	b->r.opaque = b;
	b->now = 1795433098; /* 2026-11-23 11:24:58 UTC */
	return b;
}

KIND_SNAPSHOT_HOOKS(rtc, rtc_box, r, rtc_cmos)

static uint8_t rtc_data(struct rtc_box *b)
{
	uint8_t v = 0;

	rtc_cmos_access(&b->r, 1, &v, 1, false);
	return v;
}

static void rtc_check(void *dev, void *ctx)
{
	ck_assert_uint_le(((struct rtc_box *)dev)->r.index, 0x7f);
}

static void rtc_exercise(void *dev, void *ctx)
{
	struct rtc_box *b = dev;
	uint8_t year = 0x09;

	rtc_data(b);
	rtc_cmos_access(&b->r, 0, &year, 1, true);
	ck_assert_uint_eq(rtc_data(b), 0x26);
}

static const struct kind rtc_kind = {
	.create = rtc_create,
	.destroy = box_free,
	.save = rtc_save_fn,
	.restore = rtc_restore_fn,
	.check = rtc_check,
	.exercise = rtc_exercise,
	.has_free_fields = true, /* any other index */
};

/* ---- control page ------------------------------------------------------ */

struct ctl_box {
	struct ctl_dev c;
	char order[8]; /* B(oot), R(eady), E(xit), as the ops were called */
	unsigned int nr;
	uint32_t exit_status;
};

static void ctl_box_note(void *opaque, char what)
{
	struct ctl_box *b = opaque;

	if (b->nr < sizeof(b->order) - 1)
		b->order[b->nr] = what;
	b->nr++;
}

static void ctl_box_boot(void *opaque)
{
	ctl_box_note(opaque, 'B');
}

static void ctl_box_ready(void *opaque)
{
	ctl_box_note(opaque, 'R');
}

static void ctl_box_exit(void *opaque, uint32_t status)
{
	((struct ctl_box *)opaque)->exit_status = status;
	ctl_box_note(opaque, 'E');
}

static const struct ctl_dev_ops ctl_box_ops = {
	.boot = ctl_box_boot,
	.exit = ctl_box_exit,
	.ready = ctl_box_ready,
};

static void *ctl_create(void *ctx)
{
	struct ctl_box *b = calloc(1, sizeof(*b));

	ck_assert_ptr_nonnull(b);
	ctl_dev_init(&b->c, &ctl_box_ops, b);
	return b;
}

KIND_SNAPSHOT_HOOKS(ctl, ctl_box, c, ctl_dev)

static void ctl_wr(struct ctl_box *b, uint64_t reg, uint32_t v)
{
	uint8_t d[4];

	vd_put_le(d, v, 4);
	ctl_dev_access(&b->c, reg, d, 4, true);
}

/* Each report the device keeps was replayed once, in the guest's order. */
static void ctl_check(void *dev, void *ctx)
{
	struct ctl_box *b = dev;
	uint32_t rep = atomic_load(&b->c.reported);
	char want[8] = { 0 };
	unsigned int n = 0;

	ck_assert_uint_eq(rep & ~(CTL_DEV_BOOTED | CTL_DEV_READY | CTL_DEV_EXITED), 0);
	if (rep & CTL_DEV_BOOTED)
		want[n++] = 'B';
	if (rep & CTL_DEV_READY)
		want[n++] = 'R';
	if (rep & CTL_DEV_EXITED)
		want[n++] = 'E';
	ck_assert_str_eq(b->order, want);
	ck_assert_uint_eq(b->exit_status, atomic_load(&b->c.exit_status));
	if (!(rep & CTL_DEV_EXITED))
		ck_assert_uint_eq(b->exit_status, 0);
}

static void ctl_exercise(void *dev, void *ctx)
{
	struct ctl_box *b = dev;
	unsigned int before = b->nr;

	ctl_wr(b, MSVMM_CTL_READY, 1);
	ck_assert_uint_eq(b->nr, before + 1);
	ck_assert(atomic_load(&b->c.reported) & CTL_DEV_READY);
}

static const struct kind ctl_kind = {
	.create = ctl_create,
	.destroy = box_free,
	.save = ctl_save_fn,
	.restore = ctl_restore_fn,
	.check = ctl_check,
	.exercise = ctl_exercise,
	.has_free_fields = true, /* other reports, other exit values */
};

START_TEST(test_small_devices_round_trip)
{
	struct kbd_box *ka = kbd_create(NULL), *kb;
	struct rtc_box *ra = rtc_create(NULL), *rb;
	struct ctl_box *ca = ctl_create(NULL), *cb;
	struct snap_w s, again;
	uint8_t sel = 0x80 | 0x09; /* NMI masked, the year */

	/* i8042: nothing but the version, and the reset still works. */
	s = kind_save(&kbd_kind, ka);
	ck_assert_uint_eq(s.len, 4);
	kb = restored(&kbd_kind, NULL, &s);
	kbd_exercise(kb, NULL);
	snap_w_free(&s);

	/* rtc: the selected register survives, so the next data read is the same one. */
	rtc_cmos_access(&ra->r, 0, &sel, 1, true);
	s = kind_save(&rtc_kind, ra);
	rb = restored(&rtc_kind, NULL, &s);
	ck_assert_uint_eq(rtc_data(rb), 0x26);
	ck_assert_uint_eq(rtc_data(rb), rtc_data(ra));
	snap_w_free(&s);

	/* ctl: BOOT and READY (PHASE is not kept), replayed into the fresh machine. */
	ctl_wr(ca, MSVMM_CTL_BOOT, 1);
	ctl_wr(ca, MSVMM_CTL_PHASE, 3);
	ctl_wr(ca, MSVMM_CTL_READY, 1);
	s = kind_save(&ctl_kind, ca);
	cb = restored(&ctl_kind, NULL, &s);
	ck_assert_str_eq(cb->order, "BR");
	again = kind_save(&ctl_kind, cb);
	ck_assert(sec_eq(&s, &again));
	snap_w_free(&s);
	snap_w_free(&again);
	box_free(cb);
	/* ... and after EXIT, the fresh machine hears the same status last. */
	ctl_wr(ca, MSVMM_CTL_EXIT, MSVMM_CTL_EXIT_SIGNALED | 9);
	s = kind_save(&ctl_kind, ca);
	cb = restored(&ctl_kind, NULL, &s);
	ck_assert_str_eq(cb->order, "BRE");
	ck_assert_uint_eq(cb->exit_status, MSVMM_CTL_EXIT_SIGNALED | 9);
	snap_w_free(&s);

	box_free(ka);
	box_free(kb);
	box_free(ra);
	box_free(rb);
	box_free(ca);
	box_free(cb);
}
END_TEST

/* A control page that has seen BOOT, READY and EXIT. */
static struct snap_w ctl_section(void)
{
	struct ctl_box *b = ctl_create(NULL);
	struct snap_w s;

	ctl_wr(b, MSVMM_CTL_BOOT, 1);
	ctl_wr(b, MSVMM_CTL_READY, 1);
	ctl_wr(b, MSVMM_CTL_EXIT, 3);
	s = kind_save(&ctl_kind, b);
	box_free(b);
	return s;
}

static struct snap_w rtc_section(void)
{
	struct rtc_box *b = rtc_create(NULL);
	uint8_t sel = 0x32;
	struct snap_w s;

	rtc_cmos_access(&b->r, 0, &sel, 1, true);
	s = kind_save(&rtc_kind, b);
	box_free(b);
	return s;
}

START_TEST(test_small_devices_hostile)
{
	struct kbd_box *k = kbd_create(NULL);
	struct snap_w s = kind_save(&kbd_kind, k);

	fuzz(&kbd_kind, NULL, &s);
	snap_w_free(&s);
	box_free(k);
	s = rtc_section();
	fuzz(&rtc_kind, NULL, &s);
	snap_w_free(&s);
	s = ctl_section();
	fuzz(&ctl_kind, NULL, &s);
	snap_w_free(&s);
}
END_TEST

/* Layouts from the headers: version u32, then rtc: index u8; ctl: reports u32, exit u32. */
START_TEST(test_small_devices_refusals)
{
	struct kbd_box *k = kbd_create(NULL);
	struct snap_w s = kind_save(&kbd_kind, k);

	expect_framing_refusals(&kbd_kind, NULL, &s);
	snap_w_free(&s);
	box_free(k);

	s = rtc_section();
	expect_framing_refusals(&rtc_kind, NULL, &s);
	expect_patch_refused(&rtc_kind, NULL, &s, 4, 0x80, 1); /* the NMI bit is no index */
	expect_patch_refused(&rtc_kind, NULL, &s, 4, 0xff, 1);
	snap_w_free(&s);

	s = ctl_section();
	expect_framing_refusals(&ctl_kind, NULL, &s);
	expect_patch_refused(&ctl_kind, NULL, &s, 4, 0x8 | CTL_DEV_EXITED, 4); /* unknown report */
	expect_patch_refused(&ctl_kind, NULL, &s, 4, CTL_DEV_BOOTED, 4);       /* status without EXIT */
	snap_w_free(&s);
}
END_TEST

/* ---- virtio transport invariants ---------------------------------------- */

/* ... and destroy and the transport, for a virtio device and its host resources. */
#define KIND_VIRTIO_HOOKS(prefix, box, field, dev_prefix)                    \
	KIND_SNAPSHOT_HOOKS(prefix, box, field, dev_prefix)                  \
	static void prefix##_destroy(void *dev)                              \
	{                                                                    \
		dev_prefix##_destroy(&((struct box *)dev)->field);           \
		free(dev);                                                   \
	}                                                                    \
	static struct virtio_mmio_dev *prefix##_mmio(void *dev)              \
	{                                                                    \
		return &((struct box *)dev)->field.mmio;                     \
	}

/* Zeroed guest RAM of RAM_SIZE, described in *gm. */
static uint8_t *guest_ram(struct guest_mem *gm)
{
	uint8_t *ram = calloc(1, RAM_SIZE);

	ck_assert_ptr_nonnull(ram);
	guest_mem_init_from(gm, ram, RAM_SIZE);
	return ram;
}

/* The devices' interrupt callback: opaque is their box's counter. */
static void count_irq(void *opaque)
{
	(*(int *)opaque)++;
}

static bool ring_in_ram(const struct guest_mem *gm, uint64_t gpa, uint64_t len, uint64_t align)
{
	return gpa % align == 0 && gpa <= gm->ram_size && len <= gm->ram_size - gpa;
}

static void check_queue(const struct virtio_mmio_dev *d, const struct virtq *q, bool exists)
{
	bool fok = d->status & FOK;
	uint64_t ev;

	ck_assert_uint_le(q->size, d->ops->queue_max);
	if (!q->ready) {
		ck_assert(!q->broken);
		ck_assert_uint_eq(q->last_avail_idx | q->used_idx | q->signalled_used, 0);
		if (!exists || !fok)
			ck_assert(!q->size && !q->desc_gpa && !q->avail_gpa && !q->used_gpa &&
				  !q->event_idx && !q->indirect);
		return;
	}
	ck_assert(exists && fok);
	ck_assert(q->size && !(q->size & (q->size - 1)));
	ck_assert_int_eq(q->event_idx, !!(d->driver_features & BIT(VIRTIO_RING_F_EVENT_IDX)));
	ck_assert_int_eq(q->indirect, !!(d->driver_features & BIT(VIRTIO_RING_F_INDIRECT_DESC)));
	ev = q->event_idx ? 2 : 0;
	ck_assert(ring_in_ram(q->gm, q->desc_gpa, 16ULL * q->size, 16));
	ck_assert(ring_in_ram(q->gm, q->avail_gpa, 4 + 2ULL * q->size + ev, 2));
	ck_assert(ring_in_ram(q->gm, q->used_gpa, 4 + 8ULL * q->size + ev, 4));
	ck_assert_uint_le((uint16_t)(q->last_avail_idx - q->used_idx), q->size);
}

/* The rules of virtio_mmio.h, as a restored transport must keep them. */
static void check_transport(const struct virtio_mmio_dev *d)
{
	uint32_t st = d->status;

	ck_assert_uint_eq(st & ~(ACK | DRV | FOK | DOK | NEEDS_RESET | FAILED), 0);
	ck_assert(!(st & DRV) || (st & ACK));
	ck_assert(!(st & FOK) || (st & DRV));
	ck_assert(!(st & DOK) || (st & FOK));
	ck_assert(!(st & NEEDS_RESET) || (st & DOK));
	if (st & FOK) {
		ck_assert_uint_eq(d->driver_features & ~d->host_features, 0);
		ck_assert(d->driver_features & BIT(VIRTIO_F_VERSION_1));
	}
	ck_assert_uint_eq(d->isr & ~(VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG), 0);
	for (unsigned int i = 0; i < VIRTIO_MMIO_MAX_QUEUES; i++)
		check_queue(d, &d->queues[i], i < d->ops->num_queues);
}

/* Read every register (and config space) of both the same way; they must agree. */
static void check_same_registers(struct virtio_mmio_dev *a, struct virtio_mmio_dev *b)
{
	static const uint64_t regs[] = {
		VIRTIO_MMIO_MAGIC_VALUE, VIRTIO_MMIO_VERSION, VIRTIO_MMIO_DEVICE_ID,
		VIRTIO_MMIO_VENDOR_ID, VIRTIO_MMIO_DEVICE_FEATURES, VIRTIO_MMIO_INTERRUPT_STATUS,
		VIRTIO_MMIO_STATUS, VIRTIO_MMIO_CONFIG_GENERATION,
	};
	uint8_t ca[8], cb[8];

	for (unsigned int i = 0; i < sizeof(regs) / sizeof(regs[0]); i++)
		ck_assert_uint_eq(vd_mmio_rd(b, regs[i]), vd_mmio_rd(a, regs[i]));
	ck_assert_uint_eq(vd_mmio_device_features(b), vd_mmio_device_features(a));
	for (unsigned int q = 0; q <= a->ops->num_queues; q++) {
		vd_mmio_wr(a, VIRTIO_MMIO_QUEUE_SEL, q);
		vd_mmio_wr(b, VIRTIO_MMIO_QUEUE_SEL, q);
		ck_assert_uint_eq(vd_mmio_rd(b, VIRTIO_MMIO_QUEUE_NUM_MAX), vd_mmio_rd(a, VIRTIO_MMIO_QUEUE_NUM_MAX));
		ck_assert_uint_eq(vd_mmio_rd(b, VIRTIO_MMIO_QUEUE_READY), vd_mmio_rd(a, VIRTIO_MMIO_QUEUE_READY));
	}
	for (unsigned int off = 0; off < 32; off += 8) {
		virtio_mmio_access(a, VIRTIO_MMIO_CONFIG + off, ca, 8, false);
		virtio_mmio_access(b, VIRTIO_MMIO_CONFIG + off, cb, 8, false);
		ck_assert(!memcmp(ca, cb, 8));
	}
}

/* One change to a good transport state that no driver could have made. */
enum mmio_fault {
	MF_QSIZE_NOT_POW2,
	MF_QSIZE_ABOVE_MAX,
	MF_QSIZE_HUGE,
	MF_DESC_OUTSIDE,
	MF_AVAIL_OUTSIDE,
	MF_USED_OUTSIDE,
	MF_DESC_WRAPS,
	MF_DESC_MISALIGNED,
	MF_AVAIL_MISALIGNED,
	MF_USED_MISALIGNED,
	MF_STATUS_SKIPS_DRIVER,
	MF_STATUS_SKIPS_FEATURES_OK,
	MF_STATUS_UNKNOWN_BIT,
	MF_STATUS_RESET,           /* queues configured, yet status 0 */
	MF_NEEDS_RESET_NOT_LIVE,
	MF_FEATURE_NOT_OFFERED,
	MF_NO_VERSION_1,
	MF_RING_FLAG_NOT_NEGOTIATED,
	MF_RING_FLAG_DROPPED,
	MF_TOO_MANY_IN_FLIGHT,
	MF_SERVED_NOT_READY,
	MF_ISR_UNKNOWN_BIT,
	MF_ISR_CONFIG_NOT_BROKEN,
	MF_OTHER_FEATURES,         /* another device's offer */
	NR_LIVE_FAULTS,            /* those above: faults for any device past DRIVER_OK */
	MF_SERVED_BEFORE_DRIVER_OK = NR_LIVE_FAULTS,
};

static void mmio_fault(struct virtio_mmio_dev *d, enum mmio_fault f)
{
	struct virtq *q = &d->queues[0];

	switch (f) {
	case MF_QSIZE_NOT_POW2: q->size = 12; break;
	case MF_QSIZE_ABOVE_MAX: q->size = (uint16_t)(d->ops->queue_max * 2); break;
	case MF_QSIZE_HUGE: q->size = 0xffff; break;
	case MF_DESC_OUTSIDE: q->desc_gpa = RAM_SIZE - 16; break;
	case MF_AVAIL_OUTSIDE: q->avail_gpa = RAM_SIZE; break;
	case MF_USED_OUTSIDE: q->used_gpa = 1ULL << 40; break;
	case MF_DESC_WRAPS: q->desc_gpa = 0ULL - 16; break;
	case MF_DESC_MISALIGNED: q->desc_gpa += 8; break;
	case MF_AVAIL_MISALIGNED: q->avail_gpa += 1; break;
	case MF_USED_MISALIGNED: q->used_gpa += 2; break;
	case MF_STATUS_SKIPS_DRIVER: d->status = ACK | FOK | DOK; break;
	case MF_STATUS_SKIPS_FEATURES_OK: d->status = ACK | DRV | DOK; break;
	case MF_STATUS_UNKNOWN_BIT: d->status |= 0x10; break;
	case MF_STATUS_RESET: d->status = 0; d->isr = 0; break;
	case MF_NEEDS_RESET_NOT_LIVE: d->status = ACK | DRV | FOK | NEEDS_RESET; d->isr = 0; break;
	case MF_FEATURE_NOT_OFFERED: d->driver_features |= BIT(63); break;
	case MF_NO_VERSION_1: d->driver_features &= ~BIT(VIRTIO_F_VERSION_1); break;
	case MF_RING_FLAG_NOT_NEGOTIATED: q->indirect = true; break;
	case MF_RING_FLAG_DROPPED: q->event_idx = !q->event_idx; break;
	case MF_TOO_MANY_IN_FLIGHT: q->last_avail_idx = (uint16_t)(q->used_idx + q->size + 1); break;
	case MF_SERVED_NOT_READY: q->ready = false; break;
	case MF_ISR_UNKNOWN_BIT: d->isr |= 0x4; break;
	case MF_ISR_CONFIG_NOT_BROKEN: d->isr |= VIRTIO_MMIO_INT_CONFIG; break;
	case MF_OTHER_FEATURES: d->host_features ^= BIT(40); break;
	case MF_SERVED_BEFORE_DRIVER_OK: q->last_avail_idx = q->used_idx = 1; break;
	}
}

/* good restores; the fault made in a device restored from it gives a section that is refused. */
static void expect_mmio_fault_refused(const struct kind *k, void *ctx, const struct snap_w *good,
				      enum mmio_fault f)
{
	void *m = restored(k, ctx, good);
	struct snap_w bad;

	mmio_fault(k->mmio(m), f);
	bad = kind_save(k, m);
	k->destroy(m);
	ck_assert_msg(!sec_eq(&bad, good), "transport fault %d changed nothing", f);
	expect_refused(k, ctx, bad.buf, bad.len);
	snap_w_free(&bad);
}

static void expect_live_faults_refused(const struct kind *k, void *ctx, const struct snap_w *good)
{
	for (int f = 0; f < NR_LIVE_FAULTS; f++)
		expect_mmio_fault_refused(k, ctx, good, (enum mmio_fault)f);
}

/* ---- virtio-blk ---------------------------------------------------------- */

#define BLK_QSIZE 16
#define BLK_DESC 0x1000ULL
#define BLK_AVAIL 0x2000ULL
#define BLK_USED 0x3000ULL
#define BLK_HDR 0x4000ULL
#define BLK_STATUS 0x4100ULL
#define BLK_DATA 0x8000ULL  /* 16 KiB each */
#define BLK_DATA2 0xc000ULL
#define DISK_SIZE (1u << 20)
#define DISK_ID "snapshot-disk"

/* What the machine creates a disk from, and the guest RAM it serves. */
struct blk_fix {
	uint8_t *ram;
	struct guest_mem gm;
	int fd;
	bool read_only;
	const char *id;
};

struct blk_box {
	struct virtio_blk b;
	int irqs;
};

static int make_disk(off_t size)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/msvmm-snapblk-XXXXXX", tu_tmpdir());
	fd = mkstemp(path);
	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(unlink(path), 0);
	ck_assert_int_eq(ftruncate(fd, size), 0);
	return fd;
}

static void blk_fix_init(struct blk_fix *f, off_t disk_size, bool read_only, const char *id)
{
	f->ram = guest_ram(&f->gm);
	f->fd = make_disk(disk_size);
	f->read_only = read_only;
	f->id = id;
}

static void blk_fix_fini(struct blk_fix *f)
{
	close(f->fd);
	free(f->ram);
}

static void *blk_create(void *ctx)
{
	struct blk_fix *f = ctx;
	struct blk_box *b = calloc(1, sizeof(*b));

	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(virtio_blk_init(&b->b, &f->gm, f->fd, f->read_only, f->id), 0);
	virtio_mmio_set_irq(&b->b.mmio, count_irq, &b->irqs);
	return b;
}

KIND_VIRTIO_HOOKS(blk, blk_box, b, virtio_blk)

static void blk_check(void *dev, void *ctx)
{
	struct blk_box *b = dev;

	check_transport(&b->b.mmio);
	ck_assert_int_eq(b->irqs, 0);
}

/* Kick the queue over whatever the rings hold now, and read the registers. */
static void blk_exercise(void *dev, void *ctx)
{
	struct blk_box *b = dev;
	uint8_t cfg[8];

	vd_mmio_wr(&b->b.mmio, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	vd_mmio_rd(&b->b.mmio, VIRTIO_MMIO_QUEUE_READY);
	vd_mmio_rd(&b->b.mmio, VIRTIO_MMIO_DEVICE_FEATURES);
	virtio_mmio_access(&b->b.mmio, VIRTIO_MMIO_CONFIG, cfg, 8, false);
	check_transport(&b->b.mmio);
}

static const struct kind blk_kind = {
	.create = blk_create,
	.destroy = blk_destroy,
	.save = blk_save_fn,
	.restore = blk_restore_fn,
	.check = blk_check,
	.exercise = blk_exercise,
	.mmio = blk_mmio,
	.has_free_fields = true, /* selects, config generation, non-ready fields... */
};

/* The guest's driver: the device it talks to now, and its avail index. */
struct blk_drv {
	struct virtio_mmio_dev *d;
	uint8_t *ram;
	uint16_t avail_idx;
};

#define BLK_FEATURES                                                                   \
	(BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_RING_F_EVENT_IDX) | BIT(VIRTIO_BLK_F_FLUSH) | \
	 BIT(VIRTIO_BLK_F_BLK_SIZE) | BIT(VIRTIO_BLK_F_SEG_MAX) | BIT(VIRTIO_BLK_F_SIZE_MAX))

/* What Linux's probe does; ends at DRIVER_OK with queue 0 live. */
static void blk_bring_up(struct blk_drv *g)
{
	struct virtio_mmio_dev *d = g->d;

	vd_mmio_wr(d, VIRTIO_MMIO_STATUS, 0);
	vd_mmio_wr(d, VIRTIO_MMIO_STATUS, ACK);
	vd_mmio_wr(d, VIRTIO_MMIO_STATUS, ACK | DRV);
	vd_mmio_driver_features(d, vd_mmio_device_features(d) & BLK_FEATURES);
	vd_mmio_wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	ck_assert_uint_eq(vd_mmio_rd(d, VIRTIO_MMIO_STATUS), ACK | DRV | FOK);
	memset(g->ram + BLK_AVAIL, 0, 0x2000);
	ck_assert(vd_mmio_queue_setup(d, 0, BLK_QSIZE, BLK_DESC, BLK_AVAIL, BLK_USED));
	vd_mmio_wr(d, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
	g->avail_idx = 0;
}

/*
 * One request laid out as Linux does (header, data unless len is 0,
 * status), asking for an interrupt when it is used.  Returns the status
 * byte, or -1 when the device used nothing.
 */
static int blk_req(struct blk_drv *g, uint32_t type, uint64_t sector, uint64_t data, uint32_t len,
		   bool data_in, uint32_t *used_len)
{
	uint16_t before = vd_used_idx(g->ram, BLK_USED);
	unsigned int n = 0;
	uint32_t id, ulen;

	vd_put_le(g->ram + BLK_HDR, type, 4);
	vd_put_le(g->ram + BLK_HDR + 4, 0, 4);
	vd_put_le(g->ram + BLK_HDR + 8, sector, 8);
	g->ram[BLK_STATUS] = 0xff;
	vd_put_desc(g->ram, BLK_DESC, n, BLK_HDR, 16, VIRTQ_DESC_F_NEXT, (uint16_t)(n + 1));
	n++;
	if (len) {
		vd_put_desc(g->ram, BLK_DESC, n, data, len,
			    (uint16_t)((data_in ? VIRTQ_DESC_F_WRITE : 0) | VIRTQ_DESC_F_NEXT), (uint16_t)(n + 1));
		n++;
	}
	vd_put_desc(g->ram, BLK_DESC, n, BLK_STATUS, 1, VIRTQ_DESC_F_WRITE, 0);
	vd_put_le(g->ram + BLK_AVAIL + 4 + 2 * BLK_QSIZE, before, 2); /* used_event */
	vd_avail_push(g->ram, BLK_AVAIL, BLK_QSIZE, &g->avail_idx, 0);
	vd_mmio_wr(g->d, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	if (vd_used_idx(g->ram, BLK_USED) == before)
		return -1;
	ck_assert_uint_eq(vd_used_idx(g->ram, BLK_USED), (uint16_t)(before + 1));
	vd_used_elem(g->ram, BLK_USED, BLK_QSIZE, before, &id, &ulen);
	ck_assert_uint_eq(id, 0);
	if (used_len)
		*used_len = ulen;
	return g->ram[BLK_STATUS];
}

static void fill(uint8_t *p, size_t n, uint32_t seed)
{
	for (size_t i = 0; i < n; i++)
		p[i] = (uint8_t)((i * 2654435761u + seed * 40503u) >> 13);
}

/* Write len bytes of pattern 'seed' at sector, read them back into DATA2, compare. */
static void blk_write_read(struct blk_drv *g, uint64_t sector, uint32_t len, uint32_t seed)
{
	uint32_t ulen = 0;

	fill(g->ram + BLK_DATA, len, seed);
	memset(g->ram + BLK_DATA2, 0, len);
	ck_assert_int_eq(blk_req(g, VIRTIO_BLK_T_OUT, sector, BLK_DATA, len, false, &ulen), VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(ulen, 1);
	ck_assert_int_eq(blk_req(g, VIRTIO_BLK_T_IN, sector, BLK_DATA2, len, true, &ulen), VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(ulen, len + 1);
	ck_assert(!memcmp(g->ram + BLK_DATA, g->ram + BLK_DATA2, len));
}

/* A disk mid-life: two requests written and read back, a flush, GET_ID; interrupts unacked. */
static struct blk_box *blk_mid_life(struct blk_fix *f, struct blk_drv *g)
{
	struct blk_box *a = blk_create(f);
	uint32_t ulen = 0;

	*g = (struct blk_drv){ .d = &a->b.mmio, .ram = f->ram };
	blk_bring_up(g);
	blk_write_read(g, 4, 2048, 1);
	ck_assert_int_eq(blk_req(g, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), VIRTIO_BLK_S_OK);
	ck_assert_int_eq(blk_req(g, VIRTIO_BLK_T_GET_ID, 0, BLK_DATA2, 20, true, &ulen), VIRTIO_BLK_S_OK);
	ck_assert_uint_eq(ulen, 21);
	ck_assert(!memcmp(f->ram + BLK_DATA2, DISK_ID, sizeof(DISK_ID)));
	ck_assert_int_eq(a->irqs, 4);
	ck_assert_uint_eq(vd_mmio_rd(g->d, VIRTIO_MMIO_INTERRUPT_STATUS), VIRTIO_MMIO_INT_VRING);
	return a;
}

START_TEST(test_blk_round_trip)
{
	struct blk_fix f;
	struct blk_drv g;
	struct blk_box *a, *b;
	struct snap_w sa, sb;
	uint8_t disk[4096];

	blk_fix_init(&f, DISK_SIZE, false, DISK_ID);
	a = blk_mid_life(&f, &g);
	sa = kind_save(&blk_kind, a);
	b = blk_create(&f);
	ck_assert_int_eq(kind_restore(&blk_kind, b, sa.buf, sa.len), 0);
	ck_assert_int_eq(b->irqs, 0); /* the edge is in the irqchip state, not raised again */
	sb = kind_save(&blk_kind, b);
	ck_assert(sec_eq(&sa, &sb));
	check_same_registers(&a->b.mmio, &b->b.mmio);
	blk_destroy(a);

	/* The guest carries on over the same rings, now served by b. */
	g.d = &b->b.mmio;
	blk_write_read(&g, 9, 4096, 2);
	ck_assert_uint_eq(vd_used_idx(f.ram, BLK_USED), 6);
	ck_assert_int_eq(b->irqs, 2);
	ck_assert_int_eq(pread(f.fd, disk, 4096, 9 * 512), 4096);
	ck_assert(!memcmp(disk, f.ram + BLK_DATA, 4096));
	/* What a wrote before the save is still there, read through b. */
	memset(f.ram + BLK_DATA2, 0, 2048);
	ck_assert_int_eq(blk_req(&g, VIRTIO_BLK_T_IN, 4, BLK_DATA2, 2048, true, NULL), VIRTIO_BLK_S_OK);
	fill(disk, 2048, 1);
	ck_assert(!memcmp(disk, f.ram + BLK_DATA2, 2048));
	snap_w_free(&sa);
	snap_w_free(&sb);
	blk_destroy(b);
	blk_fix_fini(&f);
}
END_TEST

/* A device the driver broke stays broken after a restore, until the driver resets it. */
START_TEST(test_blk_broken_round_trip)
{
	struct blk_fix f;
	struct blk_drv g;
	struct blk_box *a, *b;
	struct snap_w sa;

	blk_fix_init(&f, DISK_SIZE, false, DISK_ID);
	a = blk_mid_life(&f, &g);
	/* A chain with no writable byte cannot carry a status: DEVICE_NEEDS_RESET. */
	vd_put_desc(f.ram, BLK_DESC, 0, BLK_HDR, 16, 0, 0);
	vd_avail_push(f.ram, BLK_AVAIL, BLK_QSIZE, &g.avail_idx, 0);
	vd_mmio_wr(g.d, VIRTIO_MMIO_QUEUE_NOTIFY, 0);
	ck_assert(vd_mmio_rd(g.d, VIRTIO_MMIO_STATUS) & NEEDS_RESET);
	sa = kind_save(&blk_kind, a);
	b = blk_create(&f);
	ck_assert_int_eq(kind_restore(&blk_kind, b, sa.buf, sa.len), 0);
	check_same_registers(&a->b.mmio, &b->b.mmio);
	ck_assert_uint_eq(vd_mmio_rd(&b->b.mmio, VIRTIO_MMIO_INTERRUPT_STATUS),
			  VIRTIO_MMIO_INT_VRING | VIRTIO_MMIO_INT_CONFIG);
	g.d = &b->b.mmio;
	ck_assert_int_eq(blk_req(&g, VIRTIO_BLK_T_FLUSH, 0, 0, 0, false, NULL), -1);
	blk_bring_up(&g);
	blk_write_read(&g, 1, 512, 3);
	snap_w_free(&sa);
	blk_destroy(a);
	blk_destroy(b);
	blk_fix_fini(&f);
}
END_TEST

/*
 * States part-way through the probe restore too, and the fresh device goes
 * on from them as the first would: driver features with a bit not offered
 * before FEATURES_OK (which then refuses it), and a queue being set up
 * with a size that is not a power of two (which QueueReady then refuses).
 */
START_TEST(test_blk_setup_states_round_trip)
{
	static const enum mmio_fault setup_faults[] = {
		MF_QSIZE_ABOVE_MAX, MF_QSIZE_HUGE, MF_STATUS_RESET, MF_NEEDS_RESET_NOT_LIVE,
		MF_RING_FLAG_NOT_NEGOTIATED, MF_FEATURE_NOT_OFFERED, MF_ISR_UNKNOWN_BIT,
		MF_ISR_CONFIG_NOT_BROKEN, MF_STATUS_SKIPS_DRIVER,
	};
	struct blk_fix f;
	struct blk_box *a, *b;
	struct snap_w s;

	blk_fix_init(&f, DISK_SIZE, false, DISK_ID);
	a = blk_create(&f);
	vd_mmio_wr(&a->b.mmio, VIRTIO_MMIO_STATUS, ACK);
	vd_mmio_wr(&a->b.mmio, VIRTIO_MMIO_STATUS, ACK | DRV);
	vd_mmio_driver_features(&a->b.mmio, BIT(VIRTIO_F_VERSION_1) | BIT(VIRTIO_RING_F_INDIRECT_DESC));
	s = kind_save(&blk_kind, a);
	b = restored(&blk_kind, &f, &s);
	snap_w_free(&s);
	vd_mmio_wr(&b->b.mmio, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	ck_assert_uint_eq(vd_mmio_rd(&b->b.mmio, VIRTIO_MMIO_STATUS), ACK | DRV);
	blk_destroy(b);

	vd_mmio_driver_features(&a->b.mmio, BIT(VIRTIO_F_VERSION_1));
	vd_mmio_wr(&a->b.mmio, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	vd_mmio_wr(&a->b.mmio, VIRTIO_MMIO_QUEUE_NUM, 3);
	vd_mmio_wr(&a->b.mmio, VIRTIO_MMIO_QUEUE_DESC_LOW, (uint32_t)BLK_DESC);
	vd_mmio_wr(&a->b.mmio, VIRTIO_MMIO_QUEUE_AVAIL_LOW, (uint32_t)BLK_AVAIL);
	vd_mmio_wr(&a->b.mmio, VIRTIO_MMIO_QUEUE_USED_LOW, (uint32_t)BLK_USED);
	s = kind_save(&blk_kind, a);
	b = restored(&blk_kind, &f, &s);
	check_same_registers(&a->b.mmio, &b->b.mmio);
	/* Nothing here is served yet, so each of these is the only thing wrong. */
	for (unsigned int i = 0; i < sizeof(setup_faults) / sizeof(setup_faults[0]); i++)
		expect_mmio_fault_refused(&blk_kind, &f, &s, setup_faults[i]);
	vd_mmio_wr(&b->b.mmio, VIRTIO_MMIO_QUEUE_SEL, 0);
	vd_mmio_wr(&b->b.mmio, VIRTIO_MMIO_QUEUE_READY, 1);
	ck_assert_uint_eq(vd_mmio_rd(&b->b.mmio, VIRTIO_MMIO_QUEUE_READY), 0);
	vd_mmio_wr(&b->b.mmio, VIRTIO_MMIO_QUEUE_NUM, BLK_QSIZE);
	vd_mmio_wr(&b->b.mmio, VIRTIO_MMIO_QUEUE_READY, 1);
	ck_assert_uint_eq(vd_mmio_rd(&b->b.mmio, VIRTIO_MMIO_QUEUE_READY), 1);
	snap_w_free(&s);
	/* A queue made ready before DRIVER_OK cannot have been served. */
	s = kind_save(&blk_kind, b);
	expect_restores(&blk_kind, &f, &s);
	expect_mmio_fault_refused(&blk_kind, &f, &s, MF_SERVED_BEFORE_DRIVER_OK);
	snap_w_free(&s);
	blk_destroy(a);
	blk_destroy(b);
	blk_fix_fini(&f);
}
END_TEST

START_TEST(test_blk_hostile)
{
	struct blk_fix f;
	struct blk_drv g;
	struct blk_box *a;
	struct snap_w s;

	blk_fix_init(&f, DISK_SIZE, false, DISK_ID);
	a = blk_mid_life(&f, &g);
	s = kind_save(&blk_kind, a);
	blk_destroy(a);
	fuzz(&blk_kind, &f, &s);
	snap_w_free(&s);
	blk_fix_fini(&f);
}
END_TEST

START_TEST(test_blk_refusals)
{
	struct blk_fix f, other;
	struct blk_drv g;
	struct blk_box *a;
	struct snap_w s;

	blk_fix_init(&f, DISK_SIZE, false, DISK_ID);
	a = blk_mid_life(&f, &g);
	s = kind_save(&blk_kind, a);
	blk_destroy(a);
	expect_framing_refusals(&blk_kind, &f, &s);
	expect_live_faults_refused(&blk_kind, &f, &s);
	/* Not this disk: another size, read-only, another id. */
	other = f;
	other.fd = make_disk(DISK_SIZE * 2);
	expect_refused(&blk_kind, &other, s.buf, s.len);
	close(other.fd);
	other.fd = f.fd;
	other.read_only = true;
	expect_refused(&blk_kind, &other, s.buf, s.len);
	other.read_only = false;
	other.id = "another-disk";
	expect_refused(&blk_kind, &other, s.buf, s.len);
	snap_w_free(&s);
	blk_fix_fini(&f);
}
END_TEST

/* ---- virtio-vsock -------------------------------------------------------- */

#define VS_QSIZE 16
#define VS_RX_DESC 0x10000ULL
#define VS_RX_AVAIL 0x11000ULL
#define VS_RX_USED 0x12000ULL
#define VS_TX_DESC 0x13000ULL
#define VS_TX_AVAIL 0x14000ULL
#define VS_TX_USED 0x15000ULL
#define VS_EV_DESC 0x16000ULL
#define VS_EV_AVAIL 0x17000ULL
#define VS_EV_USED 0x18000ULL
#define VS_EV_BUF 0x19000ULL   /* 8 bytes each */
#define VS_TX_BUF 0x1a000ULL   /* one packet at a time */
#define VS_RX_BUF 0x20000ULL   /* VS_NR_RX buffers, one descriptor each */
#define VS_RX_STRIDE 0x2000ULL
#define VS_RX_LEN (VSOCK_HDR_SIZE + 4096)
#define VS_NR_RX 8
#define VS_NR_EV 2
#define GUEST_CID 42
#define HOST_PORT 1234

struct vs_fix {
	uint8_t *ram;
	struct guest_mem gm;
	uint64_t cid;
};

struct vs_box {
	struct virtio_vsock v;
	int irqs;
};

static void vs_fix_init(struct vs_fix *f)
{
	f->ram = guest_ram(&f->gm);
	f->cid = GUEST_CID;
}

/* As the machine sets it up: the guest's CID, and the agent's host port listened. */
static void *vs_create(void *ctx)
{
	struct vs_fix *f = ctx;
	struct vs_box *b = calloc(1, sizeof(*b));

	ck_assert_ptr_nonnull(b);
	ck_assert_int_eq(virtio_vsock_init(&b->v, &f->gm, f->cid), 0);
	ck_assert_int_eq(virtio_vsock_listen(&b->v, HOST_PORT), 0);
	virtio_mmio_set_irq(&b->v.mmio, count_irq, &b->irqs);
	return b;
}

KIND_VIRTIO_HOOKS(vs, vs_box, v, virtio_vsock)

static void vs_check(void *dev, void *ctx)
{
	struct vs_box *b = dev;

	check_transport(&b->v.mmio);
	ck_assert_uint_eq(virtio_vsock_nr_conns(&b->v), 0);
	ck_assert_uint_eq(b->v.nr_rst, 0);
	ck_assert_int_eq(b->irqs, 0);
}

/* Serve every queue over what the rings hold, host events, and a TRANSPORT_RESET. */
static void vs_exercise(void *dev, void *ctx)
{
	struct vs_box *b = dev;

	for (uint32_t q = 0; q < 3; q++)
		vd_wr(&b->v, VIRTIO_MMIO_QUEUE_NOTIFY, q);
	virtio_vsock_poll(&b->v);
	virtio_vsock_transport_reset(&b->v);
	check_transport(&b->v.mmio);
}

static const struct kind vs_kind = {
	.create = vs_create,
	.destroy = vs_destroy,
	.save = vs_save_fn,
	.restore = vs_restore_fn,
	.check = vs_check,
	.exercise = vs_exercise,
	.mmio = vs_mmio,
	.has_free_fields = true,
};

/* The guest: the device it talks to now, and its ring indexes. */
struct vs_drv {
	struct virtio_vsock *v;
	uint8_t *ram;
	uint16_t rx_avail, rx_seen, tx_avail, ev_avail, ev_seen;
};

static void vs_bring_up(struct vs_drv *g)
{
	vd_wr(g->v, VIRTIO_MMIO_STATUS, ACK);
	vd_wr(g->v, VIRTIO_MMIO_STATUS, ACK | DRV);
	vd_driver_features(g->v, BIT(VIRTIO_F_VERSION_1));
	vd_wr(g->v, VIRTIO_MMIO_STATUS, ACK | DRV | FOK);
	ck_assert(vd_queue_setup(g->v, VSOCK_QUEUE_RX, VS_QSIZE, VS_RX_DESC, VS_RX_AVAIL, VS_RX_USED));
	ck_assert(vd_queue_setup(g->v, VSOCK_QUEUE_TX, VS_QSIZE, VS_TX_DESC, VS_TX_AVAIL, VS_TX_USED));
	ck_assert(vd_queue_setup(g->v, VSOCK_QUEUE_EVENT, VS_QSIZE, VS_EV_DESC, VS_EV_AVAIL, VS_EV_USED));
	vd_wr(g->v, VIRTIO_MMIO_STATUS, ACK | DRV | FOK | DOK);
	for (uint16_t i = 0; i < VS_NR_RX; i++) {
		vd_put_desc(g->ram, VS_RX_DESC, i, VS_RX_BUF + i * VS_RX_STRIDE, VS_RX_LEN, VIRTQ_DESC_F_WRITE, 0);
		vd_avail_push(g->ram, VS_RX_AVAIL, VS_QSIZE, &g->rx_avail, i);
	}
	for (uint16_t i = 0; i < VS_NR_EV; i++) {
		vd_put_desc(g->ram, VS_EV_DESC, i, VS_EV_BUF + 8 * i, 8, VIRTQ_DESC_F_WRITE, 0);
		vd_avail_push(g->ram, VS_EV_AVAIL, VS_QSIZE, &g->ev_avail, i);
	}
}

/* One packet from guest port 'port' to HOST_PORT, kicked; the device takes it at once. */
static void vs_send(struct vs_drv *g, uint16_t op, uint32_t port, const void *data, uint32_t len)
{
	struct vsock_hdr h = { .src_cid = GUEST_CID, .dst_cid = VSOCK_HOST_CID, .src_port = port,
			       .dst_port = HOST_PORT, .len = len, .type = VSOCK_TYPE_STREAM, .op = op,
			       .buf_alloc = 65536 };
	uint16_t head = g->tx_avail % VS_QSIZE;

	vd_hdr_put(g->ram + VS_TX_BUF, &h);
	if (len)
		memcpy(g->ram + VS_TX_BUF + VSOCK_HDR_SIZE, data, len);
	vd_put_desc(g->ram, VS_TX_DESC, head, VS_TX_BUF, VSOCK_HDR_SIZE + len, 0, 0);
	vd_avail_push(g->ram, VS_TX_AVAIL, VS_QSIZE, &g->tx_avail, head);
	vd_wr(g->v, VIRTIO_MMIO_QUEUE_NOTIFY, VSOCK_QUEUE_TX);
	ck_assert_uint_eq(vd_used_idx(g->ram, VS_TX_USED), g->tx_avail);
}

/* The next packet the device sent (its payload into data), reposting the buffer; false: none. */
static bool vs_recv(struct vs_drv *g, struct vsock_hdr *h, uint8_t *data, size_t cap)
{
	uint32_t id, len;
	uint64_t buf;

	if (vd_used_idx(g->ram, VS_RX_USED) == g->rx_seen)
		return false;
	vd_used_elem(g->ram, VS_RX_USED, VS_QSIZE, g->rx_seen++, &id, &len);
	ck_assert_uint_lt(id, VS_NR_RX);
	buf = VS_RX_BUF + id * VS_RX_STRIDE;
	vd_hdr_get(g->ram + buf, h);
	ck_assert_uint_eq(len, VSOCK_HDR_SIZE + h->len);
	ck_assert_uint_le(h->len, cap);
	ck_assert_uint_eq(h->dst_cid, GUEST_CID);
	memcpy(data, g->ram + buf + VSOCK_HDR_SIZE, h->len);
	vd_avail_push(g->ram, VS_RX_AVAIL, VS_QSIZE, &g->rx_avail, (uint16_t)id);
	return true;
}

static void vs_expect(struct vs_drv *g, uint16_t op, uint32_t port, const char *data)
{
	struct vsock_hdr h;
	uint8_t got[64];

	ck_assert(vs_recv(g, &h, got, sizeof(got)));
	ck_assert_uint_eq(h.op, op);
	ck_assert_uint_eq(h.dst_port, port);
	ck_assert_uint_eq(h.src_port, HOST_PORT);
	ck_assert_uint_eq(h.len, strlen(data));
	ck_assert(!memcmp(got, data, h.len));
}

/* A guest connection from 'port' to HOST_PORT, accepted, with a byte each way; the host fd. */
static int vs_connect(struct vs_drv *g, uint32_t port)
{
	char buf[16];
	int fd;

	vs_send(g, VSOCK_OP_REQUEST, port, NULL, 0);
	vs_expect(g, VSOCK_OP_RESPONSE, port, "");
	fd = virtio_vsock_accept(g->v, HOST_PORT, 1000);
	ck_assert_int_ge(fd, 0);
	vs_send(g, VSOCK_OP_RW, port, "ping", 4);
	ck_assert_int_eq(read(fd, buf, sizeof(buf)), 4);
	ck_assert(!memcmp(buf, "ping", 4));
	ck_assert_int_eq(write(fd, "pong", 4), 4);
	virtio_vsock_poll(g->v);
	vs_expect(g, VSOCK_OP_RW, port, "pong");
	return fd;
}

/* A device with one live connection (its host fd in *fd) and rx/event buffers posted. */
static struct vs_box *vs_mid_life(struct vs_fix *f, struct vs_drv *g, int *fd)
{
	struct vs_box *a = vs_create(f);

	*g = (struct vs_drv){ .v = &a->v, .ram = f->ram };
	vs_bring_up(g);
	*fd = vs_connect(g, 5000);
	ck_assert_uint_eq(virtio_vsock_nr_conns(&a->v), 1);
	return a;
}

START_TEST(test_vsock_round_trip)
{
	struct vs_fix f;
	struct vs_drv g;
	struct vs_box *a, *b;
	struct snap_w sa, sb;
	uint32_t id, len;
	uint8_t cid[8];
	char buf[16];
	int fd, fd2;

	vs_fix_init(&f);
	a = vs_mid_life(&f, &g, &fd);
	/* As after host-initiated connections: the restored device goes on from here. */
	a->v.next_local_port = VSOCK_LOCAL_PORT_BASE + 1234;
	sa = kind_save(&vs_kind, a);
	/* The old machine goes; its connection's host end sees EOF. */
	vs_destroy(a);
	ck_assert_int_eq(read(fd, buf, sizeof(buf)), 0);
	close(fd);

	b = vs_create(&f);
	ck_assert_int_eq(kind_restore(&vs_kind, b, sa.buf, sa.len), 0);
	sb = kind_save(&vs_kind, b);
	ck_assert(sec_eq(&sa, &sb));
	ck_assert_uint_eq(vd_rd(&b->v, VIRTIO_MMIO_STATUS), ACK | DRV | FOK | DOK);
	for (uint32_t q = 0; q < 3; q++) {
		vd_wr(&b->v, VIRTIO_MMIO_QUEUE_SEL, q);
		ck_assert_uint_eq(vd_rd(&b->v, VIRTIO_MMIO_QUEUE_READY), 1);
	}
	virtio_mmio_access(&b->v.mmio, VIRTIO_MMIO_CONFIG, cid, 8, false);
	ck_assert_uint_eq(vd_get_le(cid, 8), GUEST_CID);
	ck_assert_uint_eq(virtio_vsock_nr_conns(&b->v), 0);
	ck_assert_uint_eq(b->v.next_local_port, VSOCK_LOCAL_PORT_BASE + 1234);
	g.v = &b->v;

	/* Nothing is owed to the guest: no RST for the connection it still believes in. */
	virtio_vsock_poll(&b->v);
	vd_wr(&b->v, VIRTIO_MMIO_QUEUE_NOTIFY, VSOCK_QUEUE_RX);
	ck_assert_uint_eq(vd_used_idx(f.ram, VS_RX_USED), g.rx_seen);
	/* The owner's TRANSPORT_RESET lands in the guest's event buffer. */
	ck_assert_int_eq(virtio_vsock_transport_reset(&b->v), 0);
	ck_assert_uint_eq(vd_used_idx(f.ram, VS_EV_USED), 1);
	vd_used_elem(f.ram, VS_EV_USED, VS_QSIZE, 0, &id, &len);
	ck_assert_uint_eq(id, 0);
	ck_assert_uint_eq(len, 4);
	ck_assert_uint_eq(vd_get_le(f.ram + VS_EV_BUF, 4), VSOCK_EVENT_TRANSPORT_RESET);
	ck_assert_int_gt(b->irqs, 0);

	/* A new connection works end to end, on the rings and buffers of before. */
	fd2 = vs_connect(&g, 5001);
	ck_assert_uint_eq(virtio_vsock_nr_conns(&b->v), 1);
	/* The old one is unknown now: a guest still using it is reset. */
	vs_send(&g, VSOCK_OP_RW, 5000, "stale", 5);
	vs_expect(&g, VSOCK_OP_RST, 5000, "");
	close(fd2);
	snap_w_free(&sa);
	snap_w_free(&sb);
	vs_destroy(b);
	free(f.ram);
}
END_TEST

struct connect_arg {
	struct virtio_vsock *v;
	int result;
};

static void *connect_thread(void *opaque)
{
	struct connect_arg *c = opaque;

	c->result = virtio_vsock_connect(c->v, 77, 10000);
	return NULL;
}

/* A connection the fresh device already had is reset by the restore, its caller told at once. */
START_TEST(test_vsock_restore_resets_fresh_connections)
{
	struct vs_fix f;
	struct vs_drv g;
	struct vs_box *a, *b;
	struct connect_arg c;
	struct snap_w s;
	pthread_t t;
	int fd;

	vs_fix_init(&f);
	a = vs_mid_life(&f, &g, &fd);
	s = kind_save(&vs_kind, a);
	vs_destroy(a);
	close(fd);
	b = vs_create(&f);
	c = (struct connect_arg){ .v = &b->v };
	ck_assert_int_eq(pthread_create(&t, NULL, connect_thread, &c), 0);
	for (int i = 0; i < 2000 && virtio_vsock_nr_conns(&b->v) == 0; i++)
		usleep(1000);
	ck_assert_uint_eq(virtio_vsock_nr_conns(&b->v), 1);
	ck_assert_int_eq(kind_restore(&vs_kind, b, s.buf, s.len), 0);
	ck_assert_int_eq(pthread_join(t, NULL), 0);
	ck_assert_int_eq(c.result, -ECONNRESET);
	ck_assert_uint_eq(virtio_vsock_nr_conns(&b->v), 0);
	/* The guest never hears of it: nothing waits on rx. */
	g.v = &b->v;
	vd_wr(&b->v, VIRTIO_MMIO_QUEUE_NOTIFY, VSOCK_QUEUE_RX);
	ck_assert_uint_eq(vd_used_idx(f.ram, VS_RX_USED), g.rx_seen);
	snap_w_free(&s);
	vs_destroy(b);
	free(f.ram);
}
END_TEST

START_TEST(test_vsock_hostile)
{
	struct vs_fix f;
	struct vs_drv g;
	struct vs_box *a;
	struct snap_w s;
	int fd;

	vs_fix_init(&f);
	a = vs_mid_life(&f, &g, &fd);
	s = kind_save(&vs_kind, a);
	vs_destroy(a);
	close(fd);
	fuzz(&vs_kind, &f, &s);
	snap_w_free(&s);
	free(f.ram);
}
END_TEST

START_TEST(test_vsock_refusals)
{
	struct vs_fix f, other;
	struct blk_fix bf;
	struct vs_drv g;
	struct blk_drv bg;
	struct vs_box *a;
	struct blk_box *ba;
	struct snap_w s, sb;
	int fd;

	vs_fix_init(&f);
	a = vs_mid_life(&f, &g, &fd);
	s = kind_save(&vs_kind, a);
	vs_destroy(a);
	close(fd);
	expect_framing_refusals(&vs_kind, &f, &s);
	expect_live_faults_refused(&vs_kind, &f, &s);
	/* The next host port (the section's last u32) outside the device's range. */
	expect_patch_refused(&vs_kind, &f, &s, s.len - 4, 0, 4);
	expect_patch_refused(&vs_kind, &f, &s, s.len - 4, VSOCK_LOCAL_PORT_BASE - 1, 4);
	expect_patch_refused(&vs_kind, &f, &s, s.len - 4, 2ULL * VSOCK_LOCAL_PORT_BASE, 4);
	/* Another guest CID than the fresh device's. */
	other = f;
	other.cid = GUEST_CID + 1;
	expect_refused(&vs_kind, &other, s.buf, s.len);
	/* The section of another kind of device, either way round. */
	blk_fix_init(&bf, DISK_SIZE, false, DISK_ID);
	expect_refused(&blk_kind, &bf, s.buf, s.len);
	ba = blk_mid_life(&bf, &bg);
	sb = kind_save(&blk_kind, ba);
	blk_destroy(ba);
	expect_refused(&vs_kind, &f, sb.buf, sb.len);
	snap_w_free(&sb);
	blk_fix_fini(&bf);
	snap_w_free(&s);
	free(f.ram);
}
END_TEST

int main(void)
{
	Suite *s = suite_create("snapshot_devices");
	TCase *tc = tcase_create("core");

	/* The hostile tests restore thousands of sections; slower under sanitizers. */
	tcase_set_timeout(tc, 120);
	tcase_add_test(tc, test_uart_round_trip);
	tcase_add_test(tc, test_uart_hostile);
	tcase_add_test(tc, test_uart_refusals);
	tcase_add_test(tc, test_small_devices_round_trip);
	tcase_add_test(tc, test_small_devices_hostile);
	tcase_add_test(tc, test_small_devices_refusals);
	tcase_add_test(tc, test_blk_round_trip);
	tcase_add_test(tc, test_blk_broken_round_trip);
	tcase_add_test(tc, test_blk_setup_states_round_trip);
	tcase_add_test(tc, test_blk_hostile);
	tcase_add_test(tc, test_blk_refusals);
	tcase_add_test(tc, test_vsock_round_trip);
	tcase_add_test(tc, test_vsock_restore_resets_fresh_connections);
	tcase_add_test(tc, test_vsock_hostile);
	tcase_add_test(tc, test_vsock_refusals);
	suite_add_tcase(s, tc);
	return tu_run(s);
}
