// SPDX-License-Identifier: Apache-2.0
/*
 * msx: run one command in a fresh microVM and exit with its status, like
 * `docker run --rm`.  125: msx itself failed; otherwise the command's exit
 * code, 126/127 for not executable/not found, 128+N for signal N.
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include "msvmm.h"
#include "msx_args.h"

#define MSX_EXIT_OWN_ERROR 125
#define MSX_PROFILE_TOP 40

static const char usage[] =
	"usage: msx [OPTIONS] IMAGE [--] [COMMAND [ARG...]]\n"
	"Run COMMAND in a new microVM booted from IMAGE and exit with its status.\n"
	"\n"
	"  -m, --memory MiB     guest RAM (default 256)\n"
	"  -c, --cpus N         vCPUs (default 1)\n"
	"  -e, --env KEY=VALUE  set an environment variable (repeatable)\n"
	"  -w, --workdir DIR    working directory inside the guest\n"
	"  -v, --volume IMG[:PATH[:ro]]  attach disk image IMG, mounted at PATH (ext4)\n"
	"      --timeout SECS   stop the VM after SECS seconds (exit 124)\n"
	"      --kernel PATH    guest kernel (ELF vmlinux or bzImage)\n"
	"      --console        show the guest kernel log\n"
	"      --cmdline WORDS  extra guest kernel command-line words\n"
	"      --timings        print phase times to stderr\n"
	"      --profile[=HZ]   sample guest RIPs (default 1000 Hz), print hot symbols\n"
	"  -h, --help           this text\n"
	"      --version        print the version\n"
	"\n"
	"Exit status: the command's; 125 msx error, 126 not executable, 127 not found,\n"
	"128+N killed by signal N, 124 timeout.\n";

static uint64_t now_ns(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (uint64_t)ts.tv_sec * 1000000000ULL + (uint64_t)ts.tv_nsec;
}

struct msx_signals {
	sigset_t set;
	msvmm_vm *vm;
	int signo;
};

/* SIGINT/SIGTERM/SIGHUP are blocked everywhere and taken here, outside any handler. */
static void *msx_signal_thread(void *p)
{
	struct msx_signals *s = p;
	int sig;

	if (sigwait(&s->set, &sig) == 0) {
		s->signo = sig;
		msvmm_vm_stop(s->vm);
	}
	return NULL;
}

static int msx_config(const struct msx_args *a, msvmm_config *cfg)
{
	int rc = msvmm_config_set_image(cfg, a->image);

	if (!rc && a->kernel)
		rc = msvmm_config_set_kernel(cfg, a->kernel);
	if (!rc && a->memory_mib)
		rc = msvmm_config_set_memory_mib(cfg, a->memory_mib);
	if (!rc && a->cpus)
		rc = msvmm_config_set_vcpus(cfg, a->cpus);
	if (!rc && a->cmd)
		rc = msvmm_config_set_argv(cfg, (const char *const *)a->cmd);
	for (unsigned int i = 0; !rc && i < a->nr_vols; i++)
		rc = msvmm_config_add_disk(cfg, a->vols[i].host, a->vols[i].guest[0] ? a->vols[i].guest : NULL,
					   a->vols[i].read_only);
	for (unsigned int i = 0; !rc && i < a->nr_env; i++)
		rc = msvmm_config_add_env(cfg, a->env[i]);
	if (!rc && a->workdir)
		rc = msvmm_config_set_workdir(cfg, a->workdir);
	if (!rc)
		rc = msvmm_config_set_console_fd(cfg, STDOUT_FILENO);
	if (!rc)
		rc = msvmm_config_set_kernel_log(cfg, a->console);
	if (!rc && a->cmdline_extra)
		rc = msvmm_config_set_extra_cmdline(cfg, a->cmdline_extra);
	if (!rc)
		rc = msvmm_config_set_profile_hz(cfg, a->profile_hz);
	if (!rc)
		rc = msvmm_config_set_timeout_ms(cfg, a->timeout_ms);
	return rc;
}

static void msx_timings(const msvmm_result *r, uint64_t t_main, uint64_t t_create, int pvm)
{
	double off = (double)(t_create - t_main) / 1e6;

	fprintf(stderr, "msx: timings (ms from msx start): vm-built %.3f, first-KVM_RUN %.3f, "
			"init-started %.1f, command-exited %.1f\n",
		off + (double)r->ns_vm_ready / 1e6, off + (double)r->ns_first_run / 1e6,
		r->ns_init_started ? off + (double)r->ns_init_started / 1e6 : -1.0,
		r->ns_exited ? off + (double)r->ns_exited / 1e6 : -1.0);
	fprintf(stderr, "msx: %llu VM exits; host %s", (unsigned long long)r->exits, pvm ? "PVM" : "KVM");
	if (pvm)
		fprintf(stderr, "; emulated int3 %llu, fwait %llu, xsave %llu, xrstor %llu, faults injected %llu",
			(unsigned long long)r->pvm_int3, (unsigned long long)r->pvm_fwait,
			(unsigned long long)r->pvm_xsave, (unsigned long long)r->pvm_xrstor,
			(unsigned long long)r->pvm_faults_injected);
	fputc('\n', stderr);
}

static int msx_status(int rc, const msvmm_result *res, const msvmm_error *err, int signo)
{
	if (rc == 0)
		return res->status;
	if (signo)
		return 128 + signo;
	fprintf(stderr, "msx: %s\n", err->message);
	return rc == -MSVMM_ETIMEDOUT ? 124 : MSX_EXIT_OWN_ERROR;
}

static int msx_run(const struct msx_args *a, msvmm_config *cfg, uint64_t t_main)
{
	struct msx_signals sigs = { .signo = 0 };
	msvmm_result res = { 0 };
	msvmm_error err;
	pthread_t st;
	msvmm_vm *vm;
	uint64_t t_create = now_ns();
	int rc;

	rc = msvmm_vm_create(cfg, &vm, &err);
	if (rc) {
		fprintf(stderr, "msx: %s\n", err.message);
		return MSX_EXIT_OWN_ERROR;
	}
	sigemptyset(&sigs.set);
	sigaddset(&sigs.set, SIGINT);
	sigaddset(&sigs.set, SIGTERM);
	sigaddset(&sigs.set, SIGHUP);
	sigs.vm = vm;
	pthread_create(&st, NULL, msx_signal_thread, &sigs);
	pthread_detach(st);
	rc = msvmm_vm_run(vm, &res, &err);
	if (a->timings)
		msx_timings(&res, t_main, t_create, msvmm_vm_is_pvm(vm));
	if (a->profile_hz && msvmm_vm_profile_report(vm, STDERR_FILENO, MSX_PROFILE_TOP, &err) < 0)
		fprintf(stderr, "msx: %s\n", err.message);
	rc = msx_status(rc, &res, &err, sigs.signo);
	msvmm_vm_destroy(vm);
	return rc;
}

int main(int argc, char **argv)
{
	uint64_t t_main = now_ns();
	struct msx_args a;
	char errbuf[256];
	msvmm_config *cfg;
	sigset_t block;
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
	sigemptyset(&block);
	sigaddset(&block, SIGINT);
	sigaddset(&block, SIGTERM);
	sigaddset(&block, SIGHUP);
	pthread_sigmask(SIG_BLOCK, &block, NULL);
	cfg = msvmm_config_new();
	if (!cfg) {
		fprintf(stderr, "msx: out of memory\n");
		return MSX_EXIT_OWN_ERROR;
	}
	rc = msx_config(&a, cfg);
	if (rc) {
		fprintf(stderr, "msx: invalid configuration: %s\n", msvmm_strerror(rc));
		msvmm_config_free(cfg);
		return MSX_EXIT_OWN_ERROR;
	}
	rc = msx_run(&a, cfg, t_main);
	msvmm_config_free(cfg);
	return rc;
}
