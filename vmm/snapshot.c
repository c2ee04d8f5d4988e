// SPDX-License-Identifier: Apache-2.0
#include "snapshot.h"

#include <errno.h>
#include <fcntl.h>
#include <linux/kvm.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>
#include <x86intrin.h>
#include <zlib.h>

#include "snap_io.h"
#include "snapshot_devices.h"
#include "sparse_copy.h"

#define SNAP_MAGIC "MSVMMSNP"
#define SNAP_HDR_SIZE 4096
#define SNAP_PAGE 4096
#define SNAP_STATE_MAX (64u << 20) /* far above any real state blob */
#define SNAP_MAX_MSRS 512

/* Section tags. */
#define SNAP_T_VCPU 0x55504356u /* "VCPU" */
#define SNAP_T_IRQCHIP 0x43515249u /* "IRQC" */
#define SNAP_T_PIT 0x32544950u /* "PIT2" */
#define SNAP_T_DEVICES 0x53564544u /* "DEVS" */

struct snap_hdr {
	char magic[8];
	uint32_t version, hdr_size;
	uint64_t file_size, state_off, state_len, mem_off, mem_len, ram_size, disk_off, disk_len;
	uint32_t nr_vcpus, state_crc;
	char ident[SNAP_IDENT_MAX];
	uint32_t hdr_crc; /* over everything above */
};

/* ---- writing ------------------------------------------------------------ */

static void snap_section_begin(struct snap_w *w, uint32_t tag, size_t *at)
{
	snap_put_u32(w, tag);
	*at = w->len;
	snap_put_u32(w, 0); /* length, patched by snap_section_end */
}

static void snap_section_end(struct snap_w *w, size_t at)
{
	snap_patch_u32(w, at, (uint32_t)(w->len - at - 4));
}

static void snap_put_blob(struct snap_w *w, const void *p, uint32_t n)
{
	snap_put_u32(w, n);
	snap_put(w, p, n);
}

/* Every MSR KVM lists that reads back; those that do not are left out. */
static int snap_vcpu_msrs(struct machine *m, struct vcpu *v, struct snap_w *w)
{
	struct {
		struct kvm_msr_list hdr;
		uint32_t idx[SNAP_MAX_MSRS];
	} list = { .hdr.nmsrs = SNAP_MAX_MSRS };
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[1];
	} one;
	uint32_t n = 0;
	size_t count_at;

	if (ioctl(m->vm.kvm_fd, KVM_GET_MSR_INDEX_LIST, &list) < 0)
		return -errno;
	count_at = w->len;
	snap_put_u32(w, 0);
	for (uint32_t i = 0; i < list.hdr.nmsrs && i < SNAP_MAX_MSRS; i++) {
		memset(&one, 0, sizeof(one));
		one.hdr.nmsrs = 1;
		one.e[0].index = list.idx[i];
		if (ioctl(v->fd, KVM_GET_MSRS, &one) != 1)
			continue;
		snap_put_u32(w, one.e[0].index);
		snap_put_u64(w, one.e[0].data);
		n++;
	}
	snap_patch_u32(w, count_at, n);
	return 0;
}

static int snap_save_vcpu(struct machine *m, struct vcpu *v, struct snap_w *w, msvmm_error *err)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xsave xsave;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events ev;
	struct kvm_debugregs dbg;
	struct kvm_mp_state mp;
	size_t at;

	if (ioctl(v->fd, KVM_GET_REGS, &regs) < 0 || ioctl(v->fd, KVM_GET_SREGS, &sregs) < 0 ||
	    ioctl(v->fd, KVM_GET_XSAVE, &xsave) < 0 || ioctl(v->fd, KVM_GET_XCRS, &xcrs) < 0 ||
	    ioctl(v->fd, KVM_GET_LAPIC, &lapic) < 0 || ioctl(v->fd, KVM_GET_VCPU_EVENTS, &ev) < 0 ||
	    ioctl(v->fd, KVM_GET_DEBUGREGS, &dbg) < 0 || ioctl(v->fd, KVM_GET_MP_STATE, &mp) < 0)
		return err_set(err, MSVMM_EKVM, "vCPU %u: cannot read its state: %s", v->id, strerror(errno));
	snap_section_begin(w, SNAP_T_VCPU, &at);
	snap_put_u32(w, v->id);
	snap_put_blob(w, &regs, sizeof(regs));
	snap_put_blob(w, &sregs, sizeof(sregs));
	snap_put_blob(w, &xsave, sizeof(xsave));
	snap_put_blob(w, &xcrs, sizeof(xcrs));
	snap_put_blob(w, &lapic, sizeof(lapic));
	snap_put_blob(w, &ev, sizeof(ev));
	snap_put_blob(w, &dbg, sizeof(dbg));
	snap_put_blob(w, &mp, sizeof(mp));
	if (snap_vcpu_msrs(m, v, w) < 0)
		return err_set(err, MSVMM_EKVM, "vCPU %u: cannot list its MSRs: %s", v->id, strerror(errno));
	snap_section_end(w, at);
	return 0;
}

static int snap_save_vm(struct machine *m, struct snap_w *w, msvmm_error *err)
{
	struct kvm_irqchip chip[3];
	struct kvm_pit_state2 pit;
	size_t at;

	for (unsigned int i = 0; i < 3; i++) {
		memset(&chip[i], 0, sizeof(chip[i]));
		chip[i].chip_id = i; /* PIC master, PIC slave, IOAPIC */
		if (ioctl(m->vm.vm_fd, KVM_GET_IRQCHIP, &chip[i]) < 0)
			return err_set(err, MSVMM_EKVM, "KVM_GET_IRQCHIP %u: %s", i, strerror(errno));
	}
	if (ioctl(m->vm.vm_fd, KVM_GET_PIT2, &pit) < 0)
		return err_set(err, MSVMM_EKVM, "KVM_GET_PIT2: %s", strerror(errno));
	snap_section_begin(w, SNAP_T_IRQCHIP, &at);
	for (unsigned int i = 0; i < 3; i++)
		snap_put_blob(w, &chip[i], sizeof(chip[i]));
	snap_section_end(w, at);
	snap_section_begin(w, SNAP_T_PIT, &at);
	snap_put_blob(w, &pit, sizeof(pit));
	snap_section_end(w, at);
	return 0;
}

static bool snap_page_zero(const uint8_t *p)
{
	const uint64_t *q = (const uint64_t *)(const void *)p;

	for (unsigned int i = 0; i < SNAP_PAGE / 8; i++)
		if (q[i])
			return false;
	return true;
}

/* RAM, sparse: runs of non-zero pages are written, zero pages stay holes. */
static int snap_save_ram(const struct guest_mem *gm, int fd, uint64_t off)
{
	const uint8_t *p = gm->mapping;
	size_t n = gm->mapping_size;

	for (size_t i = 0; i < n;) {
		size_t j;

		if (snap_page_zero(p + i)) {
			i += SNAP_PAGE;
			continue;
		}
		for (j = i + SNAP_PAGE; j < n && !snap_page_zero(p + j); j += SNAP_PAGE)
			;
		for (size_t k = i; k < j;) {
			ssize_t wr = pwrite(fd, p + k, j - k, (off_t)(off + k));

			if (wr <= 0)
				return wr < 0 ? -errno : -EIO;
			k += (size_t)wr;
		}
		i = j;
	}
	return ftruncate(fd, (off_t)(off + n)) < 0 ? -errno : 0;
}

static int snap_write_all(int fd, const void *p, size_t n, uint64_t off)
{
	const uint8_t *b = p;

	while (n) {
		ssize_t wr = pwrite(fd, b, n, (off_t)off);

		if (wr <= 0)
			return wr < 0 ? -errno : -EIO;
		b += wr;
		n -= (size_t)wr;
		off += (uint64_t)wr;
	}
	return 0;
}

static uint32_t snap_hdr_crc(const struct snap_hdr *h)
{
	return (uint32_t)crc32(0, (const Bytef *)h, (uInt)offsetof(struct snap_hdr, hdr_crc));
}

static uint64_t snap_align(uint64_t v)
{
	return (v + SNAP_PAGE - 1) & ~(uint64_t)(SNAP_PAGE - 1);
}

/* The disk's data extents at off (holes stay holes); its size in *len. */
static int snap_save_disk(int disk_fd, int fd, uint64_t off, uint64_t *len)
{
	struct stat st;
	int rc;

	if (fstat(disk_fd, &st) < 0)
		return -errno;
	*len = (uint64_t)st.st_size;
	rc = sparse_copy(disk_fd, 0, fd, (off_t)off, (off_t)st.st_size);
	if (!rc && ftruncate(fd, (off_t)(off + *len)) < 0)
		rc = -errno;
	return rc;
}

int snapshot_save(struct machine *m, int fd, const char *ident, int disk_fd, msvmm_error *err)
{
	_Static_assert(sizeof(struct snap_hdr) <= SNAP_HDR_SIZE, "snapshot header too big");
	static const uint8_t zero_hdr[SNAP_HDR_SIZE];
	struct snap_hdr h;
	struct snap_w w;
	size_t at;
	int rc = 0;

	if (strlen(ident) >= SNAP_IDENT_MAX)
		return err_set(err, MSVMM_EINVAL, "snapshot identity too long");
	snap_w_init(&w);
	for (unsigned int i = 0; i < m->nr_vcpus && !rc; i++)
		rc = snap_save_vcpu(m, &m->vcpus[i], &w, err);
	if (!rc)
		rc = snap_save_vm(m, &w, err);
	if (!rc) {
		snap_section_begin(&w, SNAP_T_DEVICES, &at);
		rc = snapshot_devices_save(m, &w);
		snap_section_end(&w, at);
		if (rc)
			rc = err_set(err, MSVMM_EINTERNAL, "cannot save device state: %s", strerror(-rc));
	}
	if (!rc && w.err)
		rc = err_set(err, MSVMM_ENOMEM, "out of memory for the snapshot state");
	if (rc)
		goto out;
	memset(&h, 0, sizeof(h));
	memcpy(h.magic, SNAP_MAGIC, 8);
	h.version = SNAP_FORMAT_VERSION;
	h.hdr_size = SNAP_HDR_SIZE;
	h.state_off = SNAP_HDR_SIZE;
	h.state_len = w.len;
	h.mem_off = snap_align(h.state_off + h.state_len);
	h.mem_len = m->vm.mem.mapping_size;
	h.ram_size = m->vm.mem.ram_size;
	h.disk_off = h.mem_off + h.mem_len;
	h.file_size = h.disk_off;
	h.nr_vcpus = m->nr_vcpus;
	h.state_crc = (uint32_t)crc32(0, w.buf, (uInt)w.len);
	snprintf(h.ident, sizeof(h.ident), "%s", ident);
	h.hdr_crc = snap_hdr_crc(&h);
	/* The header goes last: a file cut short anywhere has no valid header. */
	rc = snap_write_all(fd, zero_hdr, SNAP_HDR_SIZE, 0);
	if (!rc)
		rc = snap_write_all(fd, w.buf, w.len, h.state_off);
	if (!rc)
		rc = snap_save_ram(&m->vm.mem, fd, h.mem_off);
	if (!rc && disk_fd >= 0) {
		rc = snap_save_disk(disk_fd, fd, h.disk_off, &h.disk_len);
		h.file_size += h.disk_len;
		h.hdr_crc = snap_hdr_crc(&h);
	}
	if (!rc && fdatasync(fd) < 0)
		rc = -errno;
	if (!rc)
		rc = snap_write_all(fd, &h, sizeof(h), 0);
	if (rc)
		rc = err_set(err, err_from_errno(-rc), "cannot write the snapshot: %s", strerror(-rc));
out:
	snap_w_free(&w);
	return rc;
}

/* ---- opening ------------------------------------------------------------ */

static int snap_read_all(int fd, void *p, size_t n, uint64_t off)
{
	uint8_t *b = p;

	while (n) {
		ssize_t r = pread(fd, b, n, (off_t)off);

		if (r <= 0)
			return r < 0 ? -errno : -EIO;
		b += r;
		n -= (size_t)r;
		off += (uint64_t)r;
	}
	return 0;
}

static int snap_check_hdr(const struct snap_hdr *h, uint64_t file_size, const char *ident, const char *path,
			  msvmm_error *err)
{
	if (memcmp(h->magic, SNAP_MAGIC, 8))
		return err_set(err, MSVMM_EFORMAT, "%s is not an msvmm snapshot", path);
	if (h->hdr_crc != snap_hdr_crc(h))
		return err_set(err, MSVMM_EFORMAT, "snapshot %s: corrupt header (checksum)", path);
	if (h->version != SNAP_FORMAT_VERSION)
		return err_set(err, MSVMM_EFORMAT, "snapshot %s: format version %u, this msvmm reads %u", path,
			       h->version, SNAP_FORMAT_VERSION);
	if (h->hdr_size != SNAP_HDR_SIZE || h->state_off != SNAP_HDR_SIZE || h->state_len > SNAP_STATE_MAX ||
	    h->mem_off != snap_align(h->state_off + h->state_len) || h->mem_len == 0 ||
	    h->mem_len > (1ULL << 40) || h->ram_size != h->mem_len || h->disk_off != h->mem_off + h->mem_len ||
	    h->disk_len > (1ULL << 44) || h->file_size != h->disk_off + h->disk_len ||
	    h->nr_vcpus == 0 || h->nr_vcpus > MACHINE_MAX_VCPUS || memchr(h->ident, 0, sizeof(h->ident)) == NULL)
		return err_set(err, MSVMM_EFORMAT, "snapshot %s: inconsistent header", path);
	if (file_size < h->file_size)
		return err_set(err, MSVMM_EFORMAT, "snapshot %s: truncated (%llu of %llu bytes)", path,
			       (unsigned long long)file_size, (unsigned long long)h->file_size);
	if (strcmp(h->ident, ident))
		return err_set(err, MSVMM_EINVAL, "snapshot %s was made for %s, not for %s", path, h->ident, ident);
	return 0;
}

int snapshot_open(const char *path, const char *ident, struct snap_file *sf, msvmm_error *err)
{
	struct snap_hdr h;
	struct stat st;
	int rc;

	memset(sf, 0, sizeof(*sf));
	sf->fd = open(path, O_RDONLY | O_CLOEXEC);
	if (sf->fd < 0)
		return err_set(err, err_from_errno(errno), "snapshot %s: %s", path, strerror(errno));
	if (fstat(sf->fd, &st) < 0 || !S_ISREG(st.st_mode)) {
		rc = err_set(err, MSVMM_EFORMAT, "snapshot %s: not a regular file", path);
		goto fail;
	}
	if ((uint64_t)st.st_size < SNAP_HDR_SIZE || snap_read_all(sf->fd, &h, sizeof(h), 0) < 0) {
		rc = err_set(err, MSVMM_EFORMAT, "snapshot %s: truncated header", path);
		goto fail;
	}
	rc = snap_check_hdr(&h, (uint64_t)st.st_size, ident, path, err);
	if (rc)
		goto fail;
	sf->state = malloc(h.state_len ? h.state_len : 1);
	if (!sf->state) {
		rc = err_set(err, MSVMM_ENOMEM, "out of memory for the snapshot state");
		goto fail;
	}
	sf->state_len = h.state_len;
	if (snap_read_all(sf->fd, sf->state, sf->state_len, h.state_off) < 0 ||
	    (uint32_t)crc32(0, sf->state, (uInt)sf->state_len) != h.state_crc) {
		rc = err_set(err, MSVMM_EFORMAT, "snapshot %s: corrupt state (checksum)", path);
		goto fail;
	}
	sf->ram_size = h.ram_size;
	sf->nr_vcpus = h.nr_vcpus;
	sf->mem_off = h.mem_off;
	sf->disk_off = h.disk_off;
	sf->disk_len = h.disk_len;
	return 0;
fail:
	snapshot_close(sf);
	return rc;
}

void snapshot_close(struct snap_file *sf)
{
	if (sf->fd >= 0)
		close(sf->fd);
	free(sf->state);
	memset(sf, 0, sizeof(*sf));
	sf->fd = -1;
}

/* ---- restoring ---------------------------------------------------------- */

/* Next section: its tag and a reader over its payload; false at the end or when malformed. */
static bool snap_next_section(struct snap_r *all, uint32_t *tag, struct snap_r *sec)
{
	uint32_t len;

	if (all->pos == all->len || all->err)
		return false;
	*tag = snap_get_u32(all);
	len = snap_get_u32(all);
	if (all->err || len > all->len - all->pos) {
		all->err = true;
		return false;
	}
	snap_r_init(sec, all->buf + all->pos, len);
	all->pos += len;
	return true;
}

/* A blob of exactly n bytes into p. */
static void snap_get_blob(struct snap_r *r, void *p, uint32_t n)
{
	if (snap_get_u32(r) != n) {
		snap_r_fail(r);
		memset(p, 0, n);
		return;
	}
	snap_get(r, p, n);
}

#define SNAP_MSR_IA32_TSC 0x10u

/*
 * The guest's TSC as it was when saved.  A host write of MSR_IA32_TSC is not
 * enough: KVM (6.1 and others before the fix of user-set TSCs) takes a write
 * within a second of the TSC it expects for an attempt to synchronise vCPUs
 * and keeps the running offset, so a VM saved in its first second (every
 * ready snapshot on hardware) restarted its TSC near 0, and the guest's clock
 * stood still until the TSC caught up.  The offset is set directly where KVM
 * has the attribute (Linux 5.16): guest TSC = host TSC + offset.  False
 * where it has not: the caller writes the MSR then.
 */
static bool snap_restore_tsc_offset(struct vcpu *v, uint64_t tsc)
{
	struct kvm_device_attr a = { .group = KVM_VCPU_TSC_CTRL, .attr = KVM_VCPU_TSC_OFFSET };
	uint64_t off;

	if (ioctl(v->fd, KVM_HAS_DEVICE_ATTR, &a) < 0)
		return false;
	off = tsc - __rdtsc();
	a.addr = (uint64_t)(uintptr_t)&off;
	return ioctl(v->fd, KVM_SET_DEVICE_ATTR, &a) == 0;
}

static int snap_restore_msrs(struct vcpu *v, struct snap_r *r)
{
	uint32_t n = snap_get_u32(r);
	struct {
		struct kvm_msrs hdr;
		struct kvm_msr_entry e[1];
	} one;

	if (n > SNAP_MAX_MSRS)
		return -EINVAL;
	for (uint32_t i = 0; i < n && !r->err; i++) {
		memset(&one, 0, sizeof(one));
		one.hdr.nmsrs = 1;
		one.e[0].index = snap_get_u32(r);
		one.e[0].data = snap_get_u64(r);
		/* A few read-only MSRs read back but refuse a write: they need no restoring. */
		if (!r->err && !(one.e[0].index == SNAP_MSR_IA32_TSC && snap_restore_tsc_offset(v, one.e[0].data)))
			(void)ioctl(v->fd, KVM_SET_MSRS, &one);
	}
	return r->err ? -EINVAL : 0;
}

/* Firecracker's order: MP state, registers, then the LAPIC before MSRs (TSC deadline) and events. */
static int snap_restore_vcpu(struct vcpu *v, struct snap_r *r, msvmm_error *err)
{
	struct kvm_regs regs;
	struct kvm_sregs sregs;
	struct kvm_xsave xsave;
	struct kvm_xcrs xcrs;
	struct kvm_lapic_state lapic;
	struct kvm_vcpu_events ev;
	struct kvm_debugregs dbg;
	struct kvm_mp_state mp;
	const char *what = NULL;

	snap_get_blob(r, &regs, sizeof(regs));
	snap_get_blob(r, &sregs, sizeof(sregs));
	snap_get_blob(r, &xsave, sizeof(xsave));
	snap_get_blob(r, &xcrs, sizeof(xcrs));
	snap_get_blob(r, &lapic, sizeof(lapic));
	snap_get_blob(r, &ev, sizeof(ev));
	snap_get_blob(r, &dbg, sizeof(dbg));
	snap_get_blob(r, &mp, sizeof(mp));
	if (r->err)
		return err_set(err, MSVMM_EFORMAT, "snapshot: malformed state of vCPU %u", v->id);
	if (ioctl(v->fd, KVM_SET_MP_STATE, &mp) < 0)
		what = "MP state";
	else if (ioctl(v->fd, KVM_SET_REGS, &regs) < 0)
		what = "registers";
	else if (ioctl(v->fd, KVM_SET_SREGS, &sregs) < 0)
		what = "segment registers";
	else if (ioctl(v->fd, KVM_SET_XSAVE, &xsave) < 0)
		what = "XSAVE state";
	else if (ioctl(v->fd, KVM_SET_XCRS, &xcrs) < 0)
		what = "XCRs";
	else if (ioctl(v->fd, KVM_SET_DEBUGREGS, &dbg) < 0)
		what = "debug registers";
	else if (ioctl(v->fd, KVM_SET_LAPIC, &lapic) < 0)
		what = "LAPIC";
	else if (snap_restore_msrs(v, r) < 0)
		what = "MSRs";
	else if (ioctl(v->fd, KVM_SET_VCPU_EVENTS, &ev) < 0)
		what = "pending events";
	if (what)
		return err_set(err, MSVMM_EKVM, "snapshot: KVM refused vCPU %u's %s: %s", v->id, what,
			       strerror(errno));
	return snap_r_done(r) ? 0 : err_set(err, MSVMM_EFORMAT, "snapshot: malformed state of vCPU %u", v->id);
}

static int snap_restore_irqchip(struct machine *m, struct snap_r *r, msvmm_error *err)
{
	for (unsigned int i = 0; i < 3; i++) {
		struct kvm_irqchip chip;

		snap_get_blob(r, &chip, sizeof(chip));
		if (r->err || chip.chip_id != i)
			return err_set(err, MSVMM_EFORMAT, "snapshot: malformed interrupt controller state");
		if (ioctl(m->vm.vm_fd, KVM_SET_IRQCHIP, &chip) < 0)
			return err_set(err, MSVMM_EKVM, "snapshot: KVM_SET_IRQCHIP %u: %s", i, strerror(errno));
	}
	return snap_r_done(r) ? 0 : err_set(err, MSVMM_EFORMAT, "snapshot: malformed interrupt controller state");
}

static int snap_restore_pit(struct machine *m, struct snap_r *r, msvmm_error *err)
{
	struct kvm_pit_state2 pit;

	snap_get_blob(r, &pit, sizeof(pit));
	if (!snap_r_done(r))
		return err_set(err, MSVMM_EFORMAT, "snapshot: malformed PIT state");
	if (ioctl(m->vm.vm_fd, KVM_SET_PIT2, &pit) < 0)
		return err_set(err, MSVMM_EKVM, "snapshot: KVM_SET_PIT2: %s", strerror(errno));
	return 0;
}

static int snap_restore_section(struct machine *m, uint32_t tag, struct snap_r *sec, unsigned int *nr_vcpus,
				unsigned int *seen, msvmm_error *err)
{
	uint32_t id;

	switch (tag) {
	case SNAP_T_VCPU:
		id = snap_get_u32(sec);
		if (sec->err || id != *nr_vcpus || id >= m->nr_vcpus)
			return err_set(err, MSVMM_EFORMAT, "snapshot: unexpected vCPU section %u", id);
		(*nr_vcpus)++;
		return snap_restore_vcpu(&m->vcpus[id], sec, err);
	case SNAP_T_IRQCHIP:
		*seen |= 1;
		return snap_restore_irqchip(m, sec, err);
	case SNAP_T_PIT:
		*seen |= 2;
		return snap_restore_pit(m, sec, err);
	case SNAP_T_DEVICES:
		*seen |= 4;
		if (snapshot_devices_restore(m, sec) < 0 || !snap_r_done(sec))
			return err_set(err, MSVMM_EFORMAT, "snapshot: device state does not fit this machine");
		return 0;
	default:
		return err_set(err, MSVMM_EFORMAT, "snapshot: unknown section 0x%08x", tag);
	}
}

int snapshot_restore(struct machine *m, const struct snap_file *sf, msvmm_error *err)
{
	struct snap_r all, sec;
	unsigned int nr_vcpus = 0, seen = 0;
	uint32_t tag;
	int rc;

	if (sf->nr_vcpus != m->nr_vcpus || sf->ram_size != m->vm.mem.ram_size)
		return err_set(err, MSVMM_EINVAL, "snapshot: made for %u vCPUs and %llu MiB, not %u and %llu",
			       sf->nr_vcpus, (unsigned long long)(sf->ram_size >> 20), m->nr_vcpus,
			       (unsigned long long)(m->vm.mem.ram_size >> 20));
	snap_r_init(&all, sf->state, sf->state_len);
	while (snap_next_section(&all, &tag, &sec)) {
		rc = snap_restore_section(m, tag, &sec, &nr_vcpus, &seen, err);
		if (rc)
			return rc;
	}
	if (all.err || nr_vcpus != m->nr_vcpus || seen != 7)
		return err_set(err, MSVMM_EFORMAT, "snapshot: state incomplete or malformed");
	return 0;
}
