// SPDX-License-Identifier: Apache-2.0
/*
 * msx: run one command in a fresh microVM and exit with its status, like
 * `docker run --rm`.  125: msx itself failed; otherwise the command's exit
 * code, 126/127 for not executable/not found, 128+N for signal N.
 */
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <termios.h>
#include <time.h>
#include <unistd.h>

#include "msvmm.h"
#include "msx_args.h"

#define MSX_EXIT_OWN_ERROR 125
#define MSX_EXIT_TIMEOUT 124
#define MSX_PROFILE_TOP 40
#define MSX_STOP_TIMEOUT_MS 10000
/* The most code --code - reads from stdin: what one RUNCODE carries. */
#define MSX_CODE_MAX (1024u * 1024)

static const char usage[] =
	"usage: msx [OPTIONS] IMAGE [--] [COMMAND [ARG...]]\n"
	"       msx [OPTIONS] IMAGE --code CODE|-\n"
	"Run COMMAND in a new microVM booted from IMAGE and exit with its status;\n"
	"or run CODE in the image's runtime (python for the python image).\n"
	"\n"
	"  -i, --interactive    forward stdin to the command (else it reads /dev/null)\n"
	"  -t, --tty            run the command on a pseudo-terminal (-it for a shell)\n"
	"  -u, --user USER      run as USER (name or UID[:GID]) inside the guest\n"
	"  -m, --memory MiB     guest RAM (default 256)\n"
	"  -c, --cpus N         vCPUs (default 1)\n"
	"  -e, --env KEY=VALUE  set an environment variable (repeatable)\n"
	"  -w, --workdir DIR    working directory inside the guest\n"
	"  -v, --volume IMG[:PATH[:ro]]  attach disk image IMG, mounted at PATH (ext4)\n"
	"      --timeout SECS   kill the command after SECS seconds (exit 124); --code:\n"
	"                       interrupt the code (KeyboardInterrupt)\n"
	"      --code CODE      run CODE in the image's runtime instead of a command\n"
	"                       (--code - reads it from stdin); exit 1 for an uncaught\n"
	"                       exception, its traceback on stderr\n"
	"      --kernel PATH    guest kernel (ELF vmlinux or bzImage)\n"
	"      --console        show the guest kernel log (on stderr)\n"
	"      --cmdline WORDS  extra guest kernel command-line words\n"
	"      --timings        print phase times to stderr\n"
	"      --no-snapshot    boot the VM instead of restoring the image's ready\n"
	"                       snapshot (made on first use, kept in ~/.cache/msvmm)\n"
	"      --profile[=HZ]   sample guest RIPs (default 1000 Hz), print hot symbols\n"
	"  -h, --help           this text\n"
	"      --version        print the version\n"
	"\n"
	"stdout and stderr are the command's, kept apart. Signals sent to msx\n"
	"(Ctrl-C, SIGTERM) reach the command. Exit status: the command's; 125 msx\n"
	"error, 126 not executable, 127 not found, 128+N killed by signal N, 124 timeout.\n";

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

/*
 * The signals msx forwards.  They are blocked in every thread and taken by
 * one thread with sigwait: no handlers, nothing async-signal-unsafe.
 */
static const int msx_fwd_signals[] = { SIGINT, SIGTERM, SIGHUP, SIGQUIT, SIGUSR1, SIGUSR2, SIGWINCH };

/* What a signal to msx does: end msx while booting, reach the command, or wait for the stop. */
enum msx_phase { MSX_BOOTING, MSX_RUNNING, MSX_STOPPING };

struct msx_signals {
	sigset_t set;
	pthread_mutex_t lock;
	enum msx_phase phase;
	msvmm_exec *ex; /* the running command (MSX_RUNNING) */
	int tty_fd;     /* where the window size is read for SIGWINCH, or -1 */
};

static int msx_winsize(int fd, unsigned int *rows, unsigned int *cols)
{
	struct winsize ws;

	if (fd < 0 || ioctl(fd, TIOCGWINSZ, &ws) < 0 || !ws.ws_row || !ws.ws_col)
		return -1;
	*rows = ws.ws_row;
	*cols = ws.ws_col;
	return 0;
}

static void *msx_signal_thread(void *p)
{
	struct msx_signals *s = p;
	unsigned int rows, cols;
	int sig;

	while (sigwait(&s->set, &sig) == 0) {
		pthread_mutex_lock(&s->lock);
		if (s->phase == MSX_RUNNING && sig == SIGWINCH) {
			if (msx_winsize(s->tty_fd, &rows, &cols) == 0)
				msvmm_exec_resize(s->ex, rows, cols);
		} else if (s->phase == MSX_RUNNING) {
			msvmm_exec_signal(s->ex, sig);
		} else if (s->phase == MSX_BOOTING && sig != SIGWINCH) {
			/* Nothing to forward to yet, and nothing on disk to clean up. */
			_exit(128 + sig);
		}
		/* Stopping: the command has its status; -v disks are being synced. */
		pthread_mutex_unlock(&s->lock);
	}
	return NULL;
}

static void msx_set_phase(struct msx_signals *s, enum msx_phase phase, msvmm_exec *ex)
{
	pthread_mutex_lock(&s->lock);
	s->phase = phase;
	s->ex = ex;
	pthread_mutex_unlock(&s->lock);
}

/* Fill cfg from the options; on failure *what names the option that was refused. */
static int msx_config(const struct msx_args *a, msvmm_config *cfg, const char **what)
{
	int rc = msvmm_config_set_image(cfg, a->image);

	*what = a->image;
	if (!rc && a->kernel && (*what = "--kernel"))
		rc = msvmm_config_set_kernel(cfg, a->kernel);
	if (!rc && a->memory_mib && (*what = "--memory"))
		rc = msvmm_config_set_memory_mib(cfg, a->memory_mib);
	if (!rc && a->cpus && (*what = "--cpus"))
		rc = msvmm_config_set_vcpus(cfg, a->cpus);
	for (unsigned int i = 0; !rc && i < a->nr_vols; i++) {
		*what = a->vols[i].host;
		rc = msvmm_config_add_disk(cfg, a->vols[i].host, a->vols[i].guest[0] ? a->vols[i].guest : NULL,
					   a->vols[i].read_only);
	}
	for (unsigned int i = 0; !rc && i < a->nr_env; i++) {
		*what = a->env[i];
		rc = msvmm_config_add_env(cfg, a->env[i]);
	}
	if (!rc && a->workdir && (*what = "--workdir"))
		rc = msvmm_config_set_workdir(cfg, a->workdir);
	*what = "msx";
	/* Only guest-init's own failures and the kernel log (--console) use the console. */
	if (!rc)
		rc = msvmm_config_set_console_fd(cfg, STDERR_FILENO);
	if (!rc)
		rc = msvmm_config_set_kernel_log(cfg, a->console);
	if (!rc && a->cmdline_extra && (*what = "--cmdline"))
		rc = msvmm_config_set_extra_cmdline(cfg, a->cmdline_extra);
	if (!rc && (*what = "--profile"))
		rc = msvmm_config_set_profile_hz(cfg, a->profile_hz);
	/* A snapshot the cache cannot use is replaced by a cold boot, not an error. */
	if (!rc && (*what = "--no-snapshot"))
		rc = msvmm_config_set_snapshot(cfg, a->no_snapshot ? MSVMM_SNAPSHOT_OFF
							   : MSVMM_SNAPSHOT_CACHE | MSVMM_SNAPSHOT_FALLBACK,
					       NULL);
	return rc;
}

static void msx_timings(const msvmm_result *boot, uint64_t t_main, uint64_t t_create, uint64_t t_exec,
			uint64_t t_done, int pvm)
{
	double off = (double)(t_create - t_main) / 1e6;

	if (boot->ns_state_restored)
		fprintf(stderr, "msx: restored from snapshot: opened %.3f, state applied %.3f\n",
			off + (double)boot->ns_snapshot_opened / 1e6, off + (double)boot->ns_state_restored / 1e6);
	fprintf(stderr, "msx: timings (ms from msx start): vm-built %.3f, first-KVM_RUN %.3f, "
			"init-started %.1f, agent-ready %.1f, command-exited %.1f\n",
		off + (double)boot->ns_vm_ready / 1e6, off + (double)boot->ns_first_run / 1e6,
		boot->ns_init_started ? off + (double)boot->ns_init_started / 1e6 : -1.0,
		(double)(t_exec - t_main) / 1e6, (double)(t_done - t_main) / 1e6);
	fprintf(stderr, "msx: %llu VM exits; host %s", (unsigned long long)boot->exits, pvm ? "PVM" : "KVM");
	if (pvm)
		fprintf(stderr, "; emulated int3 %llu, fwait %llu, xsave %llu, xrstor %llu, faults injected %llu",
			(unsigned long long)boot->pvm_int3, (unsigned long long)boot->pvm_fwait,
			(unsigned long long)boot->pvm_xsave, (unsigned long long)boot->pvm_xrstor,
			(unsigned long long)boot->pvm_faults_injected);
	fputc('\n', stderr);
}

/* -t on a terminal: raw mode, so keys (Ctrl-C, Ctrl-D) go to the guest's pty as bytes. */
struct msx_term {
	struct termios saved;
	int fd; /* -1: nothing to restore */
};

static void msx_term_raw(struct msx_term *t, int fd)
{
	struct termios raw;

	t->fd = -1;
	if (!isatty(fd) || tcgetattr(fd, &t->saved) < 0)
		return;
	raw = t->saved;
	cfmakeraw(&raw);
	if (tcsetattr(fd, TCSANOW, &raw) == 0)
		t->fd = fd;
}

static void msx_term_restore(struct msx_term *t)
{
	if (t->fd >= 0)
		tcsetattr(t->fd, TCSANOW, &t->saved);
}

static void msx_exec_opts(const struct msx_args *a, msvmm_exec_opts *o)
{
	static const char *term_env[2];
	static char kv[210];
	const char *term = getenv("TERM");

	msvmm_exec_opts_init(o);
	o->argv = (const char *const *)a->cmd;
	o->user = a->user;
	o->stdin_fd = a->interactive ? STDIN_FILENO : -1;
	o->stdout_fd = STDOUT_FILENO;
	o->stderr_fd = STDERR_FILENO;
	o->timeout_ms = a->timeout_ms;
	if (!a->tty)
		return;
	o->tty = 1;
	if (msx_winsize(STDIN_FILENO, &o->rows, &o->cols) < 0)
		msx_winsize(STDOUT_FILENO, &o->rows, &o->cols);
	/* The host terminal's type, so full-screen programs draw for it. */
	if (term && *term && strlen(term) < 200) {
		snprintf(kv, sizeof(kv), "TERM=%s", term);
		term_env[0] = kv;
		o->env = term_env;
	}
}

/* --code's bytes: the argument itself, or what stdin held ("-"). */
struct msx_code {
	const char *text; /* NULL: no --code, a command runs */
	size_t len;
	char *buf;        /* read from stdin; freed at the end */
};

/* All of stdin, at most MSX_CODE_MAX bytes; NULL, or why not. */
static const char *msx_code_stdin(struct msx_code *c)
{
	size_t len = 0;
	ssize_t n = 1;

	c->buf = malloc(MSX_CODE_MAX + 1);
	if (!c->buf)
		return "out of memory";
	while (n && len <= MSX_CODE_MAX) {
		n = read(STDIN_FILENO, c->buf + len, MSX_CODE_MAX + 1 - len);
		if (n < 0 && errno != EINTR)
			return strerror(errno);
		len += n > 0 ? (size_t)n : 0;
	}
	if (len > MSX_CODE_MAX)
		return "more than 1024 KiB of code on stdin";
	c->text = c->buf;
	c->len = len;
	return NULL;
}

/*
 * With --code: the image must have a runtime (said before anything boots),
 * and the code is read.  0, or MSX_EXIT_OWN_ERROR with the line printed.
 */
static int msx_code_prepare(const struct msx_args *a, struct msx_code *c)
{
	const char *why;
	msvmm_error err;

	memset(c, 0, sizeof(*c));
	if (!a->code)
		return 0;
	if (msvmm_image_has_runtime(NULL, a->image, NULL, &err) < 0) {
		fprintf(stderr, "msx: --code: %s\n", err.message);
		return MSX_EXIT_OWN_ERROR;
	}
	if (strcmp(a->code, "-")) {
		c->text = a->code;
		c->len = strlen(a->code);
		return 0;
	}
	why = msx_code_stdin(c);
	if (why) {
		fprintf(stderr, "msx: --code -: %s\n", why);
		return MSX_EXIT_OWN_ERROR;
	}
	return 0;
}

static int msx_exec(const struct msx_args *a, const struct msx_code *code, msvmm_sandbox *sb,
		    struct msx_signals *sigs, msvmm_result *res, msvmm_error *err)
{
	struct msx_term term = { .fd = -1 };
	msvmm_exec_opts o;
	msvmm_exec *ex;
	int rc;

	msx_exec_opts(a, &o);
	if (code->text)
		rc = msvmm_run_code_start(sb, NULL, code->text, code->len, &o, &ex, err);
	else
		rc = msvmm_exec_start(sb, &o, &ex, err);
	if (rc) {
		msx_set_phase(sigs, MSX_STOPPING, NULL);
		return rc;
	}
	sigs->tty_fd = a->tty ? (isatty(STDIN_FILENO) ? STDIN_FILENO : STDOUT_FILENO) : -1;
	/* Signals reach the command before the terminal goes raw and until it is restored. */
	msx_set_phase(sigs, MSX_RUNNING, ex);
	if (a->tty && a->interactive)
		msx_term_raw(&term, STDIN_FILENO);
	rc = msvmm_exec_wait(ex, res, err);
	msx_term_restore(&term);
	msx_set_phase(sigs, MSX_STOPPING, NULL);
	msvmm_exec_free(ex);
	return rc;
}

static int msx_run(const struct msx_args *a, const struct msx_code *code, msvmm_config *cfg,
		   struct msx_signals *sigs, uint64_t t_main)
{
	msvmm_result res = { 0 }, boot;
	uint64_t t_create = now_ns(), t_exec, t_done;
	msvmm_sandbox *sb;
	msvmm_error err;
	int rc, status;

	rc = msvmm_sandbox_start(cfg, &sb, &err);
	if (rc) {
		fprintf(stderr, "msx: %s\n", err.message);
		return MSX_EXIT_OWN_ERROR;
	}
	t_exec = now_ns();
	rc = msx_exec(a, code, sb, sigs, &res, &err);
	t_done = now_ns();
	/* 124 only for the command's own timeout, not for msx's (a guest that does not answer). */
	status = res.timed_out ? MSX_EXIT_TIMEOUT : rc ? MSX_EXIT_OWN_ERROR : res.status;
	if (rc)
		fprintf(stderr, "msx: %s\n", err.message);
	if (a->timings) {
		msvmm_sandbox_timings(sb, &boot);
		msx_timings(&boot, t_main, t_create, t_exec, t_done, msvmm_vm_is_pvm(msvmm_sandbox_vm(sb)));
	}
	if (a->profile_hz && msvmm_vm_profile_report(msvmm_sandbox_vm(sb), STDERR_FILENO, MSX_PROFILE_TOP, &err) < 0)
		fprintf(stderr, "msx: %s\n", err.message);
	/* Writes to -v disks reach them before the VM goes; one error line is enough. */
	if (msvmm_sandbox_stop(sb, MSX_STOP_TIMEOUT_MS, &err) < 0 && !rc) {
		fprintf(stderr, "msx: %s\n", err.message);
		if (!status)
			status = MSX_EXIT_OWN_ERROR;
	}
	msvmm_sandbox_destroy(sb);
	return status;
}

int main(int argc, char **argv)
{
	uint64_t t_main = now_ns();
	struct msx_args a;
	struct msx_signals sigs = { .phase = MSX_BOOTING, .ex = NULL, .tty_fd = -1 };
	struct msx_code code;
	char errbuf[256];
	const char *what;
	msvmm_config *cfg;
	pthread_t st;
	int rc;

	if (msx_parse_args(argc, argv, &a, errbuf, sizeof(errbuf)) < 0) {
		fprintf(stderr, "msx: %s\n", errbuf);
		return MSX_EXIT_OWN_ERROR;
	}
	if (a.help) {
		fputs(usage, stdout);
		return 0;
	}
	if (a.version) {
		printf("msx (msvmm) %s\n", MSVMM_VERSION_STRING);
		return 0;
	}
	/* Blocked before any thread exists, so only the signal thread receives them. */
	sigemptyset(&sigs.set);
	for (size_t i = 0; i < sizeof(msx_fwd_signals) / sizeof(msx_fwd_signals[0]); i++)
		sigaddset(&sigs.set, msx_fwd_signals[i]);
	pthread_sigmask(SIG_BLOCK, &sigs.set, NULL);
	/* A reader of our stdout that goes away must not kill msx mid-run. */
	signal(SIGPIPE, SIG_IGN);
	pthread_mutex_init(&sigs.lock, NULL);
	/* Without it, Ctrl-C would do nothing: the signals stay blocked. */
	if (pthread_create(&st, NULL, msx_signal_thread, &sigs) != 0) {
		fprintf(stderr, "msx: cannot start the signal thread\n");
		return MSX_EXIT_OWN_ERROR;
	}
	pthread_detach(st);
	rc = msx_code_prepare(&a, &code);
	if (rc) {
		free(code.buf);
		return rc;
	}
	cfg = msvmm_config_new();
	if (!cfg) {
		fprintf(stderr, "msx: out of memory\n");
		free(code.buf);
		return MSX_EXIT_OWN_ERROR;
	}
	rc = msx_config(&a, cfg, &what);
	if (rc) {
		fprintf(stderr, "msx: %s: %s\n", what, msvmm_strerror(-rc));
		rc = MSX_EXIT_OWN_ERROR;
	} else {
		rc = msx_run(&a, &code, cfg, &sigs, t_main);
	}
	msvmm_config_free(cfg);
	free(code.buf);
	return rc;
}
