// SPDX-License-Identifier: Apache-2.0
/*
 * cli/msx_args: msx's command line.  Options stop at the image name; what
 * follows (after an optional "--") is the guest command, options included.
 * cli/ is not part of the library, so the parser is compiled in here.
 */
#include "../../cli/msx_args.c"

#include "testutil.h"

static struct msx_args a;
static char errbuf[256];
static char *argv_used[2 * MSX_MAX_ENV + 16];

/* Parse a NULL-terminated argv, first copied to storage that outlives the
 * caller's compound literal (a.cmd points into it). */
static int parse_v(char **argv)
{
	int argc = 0;

	while (argv[argc]) {
		ck_assert_int_lt(argc, (int)(sizeof(argv_used) / sizeof(argv_used[0])) - 1);
		argv_used[argc] = argv[argc];
		argc++;
	}
	argv_used[argc] = NULL;
	memset(errbuf, 0, sizeof(errbuf));
	return msx_parse_args(argc, argv_used, &a, errbuf, sizeof(errbuf));
}

#define PARSE(...) parse_v((char *[]){ "msx", __VA_ARGS__, NULL })

#define ck_assert_errbuf(needle)                                                               \
	ck_assert_msg(strstr(errbuf, (needle)) != NULL, "error '%s' does not mention '%s'", errbuf, \
		      (needle))

START_TEST(test_image_only)
{
	ck_assert_int_eq(PARSE("busybox"), MSX_PARSE_OK);
	ck_assert_str_eq(a.image, "busybox");
	ck_assert_ptr_null(a.cmd);
	ck_assert_uint_eq(a.memory_mib, 0);
	ck_assert_uint_eq(a.cpus, 0);
	ck_assert_uint_eq(a.nr_env, 0);
	ck_assert_uint_eq(a.profile_hz, 0);
	ck_assert_int_eq(a.help, 0);
	ck_assert_int_eq(a.version, 0);
	ck_assert_str_eq(errbuf, "");
}
END_TEST

START_TEST(test_image_and_command)
{
	ck_assert_int_eq(PARSE("busybox", "echo", "hi"), MSX_PARSE_OK);
	ck_assert_str_eq(a.image, "busybox");
	ck_assert_ptr_eq(a.cmd, &argv_used[2]); /* points into argv, NULL-terminated */
	ck_assert_str_eq(a.cmd[0], "echo");
	ck_assert_str_eq(a.cmd[1], "hi");
	ck_assert_ptr_null(a.cmd[2]);
}
END_TEST

START_TEST(test_double_dash_after_image)
{
	ck_assert_int_eq(PARSE("busybox", "--", "ls", "-l"), MSX_PARSE_OK);
	ck_assert_str_eq(a.image, "busybox");
	ck_assert_ptr_eq(a.cmd, &argv_used[3]);
	ck_assert_str_eq(a.cmd[0], "ls");
	ck_assert_str_eq(a.cmd[1], "-l");
	ck_assert_ptr_null(a.cmd[2]);
	/* "--" with nothing after it: the image's default command. */
	ck_assert_int_eq(PARSE("busybox", "--"), MSX_PARSE_OK);
	ck_assert_ptr_null(a.cmd);
	/* Only the first "--" is msx's; a second one belongs to the command. */
	ck_assert_int_eq(PARSE("busybox", "--", "--", "x"), MSX_PARSE_OK);
	ck_assert_str_eq(a.cmd[0], "--");
	ck_assert_str_eq(a.cmd[1], "x");
}
END_TEST

START_TEST(test_double_dash_before_image)
{
	/* "--" ends options, so an image may begin with '-'. */
	ck_assert_int_eq(PARSE("-m", "64", "--", "-odd-image", "cmd"), MSX_PARSE_OK);
	ck_assert_str_eq(a.image, "-odd-image");
	ck_assert_uint_eq(a.memory_mib, 64);
	ck_assert_str_eq(a.cmd[0], "cmd");
	ck_assert_ptr_null(a.cmd[1]);
}
END_TEST

START_TEST(test_options_after_image_belong_to_command)
{
	ck_assert_int_eq(PARSE("--cpus", "2", "alpine", "-m", "9", "--help", "-e", "X"), MSX_PARSE_OK);
	ck_assert_str_eq(a.image, "alpine");
	ck_assert_uint_eq(a.cpus, 2);
	ck_assert_uint_eq(a.memory_mib, 0);
	ck_assert_int_eq(a.help, 0);
	ck_assert_uint_eq(a.nr_env, 0);
	ck_assert_str_eq(a.cmd[0], "-m");
	ck_assert_str_eq(a.cmd[1], "9");
	ck_assert_str_eq(a.cmd[2], "--help");
	ck_assert_str_eq(a.cmd[3], "-e");
	ck_assert_str_eq(a.cmd[4], "X");
	ck_assert_ptr_null(a.cmd[5]);
}
END_TEST

START_TEST(test_lone_dash_is_an_image)
{
	ck_assert_int_eq(PARSE("-", "x"), MSX_PARSE_OK);
	ck_assert_str_eq(a.image, "-");
	ck_assert_str_eq(a.cmd[0], "x");
}
END_TEST

START_TEST(test_memory_forms)
{
	ck_assert_int_eq(PARSE("-m", "512", "img"), MSX_PARSE_OK);
	ck_assert_uint_eq(a.memory_mib, 512);
	ck_assert_str_eq(a.image, "img");
	ck_assert_int_eq(PARSE("--memory", "1024", "img"), MSX_PARSE_OK);
	ck_assert_uint_eq(a.memory_mib, 1024);
	ck_assert_int_eq(PARSE("--memory=2048", "img"), MSX_PARSE_OK);
	ck_assert_uint_eq(a.memory_mib, 2048);
	ck_assert_str_eq(a.image, "img");
	ck_assert_ptr_null(a.cmd);
	/* The bounds are inclusive. */
	ck_assert_int_eq(PARSE("-m", "16", "img"), MSX_PARSE_OK);
	ck_assert_uint_eq(a.memory_mib, 16);
	ck_assert_int_eq(PARSE("--memory=65536", "img"), MSX_PARSE_OK);
	ck_assert_uint_eq(a.memory_mib, 65536);
	/* The last one wins. */
	ck_assert_int_eq(PARSE("-m", "64", "-m", "128", "img"), MSX_PARSE_OK);
	ck_assert_uint_eq(a.memory_mib, 128);
}
END_TEST

START_TEST(test_memory_bad_numbers)
{
	const char *bad[] = { "abc", "12x", "", "-5", "+5", "15", "0", "65537", "99999999999999999999999",
			      "1e3", " 64", "0x40" };

	for (size_t i = 0; i < sizeof(bad) / sizeof(bad[0]); i++) {
		char buf[64];

		ck_assert_msg(PARSE("-m", (char *)bad[i], "img") == MSX_PARSE_ERROR, "-m '%s' accepted", bad[i]);
		ck_assert_errbuf("--memory:");
		snprintf(buf, sizeof(buf), "'%s'", bad[i]);
		ck_assert_errbuf(buf);
		ck_assert_errbuf("between 16 and 65536");
		snprintf(buf, sizeof(buf), "--memory=%s", bad[i]);
		ck_assert_int_eq(PARSE(buf, "img"), MSX_PARSE_ERROR);
		ck_assert_errbuf("--memory:");
	}
	ck_assert_int_eq(PARSE("-m"), MSX_PARSE_ERROR);
	ck_assert_str_eq(errbuf, "-m needs a size in MiB");
	ck_assert_int_eq(PARSE("--memory"), MSX_PARSE_ERROR);
	ck_assert_str_eq(errbuf, "--memory needs a size in MiB");
}
END_TEST

START_TEST(test_cpus_and_timeout)
{
	ck_assert_int_eq(PARSE("-c", "4", "--timeout=30", "img"), MSX_PARSE_OK);
	ck_assert_uint_eq(a.cpus, 4);
	ck_assert_uint_eq(a.timeout_ms, 30000);
	ck_assert_int_eq(PARSE("--cpus=64", "img"), MSX_PARSE_OK);
	ck_assert_uint_eq(a.cpus, 64);
	ck_assert_int_eq(PARSE("--cpus=65", "img"), MSX_PARSE_ERROR);
	ck_assert_errbuf("--cpus");
	ck_assert_int_eq(PARSE("-c", "0", "img"), MSX_PARSE_ERROR);
	ck_assert_errbuf("between 1 and 64");
	ck_assert_int_eq(PARSE("--timeout", "0", "img"), MSX_PARSE_ERROR);
	ck_assert_errbuf("--timeout");
	ck_assert_int_eq(PARSE("--timeout=-1", "img"), MSX_PARSE_ERROR);
	ck_assert_errbuf("--timeout");
}
END_TEST

START_TEST(test_env_repeated)
{
	ck_assert_int_eq(PARSE("-e", "A=1", "--env", "B=two words", "--env=C=", "-e", "D==x", "img", "env"),
			 MSX_PARSE_OK);
	ck_assert_uint_eq(a.nr_env, 4);
	ck_assert_str_eq(a.env[0], "A=1");
	ck_assert_str_eq(a.env[1], "B=two words");
	ck_assert_str_eq(a.env[2], "C=");
	ck_assert_str_eq(a.env[3], "D==x");
	ck_assert_str_eq(a.image, "img");
	ck_assert_str_eq(a.cmd[0], "env");
}
END_TEST

START_TEST(test_env_bad)
{
	ck_assert_int_eq(PARSE("-e", "NOEQUALS", "img"), MSX_PARSE_ERROR);
	ck_assert_errbuf("--env needs KEY=VALUE");
	ck_assert_int_eq(PARSE("-e", "=value", "img"), MSX_PARSE_ERROR);
	ck_assert_errbuf("KEY=VALUE");
	ck_assert_int_eq(PARSE("-e"), MSX_PARSE_ERROR);
	ck_assert_errbuf("KEY=VALUE");
}
END_TEST

START_TEST(test_env_limit)
{
	char *argv[2 * MSX_MAX_ENV + 6];
	int n = 0;

	argv[n++] = "msx";
	for (int i = 0; i <= MSX_MAX_ENV; i++) {
		argv[n++] = "-e";
		argv[n++] = "K=V";
	}
	argv[n++] = "img";
	argv[n] = NULL;
	ck_assert_int_eq(parse_v(argv), MSX_PARSE_ERROR);
	ck_assert_errbuf("more than 256 variables");
	/* Exactly the maximum is fine. */
	argv[2 * MSX_MAX_ENV + 1] = "img";
	argv[2 * MSX_MAX_ENV + 2] = NULL;
	ck_assert_int_eq(parse_v(argv), MSX_PARSE_OK);
	ck_assert_uint_eq(a.nr_env, MSX_MAX_ENV);
}
END_TEST

START_TEST(test_unknown_option)
{
	ck_assert_int_eq(PARSE("--frobnicate", "img"), MSX_PARSE_ERROR);
	ck_assert_str_eq(errbuf, "unknown option '--frobnicate' (see msx --help)");
	ck_assert_int_eq(PARSE("-x", "img"), MSX_PARSE_ERROR);
	ck_assert_errbuf("unknown option '-x'");
	/* A long option's prefix or extension is not the option. */
	ck_assert_int_eq(PARSE("--mem=64", "img"), MSX_PARSE_ERROR);
	ck_assert_errbuf("unknown option '--mem=64'");
	ck_assert_int_eq(PARSE("--memoryx=64", "img"), MSX_PARSE_ERROR);
	ck_assert_errbuf("unknown option");
	ck_assert_int_eq(PARSE("-m64", "img"), MSX_PARSE_ERROR);
	ck_assert_errbuf("unknown option '-m64'");
}
END_TEST

START_TEST(test_missing_image)
{
	ck_assert_int_eq(parse_v((char *[]){ "msx", NULL }), MSX_PARSE_ERROR);
	ck_assert_errbuf("no image given");
	ck_assert_int_eq(PARSE("-m", "64"), MSX_PARSE_ERROR);
	ck_assert_errbuf("no image given");
	ck_assert_int_eq(PARSE("--console", "--"), MSX_PARSE_ERROR);
	ck_assert_errbuf("no image given");
}
END_TEST

START_TEST(test_help_and_version)
{
	ck_assert_int_eq(PARSE("--help"), MSX_PARSE_OK);
	ck_assert_int_eq(a.help, 1);
	ck_assert_ptr_null(a.image);
	ck_assert_int_eq(PARSE("-h"), MSX_PARSE_OK);
	ck_assert_int_eq(a.help, 1);
	ck_assert_int_eq(PARSE("--version"), MSX_PARSE_OK);
	ck_assert_int_eq(a.version, 1);
	ck_assert_int_eq(a.help, 0);
	/* --help wins over what follows, even a bad option. */
	ck_assert_int_eq(PARSE("-m", "64", "--help", "--bogus"), MSX_PARSE_OK);
	ck_assert_int_eq(a.help, 1);
	ck_assert_uint_eq(a.memory_mib, 64);
	/* ...but not over a bad option before it. */
	ck_assert_int_eq(PARSE("--bogus", "--help"), MSX_PARSE_ERROR);
	ck_assert_errbuf("--bogus");
}
END_TEST

START_TEST(test_profile)
{
	ck_assert_int_eq(PARSE("--profile", "img"), MSX_PARSE_OK);
	ck_assert_uint_eq(a.profile_hz, 1000);
	ck_assert_str_eq(a.image, "img");
	ck_assert_int_eq(PARSE("--profile=500", "img"), MSX_PARSE_OK);
	ck_assert_uint_eq(a.profile_hz, 500);
	ck_assert_str_eq(a.image, "img");
	ck_assert_int_eq(PARSE("--profile=100000", "img"), MSX_PARSE_OK);
	ck_assert_uint_eq(a.profile_hz, 100000);
	/* The rate is only ever attached with '=': a separate word is the image. */
	ck_assert_int_eq(PARSE("--profile", "500", "img"), MSX_PARSE_OK);
	ck_assert_uint_eq(a.profile_hz, 1000);
	ck_assert_str_eq(a.image, "500");
	ck_assert_str_eq(a.cmd[0], "img");
	ck_assert_int_eq(PARSE("--profile=0", "img"), MSX_PARSE_ERROR);
	ck_assert_errbuf("--profile: '0' is not a sampling rate");
	ck_assert_int_eq(PARSE("--profile=fast", "img"), MSX_PARSE_ERROR);
	ck_assert_errbuf("'fast'");
	ck_assert_int_eq(PARSE("--profile=100001", "img"), MSX_PARSE_ERROR);
	ck_assert_errbuf("1..100000");
	ck_assert_int_eq(PARSE("--profile=", "img"), MSX_PARSE_ERROR);
	ck_assert_errbuf("--profile");
}
END_TEST

START_TEST(test_string_options)
{
	ck_assert_int_eq(PARSE("--kernel", "/k/vmlinux", "-w", "/tmp", "--cmdline=loglevel=7", "--console",
			       "--timings", "img"),
			 MSX_PARSE_OK);
	ck_assert_str_eq(a.kernel, "/k/vmlinux");
	ck_assert_str_eq(a.workdir, "/tmp");
	ck_assert_str_eq(a.cmdline_extra, "loglevel=7");
	ck_assert_int_eq(a.console, 1);
	ck_assert_int_eq(a.timings, 1);
	ck_assert_int_eq(PARSE("--workdir=relative", "img"), MSX_PARSE_ERROR);
	ck_assert_errbuf("absolute");
	ck_assert_int_eq(PARSE("--kernel=", "img"), MSX_PARSE_ERROR);
	ck_assert_errbuf("--kernel needs a path");
}
END_TEST

START_TEST(test_interactive_tty_user)
{
	ck_assert_int_eq(PARSE("busybox", "sh"), MSX_PARSE_OK);
	ck_assert_int_eq(a.interactive, 0);
	ck_assert_int_eq(a.tty, 0);
	ck_assert_ptr_null(a.user);
	ck_assert_int_eq(PARSE("-it", "python"), MSX_PARSE_OK);
	ck_assert_int_eq(a.interactive, 1);
	ck_assert_int_eq(a.tty, 1);
	ck_assert_int_eq(PARSE("-ti", "python"), MSX_PARSE_OK);
	ck_assert_int_eq(a.interactive + a.tty, 2);
	ck_assert_int_eq(PARSE("-i", "busybox", "cat"), MSX_PARSE_OK);
	ck_assert_int_eq(a.interactive, 1);
	ck_assert_int_eq(a.tty, 0);
	ck_assert_int_eq(PARSE("--tty", "-u", "nobody", "busybox"), MSX_PARSE_OK);
	ck_assert_int_eq(a.interactive, 0);
	ck_assert_int_eq(a.tty, 1);
	ck_assert_str_eq(a.user, "nobody");
	ck_assert_int_eq(PARSE("--user=1000:1000", "--interactive", "busybox"), MSX_PARSE_OK);
	ck_assert_str_eq(a.user, "1000:1000");
	ck_assert_int_eq(a.interactive, 1);
	/* After the image, -i belongs to the command. */
	ck_assert_int_eq(PARSE("busybox", "grep", "-i", "x"), MSX_PARSE_OK);
	ck_assert_int_eq(a.interactive, 0);
	ck_assert_str_eq(a.cmd[1], "-i");
	ck_assert_int_eq(PARSE("--user=", "busybox"), MSX_PARSE_ERROR);
	ck_assert_errbuf("--user needs");
	ck_assert_int_eq(PARSE("-itx", "busybox"), MSX_PARSE_ERROR);
	ck_assert_errbuf("unknown option '-itx'");
}
END_TEST

/* --code: before the image like any option, or right after it; never with a command. */
START_TEST(test_code)
{
	ck_assert_int_eq(PARSE("python", "--code", "print(6*7)"), MSX_PARSE_OK);
	ck_assert_str_eq(a.image, "python");
	ck_assert_str_eq(a.code, "print(6*7)");
	ck_assert_ptr_null(a.cmd);
	ck_assert_int_eq(PARSE("--timeout", "5", "--code=-", "python"), MSX_PARSE_OK);
	ck_assert_str_eq(a.code, "-");
	ck_assert_uint_eq(a.timeout_ms, 5000);
	ck_assert_int_eq(PARSE("python", "--code="), MSX_PARSE_OK);
	ck_assert_str_eq(a.code, "");
	ck_assert_int_eq(PARSE("python", "--code", "x", "--"), MSX_PARSE_OK);
	ck_assert_ptr_null(a.cmd);
	/* Only right after the image: further on it is the command's word. */
	ck_assert_int_eq(PARSE("busybox", "echo", "--code", "x"), MSX_PARSE_OK);
	ck_assert_ptr_null(a.code);
	ck_assert_str_eq(a.cmd[1], "--code");
	ck_assert_int_eq(PARSE("python", "--code"), MSX_PARSE_ERROR);
	ck_assert_errbuf("--code needs the code");
	ck_assert_int_eq(PARSE("python", "--code", "x", "ls"), MSX_PARSE_ERROR);
	ck_assert_errbuf("--code and a COMMAND ('ls') do not go together");
	ck_assert_int_eq(PARSE("--code", "x", "python", "--", "ls"), MSX_PARSE_ERROR);
	ck_assert_errbuf("do not go together");
	ck_assert_int_eq(PARSE("-i", "python", "--code", "x"), MSX_PARSE_ERROR);
	ck_assert_errbuf("--code takes no -i, -t or -u");
	ck_assert_int_eq(PARSE("-t", "python", "--code", "x"), MSX_PARSE_ERROR);
	ck_assert_int_eq(PARSE("-u", "nobody", "python", "--code", "x"), MSX_PARSE_ERROR);
	ck_assert_errbuf("--code takes no -i, -t or -u");
}
END_TEST

START_TEST(test_state_reset_between_calls)
{
	ck_assert_int_eq(PARSE("-m", "64", "-e", "A=1", "img", "x"), MSX_PARSE_OK);
	ck_assert_int_eq(PARSE("img2"), MSX_PARSE_OK);
	ck_assert_uint_eq(a.memory_mib, 0);
	ck_assert_uint_eq(a.nr_env, 0);
	ck_assert_ptr_null(a.cmd);
	ck_assert_str_eq(a.image, "img2");
}
END_TEST

START_TEST(test_small_errbuf_truncates_safely)
{
	char small[8];
	char *argv[] = { "msx", "--a-very-long-unknown-option", "img", NULL };

	memset(small, 'Z', sizeof(small));
	ck_assert_int_eq(msx_parse_args(3, argv, &a, small, sizeof(small)), MSX_PARSE_ERROR);
	ck_assert_str_eq(small, "unknown");
}
END_TEST

static Suite *msx_args_suite(void)
{
	Suite *s = suite_create("msx_args");
	TCase *tc = tcase_create("core");

	tcase_add_test(tc, test_image_only);
	tcase_add_test(tc, test_image_and_command);
	tcase_add_test(tc, test_double_dash_after_image);
	tcase_add_test(tc, test_double_dash_before_image);
	tcase_add_test(tc, test_options_after_image_belong_to_command);
	tcase_add_test(tc, test_lone_dash_is_an_image);
	tcase_add_test(tc, test_memory_forms);
	tcase_add_test(tc, test_memory_bad_numbers);
	tcase_add_test(tc, test_cpus_and_timeout);
	tcase_add_test(tc, test_env_repeated);
	tcase_add_test(tc, test_env_bad);
	tcase_add_test(tc, test_env_limit);
	tcase_add_test(tc, test_unknown_option);
	tcase_add_test(tc, test_missing_image);
	tcase_add_test(tc, test_help_and_version);
	tcase_add_test(tc, test_profile);
	tcase_add_test(tc, test_string_options);
	tcase_add_test(tc, test_interactive_tty_user);
	tcase_add_test(tc, test_code);
	tcase_add_test(tc, test_state_reset_between_calls);
	tcase_add_test(tc, test_small_errbuf_truncates_safely);
	suite_add_tcase(s, tc);
	return s;
}

int main(void)
{
	return tu_run(msx_args_suite());
}
