// SPDX-License-Identifier: Apache-2.0
#include "agent_proto.h"

#include <string.h>
#include <sys/wait.h>

void agent_put32(uint8_t *p, uint32_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
	p[2] = (uint8_t)(v >> 16);
	p[3] = (uint8_t)(v >> 24);
}

uint32_t agent_get32(const uint8_t *p)
{
	return (uint32_t)p[0] | (uint32_t)p[1] << 8 | (uint32_t)p[2] << 16 | (uint32_t)p[3] << 24;
}

void agent_put16(uint8_t *p, uint16_t v)
{
	p[0] = (uint8_t)v;
	p[1] = (uint8_t)(v >> 8);
}

uint16_t agent_get16(const uint8_t *p)
{
	return (uint16_t)(p[0] | p[1] << 8);
}

uint32_t agent_exit_status(int wstatus)
{
	if (WIFSIGNALED(wstatus))
		return AGENT_EXIT_SIGNALED | (uint32_t)WTERMSIG(wstatus);
	return (uint32_t)WEXITSTATUS(wstatus) & 0xff;
}

void agent_hdr_pack(uint8_t out[AGENT_HDR_SIZE], uint8_t type, uint8_t flags, uint32_t len)
{
	agent_put32(out, len);
	out[4] = type;
	out[5] = flags;
	out[6] = out[7] = 0;
}

/* Which side may send each type: bit 0 the host, bit 1 the guest. */
#define FROM_HOST 1
#define FROM_GUEST 2

struct agent_type_rule {
	uint8_t from;
	uint8_t flags;    /* the flags allowed */
	uint32_t min_len, max_len;
};

static const struct agent_type_rule agent_rules[AGENT_TYPE_MAX + 1] = {
	[AGENT_HELLO] = { FROM_HOST | FROM_GUEST, 0, 4, 4 },
	[AGENT_EXEC] = { FROM_HOST, 0, 2, AGENT_MAX_EXEC },
	[AGENT_STARTED] = { FROM_GUEST, 0, 4, 4 },
	[AGENT_STDIN] = { FROM_HOST, 0, 0, AGENT_MAX_PAYLOAD },
	[AGENT_STDOUT] = { FROM_GUEST, 0, 0, AGENT_MAX_PAYLOAD },
	[AGENT_STDERR] = { FROM_GUEST, 0, 0, AGENT_MAX_PAYLOAD },
	[AGENT_RESIZE] = { FROM_HOST, 0, 4, 4 },
	[AGENT_SIGNAL] = { FROM_HOST, AGENT_SIGNAL_F_GROUP, 4, 4 },
	[AGENT_EXIT] = { FROM_GUEST, AGENT_EXIT_F_RUNTIME_ENDED, 4, 4 },
	[AGENT_ERROR] = { FROM_HOST | FROM_GUEST, 0, 4, 4 + 1024 },
	[AGENT_SHUTDOWN] = { FROM_HOST, 0, 0, 0 },
	[AGENT_STDIN_ACK] = { FROM_GUEST, 0, 4, 4 },
	[AGENT_RUNCODE] = { FROM_HOST, 0, 2, AGENT_MAX_RUNCODE },
};

int agent_hdr_parse(const uint8_t in[AGENT_HDR_SIZE], int side, struct agent_hdr *h)
{
	const struct agent_type_rule *r;
	uint8_t sender = side == AGENT_SIDE_HOST ? FROM_GUEST : FROM_HOST;

	h->len = agent_get32(in);
	h->type = in[4];
	h->flags = in[5];
	if (in[6] || in[7] || h->type == 0 || h->type > AGENT_TYPE_MAX)
		return -1;
	r = &agent_rules[h->type];
	if (!(r->from & sender) || (h->flags & ~r->flags) || h->len < r->min_len || h->len > r->max_len)
		return -1;
	return 0;
}
