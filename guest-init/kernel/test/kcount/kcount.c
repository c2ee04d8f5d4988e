/* QEMU TCG plugin (QEMU 7.2 plugin API v1, declared here because Debian
 * ships no qemu-plugin.h): counts guest instructions executed at kernel
 * addresses, per translation-block start address, and dumps them at exit.
 * Under PVM every guest-kernel instruction is emulated, so this count is a
 * deterministic proxy for guest boot cost there (a `rep` string instruction
 * counts once per iteration, like one emulator step).
 * Args: out=FILE, mark=HEX (record the count when a TB at HEX first runs;
 * up to 16), seq=HEX (record the count at every run of HEX, e.g.
 * do_one_initcall), win=N (only count while seq has fired N times). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <pthread.h>
typedef uint64_t qemu_plugin_id_t;
typedef struct qemu_info_t qemu_info_t;
struct qemu_plugin_tb;
enum qemu_plugin_cb_flags { QEMU_PLUGIN_CB_NO_REGS, QEMU_PLUGIN_CB_R_REGS, QEMU_PLUGIN_CB_RW_REGS };
typedef void (*qemu_plugin_vcpu_udata_cb_t)(unsigned int vcpu_index, void *userdata);
typedef void (*qemu_plugin_udata_cb_t)(qemu_plugin_id_t id, void *userdata);
typedef void (*qemu_plugin_vcpu_tb_trans_cb_t)(qemu_plugin_id_t id, struct qemu_plugin_tb *tb);
extern void qemu_plugin_register_vcpu_tb_trans_cb(qemu_plugin_id_t id, qemu_plugin_vcpu_tb_trans_cb_t cb);
extern size_t qemu_plugin_tb_n_insns(const struct qemu_plugin_tb *tb);
extern uint64_t qemu_plugin_tb_vaddr(const struct qemu_plugin_tb *tb);
extern void qemu_plugin_register_vcpu_tb_exec_cb(struct qemu_plugin_tb *tb, qemu_plugin_vcpu_udata_cb_t cb, enum qemu_plugin_cb_flags flags, void *userdata);
extern void qemu_plugin_register_atexit_cb(qemu_plugin_id_t id, qemu_plugin_udata_cb_t cb, void *userdata);
extern void qemu_plugin_outs(const char *string);
__attribute__((visibility("default"))) int qemu_plugin_version = 1;

struct ent { uint64_t addr, ninsn, count; };
#define HSZ (1u<<20)
static struct ent *tab[HSZ]; static uint64_t keys[HSZ];
static pthread_mutex_t lock = PTHREAD_MUTEX_INITIALIZER;
static uint64_t kinsn, uinsn, kinsn_at_user = 0;
static int seen_user;
static const char *outpath = "/tmp/kcount.out";
static uint64_t marks[16], markval[16]; static int nmarks;
static uint64_t seqaddr, seqv[1<<16]; static int nseq; static int win = -1;

static void exec_cb(unsigned int vcpu, void *ud)
{
	struct ent *e = ud;
	if (win < 0 || nseq == win) __atomic_fetch_add(&e->count, 1, __ATOMIC_RELAXED);
	if (e->addr >= 0xffff800000000000ull) {
		for (int i = 0; i < nmarks; i++) if (e->addr == marks[i] && !markval[i]) markval[i] = kinsn + 1;
		if (e->addr == seqaddr && nseq < (1<<16)) seqv[nseq++] = kinsn;
		__atomic_fetch_add(&kinsn, e->ninsn, __ATOMIC_RELAXED);
	}
	else if (e->addr < 0x800000000000ull) {
		if (!seen_user && e->addr < 0x800000000000ull && e->addr > 0x10000) { seen_user = 1; kinsn_at_user = kinsn; }
		__atomic_fetch_add(&uinsn, e->ninsn, __ATOMIC_RELAXED);
	}
}
static void trans_cb(qemu_plugin_id_t id, struct qemu_plugin_tb *tb)
{
	uint64_t a = qemu_plugin_tb_vaddr(tb);
	size_t n = qemu_plugin_tb_n_insns(tb);
	uint64_t key = a ^ ((uint64_t)n << 56);
	pthread_mutex_lock(&lock);
	uint32_t i = (uint32_t)((key * 0x9E3779B97F4A7C15ull) >> 44) & (HSZ - 1);
	while (tab[i] && keys[i] != key) i = (i + 1) & (HSZ - 1);
	struct ent *e = tab[i];
	if (!e) {
		e = calloc(1, sizeof *e);
		e->addr = a; e->ninsn = n;
		keys[i] = key; tab[i] = e;
	}
	pthread_mutex_unlock(&lock);
	qemu_plugin_register_vcpu_tb_exec_cb(tb, exec_cb, QEMU_PLUGIN_CB_NO_REGS, e);
}

static void at_exit(qemu_plugin_id_t id, void *ud)
{
	FILE *f = fopen(outpath, "w");
	fprintf(f, "# kernel_insns %lu user_insns %lu kernel_insns_before_first_user %lu\n", kinsn, uinsn, kinsn_at_user);
	for (uint32_t i = 0; i < HSZ; i++) { struct ent *e = tab[i]; if (e && e->count && e->addr >= 0xffff800000000000ull) fprintf(f, "%lx %lu\n", e->addr, e->count * e->ninsn); }
	for (int i = 0; i < nmarks; i++) fprintf(f, "# mark %lx %lu\n", marks[i], markval[i]);
	for (int i = 0; i < nseq; i++) fprintf(f, "# seq %lu\n", seqv[i]);
	fclose(f);
}
__attribute__((visibility("default")))
int qemu_plugin_install(qemu_plugin_id_t id, const qemu_info_t *info, int argc, char **argv)
{
	for (int i = 0; i < argc; i++)
		if (!strncmp(argv[i], "out=", 4)) outpath = strdup(argv[i] + 4);
		else if (!strncmp(argv[i], "win=", 4)) win = atoi(argv[i] + 4);
		else if (!strncmp(argv[i], "seq=", 4)) seqaddr = strtoull(argv[i] + 4, 0, 16);
		else if (!strncmp(argv[i], "mark=", 5) && nmarks < 16) marks[nmarks++] = strtoull(argv[i] + 5, 0, 16);
	qemu_plugin_register_vcpu_tb_trans_cb(id, trans_cb);
	qemu_plugin_register_atexit_cb(id, at_exit, NULL);
	return 0;
}
