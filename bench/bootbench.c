// SPDX-License-Identifier: Apache-2.0
/*
 * bootbench: time from spawning a command to a marker appearing on its
 * stdout.  Used to compare VMMs booting the same kernel and initramfs to the
 * same point: the guest prints the marker, we timestamp the first byte of it.
 *
 *   bootbench MARKER TIMEOUT_S -- COMMAND [ARG...]
 *
 * Prints "<ms-to-marker>" and exits 0 (the command is killed once the
 * marker is seen), or 1 if it never appeared (the command's output then goes
 * to stderr to show why).
 */
#include <errno.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

static double now_ms(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec * 1e3 + (double)ts.tv_nsec / 1e6;
}

int main(int argc, char **argv)
{
	static char buf[1 << 20];
	size_t len = 0;
	double t0, t_mark = -1, deadline;
	int p[2], status = 0;
	pid_t pid;

	if (argc < 5 || strcmp(argv[3], "--") != 0) {
		fprintf(stderr, "usage: bootbench MARKER TIMEOUT_S -- COMMAND [ARG...]\n");
		return 2;
	}
	if (pipe(p) < 0)
		return 2;
	t0 = now_ms();
	deadline = t0 + atof(argv[2]) * 1e3;
	pid = fork();
	if (pid == 0) {
		dup2(p[1], 1);
		close(p[0]);
		close(p[1]);
		execvp(argv[4], &argv[4]);
		_exit(127);
	}
	close(p[1]);
	for (;;) {
		struct pollfd pfd = { p[0], POLLIN, 0 };
		int left = (int)(deadline - now_ms());
		ssize_t n;

		if (left <= 0 || poll(&pfd, 1, left) <= 0) {
			kill(pid, SIGKILL);
			break;
		}
		n = read(p[0], buf + len, sizeof(buf) - 1 - len);
		if (n <= 0)
			break;
		len += (size_t)n;
		buf[len] = '\0';
		if (t_mark < 0 && strstr(buf, argv[1])) {
			/* Only the time to the marker counts: stop the VMM there. */
			t_mark = now_ms();
			kill(pid, SIGKILL);
			break;
		}
		if (len == sizeof(buf) - 1)
			len = 0;
	}
	waitpid(pid, &status, 0);
	if (t_mark < 0) {
		fwrite(buf, 1, len, stderr);
		fprintf(stderr, "bootbench: marker '%s' not seen (status 0x%x)\n", argv[1], status);
		return 1;
	}
	printf("%.1f\n", t_mark - t0);
	return 0;
}
