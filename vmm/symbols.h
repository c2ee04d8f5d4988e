/* SPDX-License-Identifier: Apache-2.0 */
/* Function symbols of a vmlinux, for naming guest addresses in errors and profiles. */
#ifndef MSVMM_SYMBOLS_H
#define MSVMM_SYMBOLS_H

#include <stddef.h>
#include <stdint.h>

struct symbol {
	uint64_t addr, size;
	char *name;
};

struct symbols {
	struct symbol *syms;
	size_t n;
	char *strings; /* one allocation holding every name */
};

/* Read the ELF symbol table of 'path'; 0 or -errno (-ENOEXEC: no symbols). */
int symbols_load(struct symbols *s, const char *path);
void symbols_free(struct symbols *s);
/* The symbol containing addr (or the nearest one below it), NULL if none. */
const struct symbol *symbols_lookup(const struct symbols *s, uint64_t addr);

#endif
