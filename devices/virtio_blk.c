// SPDX-License-Identifier: Apache-2.0
#include "virtio_blk.h"

#include <endian.h>
#include <errno.h>
#include <limits.h>
#include <linux/fs.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/stat.h>
#include <unistd.h>

#include "snap_io.h"

#define VIRTIO_BLK_SNAP_VERSION 1

/* The request header, decoded from guest memory. */
struct virtio_blk_req {
	uint32_t type;
	uint64_t sector;
};

/* Backing size in bytes: regular files by size, block devices by ioctl. */
static int virtio_blk_backing_size(int fd, uint64_t *size)
{
	struct stat st;

	if (fstat(fd, &st) < 0)
		return -errno;
	if (S_ISREG(st.st_mode)) {
		*size = (uint64_t)st.st_size;
		return 0;
	}
	if (S_ISBLK(st.st_mode))
		return ioctl(fd, BLKGETSIZE64, size) < 0 ? -errno : 0;
	return -EINVAL;
}

static void virtio_blk_put32(uint8_t *p, uint32_t v)
{
	v = htole32(v);
	memcpy(p, &v, 4);
}

static void virtio_blk_fill_config(struct virtio_blk *b)
{
	uint64_t cap = htole64(b->capacity);

	memset(b->config, 0, sizeof(b->config));
	memcpy(b->config, &cap, 8);
	virtio_blk_put32(b->config + 8, VIRTIO_BLK_SIZE_MAX);
	virtio_blk_put32(b->config + 12, VIRTIO_BLK_SEG_MAX);
	/* geometry (16..19) stays 0: not offered */
	virtio_blk_put32(b->config + 20, VIRTIO_BLK_SECTOR_SIZE);
}

static void virtio_blk_config_read(void *opaque, uint32_t offset, uint8_t *data, uint32_t len)
{
	const struct virtio_blk *b = opaque;

	/* Outside the config struct reads as the zeroes already in 'data'. */
	if (offset > sizeof(b->config) || len > sizeof(b->config) - offset)
		return;
	memcpy(data, b->config + offset, len);
}

static void virtio_blk_config_write(void *opaque, uint32_t offset, const uint8_t *data,
				    uint32_t len)
{
	/* Every field we offer is read-only for the driver. */
}

static int virtio_blk_notify(void *opaque, unsigned int index)
{
	return virtio_blk_process(opaque);
}

int virtio_blk_init(struct virtio_blk *b, const struct guest_mem *gm, int fd, bool read_only,
		    const char *id)
{
	uint64_t size;
	int r;

	if (fd < 0)
		return -EBADF;
	r = virtio_blk_backing_size(fd, &size);
	if (r < 0)
		return r;
	memset(b, 0, sizeof(*b));
	b->fd = fd;
	b->read_only = read_only;
	b->capacity = size / VIRTIO_BLK_SECTOR_SIZE;
	/* NUL-padded; a 20-byte id has no terminator, as the spec allows. */
	if (id)
		memcpy(b->id, id, strnlen(id, sizeof(b->id)));
	virtio_blk_fill_config(b);
	b->ops = (struct virtio_mmio_ops){
		.device_id = VIRTIO_ID_BLOCK,
		.features = (1ULL << VIRTIO_BLK_F_SIZE_MAX) | (1ULL << VIRTIO_BLK_F_SEG_MAX) |
			    (1ULL << VIRTIO_BLK_F_BLK_SIZE) | (1ULL << VIRTIO_BLK_F_FLUSH) |
			    (read_only ? 1ULL << VIRTIO_BLK_F_RO : 0),
		.num_queues = 1,
		.queue_max = VIRTIO_BLK_QUEUE_SIZE,
		.config_read = virtio_blk_config_read,
		.config_write = virtio_blk_config_write,
		.notify = virtio_blk_notify,
	};
	return virtio_mmio_init(&b->mmio, gm, &b->ops, b);
}

void virtio_blk_destroy(struct virtio_blk *b)
{
	virtio_mmio_destroy(&b->mmio);
}

/* preadv/pwritev until everything moved; short transfers resume, EOF fails. */
static int virtio_blk_rw(int fd, struct iovec *iov, int cnt, uint64_t off, bool write)
{
	while (cnt > 0) {
		ssize_t n = write ? pwritev(fd, iov, cnt, (off_t)off)
				  : preadv(fd, iov, cnt, (off_t)off);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			return -1;
		off += (uint64_t)n;
		while (cnt > 0 && (size_t)n >= iov->iov_len) {
			n -= (ssize_t)iov->iov_len;
			iov++;
			cnt--;
		}
		if (cnt > 0) {
			iov->iov_base = (uint8_t *)iov->iov_base + n;
			iov->iov_len -= (size_t)n;
		}
	}
	return 0;
}

/*
 * Map the data bytes of a request for I/O, checking length, range and the
 * advertised seg_max/size_max.  Returns the iovec count or -1 (IOERR).
 */
static int virtio_blk_map_data(struct virtio_blk *b, const struct virtq_chain *c, bool writable,
			       uint64_t offset, uint64_t len, uint64_t sector)
{
	uint64_t nsect = len / VIRTIO_BLK_SECTOR_SIZE;
	int cnt;

	if (len % VIRTIO_BLK_SECTOR_SIZE)
		return -1;
	/* Written so nothing can overflow: sector is guest-chosen, up to 2^64 - 1. */
	if (sector > b->capacity || nsect > b->capacity - sector)
		return -1;
	cnt = virtq_chain_slice(c, writable, offset, len, b->iov, VIRTIO_BLK_SEG_MAX);
	if (cnt < 0)
		return -1;
	for (int i = 0; i < cnt; i++)
		if (b->iov[i].iov_len > VIRTIO_BLK_SIZE_MAX)
			return -1;
	return cnt;
}

static uint8_t virtio_blk_in(struct virtio_blk *b, const struct virtq_chain *c,
			     const struct virtio_blk_req *req, uint64_t *data_written)
{
	/* Everything writable except the status byte is data. */
	uint64_t len = c->writable_len - 1;
	uint64_t off = req->sector * VIRTIO_BLK_SECTOR_SIZE; /* used only once range-checked */
	int cnt = virtio_blk_map_data(b, c, true, 0, len, req->sector);

	if (cnt < 0 || virtio_blk_rw(b->fd, b->iov, cnt, off, false) < 0)
		return VIRTIO_BLK_S_IOERR;
	*data_written = len;
	return VIRTIO_BLK_S_OK;
}

static uint8_t virtio_blk_out(struct virtio_blk *b, const struct virtq_chain *c,
			      const struct virtio_blk_req *req)
{
	/* Everything readable after the header is data. */
	uint64_t len = c->readable_len - VIRTIO_BLK_HDR_SIZE;
	uint64_t off = req->sector * VIRTIO_BLK_SECTOR_SIZE; /* used only once range-checked */
	int cnt;

	if (b->read_only)
		return VIRTIO_BLK_S_IOERR;
	cnt = virtio_blk_map_data(b, c, false, VIRTIO_BLK_HDR_SIZE, len, req->sector);
	if (cnt < 0 || virtio_blk_rw(b->fd, b->iov, cnt, off, true) < 0)
		return VIRTIO_BLK_S_IOERR;
	return VIRTIO_BLK_S_OK;
}

static uint8_t virtio_blk_flush(struct virtio_blk *b)
{
	b->flushes++;
	return fdatasync(b->fd) < 0 ? VIRTIO_BLK_S_IOERR : VIRTIO_BLK_S_OK;
}

static uint8_t virtio_blk_get_id(struct virtio_blk *b, const struct virtq_chain *c,
				 uint64_t *data_written)
{
	uint64_t room = c->writable_len - 1;

	*data_written = virtq_chain_write(c, 0, b->id, room < sizeof(b->id) ? room : sizeof(b->id));
	return VIRTIO_BLK_S_OK;
}

static void virtio_blk_read_header(const struct virtq_chain *c, struct virtio_blk_req *req)
{
	uint8_t raw[VIRTIO_BLK_HDR_SIZE];
	uint32_t type;
	uint64_t sector;

	virtq_chain_read(c, 0, raw, sizeof(raw));
	memcpy(&type, raw, 4);
	memcpy(&sector, raw + 8, 8); /* bytes 4..7: reserved (ioprio), ignored */
	req->type = le32toh(type);
	req->sector = le64toh(sector);
}

/* Serve one chain; -1 if it cannot even carry a header and a status. */
static int virtio_blk_request(struct virtio_blk *b, const struct virtq_chain *c, uint32_t *used_len)
{
	struct virtio_blk_req req;
	uint64_t data_written = 0;
	uint8_t status;

	if (c->readable_len < VIRTIO_BLK_HDR_SIZE || c->writable_len < 1)
		return -1;
	virtio_blk_read_header(c, &req);
	switch (req.type) {
	case VIRTIO_BLK_T_IN: status = virtio_blk_in(b, c, &req, &data_written); break;
	case VIRTIO_BLK_T_OUT: status = virtio_blk_out(b, c, &req); break;
	case VIRTIO_BLK_T_FLUSH: status = virtio_blk_flush(b); break;
	case VIRTIO_BLK_T_GET_ID: status = virtio_blk_get_id(b, c, &data_written); break;
	default: status = VIRTIO_BLK_S_UNSUPP; break;
	}
	virtq_chain_write(c, c->writable_len - 1, &status, 1);
	/* Bounded by VIRTQ_MAX_CHAIN_BYTES, so it fits. */
	*used_len = (uint32_t)(data_written + 1);
	return 0;
}

int virtio_blk_process(struct virtio_blk *b)
{
	struct virtq *q = virtio_mmio_queue(&b->mmio, 0);
	uint32_t used_len;
	int r, done = 0;

	while ((r = virtq_pop(q, &b->chain)) == 1) {
		if (virtio_blk_request(b, &b->chain, &used_len) < 0 ||
		    virtq_push(q, b->chain.head, used_len) < 0)
			return -1;
		if (done < INT_MAX)
			done++;
	}
	return r < 0 ? -1 : done;
}

/*
 * No request is in flight at a save: virtio_blk_process() pushes every chain
 * it pops before it returns, with the transport lock held, and the caller
 * has paused the vCPUs and the event loop, so nothing kicks the queue
 * between this save and the machine's end.  The ring state is all there is.
 */
int virtio_blk_save(struct virtio_blk *b, struct snap_w *w)
{
	snap_put_u32(w, VIRTIO_BLK_SNAP_VERSION);
	virtio_mmio_lock(&b->mmio);
	virtio_mmio_save_locked(&b->mmio, w);
	virtio_mmio_unlock(&b->mmio);
	/* Fixed at init, but saved so a restore onto another disk is refused. */
	snap_put(w, b->config, sizeof(b->config));
	snap_put(w, b->id, sizeof(b->id));
	return w->err ? -ENOMEM : 0;
}

int virtio_blk_restore(struct virtio_blk *b, struct snap_r *r)
{
	struct virtio_mmio_state s;
	uint8_t config[sizeof(b->config)], id[sizeof(b->id)];
	bool ok;

	if (snap_get_u32(r) != VIRTIO_BLK_SNAP_VERSION)
		snap_r_fail(r);
	virtio_mmio_lock(&b->mmio);
	ok = virtio_mmio_load_locked(&b->mmio, r, &s) == 0;
	snap_get(r, config, sizeof(config));
	snap_get(r, id, sizeof(id));
	ok = ok && snap_r_done(r) && !memcmp(config, b->config, sizeof(config)) &&
	     !memcmp(id, b->id, sizeof(id));
	if (ok)
		virtio_mmio_apply_locked(&b->mmio, &s);
	virtio_mmio_unlock(&b->mmio);
	if (!ok)
		snap_r_fail(r);
	return ok ? 0 : -EINVAL;
}
