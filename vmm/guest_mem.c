// SPDX-License-Identifier: Apache-2.0
#include "guest_mem.h"

#include <errno.h>
#include <string.h>
#include <sys/mman.h>

static void guest_mem_layout(struct guest_mem *gm, uint8_t *host, uint64_t size)
{
	uint64_t low = size < GUEST_MEM_LOW_END ? size : GUEST_MEM_LOW_END;

	memset(gm->regions, 0, sizeof(gm->regions));
	gm->regions[0] = (struct guest_mem_region){ .gpa = 0, .size = low, .host = host };
	gm->nr_regions = 1;
	if (size > low) {
		gm->regions[1] = (struct guest_mem_region){
			.gpa = GUEST_MEM_HIGH_BASE, .size = size - low, .host = host + low,
		};
		gm->nr_regions = 2;
	}
	gm->ram_size = size;
}

int guest_mem_init(struct guest_mem *gm, uint64_t size)
{
	void *p;

	memset(gm, 0, sizeof(*gm));
	if (size == 0 || size > (1ULL << 40))
		return -EINVAL;
	/* NORESERVE: guests touch a fraction of their RAM; pages come on demand. */
	p = mmap(NULL, size, PROT_READ | PROT_WRITE,
		 MAP_PRIVATE | MAP_ANONYMOUS | MAP_NORESERVE, -1, 0);
	if (p == MAP_FAILED)
		return -errno;
	/* Fewer, larger pages mean fewer first-touch faults for the guest. */
	madvise(p, size, MADV_HUGEPAGE);
	gm->mapping = p;
	gm->mapping_size = size;
	guest_mem_layout(gm, p, size);
	return 0;
}

int guest_mem_init_file(struct guest_mem *gm, uint64_t size, int fd, uint64_t off)
{
	void *p;

	memset(gm, 0, sizeof(*gm));
	if (size == 0 || size > (1ULL << 40) || (off & 4095))
		return -EINVAL;
	p = mmap(NULL, size, PROT_READ | PROT_WRITE, MAP_PRIVATE | MAP_NORESERVE, fd, (off_t)off);
	if (p == MAP_FAILED)
		return -errno;
	gm->mapping = p;
	gm->mapping_size = size;
	guest_mem_layout(gm, p, size);
	return 0;
}

void guest_mem_init_from(struct guest_mem *gm, uint8_t *host, uint64_t size)
{
	memset(gm, 0, sizeof(*gm));
	guest_mem_layout(gm, host, size);
}

void guest_mem_free(struct guest_mem *gm)
{
	if (gm->mapping)
		munmap(gm->mapping, gm->mapping_size);
	memset(gm, 0, sizeof(*gm));
}

void *guest_mem_ptr(const struct guest_mem *gm, uint64_t gpa, uint64_t len)
{
	for (unsigned int i = 0; i < gm->nr_regions; i++) {
		const struct guest_mem_region *r = &gm->regions[i];

		/* Written so that no sum can wrap: gpa - r->gpa only when gpa >= r->gpa. */
		if (gpa < r->gpa || gpa - r->gpa > r->size)
			continue;
		if (len > r->size - (gpa - r->gpa))
			return NULL;
		return r->host + (gpa - r->gpa);
	}
	return NULL;
}

int guest_mem_read(const struct guest_mem *gm, uint64_t gpa, void *dst, uint64_t len)
{
	const void *p = guest_mem_ptr(gm, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(dst, p, len);
	return 0;
}

int guest_mem_write(const struct guest_mem *gm, uint64_t gpa, const void *src, uint64_t len)
{
	void *p = guest_mem_ptr(gm, gpa, len);

	if (!p)
		return -EFAULT;
	memcpy(p, src, len);
	return 0;
}

uint64_t guest_mem_low_end(const struct guest_mem *gm)
{
	return gm->nr_regions ? gm->regions[0].size : 0;
}
