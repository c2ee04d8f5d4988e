// SPDX-License-Identifier: Apache-2.0
/*
 * msvmm guest init: the static PID 1 of every msvmm image.
 *
 * It tells the VMM it is running (the boot timer), mounts the usual
 * filesystems, runs the one command described by the run spec that the VMM
 * appended to the initramfs, and reports how that command ended through the
 * control device (devices/ctl.h).  The guest kernel is slow to enter, so
 * every syscall here is one we need.
 *
 * When the spec names a root disk ('R'), the command runs in an overlay of
 * that read-only ext4 disk and a writable layer (the scratch disk 'S', or a
 * tmpfs), after a switch_root-style move; see switch_root().
 *
 * In agent mode (a 'G' record instead of a command) init sets up the same
 * way, then serves the vsock agent (agent.c, lib/agent-protocol.md) for as
 * long as the VM lives: commands come over the connection and never get the
 * console, which carries only init's own error lines.
 *
 * Exit statuses reported besides the command's own:
 *   125  init itself failed before the command could start
 *   126  the working directory or the command could not be used
 *   127  the command was not found
 */
#include "agent.h"
#include "agent_proto.h"
#include "ctl.h"
#include "restored.h"

#include <errno.h>
#include <fcntl.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>

#define SPEC_MAX (1u << 20)
#define STR_(x) #x
#define STR(x) STR_(x)
#define AGENT_PORT_STR STR(AGENT_PORT)
#define MAX_MOUNTS 8
#define STATUS_INIT_FAILED 125
#define STATUS_CANNOT_EXEC 126
#define STATUS_NOT_FOUND 127

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"

struct run_spec {
	char **argv;
	char **envp;
	const char *workdir;	/* NULL: stay in / */
	const char *root_dev;	/* NULL: run in the initramfs */
	const char *scratch_dev;	/* NULL: tmpfs upper layer */
	char *mounts[MAX_MOUNTS];	/* 'M' records: "DEV:PATH:ro|rw" */
	size_t nmounts;
	int agent;		/* 'G': serve the agent instead of one command */
};

/* The control page, or NULL when it could not be reached. */
static volatile uint32_t *ctl;
/* 1 when init owns the console as its controlling tty (job control). */
static int have_ctty;
/* 1 when a disk holds data the host keeps: sync before reporting the exit. */
static int have_scratch;

static void ctl_write(unsigned int reg, uint32_t val)
{
	if (ctl)
		ctl[reg / 4] = val;
}

static void say(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* One "msvmm-init: ..." line on the console, in a single write. */
static void say(const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n = snprintf(msg, sizeof(msg), "msvmm-init: ");

	va_start(ap, fmt);
	n += vsnprintf(msg + n, sizeof(msg) - n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(msg) - 2)
		n = sizeof(msg) - 2;
	msg[n++] = '\n';
	if (write(STDERR_FILENO, msg, n) < 0 && errno == EBADF) {
		/* The kernel found no /dev/console to give us fds 0-2. */
		int fd = open("/dev/console", O_WRONLY | O_NOCTTY | O_CLOEXEC);

		/* If this fails too there is nowhere left to say it. */
		if (fd >= 0)
			(void)!write(fd, msg, n);
	}
}

/* Report status, then stop the VM: the VMM normally stops it at the write. */
static void __attribute__((noreturn)) finish(uint32_t status)
{
	/* Without this the console may still hold output the host never sees. */
	tcdrain(STDOUT_FILENO);
	/* The VM stops at the EXIT write, so the scratch disk is synced first. */
	if (have_scratch)
		sync();
	ctl_write(MSVMM_CTL_EXIT, status);
	sync();
	reboot(RB_AUTOBOOT);
	for (;;)
		pause();
}

static void __attribute__((noreturn)) fatal(const char *what, int err)
{
	say("%s: %s", what, strerror(err));
	finish(STATUS_INIT_FAILED);
}

/*
 * Map the control page and mark the boot.  MAGIC is checked so that init
 * never scribbles on a machine (e.g. plain QEMU) that has no control device.
 */
static void ctl_init(void)
{
	volatile uint32_t *page;
	int fd;

	fd = open("/dev/mem", O_RDWR | O_SYNC | O_CLOEXEC);
	if (fd < 0)
		return;
	page = mmap(NULL, MSVMM_CTL_SIZE, PROT_READ | PROT_WRITE, MAP_SHARED, fd,
		    MSVMM_CTL_BASE);
	if (page == MAP_FAILED)
		return;
	if (page[MSVMM_CTL_MAGIC / 4] != MSVMM_CTL_MAGIC_VALUE)
		return;
	ctl = page;
	ctl_write(MSVMM_CTL_BOOT, 1);
}

static void mount_one(const char *src, const char *dir, const char *type,
		      unsigned long flags, const char *opts)
{
	if (mount(src, dir, type, flags, opts) < 0 && errno != EBUSY)
		say("mount %s on %s: %s", type, dir, strerror(errno));
}

static void mount_dev(void)
{
	mount_one("devtmpfs", "/dev", "devtmpfs", MS_NOSUID, "mode=0755");
}

/* have_dev: /dev already holds the devtmpfs (moved along by switch_root). */
static void mount_filesystems(int have_dev)
{
	const unsigned long nosuid = MS_NOSUID | MS_NODEV;

	mount_one("proc", "/proc", "proc", nosuid | MS_NOEXEC, NULL);
	mount_one("sysfs", "/sys", "sysfs", nosuid | MS_NOEXEC, NULL);
	if (!have_dev)
		mount_dev();
	mount_one("tmpfs", "/tmp", "tmpfs", nosuid, "mode=1777");
	mount_one("tmpfs", "/run", "tmpfs", nosuid, "mode=0755");
	/* devtmpfs has neither: make them (EEXIST is fine). */
	mkdir("/dev/pts", 0755);
	mount_one("devpts", "/dev/pts", "devpts", MS_NOSUID | MS_NOEXEC,
		  "mode=0620,ptmxmode=0666");
	mkdir("/dev/shm", 01777);
	mount_one("tmpfs", "/dev/shm", "tmpfs", nosuid, "mode=1777");
	/* Shells use these for process substitution and "-" file names. */
	symlink("/proc/self/fd", "/dev/fd");
	symlink("/proc/self/fd/0", "/dev/stdin");
	symlink("/proc/self/fd/1", "/dev/stdout");
	symlink("/proc/self/fd/2", "/dev/stderr");
	sethostname("msvmm", 5);
}

/* Read the run spec; returns its length, 0 when there is none. */
static size_t spec_read(char *buf)
{
	size_t len = 0;
	ssize_t n;
	int fd;

	fd = open(MSVMM_RUN_SPEC_PATH, O_RDONLY | O_CLOEXEC);
	if (fd < 0) {
		if (errno == ENOENT)
			return 0;
		fatal(MSVMM_RUN_SPEC_PATH, errno);
	}
	/* Read one byte past the limit to tell "full" from "too big". */
	while ((n = read(fd, buf + len, SPEC_MAX + 1 - len)) != 0) {
		if (n < 0) {
			if (errno == EINTR)
				continue;
			fatal(MSVMM_RUN_SPEC_PATH, errno);
		}
		len += (size_t)n;
		if (len > SPEC_MAX) {
			say("%s: larger than %u bytes", MSVMM_RUN_SPEC_PATH, SPEC_MAX);
			finish(STATUS_INIT_FAILED);
		}
	}
	close(fd);
	return len;
}

static void __attribute__((noreturn)) spec_invalid(size_t off, const char *why)
{
	say("%s: offset %zu: %s", MSVMM_RUN_SPEC_PATH, off, why);
	finish(STATUS_INIT_FAILED);
}

struct spec_counts {
	size_t nargs, nenv;
	int use_default, agent;
	const char *workdir;
	const char *root_dev, *scratch_dev;
	size_t nmounts;
};

/* "DEV:PATH:ro" or "DEV:PATH:rw", both absolute paths. */
static int mount_record_ok(const char *s)
{
	const char *a = strchr(s, ':'), *b = a ? strchr(a + 1, ':') : NULL;

	return s[0] == '/' && a && a[1] == '/' && b && (!strcmp(b, ":ro") || !strcmp(b, ":rw"));
}

/* A device path record: absolute, and at most one of each kind. */
static void spec_dev(const char *s, const char **dev, size_t off)
{
	if (s[0] != '/' || *dev)
		spec_invalid(off, "device is not an absolute path, or repeated");
	*dev = s;
}

/* Validate every record and count the argv and environment entries. */
static void spec_scan(const char *buf, size_t len, struct spec_counts *c)
{
	size_t off = 0;

	while (off < len) {
		char type = buf[off];
		const char *s = buf + off + 1;
		const char *nul = memchr(s, '\0', len - off - 1);

		if (!nul)
			spec_invalid(off, "record without a terminating NUL");
		switch (type) {
		case 'A':
			c->nargs++;
			break;
		case 'E':
			if (s[0] == '=' || !strchr(s, '='))
				spec_invalid(off, "environment entry is not KEY=VALUE");
			c->nenv++;
			break;
		case 'W':
			if (!*s || c->workdir)
				spec_invalid(off, "empty or repeated working directory");
			c->workdir = s;
			break;
		case 'D':
			if (strcmp(s, "0") && strcmp(s, "1"))
				spec_invalid(off, "default flag is not 0 or 1");
			c->use_default = s[0] == '1';
			break;
		case 'G':
			if (strcmp(s, "0") && strcmp(s, "1"))
				spec_invalid(off, "agent flag is not 0 or 1");
			c->agent = s[0] == '1';
			break;
		case 'R':
			spec_dev(s, &c->root_dev, off);
			break;
		case 'S':
			spec_dev(s, &c->scratch_dev, off);
			break;
		case 'M':
			if (!mount_record_ok(s) || c->nmounts == MAX_MOUNTS)
				spec_invalid(off, "mount is not DEV:PATH:ro|rw, or too many");
			c->nmounts++;
			break;
		default:
			spec_invalid(off, "unknown record type");
		}
		off = (size_t)(nul - buf) + 1;
	}
	if (c->use_default && c->nargs)
		spec_invalid(0, "both a command and the default command requested");
	/* The agent's commands bring their own argv and working directory. */
	if (c->agent && (c->nargs || c->use_default || c->workdir))
		spec_invalid(0, "agent mode with a command, the default command or a workdir");
	if (c->scratch_dev && !c->root_dev)
		spec_invalid(0, "a scratch disk without a root disk");
}

static int env_has(char *const *envp, size_t n, const char *key)
{
	size_t klen = strlen(key);

	for (size_t i = 0; i < n; i++)
		if (!strncmp(envp[i], key, klen) && envp[i][klen] == '=')
			return 1;
	return 0;
}

/* Build argv and envp, pointing into buf. */
static void spec_parse(const char *buf, size_t len, struct run_spec *rs)
{
	static char *default_argv[] = { "/bin/sh", NULL };
	struct spec_counts c = { 0 };
	size_t off, na = 0, ne = 0;

	spec_scan(buf, len, &c);
	rs->workdir = c.workdir;
	rs->root_dev = c.root_dev;
	rs->scratch_dev = c.scratch_dev;
	rs->nmounts = 0;
	rs->agent = c.agent;
	rs->argv = c.nargs ? malloc((c.nargs + 1) * sizeof(char *)) : default_argv;
	rs->envp = malloc((c.nenv + 4) * sizeof(char *));	/* + PATH HOME TERM */
	if (!rs->argv || !rs->envp)
		fatal("run spec", ENOMEM);
	for (off = 0; off < len; off += strlen(buf + off + 1) + 2) {
		char *s = (char *)buf + off + 1;

		if (buf[off] == 'A')
			rs->argv[na++] = s;
		else if (buf[off] == 'M')
			rs->mounts[rs->nmounts++] = s;
		else if (buf[off] == 'E')
			rs->envp[ne++] = s;
	}
	if (c.nargs)
		rs->argv[na] = NULL;
	rs->envp[ne] = NULL;
	/* The agent adds these per command (HOME depends on the user). */
	if (rs->agent)
		return;
	if (!env_has(rs->envp, c.nenv, "PATH"))
		rs->envp[ne++] = DEFAULT_PATH;
	if (!env_has(rs->envp, c.nenv, "HOME"))
		rs->envp[ne++] = "HOME=/root";
	if (!env_has(rs->envp, c.nenv, "TERM"))
		rs->envp[ne++] = "TERM=linux";
	rs->envp[ne] = NULL;
}

/* Mount points in the initramfs root (a rootfs/tmpfs, so they can be made). */
#define LOWER_DIR "/mnt/lower"
#define RW_DIR "/mnt/rw"
#define NEWROOT_DIR "/newroot"

/*
 * mount(2), making the mount point (and its parent) only when it is missing:
 * the disk images' initramfs ships them, so that costs nothing there.
 */
static int mount_at(const char *src, const char *dir, const char *type,
		    unsigned long flags, const char *opts)
{
	char parent[16];
	int err;

	if (mount(src, dir, type, flags, opts) == 0)
		return 0;
	err = errno;
	if (err != ENOENT || access(dir, F_OK) == 0) {
		errno = err;
		return -1;
	}
	snprintf(parent, sizeof(parent), "%s", dir);
	*strrchr(parent, '/') = '\0';
	if (parent[0])
		mkdir(parent, 0755);
	if (mkdir(dir, 0755) < 0)
		return -1;
	return mount(src, dir, type, flags, opts);
}

static void __attribute__((noreturn)) mount_failed(const char *what, const char *src,
						   const char *dir, int err)
{
	/* ENOENT may name either path: a missing disk is the likely one. */
	if (err == ENOENT && src[0] == '/' && access(src, F_OK) < 0)
		say("%s %s: no such device", what, src);
	else
		say("%s: mount %s on %s: %s", what, src, dir, strerror(err));
	finish(STATUS_INIT_FAILED);
}

static void mount_or_fail(const char *what, const char *src, const char *dir,
			  const char *type, unsigned long flags, const char *opts)
{
	if (mount_at(src, dir, type, flags, opts) < 0)
		mount_failed(what, src, dir, errno);
}

/* The writable layer: the scratch disk, or a tmpfs; upper and work in it. */
static void mount_rw_layer(const char *scratch_dev)
{
	if (scratch_dev) {
		/*
		 * noinit_itable: the scratch template is made with lazy inode
		 * tables; zeroing them in the background would cost guest time
		 * and un-sparse the host file.
		 */
		mount_or_fail("scratch disk", scratch_dev, RW_DIR, "ext4", MS_NOATIME,
			      "noinit_itable");
		have_scratch = 1;
	} else {
		mount_or_fail("writable layer", "tmpfs", RW_DIR, "tmpfs", 0, "mode=0755");
	}
	/* EEXIST: a scratch disk kept from an earlier run. */
	if ((mkdir(RW_DIR "/upper", 0755) < 0 && errno != EEXIST) ||
	    (mkdir(RW_DIR "/work", 0700) < 0 && errno != EEXIST)) {
		say("%s: %s", RW_DIR, strerror(errno));
		finish(STATUS_INIT_FAILED);
	}
}

static void __attribute__((noreturn)) switch_failed(const char *what)
{
	say("switch root: %s: %s", what, strerror(errno));
	finish(STATUS_INIT_FAILED);
}

/*
 * Make the overlay of the root disk and the writable layer the root, as
 * switch_root does: mount it at /newroot, move /dev into it, move it over /
 * and chroot.  Only devtmpfs is mounted before (for the disk's node); the
 * rest is mounted once, in the new root, by mount_filesystems().  The
 * initramfs cannot be unmounted and its files are not deleted: it is a few
 * hundred KiB with no busybox, and unlinking costs a syscall per file.
 */
static void switch_root(const struct run_spec *rs)
{
	mount_dev();
	/* Built without a journal: a read-only mount has nothing to replay. */
	mount_or_fail("root disk", rs->root_dev, LOWER_DIR, "ext4", MS_RDONLY, NULL);
	mount_rw_layer(rs->scratch_dev);
	mount_or_fail("overlay", "overlay", NEWROOT_DIR, "overlay", 0,
		      "lowerdir=" LOWER_DIR ",upperdir=" RW_DIR "/upper,workdir=" RW_DIR "/work");
	if (mount("/dev", NEWROOT_DIR "/dev", NULL, MS_MOVE, NULL) < 0)
		switch_failed("move /dev");
	if (chdir(NEWROOT_DIR) < 0)
		switch_failed(NEWROOT_DIR);
	if (mount(".", "/", NULL, MS_MOVE, NULL) < 0)
		switch_failed("move " NEWROOT_DIR " to /");
	if (chroot(".") < 0 || chdir("/") < 0)
		switch_failed("chroot");
}

/*
 * Byte-exact console: no "\n" -> "\r\n".  Init also becomes the console's
 * session leader so that the command can be its foreground process group
 * (^C) without being a session leader itself: a session leader's exit hangs
 * up the tty, which flushes output the UART has not sent yet.
 */
static void console_init(void)
{
	struct termios t;

	if (tcgetattr(STDIN_FILENO, &t) < 0) {
		if (errno == EBADF)
			say("no console on fds 0-2");
		return;
	}
	t.c_oflag &= ~(OPOST | ONLCR);
	tcsetattr(STDIN_FILENO, TCSANOW, &t);
	if (setsid() >= 0 && ioctl(STDIN_FILENO, TIOCSCTTY, 0) == 0)
		have_ctty = 1;
}

static void __attribute__((noreturn)) exec_failed(const char *cmd, int err)
{
	if (err == ENOENT && !strchr(cmd, '/')) {
		say("%s: command not found", cmd);
		_exit(STATUS_NOT_FOUND);
	}
	say("%s: %s", cmd, err == EACCES ? "permission denied" : strerror(err));
	_exit(err == ENOENT ? STATUS_NOT_FOUND : STATUS_CANNOT_EXEC);
}

/*
 * The vfork child: only syscalls and _exit/exec, since it borrows init's
 * memory until the exec.
 */
static void __attribute__((noreturn)) child_exec(const struct run_spec *rs,
						 const sigset_t *mask)
{
	if (have_ctty && setpgid(0, 0) == 0) {
		pid_t me = getpid();

		/* SIGTTOU is still blocked, so a background group may do this. */
		ioctl(STDIN_FILENO, TIOCSPGRP, &me);
	}
	/*
	 * The console carries no host input, so, as with `docker run` without
	 * -i, the command reads an empty stdin instead of waiting forever.
	 */
	int null_fd = open("/dev/null", O_RDONLY | O_CLOEXEC);

	if (null_fd >= 0) {
		dup2(null_fd, STDIN_FILENO);
		close(null_fd);
	}
	sigprocmask(SIG_SETMASK, mask, NULL);
	if (rs->workdir && chdir(rs->workdir) < 0) {
		say("cd %s: %s", rs->workdir, strerror(errno));
		_exit(STATUS_CANNOT_EXEC);
	}
	/* environ is rs->envp: execvp searches that PATH. */
	execvp(rs->argv[0], rs->argv);
	exec_failed(rs->argv[0], errno);
}

/*
 * vfork: no copy of init's address space to build and no copy-on-write
 * faults in init afterwards.
 */
static pid_t spawn(const struct run_spec *rs, const sigset_t *mask)
{
	pid_t pid = vfork();

	if (pid == 0)
		child_exec(rs, mask);
	return pid;
}

/* PID 1 reaps every orphan; stop when the command itself is gone. */
static uint32_t wait_command(pid_t pid)
{
	int st;
	pid_t w;

	for (;;) {
		w = waitpid(-1, &st, 0);
		if (w < 0) {
			if (errno == EINTR)
				continue;
			fatal("waitpid", errno);
		}
		if (w == pid)
			break;
	}
	if (WIFSIGNALED(st))
		return MSVMM_CTL_EXIT_SIGNALED | (uint32_t)WTERMSIG(st);
	return (uint32_t)WEXITSTATUS(st) & 0xff;
}

/* mkdir -p: the guest path of an extra disk may be nested. */
static void mkdir_p(char *path)
{
	for (char *p = path + 1; *p; p++)
		if (*p == '/') {
			*p = '\0';
			mkdir(path, 0755);
			*p = '/';
		}
	mkdir(path, 0755);
}

/* Extra disks ('M' records): ext4, mounted where the user asked. */
static void mount_extra_disks(const struct run_spec *rs)
{
	for (size_t i = 0; i < rs->nmounts; i++) {
		char *dev = rs->mounts[i], *path = strchr(dev, ':') + 1, *mode = strchr(path, ':');
		int ro = !strcmp(mode, ":ro");

		path[-1] = '\0';
		*mode = '\0';
		mkdir_p(path);
		if (mount(dev, path, "ext4", ro ? MS_RDONLY : 0, NULL) < 0) {
			say("disk %s: mount on %s: %s", dev, path, strerror(errno));
			finish(STATUS_INIT_FAILED);
		}
		/* Writes to a host disk must reach it before the VM stops. */
		have_scratch |= !ro;
	}
}

static void agent_ready(void *arg)
{
	(void)arg;
	ctl_write(MSVMM_CTL_READY, 1);
}

/* SHUTDOWN, in the session's process: the VM stops at the EXIT write. */
static void agent_shutdown(void *arg)
{
	(void)arg;
	sync();
	finish(0);
}

/*
 * The agent's pipes and sockets must not land on fds 0-2 (a command's
 * stdio is dup2()ed there), so fill any the kernel left closed.
 */
static void stdio_fill(void)
{
	for (int fd = 0; fd <= 2; fd++) {
		int nfd;

		if (fcntl(fd, F_GETFD) >= 0)
			continue;
		nfd = open("/dev/console", O_RDWR | O_NOCTTY);
		if (nfd < 0)
			nfd = open("/dev/null", O_RDWR);
		if (nfd >= 0 && nfd != fd) {
			dup2(nfd, fd);
			close(nfd);
		}
	}
}

static void __attribute__((noreturn)) agent_mode(const struct run_spec *rs)
{
	static const struct agent_hooks hooks = {
		.ready = agent_ready, .shutdown = agent_shutdown,
	};

	stdio_fill();
	agent_listen_loop(rs->envp, &hooks);
	fatal("agent on vsock port " AGENT_PORT_STR, errno);
}

int main(int argc, char **argv)
{
	static char spec[SPEC_MAX + 1];
	extern char **environ;
	struct run_spec rs;
	sigset_t ttou, oldmask;
	pid_t pid;

	/* Not PID 1: the host's first command in a restored sandbox. */
	if (getpid() != 1 && argc > 1 && !strcmp(argv[1], RESTORED_ARG))
		return restored_main(argc, argv);
	ctl_init();
	/* Before the spec: init's own error lines are byte-exact too. */
	console_init();
	spec_parse(spec, spec_read(spec), &rs);
	if (rs.root_dev)
		switch_root(&rs);
	mount_filesystems(rs.root_dev != NULL);
	mount_extra_disks(&rs);
	if (rs.agent)
		agent_mode(&rs);

	/*
	 * Init is not in the console's foreground group once the command
	 * runs; blocked SIGTTOU lets it still tcdrain() the console.
	 */
	sigemptyset(&ttou);
	sigaddset(&ttou, SIGTTOU);
	sigprocmask(SIG_BLOCK, &ttou, &oldmask);

	environ = rs.envp;
	pid = spawn(&rs, &oldmask);
	if (pid < 0)
		fatal("vfork", errno);
	finish(wait_command(pid));
}
