// SPDX-License-Identifier: Apache-2.0
#include "symbols.h"

#include <errno.h>
#include <fcntl.h>
#include <gelf.h>
#include <libelf.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static int sym_cmp(const void *a, const void *b)
{
	const struct symbol *x = a, *y = b;

	return x->addr < y->addr ? -1 : x->addr > y->addr;
}

static Elf_Scn *symbols_find_symtab(Elf *elf, GElf_Shdr *sh)
{
	Elf_Scn *scn = NULL;

	while ((scn = elf_nextscn(elf, scn)))
		if (gelf_getshdr(scn, sh) && sh->sh_type == SHT_SYMTAB)
			return scn;
	return NULL;
}

/* Copy the text symbols out of the symtab into s (names packed in one buffer). */
static int symbols_collect(struct symbols *s, Elf *elf, Elf_Scn *scn, const GElf_Shdr *sh)
{
	Elf_Data *d = elf_getdata(scn, NULL);
	size_t count = sh->sh_entsize ? sh->sh_size / sh->sh_entsize : 0, strsz = 0, off = 0;

	if (!d || !count)
		return -ENOEXEC;
	for (int pass = 0; pass < 2; pass++) {
		size_t n = 0;

		for (size_t i = 0; i < count; i++) {
			GElf_Sym sym;
			const char *name;
			int t;

			if (!gelf_getsym(d, (int)i, &sym))
				continue;
			t = GELF_ST_TYPE(sym.st_info);
			if ((t != STT_FUNC && t != STT_NOTYPE) || !sym.st_value)
				continue;
			name = elf_strptr(elf, sh->sh_link, sym.st_name);
			if (!name || !*name)
				continue;
			if (pass == 0) {
				strsz += strlen(name) + 1;
			} else {
				s->syms[n] = (struct symbol){ sym.st_value, sym.st_size, s->strings + off };
				memcpy(s->strings + off, name, strlen(name) + 1);
				off += strlen(name) + 1;
			}
			n++;
		}
		if (pass == 0) {
			s->syms = calloc(n ? n : 1, sizeof(*s->syms));
			s->strings = malloc(strsz ? strsz : 1);
			if (!s->syms || !s->strings)
				return -ENOMEM;
			s->n = n;
		}
	}
	qsort(s->syms, s->n, sizeof(*s->syms), sym_cmp);
	return 0;
}

int symbols_load(struct symbols *s, const char *path)
{
	GElf_Shdr sh;
	Elf_Scn *scn;
	Elf *elf;
	int fd, rc;

	memset(s, 0, sizeof(*s));
	if (elf_version(EV_CURRENT) == EV_NONE)
		return -ENOEXEC;
	fd = open(path, O_RDONLY | O_CLOEXEC);
	if (fd < 0)
		return -errno;
	elf = elf_begin(fd, ELF_C_READ_MMAP, NULL);
	if (!elf) {
		close(fd);
		return -ENOEXEC;
	}
	scn = symbols_find_symtab(elf, &sh);
	rc = scn ? symbols_collect(s, elf, scn, &sh) : -ENOEXEC;
	elf_end(elf);
	close(fd);
	if (rc)
		symbols_free(s);
	return rc;
}

void symbols_free(struct symbols *s)
{
	free(s->syms);
	free(s->strings);
	memset(s, 0, sizeof(*s));
}

const struct symbol *symbols_lookup(const struct symbols *s, uint64_t addr)
{
	size_t lo = 0, hi = s->n;

	if (!s->n || addr < s->syms[0].addr)
		return NULL;
	while (hi - lo > 1) {
		size_t mid = lo + (hi - lo) / 2;

		if (s->syms[mid].addr <= addr)
			lo = mid;
		else
			hi = mid;
	}
	return &s->syms[lo];
}
