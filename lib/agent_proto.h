/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The msvmm agent protocol, version 1: how the host library talks to the
 * agent in guest-init over virtio-vsock.  The full specification is
 * lib/agent-protocol.md; this header holds its constants and the frame
 * codec shared by both ends (lib/agent_proto.c is linked into libmsvmm and
 * into the static guest init).
 *
 * Every message is a frame: an 8-byte header (little-endian length of the
 * payload, type, flags, two reserved zero bytes) and 'len' payload bytes.
 */
#ifndef MSVMM_AGENT_PROTO_H
#define MSVMM_AGENT_PROTO_H

#include <stddef.h>
#include <stdint.h>

#define AGENT_PROTO_VERSION 1
/* The guest vsock port the agent listens on; CID 2 is the host. */
#define AGENT_PORT 1024
#define AGENT_HOST_CID 2
#define AGENT_GUEST_CID 3

#define AGENT_HDR_SIZE 8
/* Largest payload of any frame but EXEC, in either direction. */
#define AGENT_MAX_PAYLOAD (64u * 1024)
/* Largest EXEC payload (argv and environment). */
#define AGENT_MAX_EXEC (256u * 1024)
/* Largest RUNCODE payload (its records, the code among them). */
#define AGENT_MAX_RUNCODE (1024u * 1024)
/*
 * Stdin flow control: the host never has more than this many STDIN payload
 * bytes that the agent has not acknowledged with STDIN_ACK.  The agent's
 * stdin buffer is this big, so it can always read the next frame: a SIGNAL
 * behind stdin the command does not read is still seen.
 */
#define AGENT_STDIN_WINDOW (256u * 1024)

enum agent_type {
	AGENT_HELLO = 1,    /* both: le32 version */
	AGENT_EXEC = 2,     /* host: records, see below */
	AGENT_STARTED = 3,  /* guest: le32 pid */
	AGENT_STDIN = 4,    /* host: data; empty = end of input */
	AGENT_STDOUT = 5,   /* guest: data; empty = end of the stream */
	AGENT_STDERR = 6,   /* guest: data; empty = end of the stream */
	AGENT_RESIZE = 7,   /* host: le16 rows, le16 cols */
	AGENT_SIGNAL = 8,   /* host: le32 signal number; flag GROUP */
	AGENT_EXIT = 9,     /* guest: le32 status (ctl.h encoding); last frame */
	AGENT_ERROR = 10,   /* both: le32 code, then a message; sender closes */
	AGENT_SHUTDOWN = 11, /* host: sync the guest's disks and power off */
	AGENT_STDIN_ACK = 12, /* guest: le32 STDIN bytes taken since the last ACK */
	AGENT_RUNCODE = 13, /* host: records; code for a runtime's interpreter */
	AGENT_TYPE_MAX = AGENT_RUNCODE,
};

/* AGENT_SIGNAL flags. */
#define AGENT_SIGNAL_F_GROUP 0x01u

/* AGENT_EXIT status: bits 0-7 the exit code, or the signal with bit 8. */
#define AGENT_EXIT_SIGNALED 0x100u
/* AGENT_EXIT flags (after RUNCODE only): the interpreter ended, its state is gone. */
#define AGENT_EXIT_F_RUNTIME_ENDED 0x01u

/* AGENT_ERROR codes. */
enum agent_error {
	AGENT_ERR_FRAME = 1,    /* malformed frame: bad length, type or flags */
	AGENT_ERR_VERSION = 2,  /* no common protocol version */
	AGENT_ERR_REQUEST = 3,  /* a well-formed frame that is wrong here */
	AGENT_ERR_INTERNAL = 4, /* the agent could not do it (out of memory...) */
	AGENT_ERR_RUNTIME = 5,  /* RUNCODE: no such runtime, or it could not be started */
};

/*
 * EXEC records: a type byte, then a NUL-terminated string (the run-spec
 * format of devices/ctl.h).
 */
#define AGENT_REC_ARG 'A'     /* one argv element, in order; at least one */
#define AGENT_REC_ENV 'E'     /* KEY=VALUE */
#define AGENT_REC_WORKDIR 'W' /* working directory */
#define AGENT_REC_USER 'U'    /* user name, or UID[:GID] */
#define AGENT_REC_TTY 'T'     /* "ROWSxCOLS": run on a new pty */
#define AGENT_REC_STDIN 'I'   /* "1": STDIN frames follow; else /dev/null */
#define AGENT_REC_RESTORE 'S' /* "REALTIME_NS:SEED_HEX": a restored guest's clock and seed, applied first */
/* RUNCODE records (and E, W, which apply when the call starts the interpreter). */
#define AGENT_REC_RUNTIME 'R' /* the runtime's name: "python" */
#define AGENT_REC_PROGRAM 'P' /* the interpreter: an absolute path in the guest */
#define AGENT_REC_CODE 'C'    /* the code (no NUL byte in it) */

struct agent_hdr {
	uint32_t len;
	uint8_t type;
	uint8_t flags;
};

/* Write the 8-byte header for (type, flags, len) into out. */
void agent_hdr_pack(uint8_t out[AGENT_HDR_SIZE], uint8_t type, uint8_t flags, uint32_t len);
/*
 * Decode and check a header received by 'side' (the receiving end:
 * AGENT_SIDE_HOST or AGENT_SIDE_GUEST): known type sent by the other side,
 * reserved bytes zero, flags known for the type, length within the type's
 * bound.  0, or -1 for a malformed header.
 */
#define AGENT_SIDE_HOST 0
#define AGENT_SIDE_GUEST 1
int agent_hdr_parse(const uint8_t in[AGENT_HDR_SIZE], int side, struct agent_hdr *h);

/* EXIT's status for a wait status (waitpid): the exit code, or SIGNALED | signal. */
uint32_t agent_exit_status(int wstatus);

/* Little-endian helpers for fixed payload fields. */
void agent_put32(uint8_t *p, uint32_t v);
uint32_t agent_get32(const uint8_t *p);
void agent_put16(uint8_t *p, uint16_t v);
uint16_t agent_get16(const uint8_t *p);

#endif
