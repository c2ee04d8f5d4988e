// SPDX-License-Identifier: Apache-2.0
/*
 * virtio-blk end to end: the freestanding guests vblk_io and vblk_hostile
 * (tests/guests/) booted through the public API with temp raw images
 * attached by msvmm_config_add_disk().  The guest checks the device from
 * the inside and reports a status; this side checks the status and the
 * images: every byte the guest wrote is at its offset, nothing else moved,
 * the file did not grow, and a read-only image is bit-for-bit unchanged.
 *
 * Guests are found like test_guests.c finds them ($MSVMM_BUILD/guests,
 * next to this binary, or build/guests).  With no /dev/kvm at all the whole
 * program skips, saying so; a /dev/kvm that exists but does not work fails.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "cpio.h"
#include "msvmm.h"
#include "testutil.h"

#define GUEST_MEM_MIB 64
#define GUEST_TIMEOUT_MS 60000
#define TEST_TIMEOUT_S 120
#define SECTOR 512
#define DISK_BYTES (4ULL << 20)
#define DISK_SECTORS (DISK_BYTES / SECTOR)

/* Must match tests/guests/vblk_io.c. */
#define IO_GUEST_SEED 0xc3
#define IO_SECT_SINGLE 1
#define IO_SECT_MULTI 8 /* 8 sectors */
#define IO_SECT_ODD 24  /* 2 sectors */
/* Must match tests/guests/vblk_hostile.c. */
#define HOSTILE_ROUNDTRIP_SECT 200
#define HOSTILE_D0_SEED 0x17
#define HOSTILE_D1_SEED 0x91
#define HOSTILE_MIN_ROUNDS 20

/* The bytes an image starts with (vblk_io.c host_byte) ... */
static uint8_t host_byte(uint64_t s, unsigned int i)
{
	return (uint8_t)((s * 37) ^ (i * 11) ^ ((i >> 8) * 0x81) ^ 0x5a);
}

/* ... and past its last whole sector, where the guest cannot reach. */
#define TAIL_BYTE 0xab

/* What vblk_io writes (vblk_io.c guest_byte; i counts from the request's first byte). */
static uint8_t io_guest_byte(uint64_t s, unsigned int i)
{
	return (uint8_t)(s * 53 + i * 5 + (i >> 8) * 0x33 + IO_GUEST_SEED);
}

/* What vblk_hostile writes (vblk_hostile.c pat). */
static uint8_t hostile_byte(uint8_t seed, uint64_t s, unsigned int i)
{
	return (uint8_t)(s * 29 + i * 3 + (i >> 8) * 0x45 + seed);
}

struct disk {
	char path[PATH_MAX];
	uint64_t size;
	int read_only;
	uint8_t *after; /* the whole image after the run, read before unlinking */
	uint8_t *before;
};

struct guest_run {
	const char *name;
	int create_rc, run_rc;
	msvmm_error err;
	msvmm_result res;
	char console[8192];
	size_t console_len;
	double ms;
};

static int write_all(int fd, const void *p, size_t len, off_t off)
{
	const unsigned char *b = p;

	while (len) {
		ssize_t n = pwrite(fd, b, len, off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		b += n;
		len -= (size_t)n;
		off += n;
	}
	return 0;
}

static int read_all(const char *path, uint8_t *buf, uint64_t len)
{
	int fd = open(path, O_RDONLY | O_CLOEXEC);
	uint64_t done = 0;

	if (fd < 0)
		return -1;
	while (done < len) {
		ssize_t n = pread(fd, buf + done, len - done, (off_t)done);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		done += (uint64_t)n;
	}
	close(fd);
	return done == len ? 0 : -1;
}

/* The expected initial image, in memory: host_byte per whole sector, TAIL_BYTE after. */
static uint8_t *image_bytes(uint64_t size)
{
	uint8_t *p = malloc(size);

	ck_assert_ptr_nonnull(p);
	for (uint64_t s = 0; s < size / SECTOR; s++)
		for (unsigned int i = 0; i < SECTOR; i++)
			p[s * SECTOR + i] = host_byte(s, i);
	memset(p + size / SECTOR * SECTOR, TAIL_BYTE, size % SECTOR);
	return p;
}

/*
 * 'n' temp images of 'size' bytes each: ftruncate to size first (the layout
 * a sparse image has), then the pattern.  All or none: a failure removes
 * those already made before the test ends.
 */
static void make_disks(struct disk *d, unsigned int n, uint64_t size, int read_only)
{
	for (unsigned int k = 0; k < n; k++) {
		int fd, e = 0;

		memset(&d[k], 0, sizeof(d[k]));
		d[k].size = size;
		d[k].read_only = read_only;
		d[k].before = image_bytes(size);
		snprintf(d[k].path, sizeof(d[k].path), "%s/msvmm-test-vblk-XXXXXX", tu_tmpdir());
		fd = mkstemp(d[k].path);
		if (fd < 0)
			e = errno;
		else if (ftruncate(fd, (off_t)size) < 0 || write_all(fd, d[k].before, size, 0) < 0)
			e = errno ? errno : EIO;
		if (fd >= 0)
			close(fd);
		if (e) {
			for (unsigned int j = 0; j <= k; j++)
				if (j < k || fd >= 0)
					unlink(d[j].path);
			ck_abort_msg("making image %s: %s", d[k].path, strerror(e));
		}
	}
}

static void make_initramfs(char *path, size_t len)
{
	struct cpio_buf c;
	int fd;

	cpio_init(&c);
	ck_assert_int_eq(cpio_add_file(&c, "hello.txt", 0644, "vblk\n", 5), 0);
	ck_assert_int_eq(cpio_finish(&c), 0);
	snprintf(path, len, "%s/msvmm-test-vblk-initrd-XXXXXX", tu_tmpdir());
	fd = mkstemp(path);
	ck_assert_msg(fd >= 0, "mkstemp %s: %s", path, strerror(errno));
	if (write_all(fd, c.data, c.len, 0) < 0) {
		close(fd);
		unlink(path);
		ck_abort_msg("writing %s: %s", path, strerror(errno));
	}
	close(fd);
	cpio_free(&c);
}

static int make_console(void)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/msvmm-test-console-XXXXXX", tu_tmpdir());
	fd = mkstemp(path);
	ck_assert_msg(fd >= 0, "mkstemp %s: %s", path, strerror(errno));
	unlink(path);
	return fd;
}

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

/*
 * Boot guest 'name' with 'disks' attached in order (device n is disks[n])
 * and run it to the end.  Afterwards each image is read into d->after (NULL
 * if it could not be read: size changed or gone) and unlinked, so no temp
 * file outlives this call; assertions come after, in the caller.
 */
static void run_guest(const char *name, const char *extra, struct disk *disks, unsigned int nr_disks,
		      struct guest_run *g)
{
	static const char *const argv[] = { "true", NULL };
	char elf[PATH_MAX], initramfs[PATH_MAX];
	msvmm_config *cfg;
	msvmm_vm *vm = NULL;
	ssize_t n;
	double t0;
	int con;

	memset(g, 0, sizeof(*g));
	g->name = name;
	tu_guest_elf_path(name, elf, sizeof(elf));
	cfg = msvmm_config_new();
	if (access(elf, R_OK) || !cfg || msvmm_config_set_kernel(cfg, elf) ||
	    msvmm_config_set_memory_mib(cfg, GUEST_MEM_MIB) || msvmm_config_set_timeout_ms(cfg, GUEST_TIMEOUT_MS) ||
	    msvmm_config_set_argv(cfg, argv) || msvmm_config_set_extra_cmdline(cfg, extra)) {
		for (unsigned int i = 0; i < nr_disks; i++)
			unlink(disks[i].path);
		ck_abort_msg("guest %s: cannot configure (missing? build it: make %s)", elf, elf);
	}
	for (unsigned int i = 0; i < nr_disks; i++)
		if (msvmm_config_add_disk(cfg, disks[i].path, NULL, disks[i].read_only)) {
			for (unsigned int j = 0; j < nr_disks; j++)
				unlink(disks[j].path);
			ck_abort_msg("msvmm_config_add_disk %s failed", disks[i].path);
		}
	con = make_console();
	make_initramfs(initramfs, sizeof(initramfs));
	msvmm_config_set_console_fd(cfg, con);
	msvmm_config_set_image(cfg, initramfs);

	t0 = now_ms();
	g->create_rc = msvmm_vm_create(cfg, &vm, &g->err);
	unlink(initramfs);
	msvmm_config_free(cfg);
	if (g->create_rc == 0) {
		g->run_rc = msvmm_vm_run(vm, &g->res, &g->err);
		msvmm_vm_destroy(vm);
	}
	g->ms = now_ms() - t0;

	n = pread(con, g->console, sizeof(g->console) - 1, 0);
	g->console_len = n > 0 ? (size_t)n : 0;
	g->console[g->console_len] = '\0';
	close(con);

	for (unsigned int i = 0; i < nr_disks; i++) {
		struct disk *d = &disks[i];
		struct stat st;

		d->after = NULL;
		if (stat(d->path, &st) == 0 && (uint64_t)st.st_size == d->size) {
			d->after = malloc(d->size);
			if (d->after && read_all(d->path, d->after, d->size) < 0) {
				free(d->after);
				d->after = NULL;
			}
		}
		unlink(d->path);
	}

	fprintf(stderr, "test_vblk_guests: %s (%s): create %d, run %d, status %d; %.1f ms, %llu exits\n", name,
		extra, g->create_rc, g->run_rc, g->res.status, g->ms, (unsigned long long)g->res.exits);
	if (getenv("MSVMM_TEST_CONSOLE"))
		fprintf(stderr, "%s", g->console);
}

static void assert_ran(const struct guest_run *g)
{
	ck_assert_msg(g->create_rc == 0, "%s: msvmm_vm_create: %d %s", g->name, g->create_rc, g->err.message);
	ck_assert_msg(g->run_rc == 0, "%s: msvmm_vm_run: %d %s; console:\n%s", g->name, g->run_rc, g->err.message,
		      g->console);
	ck_assert_msg(g->res.exited && !g->res.signaled, "%s: no exit status reported", g->name);
}

static void free_disk(struct disk *d)
{
	free(d->before);
	free(d->after);
	d->before = d->after = NULL;
}

/* The image must still be readable at its old size: it did not grow, shrink or vanish. */
static void assert_image_intact(const struct disk *d, const char *which)
{
	ck_assert_msg(d->after, "%s: image unreadable or its size changed after the run", which);
}

/* Expect 'nsect' sectors from 'sector' to hold what vblk_io wrote there. */
static void expect_io_written(struct disk *d, uint64_t sector, unsigned int nsect)
{
	for (unsigned int k = 0; k < nsect; k++) {
		uint64_t s = sector + k;

		for (unsigned int i = 0; i < SECTOR; i++)
			d->before[s * SECTOR + i] = io_guest_byte(s, i);
	}
}

/* First differing byte between what we expect and what the image holds, or -1. */
static int64_t first_diff(const struct disk *d)
{
	for (uint64_t i = 0; i < d->size; i++)
		if (d->before[i] != d->after[i])
			return (int64_t)i;
	return -1;
}

static void assert_image_is(const struct disk *d, const char *which)
{
	int64_t at = first_diff(d);

	ck_assert_msg(at < 0, "%s: byte %lld (sector %lld + %lld) is 0x%02x, want 0x%02x", which, (long long)at,
		      (long long)(at / SECTOR), (long long)(at % SECTOR), at < 0 ? 0 : d->after[at],
		      at < 0 ? 0 : d->before[at]);
}

/* vblk_io on a writable disk of 'size' bytes (queue of 'qsize', EVENT_IDX negotiated or not). */
static void run_io_rw(uint64_t size, unsigned int qsize, int event_idx)
{
	uint64_t sectors = size / SECTOR;
	char extra[128];
	struct guest_run g;
	struct disk d;

	make_disks(&d, 1, size, 0);
	snprintf(extra, sizeof(extra), "msvmm.test=vblk_io msvmm.sectors=%llu msvmm.qsize=%u msvmm.event_idx=%d",
		 (unsigned long long)sectors, qsize, event_idx);
	run_guest("vblk_io", extra, &d, 1, &g);
	assert_ran(&g);
	ck_assert_msg(g.res.status == 0, "vblk_io: check %d failed; console:\n%s", g.res.status, g.console);
	ck_assert_msg(strstr(g.console, "vblk_io: ok\n"), "vblk_io: no ok line; console:\n%s", g.console);
	assert_image_intact(&d, "vblk_io");
	/* Exactly these were written; the refused writes (sectors 20-21, the straddle at the end) left no trace. */
	expect_io_written(&d, IO_SECT_SINGLE, 1);
	expect_io_written(&d, IO_SECT_MULTI, 8);
	expect_io_written(&d, IO_SECT_ODD, 2);
	expect_io_written(&d, sectors - 1, 1);
	assert_image_is(&d, "vblk_io image");
	free_disk(&d);
}

START_TEST(test_vblk_io_rw)
{
	run_io_rw(DISK_BYTES, 256, 0);
}
END_TEST

/*
 * A trailing partial sector is not part of the disk (and must survive); an
 * 8-entry queue is enough; EVENT_IDX moves the ring fields the device writes.
 */
START_TEST(test_vblk_io_partial_sector_small_queue_event_idx)
{
	run_io_rw(DISK_BYTES + 100, 8, 1);
}
END_TEST

START_TEST(test_vblk_io_ro)
{
	char extra[128];
	struct guest_run g;
	struct disk d;

	make_disks(&d, 1, DISK_BYTES, 1);
	snprintf(extra, sizeof(extra), "msvmm.test=vblk_io msvmm.sectors=%llu msvmm.ro=1",
		 (unsigned long long)DISK_SECTORS);
	run_guest("vblk_io", extra, &d, 1, &g);
	assert_ran(&g);
	ck_assert_msg(g.res.status == 0, "vblk_io (ro): check %d failed; console:\n%s", g.res.status, g.console);
	ck_assert_msg(strstr(g.console, "vblk_io: ok (ro)\n"), "vblk_io (ro): no ok line; console:\n%s", g.console);
	assert_image_intact(&d, "vblk_io (ro)");
	assert_image_is(&d, "read-only image");
	free_disk(&d);
}
END_TEST

/*
 * The checker must not pass vacuously: tell vblk_io its writable disk is
 * read-only and it must notice that RO is not offered (check 4, C_FEAT_RO)
 * and that its write went through (19, C_RO_WRITE).
 */
START_TEST(test_vblk_io_catches_ro_mismatch)
{
	char extra[128];
	struct guest_run g;
	struct disk d;

	make_disks(&d, 1, DISK_BYTES, 0);
	snprintf(extra, sizeof(extra), "msvmm.test=vblk_io msvmm.sectors=%llu msvmm.ro=1",
		 (unsigned long long)DISK_SECTORS);
	run_guest("vblk_io", extra, &d, 1, &g);
	assert_ran(&g);
	ck_assert_msg(g.res.status == 4, "vblk_io: status %d, want 4 (RO not offered); console:\n%s", g.res.status,
		      g.console);
	ck_assert_msg(strstr(g.console, "vblk_io: FAIL 19:"), "vblk_io: the accepted write was not reported:\n%s",
		      g.console);
	free_disk(&d);
}
END_TEST

START_TEST(test_vblk_hostile)
{
	struct disk d[2];
	struct guest_run g;
	const char *p;
	unsigned int rounds = 0;

	make_disks(d, 2, DISK_BYTES, 0);
	run_guest("vblk_hostile", "msvmm.test=vblk_hostile", d, 2, &g);
	/* The VMM survived all of it: create and run worked, and the guest says how it went. */
	assert_ran(&g);
	ck_assert_msg(g.res.status == 0, "vblk_hostile: check %d failed; console:\n%s", g.res.status, g.console);
	p = strstr(g.console, "vblk_hostile: ok, rounds ");
	ck_assert_msg(p && sscanf(p, "vblk_hostile: ok, rounds %u", &rounds) == 1, "vblk_hostile: no ok line:\n%s",
		      g.console);
	ck_assert_msg(rounds >= HOSTILE_MIN_ROUNDS && HOSTILE_ROUNDTRIP_SECT + rounds < DISK_SECTORS,
		      "vblk_hostile: %u rounds", rounds);
	assert_image_intact(&d[0], "disk 0");
	assert_image_intact(&d[1], "disk 1");
	/*
	 * Round k wrote disk 0 sector 200 + k and disk 1 sector k; nothing else
	 * may have changed; above all not sectors 100.., where every malformed
	 * chain aimed its write of 0xee.
	 */
	for (unsigned int k = 0; k <= rounds; k++)
		for (unsigned int i = 0; i < SECTOR; i++) {
			d[0].before[(HOSTILE_ROUNDTRIP_SECT + k) * SECTOR + i] =
				hostile_byte(HOSTILE_D0_SEED, HOSTILE_ROUNDTRIP_SECT + k, i);
			d[1].before[k * SECTOR + i] = hostile_byte(HOSTILE_D1_SEED, k, i);
		}
	assert_image_is(&d[0], "disk 0 (attacked)");
	assert_image_is(&d[1], "disk 1 (bystander)");
	free_disk(&d[0]);
	free_disk(&d[1]);
}
END_TEST

static Suite *vblk_suite(void)
{
	Suite *s = suite_create("vblk_guests");
	TCase *tc = tcase_create("vblk");

	tcase_set_timeout(tc, TEST_TIMEOUT_S);
	tcase_add_test(tc, test_vblk_io_rw);
	tcase_add_test(tc, test_vblk_io_partial_sector_small_queue_event_idx);
	tcase_add_test(tc, test_vblk_io_ro);
	tcase_add_test(tc, test_vblk_io_catches_ro_mismatch);
	tcase_add_test(tc, test_vblk_hostile);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	struct stat st;
	SRunner *sr;
	int failed;

	if (stat("/dev/kvm", &st) < 0 && errno == ENOENT) {
		fprintf(stderr, "test_vblk_guests: SKIPPED: /dev/kvm does not exist on this host, so no guest can run.\n");
		return 0;
	}
	sr = srunner_create(vblk_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
