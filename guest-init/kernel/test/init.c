/* Minimal /init for smoke-testing the msvmm guest kernel (see qemu-test.sh).
 * Prints what it finds, then reboots. Static, no dependencies. */
#define _GNU_SOURCE
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/mount.h>
#include <sys/reboot.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>
#include <linux/vm_sockets.h>

static void cat(const char *path)
{
	char buf[4096];
	int fd = open(path, O_RDONLY);
	ssize_t n;
	if (fd < 0) { printf("init: open %s failed: %m\n", path); return; }
	while ((n = read(fd, buf, sizeof buf)) > 0)
		fwrite(buf, 1, n, stdout);
	close(fd);
}

int main(int argc, char **argv)
{
	struct stat st;
	setvbuf(stdout, NULL, _IONBF, 0);
	if (argc > 0 && strcmp(argv[0], "init-child") == 0) {
		printf("init: child exec ok\n");
		return 7;
	}
	printf("init: hello from /init (pid %d)\n", getpid());
	if (mount("proc", "/proc", "proc", 0, NULL)) printf("init: mount proc: %m\n");
	if (mount("sysfs", "/sys", "sysfs", 0, NULL)) printf("init: mount sysfs: %m\n");
	if (mount("devtmpfs", "/dev", "devtmpfs", 0, NULL)) printf("init: mount devtmpfs: %m\n");
	if (mount("tmpfs", "/tmp", "tmpfs", 0, NULL)) printf("init: mount tmpfs: %m\n");
	printf("init: uptime: "); cat("/proc/uptime");
	printf("init: /dev/vda %s\n", stat("/dev/vda", &st) == 0 ? "present" : "MISSING");
	/* /dev/vda is an ext4 image holding /hello (see qemu-test.sh) */
	mkdir("/tmp/lower", 0755);
	if (mount("/dev/vda", "/tmp/lower", "ext4", MS_RDONLY, NULL))
		printf("init: mount ext4 /dev/vda: %m\n");
	else {
		printf("init: ext4 /hello: ");
		cat("/tmp/lower/hello");
		mkdir("/tmp/up", 0755);
		mkdir("/tmp/work", 0755);
		mkdir("/tmp/merged", 0755);
		if (mount("overlay", "/tmp/merged", "overlay", 0,
			  "lowerdir=/tmp/lower,upperdir=/tmp/up,workdir=/tmp/work"))
			printf("init: mount overlay: %m\n");
		else {
			int w = open("/tmp/merged/hello", O_WRONLY | O_APPEND);
			printf("init: overlay write: %s\n",
			       w >= 0 && write(w, "overlay\n", 8) == 8 ? "ok" : strerror(errno));
			close(w);
			printf("init: overlay /hello: ");
			cat("/tmp/merged/hello");
		}
	}
	printf("init: /sys/class/net/eth0 (virtio-net) %s\n", stat("/sys/class/net/eth0", &st) == 0 ? "present" : "MISSING");
	printf("init: /dev/vsock %s\n", stat("/dev/vsock", &st) == 0 ? "present" : "MISSING");
	printf("init: /sys/kernel/slab %s\n", stat("/sys/kernel/slab", &st) == 0 ? "present" : "absent");
	printf("init: virtio devices:");
	for (int i = 0; i < 8; i++) {
		char p[64];
		snprintf(p, sizeof p, "/sys/bus/virtio/devices/virtio%d", i);
		if (stat(p, &st) == 0) printf(" virtio%d", i);
	}
	printf("\n");
	int s = socket(AF_VSOCK, SOCK_STREAM, 0);
	printf("init: AF_VSOCK socket: %s\n", s >= 0 ? "ok" : strerror(errno));
	s = socket(AF_INET, SOCK_STREAM, 0);
	printf("init: AF_INET socket: %s\n", s >= 0 ? "ok" : strerror(errno));
	int fd = open("/dev/mem", O_RDWR | O_SYNC);
	if (fd < 0) printf("init: open /dev/mem: %m\n");
	else {
		void *p = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0xd0000000);
		printf("init: mmap /dev/mem @0xd0000000: %s\n", p == MAP_FAILED ? strerror(errno) : "ok");
	}
	pid_t pid = fork();
	if (pid == 0) { execl("/init", "init-child", (char *)0); _exit(127); }
	int status = 0;
	waitpid(pid, &status, 0);
	printf("init: fork/exec child exit code %d\n", WEXITSTATUS(status));
	cat("/proc/interrupts");
	printf("init: uptime: "); cat("/proc/uptime");
	printf("init: done, rebooting\n");
	sync();
	reboot(RB_AUTOBOOT);
	return 0;
}
