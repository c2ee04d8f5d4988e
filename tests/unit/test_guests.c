// SPDX-License-Identifier: Apache-2.0
/*
 * Freestanding test guests (tests/guests/) booted through the public API:
 * msvmm's real ELF loader, 64-bit boot path, initrd + run-spec placement,
 * control device and 8250, on the host's /dev/kvm.  Each guest checks what
 * it was handed from the inside and reports a status; this side checks the
 * status, the error path and the console bytes.
 *
 * Guests are found in $MSVMM_BUILD/guests, else next to this binary
 * (BUILD/tests/../guests), else in build/guests; `make unit` builds them.
 * With no /dev/kvm at all the whole program skips, saying so; a /dev/kvm
 * that exists but does not work is a failure, never a skip.
 */
#include <check.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
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
/* Check's own per-test limit must outlast the VMM's, so the VMM's timeout is what reports. */
#define TEST_TIMEOUT_S 120

/* Must match tests/guests/boot_state.c. */
#define INITRAMFS_FILE "hello.txt"
#define INITRAMFS_TEXT "msvmm initramfs payload\n"

struct guest_run {
	const char *name;
	int create_rc, run_rc;
	msvmm_error err;
	msvmm_result res;
	int is_pvm;
	char console[8192];
	size_t console_len;
	double ms;		/* create + run, wall clock */
};

/* A tiny image initramfs in a temp file; the caller unlinks 'path'. */
static void make_initramfs(char *path, size_t len)
{
	struct cpio_buf c;
	int fd;

	cpio_init(&c);
	ck_assert_int_eq(cpio_add_file(&c, INITRAMFS_FILE, 0644, INITRAMFS_TEXT, strlen(INITRAMFS_TEXT)), 0);
	ck_assert_int_eq(cpio_finish(&c), 0);
	snprintf(path, len, "%s/msvmm-test-guest-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
	fd = mkstemp(path);
	ck_assert_msg(fd >= 0, "mkstemp %s: %s", path, strerror(errno));
	if (tu_write_all(fd, c.data, c.len) < 0) {
		unlink(path);
		ck_abort_msg("writing %s: %s", path, strerror(errno));
	}
	close(fd);
	cpio_free(&c);
}

/* Console capture: an unlinked temp file, so nothing is left behind whatever happens. */
static int make_console(void)
{
	char path[PATH_MAX];
	int fd;

	snprintf(path, sizeof(path), "%s/msvmm-test-console-XXXXXX", getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp");
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
 * Boot guest 'name' with the given argv and extra command-line words and run
 * it to the end.  No assertions once files exist (a failed ck_assert ends
 * the forked test at once), so every temp file is gone before returning.
 */
static void run_guest(const char *name, const char *const *argv, const char *env, const char *extra,
		      struct guest_run *g)
{
	char elf[PATH_MAX], initramfs[PATH_MAX];
	msvmm_config *cfg;
	msvmm_vm *vm = NULL;
	ssize_t n;
	double t0;
	int con;

	memset(g, 0, sizeof(*g));
	g->name = name;
	tu_guest_elf_path(name, elf, sizeof(elf));
	ck_assert_msg(access(elf, R_OK) == 0, "guest %s: %s (build it: make %s)", elf, strerror(errno), elf);
	cfg = msvmm_config_new();
	ck_assert_ptr_nonnull(cfg);
	ck_assert_int_eq(msvmm_config_set_kernel(cfg, elf), 0);
	ck_assert_int_eq(msvmm_config_set_memory_mib(cfg, GUEST_MEM_MIB), 0);
	ck_assert_int_eq(msvmm_config_set_timeout_ms(cfg, GUEST_TIMEOUT_MS), 0);
	ck_assert_int_eq(msvmm_config_set_argv(cfg, argv), 0);
	if (env)
		ck_assert_int_eq(msvmm_config_add_env(cfg, env), 0);
	if (extra)
		ck_assert_int_eq(msvmm_config_set_extra_cmdline(cfg, extra), 0);

	con = make_console();
	make_initramfs(initramfs, sizeof(initramfs));
	msvmm_config_set_console_fd(cfg, con);
	msvmm_config_set_image(cfg, initramfs);

	t0 = now_ms();
	g->create_rc = msvmm_vm_create(cfg, &vm, &g->err);
	/* The VMM has copied the image into guest RAM by now. */
	unlink(initramfs);
	msvmm_config_free(cfg);
	if (g->create_rc == 0) {
		g->is_pvm = msvmm_vm_is_pvm(vm);
		g->run_rc = msvmm_vm_run(vm, &g->res, &g->err);
		msvmm_vm_destroy(vm);
	}
	g->ms = now_ms() - t0;

	n = pread(con, g->console, sizeof(g->console) - 1, 0);
	g->console_len = n > 0 ? (size_t)n : 0;
	g->console[g->console_len] = '\0';
	close(con);

	/* Timings go to stderr on every run: a slow guest path shows up in the log.  MSVMM_TEST_CONSOLE=1 adds the console. */
	fprintf(stderr,
		"test_guests: %s (%s)%s: create %d, run %d, status %d; %.1f ms in all, %.1f ms from first KVM_RUN, %llu exits\n",
		name, extra ? extra : "", g->is_pvm ? " [PVM]" : "", g->create_rc, g->run_rc, g->res.status, g->ms,
		g->ms - (double)g->res.ns_first_run / 1e6, (unsigned long long)g->res.exits);
	if (getenv("MSVMM_TEST_CONSOLE"))
		fprintf(stderr, "%s", g->console);
}

/* Create and run must have worked; say why not, with the guest's console. */
static void assert_ran(const struct guest_run *g)
{
	ck_assert_msg(g->create_rc == 0, "%s: msvmm_vm_create: %d %s", g->name, g->create_rc, g->err.message);
	ck_assert_msg(g->run_rc == 0, "%s: msvmm_vm_run: %d %s; console:\n%s", g->name, g->run_rc, g->err.message,
		      g->console);
	ck_assert_msg(g->res.exited && !g->res.signaled, "%s: no exit status reported", g->name);
}

START_TEST(test_exit_code)
{
	static const char *const argv[] = { "true", NULL };
	struct guest_run g;

	run_guest("exit_code", argv, NULL, "msvmm.test=exit_code", &g);
	assert_ran(&g);
	ck_assert_msg(g.res.exit_code == 42 && g.res.status == 42, "exit_code: status %d, want 42", g.res.status);
	ck_assert_str_eq(g.console, "guest says hi\n");
	ck_assert_uint_gt(g.res.exits, 0);
	ck_assert_uint_gt(g.res.ns_exited, 0);
}
END_TEST

START_TEST(test_boot_state)
{
	static const char *const argv[] = { "hello", "world", NULL };
	char extra[64];
	struct guest_run g;

	snprintf(extra, sizeof(extra), "msvmm.test=boot_state msvmm.mem_mib=%d", GUEST_MEM_MIB);
	run_guest("boot_state", argv, "MSVMM_GUEST=boot_state", extra, &g);
	assert_ran(&g);
	/* The guest's status is the number of the first failed check (see boot_state.c). */
	ck_assert_msg(g.res.status == 0, "boot_state: check %d failed; console:\n%s", g.res.status, g.console);
	ck_assert_msg(strstr(g.console, "boot_state: ok\n"), "boot_state: no ok line; console:\n%s", g.console);
}
END_TEST

/*
 * The checker must not pass vacuously: hand boot_state a wrong RAM size and
 * a wrong argv, and it must name exactly those checks (numbers from
 * enum check in boot_state.c: 12 e820 total, 28 run-spec argv).
 */
START_TEST(test_boot_state_catches_mismatch)
{
	static const char *const argv[] = { "hello", "there", NULL };
	char extra[64];
	struct guest_run g;

	snprintf(extra, sizeof(extra), "msvmm.test=boot_state msvmm.mem_mib=%d", GUEST_MEM_MIB * 2);
	run_guest("boot_state", argv, "MSVMM_GUEST=boot_state", extra, &g);
	assert_ran(&g);
	ck_assert_msg(g.res.status == 12, "boot_state: status %d, want 12 (e820 total); console:\n%s", g.res.status,
		      g.console);
	ck_assert_msg(strstr(g.console, "boot_state: FAIL 12:") && strstr(g.console, "boot_state: FAIL 28:") &&
			      strstr(g.console, "boot_state: 2 check(s) failed"),
		      "boot_state: wrong failures reported; console:\n%s", g.console);
}
END_TEST

START_TEST(test_hostile_io)
{
	struct guest_run g;

	run_guest("hostile_io", NULL, NULL, "msvmm.test=hostile_io", &g);
	assert_ran(&g);
	/* 0x55/0x5555 would mean a narrow or misaligned EXIT write was taken; >100 a wrong read. */
	ck_assert_msg(g.res.status == 7, "hostile_io: status %d (0x%x), want 7; console:\n%s", g.res.status,
		      g.res.status, g.console);
	ck_assert_str_eq(g.console, "hostile_io: survived\n");
}
END_TEST

static void check_triple_fault(const char *how, const char *extra)
{
	struct guest_run g;
	char want[64];

	run_guest("triple_fault", NULL, NULL, extra, &g);
	ck_assert_msg(g.create_rc == 0, "triple_fault: msvmm_vm_create: %d %s", g.create_rc, g.err.message);
	ck_assert_msg(g.run_rc == -MSVMM_EGUEST && g.err.code == MSVMM_EGUEST,
		      "triple_fault (%s): msvmm_vm_run gave %d (%s), want -MSVMM_EGUEST; console:\n%s", how, g.run_rc,
		      g.err.message, g.console);
	ck_assert_msg(strstr(g.err.message, "shut down"), "triple_fault: message '%s' does not say 'shut down'",
		      g.err.message);
	ck_assert_msg(!g.res.exited, "triple_fault: a status was reported");
	/* Shut down promptly, not by running into the timeout. */
	ck_assert_msg(g.ms < GUEST_TIMEOUT_MS / 2, "triple_fault: took %.0f ms", g.ms);
	snprintf(want, sizeof(want), "triple_fault: %s\n", how);
	ck_assert_str_eq(g.console, want);
	/* PVM cannot emulate INT3 at CPL0: msvmm must have injected the #BP itself. */
	if (g.is_pvm && !strcmp(how, "int3"))
		ck_assert_uint_ge(g.res.pvm_int3, 1);
}

START_TEST(test_triple_fault_ud2)
{
	check_triple_fault("ud2", "msvmm.test=triple_fault");
}
END_TEST

START_TEST(test_triple_fault_int3)
{
	check_triple_fault("int3", "msvmm.test=triple_fault msvmm.fault=int3");
}
END_TEST

static Suite *guests_suite(void)
{
	Suite *s = suite_create("guests");
	TCase *tc = tcase_create("boot");

	tcase_set_timeout(tc, TEST_TIMEOUT_S);
	tcase_add_test(tc, test_exit_code);
	tcase_add_test(tc, test_boot_state);
	tcase_add_test(tc, test_boot_state_catches_mismatch);
	tcase_add_test(tc, test_hostile_io);
	tcase_add_test(tc, test_triple_fault_ud2);
	tcase_add_test(tc, test_triple_fault_int3);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	struct stat st;
	SRunner *sr;
	int failed;

	/* Only a missing /dev/kvm skips; any other problem with it must fail the tests. */
	if (stat("/dev/kvm", &st) < 0 && errno == ENOENT) {
		fprintf(stderr, "test_guests: SKIPPED: /dev/kvm does not exist on this host, so no guest can run.\n");
		return 0;
	}
	sr = srunner_create(guests_suite());
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
