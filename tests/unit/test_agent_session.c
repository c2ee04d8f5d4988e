// SPDX-License-Identifier: Apache-2.0
/*
 * guest-init/agent: agent_session() runs in a forked child on one end of a
 * socketpair; the test is the host on the other end, speaking raw frames
 * (every frame it gets back is checked with agent_hdr_parse() as the host
 * library would) and running real commands from the host's /bin.  Stdin
 * keeps to the window as the host library does (sess_stdin()), and every
 * STDIN_ACK is checked against what was sent.
 */
#include "agent.h"
#include "agent_proto.h"

#include <errno.h>
#include <fcntl.h>
#include <poll.h>
#include <signal.h>
#include <stdio.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/un.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "testutil.h"

#define MIB (1u << 20)
#define IO_TIMEOUT_MS 20000

struct buf {
	uint8_t *p;
	size_t len, cap;
	int eof;		/* the empty frame that ends a stream arrived */
};

/* The host end of one session. */
struct sess {
	int fd;
	pid_t agent;
	struct buf rx;		/* received bytes not yet parsed */
	uint32_t hello;
	pid_t cmd;		/* from STARTED */
	struct buf out, err;
	int exited;
	uint32_t status;
	uint32_t error_code;	/* 0: no ERROR frame */
	char error_msg[1100];
	int closed;		/* the agent closed the connection */
	uint64_t in_sent;	/* STDIN payload bytes put on the wire */
	uint64_t in_acked;	/* of those, acknowledged by STDIN_ACK */
	unsigned int nr_acks;
};

static char tmpdir[64];

static void tmpdir_make(void)
{
	strcpy(tmpdir, "/tmp/msvmm-agent-XXXXXX");
	ck_assert_ptr_nonnull(mkdtemp(tmpdir));
}

static void tmpdir_remove(void)
{
	char cmd[128];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", tmpdir);
	ck_assert_int_eq(system(cmd), 0);
}

static void buf_add(struct buf *b, const void *p, size_t n)
{
	if (b->len + n > b->cap) {
		b->cap = (b->len + n) * 2 + 4096;
		b->p = realloc(b->p, b->cap);
		ck_assert_ptr_nonnull(b->p);
	}
	memcpy(b->p + b->len, p, n);
	b->len += n;
}

/* NUL-terminated view of the collected bytes (not counted in len). */
static const char *buf_str(struct buf *b)
{
	buf_add(b, "", 1);
	b->len--;
	return (const char *)b->p;
}

static void sess_free(struct sess *s)
{
	free(s->rx.p);
	free(s->out.p);
	free(s->err.p);
	if (s->fd >= 0)
		close(s->fd);
	s->fd = -1;
}

/* Deterministic bytes covering every value. */
static void fill_random(uint8_t *p, size_t n, uint64_t seed)
{
	uint64_t x = seed * 0x9e3779b97f4a7c15ULL + 1;

	for (size_t i = 0; i < n; i++) {
		x ^= x << 13;
		x ^= x >> 7;
		x ^= x << 17;
		p[i] = (uint8_t)(x >> 32);
	}
}

static void write_file(const char *path, const void *p, size_t n, mode_t mode)
{
	int fd = open(path, O_WRONLY | O_CREAT | O_TRUNC, mode);

	ck_assert_int_ge(fd, 0);
	ck_assert_int_eq(write(fd, p, n), (ssize_t)n);
	close(fd);
}

/* --- the agent process ----------------------------------------------------- */

static void sess_start(struct sess *s, char *const *base_env, const struct agent_hooks *hooks)
{
	int sv[2];

	memset(s, 0, sizeof(*s));
	ck_assert_int_eq(socketpair(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0, sv), 0);
	s->agent = fork();
	ck_assert_int_ge(s->agent, 0);
	if (s->agent == 0) {
		close(sv[0]);
		_exit(agent_session(sv[1], base_env, hooks));
	}
	close(sv[1]);
	s->fd = sv[0];
	ck_assert_int_eq(fcntl(s->fd, F_SETFL, O_NONBLOCK), 0);
}

/* The agent's exit status (enum agent_end); it must not have crashed. */
static int sess_wait_agent(struct sess *s)
{
	int st;

	ck_assert_int_eq(waitpid(s->agent, &st, 0), s->agent);
	ck_assert_msg(WIFEXITED(st), "agent died of signal %d", WIFSIGNALED(st) ? WTERMSIG(st) : 0);
	return WEXITSTATUS(st);
}

/* --- frames ----------------------------------------------------------------- */

static void on_frame(struct sess *s, const struct agent_hdr *h, const uint8_t *p)
{
	ck_assert_msg(!s->exited && !s->error_code, "frame type %u after the last frame", h->type);
	switch (h->type) {
	case AGENT_HELLO:
		ck_assert_uint_eq(s->hello, 0);
		s->hello = agent_get32(p);
		break;
	case AGENT_STARTED:
		ck_assert(s->hello && !s->cmd);
		s->cmd = (pid_t)agent_get32(p);
		ck_assert_int_gt(s->cmd, 0);
		break;
	case AGENT_STDOUT:
	case AGENT_STDERR: {
		struct buf *b = h->type == AGENT_STDOUT ? &s->out : &s->err;

		ck_assert_msg(s->cmd, "output before STARTED");
		ck_assert_msg(!b->eof, "output after the end of its stream");
		if (h->len)
			buf_add(b, p, h->len);
		else
			b->eof = 1;
		break;
	}
	case AGENT_STDIN_ACK: {
		uint32_t n = agent_get32(p);

		ck_assert_msg(s->cmd, "STDIN_ACK before STARTED");
		ck_assert_msg(n > 0, "STDIN_ACK for nothing");
		s->in_acked += n;
		ck_assert_msg(s->in_acked <= s->in_sent, "%llu bytes acknowledged, %llu sent",
			      (unsigned long long)s->in_acked, (unsigned long long)s->in_sent);
		s->nr_acks++;
		break;
	}
	case AGENT_EXIT:
		ck_assert_msg(s->cmd, "EXIT before STARTED");
		s->status = agent_get32(p);
		s->exited = 1;
		break;
	case AGENT_ERROR:
		s->error_code = agent_get32(p);
		ck_assert_uint_ne(s->error_code, 0);
		memcpy(s->error_msg, p + 4, h->len - 4);
		s->error_msg[h->len - 4] = '\0';
		break;
	default:
		ck_abort_msg("unexpected frame type %u", h->type);
	}
}

/* Parse every complete frame received so far. */
static void parse_rx(struct sess *s)
{
	size_t off = 0;

	while (s->rx.len - off >= AGENT_HDR_SIZE) {
		struct agent_hdr h;

		ck_assert_msg(agent_hdr_parse(s->rx.p + off, AGENT_SIDE_HOST, &h) == 0,
			      "the agent sent a malformed header");
		if (s->rx.len - off < AGENT_HDR_SIZE + h.len)
			break;
		on_frame(s, &h, s->rx.p + off + AGENT_HDR_SIZE);
		off += AGENT_HDR_SIZE + h.len;
	}
	memmove(s->rx.p, s->rx.p + off, s->rx.len - off);
	s->rx.len -= off;
}

static void sess_read(struct sess *s)
{
	uint8_t b[256 * 1024];
	ssize_t n = recv(s->fd, b, sizeof(b), 0);

	if (n > 0) {
		buf_add(&s->rx, b, (size_t)n);
		parse_rx(s);
		return;
	}
	if (n < 0 && errno == EAGAIN)
		return;
	/* A Unix socket closed with unread data reads as ECONNRESET at its end. */
	ck_assert_msg(n == 0 || errno == ECONNRESET, "recv: %s", strerror(errno));
	ck_assert_uint_eq(s->rx.len, 0);
	s->closed = 1;
}

typedef int (*until_fn)(struct sess *s, const void *arg);

/*
 * Send tx while reading whatever arrives, until all is sent and until(s)
 * holds (until NULL: just the sending).  Both at once, as the host must:
 * the agent may be blocked sending output while we are sending input.
 */
static void sess_io(struct sess *s, const void *tx, size_t txlen, until_fn until, const void *arg)
{
	size_t sent = 0;

	while (sent < txlen || (until && !until(s, arg))) {
		struct pollfd p = { s->fd, 0, 0 };

		ck_assert_msg(!s->closed, "the agent closed the connection (error %u: %s)",
			      s->error_code, s->error_msg);
		p.events = POLLIN | (sent < txlen ? POLLOUT : 0);
		ck_assert_msg(poll(&p, 1, IO_TIMEOUT_MS) == 1, "timed out waiting for the agent");
		if (p.revents & POLLOUT) {
			ssize_t n = send(s->fd, (const uint8_t *)tx + sent, txlen - sent, MSG_NOSIGNAL);

			if (n > 0)
				sent += (size_t)n;
			else if (errno == EPIPE || errno == ECONNRESET)
				sent = txlen;	/* it has closed: what it sent is still to read */
			else
				ck_assert_msg(errno == EAGAIN, "send: %s", strerror(errno));
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR))
			sess_read(s);
	}
}

static int until_hello(struct sess *s, const void *arg)
{
	return s->hello || s->error_code;
}

static int until_started(struct sess *s, const void *arg)
{
	return s->cmd || s->error_code;
}

static int until_stdout(struct sess *s, const void *needle)
{
	return strstr(buf_str(&s->out), needle) != NULL;
}

/* Read until the agent closes; sess_io() would treat that as failure. */
static void sess_read_to_close(struct sess *s)
{
	while (!s->closed) {
		struct pollfd p = { s->fd, POLLIN, 0 };

		ck_assert_msg(poll(&p, 1, IO_TIMEOUT_MS) == 1, "timed out waiting for the agent");
		sess_read(s);
	}
}

/* A frame as bytes, appended to b. */
static void frame_add(struct buf *b, uint8_t type, uint8_t flags, const void *p, uint32_t len)
{
	uint8_t h[AGENT_HDR_SIZE];

	agent_hdr_pack(h, type, flags, len);
	buf_add(b, h, sizeof(h));
	if (len)
		buf_add(b, p, len);
}

static void sess_send(struct sess *s, uint8_t type, uint8_t flags, const void *p, uint32_t len)
{
	struct buf b = { 0 };

	frame_add(&b, type, flags, p, len);
	sess_io(s, b.p, b.len, NULL, NULL);
	free(b.p);
}

static void sess_send32(struct sess *s, uint8_t type, uint8_t flags, uint32_t v)
{
	uint8_t p[4];

	agent_put32(p, v);
	sess_send(s, type, flags, p, 4);
}

static void sess_hello(struct sess *s)
{
	sess_send32(s, AGENT_HELLO, 0, AGENT_PROTO_VERSION);
	sess_io(s, NULL, 0, until_hello, NULL);
	ck_assert_uint_eq(s->error_code, 0);
	ck_assert_uint_eq(s->hello, AGENT_PROTO_VERSION);
}

/* EXEC records from strings whose first character is the record type. */
static void exec_payload(struct buf *b, const char *const *recs)
{
	for (; *recs; recs++)
		buf_add(b, *recs, strlen(*recs) + 1);
}

#define RECS(...) ((const char *const[]){ __VA_ARGS__, NULL })

/* Start an agent with hooks, HELLO, and send the EXEC. */
static void sess_send_exec(struct sess *s, const char *const *recs, const struct agent_hooks *hooks)
{
	struct buf p = { 0 };

	sess_start(s, NULL, hooks);
	sess_hello(s);
	exec_payload(&p, recs);
	sess_send(s, AGENT_EXEC, 0, p.p, (uint32_t)p.len);
	free(p.p);
}

/* Start an agent, HELLO, EXEC, and wait for STARTED. */
static void sess_exec(struct sess *s, const char *const *recs)
{
	sess_send_exec(s, recs, NULL);
	sess_io(s, NULL, 0, until_started, NULL);
	ck_assert_msg(s->cmd, "no STARTED (error %u: %s)", s->error_code, s->error_msg);
}

/*
 * STDIN frames for data (at most 64 KiB each), then the empty one if eof,
 * all at once: only for stdin that fits the window.
 */
static void stdin_frames(struct sess *s, struct buf *b, const uint8_t *data, size_t len, int eof)
{
	ck_assert_uint_le(s->in_sent - s->in_acked + len, AGENT_STDIN_WINDOW);
	for (size_t off = 0; off < len; off += AGENT_MAX_PAYLOAD) {
		size_t n = len - off < AGENT_MAX_PAYLOAD ? len - off : AGENT_MAX_PAYLOAD;

		frame_add(b, AGENT_STDIN, 0, data + off, (uint32_t)n);
		s->in_sent += n;
	}
	if (eof)
		frame_add(b, AGENT_STDIN, 0, NULL, 0);
}

static uint64_t in_unacked(const struct sess *s)
{
	return s->in_sent - s->in_acked;
}

/*
 * Stdin as the host library sends it: a frame at a time, never more than
 * AGENT_STDIN_WINDOW unacknowledged, while reading whatever arrives.  Then
 * the empty frame if eof.  Returns when until() holds with no frame half
 * sent (until NULL: when all is sent); the rest is not sent.
 */
static void sess_stdin(struct sess *s, const uint8_t *data, size_t len, int eof, until_fn until,
		       const void *arg)
{
	struct buf f = { 0 };
	size_t off = 0, fsent = 0;
	int eof_sent = !eof;

	for (;;) {
		struct pollfd p = { s->fd, POLLIN, 0 };

		if (fsent == f.len) {
			uint64_t room = AGENT_STDIN_WINDOW - in_unacked(s);
			size_t n = len - off;

			f.len = fsent = 0;
			if (until ? until(s, arg) : off == len && eof_sent)
				break;
			if (n > AGENT_MAX_PAYLOAD)
				n = AGENT_MAX_PAYLOAD;
			if (n > room)
				n = (size_t)room;
			if (n) {
				frame_add(&f, AGENT_STDIN, 0, data + off, (uint32_t)n);
				off += n;
				s->in_sent += n;
			} else if (off == len && !eof_sent) {
				frame_add(&f, AGENT_STDIN, 0, NULL, 0);
				eof_sent = 1;
			}
		}
		ck_assert_msg(!s->closed, "the agent closed the connection (error %u: %s)",
			      s->error_code, s->error_msg);
		if (fsent < f.len)
			p.events |= POLLOUT;
		ck_assert_msg(poll(&p, 1, IO_TIMEOUT_MS) == 1, "timed out waiting for the agent");
		if (p.revents & POLLOUT) {
			ssize_t n = send(s->fd, f.p + fsent, f.len - fsent, MSG_NOSIGNAL);

			if (n > 0)
				fsent += (size_t)n;
			else if (errno == EPIPE || errno == ECONNRESET)
				fsent = f.len;	/* it has closed: what it sent is still to read */
			else
				ck_assert_msg(errno == EAGAIN, "send: %s", strerror(errno));
		}
		if (p.revents & (POLLIN | POLLHUP | POLLERR))
			sess_read(s);
	}
	free(f.p);
}

static int until_exited_or_error(struct sess *s, const void *arg)
{
	return s->exited || s->error_code;
}

static int until_window_full(struct sess *s, const void *arg)
{
	return in_unacked(s) == AGENT_STDIN_WINDOW;
}

/* Send the stdin (may be none) within the window, collect everything to EXIT. */
static void sess_finish(struct sess *s, const uint8_t *in, size_t inlen, int eof)
{
	sess_stdin(s, in, inlen, eof, until_exited_or_error, NULL);
}

/* After EXIT: both streams ended, the connection closed, the agent done. */
static void sess_done(struct sess *s)
{
	ck_assert_msg(s->exited, "no EXIT (error %u: %s)", s->error_code, s->error_msg);
	ck_assert_msg(s->out.eof && s->err.eof, "a stream was not ended before EXIT");
	sess_read_to_close(s);
	ck_assert_int_eq(sess_wait_agent(s), AGENT_END_EXIT);
	tu_assert_gone(s->cmd, 5000);
}

/* Run a command without stdin to its end. */
static void run(struct sess *s, const char *const *recs)
{
	sess_exec(s, recs);
	sess_finish(s, NULL, 0, 0);
	sess_done(s);
}

/* --- tests ------------------------------------------------------------------ */

START_TEST(test_hello)
{
	struct sess s;

	sess_start(&s, NULL, NULL);
	sess_hello(&s);
	/* A host that goes away after HELLO ends the session quietly. */
	close(s.fd);
	s.fd = -1;
	ck_assert_int_eq(sess_wait_agent(&s), AGENT_END_HANGUP);
	sess_free(&s);
}
END_TEST

static void shutdown_hook(void *arg)
{
	ck_assert_int_eq(write(*(int *)arg, "S", 1), 1);
}

START_TEST(test_shutdown_calls_hook)
{
	int p[2];
	char c = 0;
	struct sess s;
	struct agent_hooks hooks = { .shutdown = shutdown_hook, .arg = &p[1] };

	ck_assert_int_eq(pipe(p), 0);
	sess_start(&s, NULL, &hooks);
	sess_hello(&s);
	sess_send(&s, AGENT_SHUTDOWN, 0, NULL, 0);
	sess_read_to_close(&s);
	ck_assert_int_eq(sess_wait_agent(&s), AGENT_END_SHUTDOWN);
	close(p[1]);
	ck_assert_int_eq(read(p[0], &c, 1), 1);
	ck_assert_int_eq(c, 'S');
	ck_assert_uint_eq(s.error_code, 0);
	close(p[0]);
	sess_free(&s);
}
END_TEST

/* The restore hook: what it was given goes down the pipe; it fails with *err. */
struct restore_probe {
	int fd;
	int err;
};

static int restore_hook(void *arg, const char *rec)
{
	struct restore_probe *p = arg;

	ck_assert_int_eq(write(p->fd, rec, strlen(rec)), (ssize_t)strlen(rec));
	return p->err;
}

static void restore_case(int hook_err, struct sess *s, char *got, size_t size)
{
	int p[2];
	ssize_t n;
	struct restore_probe probe;
	struct agent_hooks hooks = { .restore = restore_hook, .arg = &probe };

	ck_assert_int_eq(pipe(p), 0);
	probe = (struct restore_probe){ p[1], hook_err };
	sess_send_exec(s, RECS("A/bin/sh", "A-c", "Aecho ran", "S1700000000123456789:00ff10"), &hooks);
	if (hook_err) {
		sess_read_to_close(s);
		ck_assert_int_eq(sess_wait_agent(s), AGENT_END_ERROR);
	} else {
		sess_io(s, NULL, 0, until_started, NULL);
		sess_finish(s, NULL, 0, 0);
		sess_done(s);
	}
	close(p[1]);
	n = read(p[0], got, size - 1);
	got[n > 0 ? n : 0] = '\0';
	close(p[0]);
}

/* An S record reaches the restore step, before the command runs. */
START_TEST(test_restore_record)
{
	char got[128];
	struct sess s;

	restore_case(0, &s, got, sizeof(got));
	ck_assert_str_eq(got, "1700000000123456789:00ff10");
	ck_assert_str_eq(buf_str(&s.out), "ran\n");
	ck_assert_uint_eq(s.status, 0);
	sess_free(&s);
}
END_TEST

/* A guest that cannot take the clock or seed says so, and runs nothing. */
START_TEST(test_restore_record_fails)
{
	char got[128];
	struct sess s;

	restore_case(EPERM, &s, got, sizeof(got));
	ck_assert_str_eq(got, "1700000000123456789:00ff10");
	ck_assert_uint_eq(s.error_code, AGENT_ERR_INTERNAL);
	ck_assert_msg(strstr(s.error_msg, "clock and random seed"), "error: %s", s.error_msg);
	ck_assert_str_eq(buf_str(&s.out), "");
	ck_assert_uint_eq(s.exited, 0);
	sess_free(&s);
}
END_TEST

START_TEST(test_stdout_stderr_status)
{
	struct sess s;

	run(&s, RECS("A/bin/sh", "A-c", "Aecho out; echo err >&2; exit 3"));
	ck_assert_str_eq(buf_str(&s.out), "out\n");
	ck_assert_str_eq(buf_str(&s.err), "err\n");
	ck_assert_uint_eq(s.status, 3);
	sess_free(&s);
}
END_TEST

static const int exit_codes[] = { 0, 1, 255 };

START_TEST(test_exit_codes)
{
	char cmd[32];
	struct sess s;

	snprintf(cmd, sizeof(cmd), "Aexit %d", exit_codes[_i]);
	run(&s, RECS("Ash", "A-c", cmd));
	ck_assert_uint_eq(s.status, (uint32_t)exit_codes[_i]);
	ck_assert_uint_eq(s.out.len + s.err.len, 0);
	sess_free(&s);
}
END_TEST

START_TEST(test_killed_by_signal)
{
	struct sess s;

	run(&s, RECS("Ash", "A-c", "Akill -TERM $$"));
	ck_assert_uint_eq(s.status, AGENT_EXIT_SIGNALED | SIGTERM);
	sess_free(&s);
}
END_TEST

START_TEST(test_signal_to_command)
{
	struct sess s;

	sess_exec(&s, RECS("Asleep", "A100"));
	sess_send32(&s, AGENT_SIGNAL, 0, SIGTERM);
	sess_finish(&s, NULL, 0, 0);
	sess_done(&s);
	ck_assert_uint_eq(s.status, AGENT_EXIT_SIGNALED | SIGTERM);
	sess_free(&s);
}
END_TEST

/* GROUP reaches what the command started too. */
START_TEST(test_signal_group)
{
	struct sess s;
	pid_t bg;

	sess_exec(&s, RECS("Ash", "A-c", "Asleep 100 & echo $!; wait"));
	sess_io(&s, NULL, 0, until_stdout, "\n");
	bg = (pid_t)atoi(buf_str(&s.out));
	ck_assert_int_gt(bg, 0);
	sess_send32(&s, AGENT_SIGNAL, AGENT_SIGNAL_F_GROUP, SIGKILL);
	sess_finish(&s, NULL, 0, 0);
	sess_done(&s);
	ck_assert_uint_eq(s.status, AGENT_EXIT_SIGNALED | SIGKILL);
	tu_assert_gone(bg, 5000);
	sess_free(&s);
}
END_TEST

/*
 * On a pty, an interactive shell runs its foreground job in a group of its
 * own; a GROUP signal reaches that job as a terminal's ^C would.
 */
START_TEST(test_signal_group_pty_job)
{
	struct sess s;

	sess_exec(&s, RECS("Abash", "A--norc", "A--noprofile", "A-ic", "Aecho ready; sleep 100; exit 7",
			   "T24x80"));
	sess_io(&s, NULL, 0, until_stdout, "ready");
	usleep(300 * 1000); /* for bash to fork sleep into its job's group */
	sess_send32(&s, AGENT_SIGNAL, AGENT_SIGNAL_F_GROUP, SIGINT);
	sess_finish(&s, NULL, 0, 0);
	sess_done(&s);
	/*
	 * sleep died of it (else this waits 100 s, past the test's timeout) and,
	 * as at a terminal, bash dropped the rest of the line: no exit 7.
	 */
	ck_assert_msg(s.status != 7, "status 0x%x, out: %s", s.status, buf_str(&s.out));
	sess_free(&s);
}
END_TEST

/* 1 MiB through cat while 1 MiB goes to stderr at the same time. */
START_TEST(test_stdin_echo_1mib)
{
	uint8_t *in = malloc(MIB), *errdata = malloc(MIB);
	char path[128], arg[160];
	struct sess s;

	ck_assert(in && errdata);
	fill_random(in, MIB, 1);
	fill_random(errdata, MIB, 2);
	tmpdir_make();
	snprintf(path, sizeof(path), "%s/err", tmpdir);
	write_file(path, errdata, MIB, 0644);
	snprintf(arg, sizeof(arg), "A%s", path);
	sess_exec(&s, RECS("Ash", "A-c", "Acat \"$1\" >&2 & cat; wait", "Ash", arg, "I1"));
	sess_finish(&s, in, MIB, 1);
	sess_done(&s);
	ck_assert_uint_eq(s.status, 0);
	ck_assert_uint_eq(s.out.len, MIB);
	ck_assert(memcmp(s.out.p, in, MIB) == 0);
	ck_assert_uint_eq(s.err.len, MIB);
	ck_assert(memcmp(s.err.p, errdata, MIB) == 0);
	tmpdir_remove();
	free(in);
	free(errdata);
	sess_free(&s);
}
END_TEST

START_TEST(test_stdout_stderr_1mib)
{
	uint8_t *a = malloc(MIB), *b = malloc(MIB);
	char pa[128], pb[128], arga[160], argb[160];
	struct sess s;

	ck_assert(a && b);
	fill_random(a, MIB, 3);
	fill_random(b, MIB, 4);
	tmpdir_make();
	snprintf(pa, sizeof(pa), "%s/a", tmpdir);
	snprintf(pb, sizeof(pb), "%s/b", tmpdir);
	write_file(pa, a, MIB, 0644);
	write_file(pb, b, MIB, 0644);
	snprintf(arga, sizeof(arga), "A%s", pa);
	snprintf(argb, sizeof(argb), "A%s", pb);
	run(&s, RECS("Ash", "A-c", "Acat \"$1\" & cat \"$2\" >&2; wait", "Ash", arga, argb));
	ck_assert_uint_eq(s.status, 0);
	ck_assert_uint_eq(s.out.len, MIB);
	ck_assert(memcmp(s.out.p, a, MIB) == 0);
	ck_assert_uint_eq(s.err.len, MIB);
	ck_assert(memcmp(s.err.p, b, MIB) == 0);
	tmpdir_remove();
	free(a);
	free(b);
	sess_free(&s);
}
END_TEST

/* Stdin sent in the same write as the EXEC, before STARTED came back. */
START_TEST(test_stdin_pipelined)
{
	static const uint8_t data[] = { 'h', 'i', 0, 0xff, '\n' };
	struct buf b = { 0 }, p = { 0 };
	struct sess s;

	sess_start(&s, NULL, NULL);
	sess_hello(&s);
	exec_payload(&p, RECS("Acat", "I1"));
	frame_add(&b, AGENT_EXEC, 0, p.p, (uint32_t)p.len);
	stdin_frames(&s, &b, data, sizeof(data), 1);
	sess_io(&s, b.p, b.len, until_exited_or_error, NULL);
	sess_done(&s);
	ck_assert_uint_eq(s.status, 0);
	ck_assert_uint_eq(s.out.len, sizeof(data));
	ck_assert(memcmp(s.out.p, data, sizeof(data)) == 0);
	free(b.p);
	free(p.p);
	sess_free(&s);
}
END_TEST

/* cat takes every byte: the ACKs add up to exactly what was sent. */
START_TEST(test_stdin_acks_add_up)
{
	const size_t len = 3 * MIB + 12345;
	uint8_t *in = malloc(len);
	struct sess s;

	ck_assert_ptr_nonnull(in);
	fill_random(in, len, 6);
	sess_exec(&s, RECS("Acat", "I1"));
	sess_finish(&s, in, len, 1);
	sess_done(&s);
	ck_assert_uint_eq(s.status, 0);
	ck_assert_uint_eq(s.out.len, len);
	ck_assert(memcmp(s.out.p, in, len) == 0);
	ck_assert_uint_eq(s.in_sent, len);
	ck_assert_uint_eq(s.in_acked, len);
	/* More than a window went through: only ACKs let it. */
	ck_assert_uint_ge(s.nr_acks, len / AGENT_STDIN_WINDOW);
	free(in);
	sess_free(&s);
}
END_TEST

/*
 * A command that closes its stdin and runs on: what was buffered and all
 * that comes later is dropped and acknowledged, so the host never stalls.
 */
START_TEST(test_stdin_dropped_is_acked)
{
	const size_t len = 2 * MIB;
	uint8_t *in = calloc(1, len);
	struct sess s;

	ck_assert_ptr_nonnull(in);
	sess_exec(&s, RECS("Ash", "A-c", "Aexec 0<&-; sleep 1; echo done", "I1"));
	sess_finish(&s, in, len, 1);
	sess_done(&s);
	ck_assert_uint_eq(s.status, 0);
	ck_assert_str_eq(buf_str(&s.out), "done\n");
	ck_assert_uint_eq(s.in_sent, len);
	ck_assert_uint_eq(s.in_acked, len);
	free(in);
	sess_free(&s);
}
END_TEST

/* A command that stops reading its stdin early must not upset the agent. */
START_TEST(test_stdin_closed_early)
{
	uint8_t *in = malloc(MIB);
	struct sess s;

	ck_assert_ptr_nonnull(in);
	fill_random(in, MIB, 5);
	sess_exec(&s, RECS("Ahead", "A-c", "A10", "I1"));
	sess_finish(&s, in, MIB, 1);
	sess_done(&s);
	ck_assert_uint_eq(s.status, 0);
	ck_assert_uint_eq(s.out.len, 10);
	ck_assert(memcmp(s.out.p, in, 10) == 0);
	free(in);
	sess_free(&s);
}
END_TEST

START_TEST(test_binary_and_utf8)
{
	static const uint8_t want[] = { 0, 1, 0x80, 0xff, 0xc3, 0xa9, 0xe2, 0x9c, 0x93, '\n' };
	struct sess s;

	run(&s, RECS("Aprintf", "A\\000\\001\\200\\377\xc3\xa9\xe2\x9c\x93\\n"));
	ck_assert_uint_eq(s.status, 0);
	ck_assert_uint_eq(s.out.len, sizeof(want));
	ck_assert(memcmp(s.out.p, want, sizeof(want)) == 0);
	sess_free(&s);

	run(&s, RECS("Ash", "A-c", "Aprintf %s \"$1|$V\"", "Ash", "Ah\xc3\xa9llo w\xc3\xb6rld",
		     "EV=\xe2\x9c\x93"));
	ck_assert_str_eq(buf_str(&s.out), "h\xc3\xa9llo w\xc3\xb6rld|\xe2\x9c\x93");
	sess_free(&s);
}
END_TEST

static void send_resize(struct sess *s, uint16_t rows, uint16_t cols)
{
	uint8_t p[4];

	agent_put16(p, rows);
	agent_put16(p + 2, cols);
	sess_send(s, AGENT_RESIZE, 0, p, 4);
}

START_TEST(test_pty_size_and_resize)
{
	static const uint8_t nl = '\n';
	struct sess s;

	sess_exec(&s, RECS("Ash", "A-c",
			   "A[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && echo tty; stty size; read x; stty size",
			   "T37x111", "I1"));
	sess_io(&s, NULL, 0, until_stdout, "37 111");
	send_resize(&s, 50, 132);
	sess_finish(&s, &nl, 1, 0);
	sess_done(&s);
	ck_assert_uint_eq(s.status, 0);
	ck_assert_msg(strstr(buf_str(&s.out), "tty\r\n37 111\r\n"), "out: %s", buf_str(&s.out));
	ck_assert_msg(strstr(buf_str(&s.out), "50 132\r\n"), "out: %s", buf_str(&s.out));
	/* On a pty, stderr arrives as STDOUT. */
	ck_assert_uint_eq(s.err.len, 0);
	sess_free(&s);
}
END_TEST

/* The empty STDIN on a pty is the EOF character, after a line or mid-line. */
START_TEST(test_pty_eof)
{
	static const char *inputs[] = { "abc\n", "xyz" };

	for (int i = 0; i < 2; i++) {
		struct sess s;
		char want[16];

		sess_exec(&s, RECS("Acat", "T24x80", "I1"));
		sess_finish(&s, (const uint8_t *)inputs[i], strlen(inputs[i]), 1);
		sess_done(&s);
		ck_assert_uint_eq(s.status, 0);
		snprintf(want, sizeof(want), "%.3s", inputs[i]);
		ck_assert_msg(strstr(buf_str(&s.out), want), "out: %s", buf_str(&s.out));
		sess_free(&s);
	}
}
END_TEST

/* Without 'I' a pty command's stdin is still the pty (no input comes), as with docker run -t. */
START_TEST(test_pty_without_stdin)
{
	struct sess s;

	run(&s, RECS("Ash", "A-c", "A[ -t 0 ] && [ -t 1 ] && [ -t 2 ] && stty size", "T12x34"));
	ck_assert_uint_eq(s.status, 0);
	ck_assert_str_eq(buf_str(&s.out), "12 34\r\n");
	sess_free(&s);
}
END_TEST

START_TEST(test_workdir)
{
	struct sess s;
	char w[128];

	tmpdir_make();
	snprintf(w, sizeof(w), "W%s", tmpdir);
	run(&s, RECS("Apwd", w));
	ck_assert_uint_eq(s.status, 0);
	ck_assert_uint_eq(s.out.len, strlen(tmpdir) + 1);
	ck_assert(!memcmp(s.out.p, tmpdir, strlen(tmpdir)) && s.out.p[s.out.len - 1] == '\n');
	sess_free(&s);

	run(&s, RECS("Apwd", "W/nonexistent/dir"));
	ck_assert_uint_eq(s.status, 126);
	ck_assert_msg(strstr(buf_str(&s.err), "msvmm-init: cd /nonexistent/dir"), "err: %s",
		      buf_str(&s.err));
	ck_assert_uint_eq(s.out.len, 0);
	sess_free(&s);
	tmpdir_remove();
}
END_TEST

START_TEST(test_environment)
{
	char *base[] = { "BASE=1", "KEEP=k", "TERM=vt100", NULL };
	struct buf p = { 0 };
	struct sess s;

	/* Defaults when nothing says otherwise. */
	run(&s, RECS("Ash", "A-c", "Aecho \"$PATH|$HOME|$TERM|$FOO\"", "EFOO=bar baz"));
	ck_assert_str_eq(buf_str(&s.out), "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:"
					  "/sbin:/bin|/root|linux|bar baz\n");
	sess_free(&s);

	/* The base environment, overridden by E records. */
	sess_start(&s, base, NULL);
	sess_hello(&s);
	exec_payload(&p, RECS("Ash", "A-c", "Aecho \"$BASE|$KEEP|$TERM|$HOME\"", "EBASE=2",
			      "EHOME=/h"));
	sess_send(&s, AGENT_EXEC, 0, p.p, (uint32_t)p.len);
	sess_finish(&s, NULL, 0, 0);
	sess_done(&s);
	ck_assert_str_eq(buf_str(&s.out), "2|k|vt100|/h\n");
	free(p.p);
	sess_free(&s);
}
END_TEST

START_TEST(test_not_found)
{
	struct sess s;

	run(&s, RECS("Ano-such-command-msvmm", "Aarg"));
	ck_assert_uint_eq(s.status, 127);
	ck_assert_str_eq(buf_str(&s.err), "msvmm-init: no-such-command-msvmm: command not found\n");
	sess_free(&s);

	run(&s, RECS("A/nonexistent/prog"));
	ck_assert_uint_eq(s.status, 127);
	ck_assert_msg(strstr(buf_str(&s.err), "/nonexistent/prog: No such file"), "err: %s",
		      buf_str(&s.err));
	sess_free(&s);
}
END_TEST

START_TEST(test_not_executable)
{
	char path[128], arg[160];
	struct sess s;

	tmpdir_make();
	snprintf(path, sizeof(path), "%s/script", tmpdir);
	write_file(path, "echo hi\n", 8, 0644);
	snprintf(arg, sizeof(arg), "A%s", path);
	run(&s, RECS(arg));
	ck_assert_uint_eq(s.status, 126);
	ck_assert_msg(strstr(buf_str(&s.err), "permission denied"), "err: %s", buf_str(&s.err));
	sess_free(&s);

	/* A directory cannot be run either. */
	snprintf(arg, sizeof(arg), "A%s", tmpdir);
	run(&s, RECS(arg));
	ck_assert_uint_eq(s.status, 126);
	sess_free(&s);
	tmpdir_remove();
}
END_TEST

/* A user from a passwd file of our own, by name and by number. */
START_TEST(test_user)
{
	static const char passwd[] = "root:x:0:0:root:/root:/bin/sh\n"
				     "broken line\n"
				     "alice:x:4321:4322:Alice:/home/alice:/bin/sh\n";
	char path[128];
	struct agent_hooks hooks = { .passwd = path };
	struct buf p = { 0 };
	struct sess s;
	int root = geteuid() == 0;

	/* Supplementary groups come from the group file beside it (id -G lists them sorted, as the kernel keeps them). */
	static const char group[] = "staff:x:50:bob,alice\n"
				    "wheel:x:10:carol,alicia\n"
				    "bad line\n"
				    "alice:x:4322:alice\n"
				    "audio:x:29:alice\n";
	char gpath[128];

	tmpdir_make();
	snprintf(path, sizeof(path), "%s/passwd", tmpdir);
	write_file(path, passwd, sizeof(passwd) - 1, 0644);
	snprintf(gpath, sizeof(gpath), "%s/group", tmpdir);
	write_file(gpath, group, sizeof(group) - 1, 0644);

	static const char *const users[] = { "alice", "4321:99", "777", "nosuch" };
	static const char *const want[] = {
		"4321 4322 /home/alice 4322 29 50\n",
		"4321 99 /home/alice 99 29 50 4322\n",
		"777 0 / 0\n",
		NULL,
	};
	for (int i = 0; i < 4; i++) {
		char u[32];

		snprintf(u, sizeof(u), "U%s", users[i]);
		p.len = 0;
		exec_payload(&p, RECS("Ash", "A-c", "Aecho $(id -u) $(id -g) $HOME $(id -G)", u));
		sess_start(&s, NULL, &hooks);
		sess_hello(&s);
		sess_send(&s, AGENT_EXEC, 0, p.p, (uint32_t)p.len);
		sess_finish(&s, NULL, 0, 0);
		sess_done(&s);
		if (!want[i]) {
			ck_assert_uint_eq(s.status, 126);
			ck_assert_str_eq(buf_str(&s.err), "msvmm-init: user nosuch: no such user\n");
		} else if (root) {
			ck_assert_uint_eq(s.status, 0);
			ck_assert_str_eq(buf_str(&s.out), want[i]);
		} else {
			/* Not root here: setuid fails, which the command must say. */
			ck_assert_uint_eq(s.status, 126);
		}
		sess_free(&s);
	}
	free(p.p);
	tmpdir_remove();
}
END_TEST

/* Output of processes the command left behind does not hold up EXIT. */
START_TEST(test_leftover_process)
{
	struct sess s;
	pid_t bg;

	run(&s, RECS("Ash", "A-c", "Asleep 100 & echo $!"));
	ck_assert_uint_eq(s.status, 0);
	bg = (pid_t)atoi(buf_str(&s.out));
	ck_assert_int_gt(bg, 0);
	kill(bg, SIGKILL);
	sess_free(&s);
}
END_TEST

START_TEST(test_hangup_kills_command)
{
	struct sess s;

	sess_exec(&s, RECS("Asleep", "A1000"));
	close(s.fd);
	s.fd = -1;
	ck_assert_int_eq(sess_wait_agent(&s), AGENT_END_HANGUP);
	tu_assert_gone(s.cmd, 5000);
	sess_free(&s);
}
END_TEST

/* Hangup while the agent holds a full window of stdin the command does not read. */
START_TEST(test_hangup_with_stdin_backlog)
{
	uint8_t *in = calloc(1, 4 * MIB);
	struct sess s;

	ck_assert_ptr_nonnull(in);
	sess_exec(&s, RECS("Asleep", "A1000", "I1"));
	sess_stdin(&s, in, 4 * MIB, 0, until_window_full, NULL);
	ck_assert_uint_lt(s.in_sent, 4 * MIB);
	close(s.fd);
	s.fd = -1;
	ck_assert_int_eq(sess_wait_agent(&s), AGENT_END_HANGUP);
	tu_assert_gone(s.cmd, 5000);
	free(in);
	sess_free(&s);
}
END_TEST

/* Read what the agent sends until it has been quiet for ms. */
static void sess_quiet(struct sess *s, int ms)
{
	struct pollfd p = { s->fd, POLLIN, 0 };

	while (!s->closed && poll(&p, 1, ms) == 1)
		sess_read(s);
}

/* A host that sends stdin past the window: ERROR 3, and the command dies. */
START_TEST(test_stdin_beyond_window)
{
	uint8_t *in = calloc(1, 4 * MIB);
	struct buf b = { 0 };
	struct sess s;
	size_t over;

	ck_assert_ptr_nonnull(in);
	sess_exec(&s, RECS("Asleep", "A100", "I1"));
	sess_stdin(&s, in, 4 * MIB, 0, until_window_full, NULL);
	/* Every ACK the agent will send (for what the pipe took) is in: we know its count. */
	sess_quiet(&s, 300);
	over = (size_t)(AGENT_STDIN_WINDOW - in_unacked(&s)) + 1;
	for (size_t off = 0, n; off < over; off += n) {
		n = over - off < AGENT_MAX_PAYLOAD ? over - off : AGENT_MAX_PAYLOAD;
		frame_add(&b, AGENT_STDIN, 0, in, (uint32_t)n);
	}
	sess_io(&s, b.p, b.len, NULL, NULL);
	sess_read_to_close(&s);
	ck_assert_uint_eq(s.error_code, AGENT_ERR_REQUEST);
	ck_assert_msg(strstr(s.error_msg, "stdin beyond the window"), "error: %s", s.error_msg);
	ck_assert_uint_eq(s.exited, 0);
	ck_assert_int_eq(sess_wait_agent(&s), AGENT_END_ERROR);
	tu_assert_gone(s.cmd, 5000);
	free(b.p);
	free(in);
	sess_free(&s);
}
END_TEST

static double now_s(void)
{
	struct timespec ts;

	clock_gettime(CLOCK_MONOTONIC, &ts);
	return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

/*
 * The command does not read its stdin and the host has sent a full window:
 * the agent still reads frames, so a SIGNAL behind that stdin (a forwarded
 * Ctrl-C, a timeout's SIGKILL) ends the command at once.
 */
START_TEST(test_signal_behind_full_window)
{
	static const struct { int sig; uint8_t flags; } cases[] = {
		{ SIGTERM, 0 }, { SIGKILL, AGENT_SIGNAL_F_GROUP },
	};
	uint8_t *in = calloc(1, 4 * MIB);

	ck_assert_ptr_nonnull(in);
	for (size_t i = 0; i < sizeof(cases) / sizeof(cases[0]); i++) {
		struct sess s;
		double t0;

		sess_exec(&s, RECS("Asleep", "A100", "I1"));
		sess_stdin(&s, in, 4 * MIB, 0, until_window_full, NULL);
		t0 = now_s();
		sess_send32(&s, AGENT_SIGNAL, cases[i].flags, (uint32_t)cases[i].sig);
		sess_io(&s, NULL, 0, until_exited_or_error, NULL);
		ck_assert_msg(now_s() - t0 < 5.0, "EXIT took %.1f s", now_s() - t0);
		sess_done(&s);
		ck_assert_uint_eq(s.status, AGENT_EXIT_SIGNALED | (uint32_t)cases[i].sig);
		sess_free(&s);
	}
	free(in);
}
END_TEST

/* A bad frame while the command runs: ERROR, and the command is killed. */
START_TEST(test_bad_frame_kills_command)
{
	static const uint8_t bad_reserved[AGENT_HDR_SIZE] = { 4, 0, 0, 0, AGENT_SIGNAL, 0, 0, 1 };
	struct sess s;

	for (int i = 0; i < 3; i++) {
		sess_exec(&s, RECS("Asleep", "A1000"));
		if (i == 0)
			sess_io(&s, bad_reserved, sizeof(bad_reserved), NULL, NULL);
		else if (i == 1)
			sess_send(&s, AGENT_STDIN, 0, "x", 1);	/* without 'I' */
		else
			sess_send32(&s, AGENT_SIGNAL, 0, 0);	/* signal 0 */
		sess_read_to_close(&s);
		ck_assert_uint_eq(s.error_code, i == 0 ? AGENT_ERR_FRAME : AGENT_ERR_REQUEST);
		ck_assert_uint_eq(s.exited, 0);
		ck_assert_int_eq(sess_wait_agent(&s), AGENT_END_ERROR);
		tu_assert_gone(s.cmd, 5000);
		sess_free(&s);
	}
}
END_TEST

/* Malformed or misplaced frames, each answered by one ERROR and a close. */
struct bad_case {
	const char *name;
	int hello;		/* HELLO first */
	uint8_t hdr[AGENT_HDR_SIZE];
	const char *payload;	/* NULL: as many zero bytes as hdr says, up to 64 */
	size_t payload_len;
	uint32_t code;
};

#define HDR(len, type, flags, r0, r1) { (len) & 0xff, ((len) >> 8) & 0xff, ((len) >> 16) & 0xff, \
					 (uint8_t)((len) >> 24), (type), (flags), (r0), (r1) }
#define EXEC_CASE(name, recs) { name, 1, HDR(sizeof(recs) - 1, AGENT_EXEC, 0, 0, 0), recs, \
				sizeof(recs) - 1, AGENT_ERR_REQUEST }
#define CODE_CASE(name, recs, code) { name, 1, HDR(sizeof(recs) - 1, AGENT_RUNCODE, 0, 0, 0), recs, \
				      sizeof(recs) - 1, code }

static const struct bad_case bad_cases[] = {
	{ "type 0", 0, HDR(0, 0, 0, 0, 0), NULL, 0, AGENT_ERR_FRAME },
	{ "type past the last", 0, HDR(0, AGENT_TYPE_MAX + 1, 0, 0, 0), NULL, 0, AGENT_ERR_FRAME },
	{ "STDIN_ACK from the host", 1, HDR(4, AGENT_STDIN_ACK, 0, 0, 0), NULL, 0, AGENT_ERR_FRAME },
	{ "type 255", 1, HDR(4, 255, 0, 0, 0), NULL, 0, AGENT_ERR_FRAME },
	{ "guest-only type", 1, HDR(0, AGENT_STDOUT, 0, 0, 0), NULL, 0, AGENT_ERR_FRAME },
	{ "reserved byte 6", 0, HDR(4, AGENT_HELLO, 0, 1, 0), NULL, 0, AGENT_ERR_FRAME },
	{ "reserved byte 7", 0, HDR(4, AGENT_HELLO, 0, 0, 0x80), NULL, 0, AGENT_ERR_FRAME },
	{ "HELLO flags", 0, HDR(4, AGENT_HELLO, 1, 0, 0), NULL, 0, AGENT_ERR_FRAME },
	{ "HELLO too long", 0, HDR(5, AGENT_HELLO, 0, 0, 0), NULL, 0, AGENT_ERR_FRAME },
	{ "HELLO too short", 0, HDR(3, AGENT_HELLO, 0, 0, 0), NULL, 0, AGENT_ERR_FRAME },
	{ "EXEC oversize", 1, HDR(AGENT_MAX_EXEC + 1, AGENT_EXEC, 0, 0, 0), NULL, 0,
	  AGENT_ERR_FRAME },
	{ "EXEC 4 GiB", 1, HDR(0xffffffffu, AGENT_EXEC, 0, 0, 0), NULL, 0, AGENT_ERR_FRAME },
	{ "STDIN oversize", 1, HDR(AGENT_MAX_PAYLOAD + 1, AGENT_STDIN, 0, 0, 0), NULL, 0,
	  AGENT_ERR_FRAME },
	{ "SIGNAL unknown flag", 1, HDR(4, AGENT_SIGNAL, 2, 0, 0), NULL, 0, AGENT_ERR_FRAME },
	{ "SHUTDOWN with payload", 1, HDR(1, AGENT_SHUTDOWN, 0, 0, 0), NULL, 0, AGENT_ERR_FRAME },
	{ "version 2", 0, HDR(4, AGENT_HELLO, 0, 0, 0), "\x02\0\0\0", 4, AGENT_ERR_VERSION },
	{ "version 0", 0, HDR(4, AGENT_HELLO, 0, 0, 0), "\0\0\0\0", 4, AGENT_ERR_VERSION },
	{ "EXEC before HELLO", 0, HDR(4, AGENT_EXEC, 0, 0, 0), "Ash", 4, AGENT_ERR_REQUEST },
	{ "SHUTDOWN before HELLO", 0, HDR(0, AGENT_SHUTDOWN, 0, 0, 0), NULL, 0,
	  AGENT_ERR_REQUEST },
	{ "STDIN before EXEC", 1, HDR(1, AGENT_STDIN, 0, 0, 0), "x", 1, AGENT_ERR_REQUEST },
	{ "second HELLO", 1, HDR(4, AGENT_HELLO, 0, 0, 0), "\1\0\0\0", 4, AGENT_ERR_REQUEST },
	EXEC_CASE("EXEC without A", "Wdir\0E=x\0"),
	EXEC_CASE("EXEC only env", "EA=1\0"),
	EXEC_CASE("unknown record", "Atrue\0Zx\0"),
	EXEC_CASE("record without NUL", "Atrue\0Afalse"),
	EXEC_CASE("lone record type", "Atrue\0A"),
	EXEC_CASE("repeated W", "Atrue\0W/\0W/\0"),
	EXEC_CASE("empty W", "Atrue\0W\0"),
	EXEC_CASE("repeated U", "Atrue\0U0\0U0\0"),
	EXEC_CASE("bad U", "Atrue\0U1:x\0"),
	EXEC_CASE("U too big", "Atrue\0U99999999999\0"),
	EXEC_CASE("bad T", "Atrue\0T24x\0"),
	EXEC_CASE("T zero", "Atrue\0T0x80\0"),
	EXEC_CASE("T too big", "Atrue\0T70000x80\0"),
	EXEC_CASE("repeated T", "Atrue\0T1x1\0T1x1\0"),
	EXEC_CASE("bad I", "Atrue\0I2\0"),
	EXEC_CASE("repeated I", "Atrue\0I1\0I1\0"),
	EXEC_CASE("E without =", "Atrue\0Enoequal\0"),
	EXEC_CASE("E without key", "Atrue\0E=v\0"),
	EXEC_CASE("S without colon", "Atrue\0S123\0"),
	EXEC_CASE("S without time", "Atrue\0S:ab\0"),
	EXEC_CASE("S time of 20 digits", "Atrue\0S12345678901234567890:ab\0"),
	EXEC_CASE("S time not a number", "Atrue\0S1x:ab\0"),
	EXEC_CASE("S without seed", "Atrue\0S1:\0"),
	EXEC_CASE("S odd hex", "Atrue\0S1:abc\0"),
	EXEC_CASE("S not hex", "Atrue\0S1:zz\0"),
	EXEC_CASE("S upper-case hex", "Atrue\0S1:AB\0"),
	EXEC_CASE("S seed of 65 bytes", "Atrue\0S1:"
		  "00000000000000000000000000000000000000000000000000000000000000000000000000000000"
		  "00000000000000000000000000000000000000000000000000\0"),
	EXEC_CASE("repeated S", "Atrue\0S1:ab\0S1:ab\0"),
	{ "RUNCODE oversize", 1, HDR(AGENT_MAX_RUNCODE + 1, AGENT_RUNCODE, 0, 0, 0), NULL, 0,
	  AGENT_ERR_FRAME },
	{ "RUNCODE flags", 1, HDR(2, AGENT_RUNCODE, 1, 0, 0), NULL, 0, AGENT_ERR_FRAME },
	{ "RUNCODE before HELLO", 0, HDR(4, AGENT_RUNCODE, 0, 0, 0), "Cx=1", 4, AGENT_ERR_REQUEST },
	CODE_CASE("RUNCODE without R", "P/usr/bin/python3\0Cx = 1\0", AGENT_ERR_REQUEST),
	CODE_CASE("RUNCODE without P", "Rpython\0Cx = 1\0", AGENT_ERR_REQUEST),
	CODE_CASE("RUNCODE bad S", "Rpython\0P/usr/bin/python3\0S1:x\0Cx = 1\0", AGENT_ERR_REQUEST),
	CODE_CASE("RUNCODE without C", "Rpython\0P/usr/bin/python3\0", AGENT_ERR_REQUEST),
	CODE_CASE("RUNCODE repeated C", "Rpython\0P/p\0C1\0C2\0", AGENT_ERR_REQUEST),
	CODE_CASE("RUNCODE repeated R", "Rpython\0Rpython\0P/p\0C1\0", AGENT_ERR_REQUEST),
	CODE_CASE("RUNCODE bad name", "RPy thon\0P/p\0C1\0", AGENT_ERR_REQUEST),
	CODE_CASE("RUNCODE empty name", "R\0P/p\0C1\0", AGENT_ERR_REQUEST),
	CODE_CASE("RUNCODE relative P", "Rpython\0Ppython3\0C1\0", AGENT_ERR_REQUEST),
	CODE_CASE("RUNCODE with argv", "Rpython\0P/p\0C1\0Ash\0", AGENT_ERR_REQUEST),
	CODE_CASE("RUNCODE with a tty", "Rpython\0P/p\0C1\0T24x80\0", AGENT_ERR_REQUEST),
	CODE_CASE("RUNCODE with a user", "Rpython\0P/p\0C1\0U0\0", AGENT_ERR_REQUEST),
	CODE_CASE("RUNCODE bad E", "Rpython\0P/p\0C1\0Enoequal\0", AGENT_ERR_REQUEST),
	CODE_CASE("RUNCODE code without NUL", "Rpython\0P/p\0Cprint(1)", AGENT_ERR_REQUEST),
	CODE_CASE("RUNCODE unknown runtime", "Rcobol\0P/usr/bin/cobol\0CDISPLAY 1\0", AGENT_ERR_RUNTIME),
};

START_TEST(test_bad_frames)
{
	const struct bad_case *c = &bad_cases[_i];
	struct agent_hdr h;
	uint8_t zeros[64] = { 0 };
	struct sess s;
	size_t plen = c->payload ? c->payload_len : 0;

	/* Headers meant to be rejected must be rejected by the codec too. */
	if (c->code == AGENT_ERR_FRAME)
		ck_assert_int_eq(agent_hdr_parse(c->hdr, AGENT_SIDE_GUEST, &h), -1);
	else
		ck_assert_int_eq(agent_hdr_parse(c->hdr, AGENT_SIDE_GUEST, &h), 0);
	if (!c->payload && c->code != AGENT_ERR_FRAME)
		plen = h.len;
	/* Payloads not given are zeros, up to 64 of them. */
	if (!c->payload)
		ck_assert_uint_le(plen, sizeof(zeros));

	sess_start(&s, NULL, NULL);
	if (c->hello)
		sess_hello(&s);
	sess_io(&s, c->hdr, sizeof(c->hdr), NULL, NULL);
	/* The payload of a rejected header is never read: ERROR comes without it. */
	if (plen)
		sess_io(&s, c->payload ? (const void *)c->payload : zeros, plen, NULL, NULL);
	sess_read_to_close(&s);
	ck_assert_msg(s.error_code == c->code, "%s: error %u (%s), want %u", c->name, s.error_code,
		      s.error_msg, c->code);
	ck_assert_msg(s.error_msg[0], "%s: ERROR without a message", c->name);
	ck_assert_int_eq(s.cmd, 0);
	ck_assert_int_eq(sess_wait_agent(&s), AGENT_END_ERROR);
	sess_free(&s);
}
END_TEST

/* A header cut short, or a payload never finished: the host is gone. */
START_TEST(test_truncated_frames)
{
	static const uint8_t half_hdr[] = { 4, 0, 0 };
	static const uint8_t no_payload[] = { 4, 0, 0, 0, AGENT_HELLO, 0, 0, 0, 1 };
	struct sess s;

	for (int i = 0; i < 2; i++) {
		sess_start(&s, NULL, NULL);
		if (i == 0)
			sess_io(&s, half_hdr, sizeof(half_hdr), NULL, NULL);
		else
			sess_io(&s, no_payload, sizeof(no_payload), NULL, NULL);
		shutdown(s.fd, SHUT_WR);
		sess_read_to_close(&s);
		ck_assert_uint_eq(s.error_code, 0);
		ck_assert_int_eq(sess_wait_agent(&s), AGENT_END_HANGUP);
		sess_free(&s);
	}
}
END_TEST

/* An ERROR from the host ends the session without a reply. */
START_TEST(test_host_error)
{
	struct sess s;

	sess_start(&s, NULL, NULL);
	sess_hello(&s);
	sess_send32(&s, AGENT_ERROR, 0, AGENT_ERR_INTERNAL);
	sess_read_to_close(&s);
	ck_assert_uint_eq(s.error_code, 0);
	ck_assert_int_eq(sess_wait_agent(&s), AGENT_END_ERROR);
	sess_free(&s);
}
END_TEST

/* --- agent_serve() ------------------------------------------------------------- */

static void ready_hook(void *arg)
{
	ck_assert_int_eq(write(*(int *)arg, "R", 1), 1);
}

/* Two connections at once to one server, each with its own command. */
START_TEST(test_serve_concurrent)
{
	struct sockaddr_un addr = { .sun_family = AF_UNIX };
	int lfd, rp[2];
	struct agent_hooks hooks = { .ready = ready_hook, .arg = &rp[1] };
	struct sess s[2];
	struct buf p[2] = { { 0 }, { 0 } };
	pid_t server;
	char c = 0;
	int st;

	tmpdir_make();
	snprintf(addr.sun_path, sizeof(addr.sun_path), "%s/sock", tmpdir);
	lfd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
	ck_assert_int_ge(lfd, 0);
	ck_assert_int_eq(bind(lfd, (struct sockaddr *)&addr, sizeof(addr)), 0);
	ck_assert_int_eq(listen(lfd, 8), 0);
	ck_assert_int_eq(pipe(rp), 0);
	server = fork();
	ck_assert_int_ge(server, 0);
	if (server == 0)
		_exit(agent_serve(lfd, NULL, &hooks) < 0 ? 1 : 0);
	close(lfd);
	ck_assert_int_eq(read(rp[0], &c, 1), 1);
	ck_assert_int_eq(c, 'R');

	for (int i = 0; i < 2; i++) {
		memset(&s[i], 0, sizeof(s[i]));
		s[i].fd = socket(AF_UNIX, SOCK_STREAM | SOCK_CLOEXEC, 0);
		ck_assert_int_ge(s[i].fd, 0);
		ck_assert_int_eq(connect(s[i].fd, (struct sockaddr *)&addr, sizeof(addr)), 0);
		ck_assert_int_eq(fcntl(s[i].fd, F_SETFL, O_NONBLOCK), 0);
		sess_hello(&s[i]);
	}
	/* The first waits for its stdin while the second runs to its end. */
	exec_payload(&p[0], RECS("Acat", "I1"));
	exec_payload(&p[1], RECS("Aecho", "Asecond"));
	for (int i = 0; i < 2; i++) {
		sess_send(&s[i], AGENT_EXEC, 0, p[i].p, (uint32_t)p[i].len);
		sess_io(&s[i], NULL, 0, until_started, NULL);
	}
	sess_finish(&s[1], NULL, 0, 0);
	sess_read_to_close(&s[1]);
	ck_assert_str_eq(buf_str(&s[1].out), "second\n");
	sess_finish(&s[0], (const uint8_t *)"first\n", 6, 1);
	sess_read_to_close(&s[0]);
	ck_assert_str_eq(buf_str(&s[0].out), "first\n");
	for (int i = 0; i < 2; i++) {
		ck_assert(s[i].exited);
		ck_assert_uint_eq(s[i].status, 0);
		tu_assert_gone(s[i].cmd, 5000);
		free(p[i].p);
		sess_free(&s[i]);
	}
	/* Still serving. */
	ck_assert_int_eq(waitpid(server, &st, WNOHANG), 0);
	kill(server, SIGKILL);
	ck_assert_int_eq(waitpid(server, &st, 0), server);
	close(rp[0]);
	close(rp[1]);
	tmpdir_remove();
}
END_TEST

static Suite *agent_suite(void)
{
	Suite *s = suite_create("agent_session");
	TCase *proto = tcase_create("protocol"), *cmd = tcase_create("commands"),
	      *io = tcase_create("io"), *pty = tcase_create("pty"), *serve = tcase_create("serve");
	TCase *all[] = { proto, cmd, io, pty, serve };

	for (size_t i = 0; i < sizeof(all) / sizeof(all[0]); i++) {
		tcase_set_timeout(all[i], 60);
		suite_add_tcase(s, all[i]);
	}
	tcase_add_test(proto, test_hello);
	tcase_add_test(proto, test_shutdown_calls_hook);
	tcase_add_loop_test(proto, test_bad_frames, 0, sizeof(bad_cases) / sizeof(bad_cases[0]));
	tcase_add_test(proto, test_truncated_frames);
	tcase_add_test(proto, test_host_error);
	tcase_add_test(proto, test_bad_frame_kills_command);
	tcase_add_test(proto, test_hangup_kills_command);
	tcase_add_test(proto, test_hangup_with_stdin_backlog);
	tcase_add_test(proto, test_stdin_beyond_window);

	tcase_add_test(cmd, test_stdout_stderr_status);
	tcase_add_loop_test(cmd, test_exit_codes, 0, sizeof(exit_codes) / sizeof(exit_codes[0]));
	tcase_add_test(cmd, test_killed_by_signal);
	tcase_add_test(cmd, test_signal_to_command);
	tcase_add_test(cmd, test_signal_group);
	tcase_add_test(cmd, test_signal_group_pty_job);
	tcase_add_test(cmd, test_workdir);
	tcase_add_test(cmd, test_environment);
	tcase_add_test(cmd, test_not_found);
	tcase_add_test(cmd, test_not_executable);
	tcase_add_test(cmd, test_user);
	tcase_add_test(cmd, test_leftover_process);

	tcase_add_test(io, test_stdin_echo_1mib);
	tcase_add_test(io, test_stdout_stderr_1mib);
	tcase_add_test(io, test_stdin_pipelined);
	tcase_add_test(io, test_stdin_closed_early);
	tcase_add_test(io, test_stdin_acks_add_up);
	tcase_add_test(io, test_stdin_dropped_is_acked);
	tcase_add_test(io, test_signal_behind_full_window);
	tcase_add_test(io, test_binary_and_utf8);
	tcase_add_test(io, test_restore_record);
	tcase_add_test(io, test_restore_record_fails);

	tcase_add_test(pty, test_pty_size_and_resize);
	tcase_add_test(pty, test_pty_eof);
	tcase_add_test(pty, test_pty_without_stdin);

	tcase_add_test(serve, test_serve_concurrent);
	return s;
}

int main(void)
{
	return tu_run(agent_suite());
}
