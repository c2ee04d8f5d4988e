// SPDX-License-Identifier: Apache-2.0
/*
 * The guest agent: serves lib/agent-protocol.md on vsock port 1024 inside
 * guest-init.  Each connection gets its own process (forked by
 * agent_serve()), which runs at most one command, or hands one piece of
 * code to a runtime's interpreter (runtime.c), and pumps its stdio with
 * poll().
 *
 * The host is trusted more than the command but is still checked: every
 * header goes through agent_hdr_parse() before its payload is read, and no
 * buffer is sized from a length that has not been checked.  Memory is
 * bounded: one received frame (rx_buf), one outgoing frame (tx_buf) and the
 * stdin the command has not taken yet (inq_buf), or for RUNCODE a copy of
 * its request.  The host sends no more
 * stdin than AGENT_STDIN_WINDOW ahead of our STDIN_ACKs, and inq_buf holds
 * that much, so the agent never stops reading frames: a SIGNAL behind stdin
 * that the command does not read still arrives.
 *
 * On PVM guests each syscall costs thousands of emulated instructions, so
 * the pump reads output in 64 KiB chunks straight behind a frame header and
 * sends header and payload with one call.
 */
#include "agent.h"
#include "agent_proto.h"
#include "restored.h"
#include "runtime.h"

#include <errno.h>
#include <fcntl.h>
#include <grp.h>
#include <poll.h>
#include <signal.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/ioctl.h>
#include <sys/prctl.h>
#include <sys/signalfd.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <sys/wait.h>
#include <termios.h>
#include <unistd.h>
/* After sys/socket.h, which it needs. */
#include <linux/vm_sockets.h>

#define STATUS_CANNOT_EXEC 126
#define STATUS_NOT_FOUND 127

#define DEFAULT_PATH "PATH=/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"
#define ERROR_MSG_MAX 1024

#define RX_CAP (AGENT_HDR_SIZE + (AGENT_MAX_RUNCODE > AGENT_MAX_EXEC ? AGENT_MAX_RUNCODE : AGENT_MAX_EXEC))
#define TX_CAP (AGENT_HDR_SIZE + AGENT_MAX_PAYLOAD)
/*
 * Stdin accepted from the host but not yet taken by the command: at most
 * the window, which a host that keeps to it never overruns.
 */
#define INQ_CAP AGENT_STDIN_WINDOW
/*
 * STDIN_ACK once this much stdin has been taken: the host gets room back
 * long before the window runs dry, without an ACK for every small write.
 */
#define STDIN_ACK_EVERY (32u * 1024)
/*
 * A pty has no FIONREAD-exact end: after the command exits, read until EIO
 * (no process holds the slave) or EAGAIN, but no more than this, in case
 * something it left behind keeps writing.
 */
#define PTY_DRAIN_MAX (1u << 20)
/* The largest /etc/passwd we parse. */
#define PASSWD_MAX (4u << 20)

/* One session per process: see agent.h. */
static uint8_t rx_buf[RX_CAP];
static uint8_t tx_buf[TX_CAP];
static uint8_t inq_buf[INQ_CAP + 2];	/* + room for two VEOF characters */

struct session {
	int fd;			/* the connection */
	const struct agent_hooks *hooks;
	char *const *base_env;
	int end;		/* enum agent_end, or -1 while the session goes on */

	size_t rx_off, rx_len;	/* received bytes not yet consumed: rx_buf[off, len) */
	size_t tx_off, tx_len;	/* an output frame partly sent: tx_buf[off, len) */
	size_t inq_off, inq_len;	/* pending stdin: inq_buf[off, len) */
	size_t in_held;		/* STDIN payload bytes of those (not the VEOFs a pty gets) */
	size_t ack_due;		/* payload bytes taken or dropped since the last STDIN_ACK */

	pid_t pid;		/* the command, 0 before it starts */
	int exited, wstatus;
	int sig_fd;		/* signalfd for SIGCHLD */
	int pty_fd;		/* pty master, or -1 */
	int in_fd;		/* the command's stdin (pipe, or the master); -1: closed */
	int out_fd, err_fd;	/* its output (pipes, or the master twice); -1: at end */
	int want_stdin;		/* 'I': STDIN frames may come */
	int stdin_eof;		/* the empty STDIN frame has arrived */
	int pty_mid_line;	/* last stdin byte on the pty was not a newline */
	uint32_t status;	/* EXIT's status, once exited */
	uint8_t exit_flags;	/* EXIT's flags */
	char notice[320];	/* a line of the agent's own for the stderr stream, or "" */

	/* RUNCODE: in_fd is the interpreter's code FIFO, out_fd and err_fd its output. */
	int code_on;		/* rt is held (locked) */
	struct runtime_call rt;
	char *code_req;		/* a copy of the RUNCODE payload, which the code is fed from */
	uint8_t feed_hdr[4];	/* the code block's length, fed before the code */
	const char *feed;	/* the code */
	size_t feed_len, feed_off;	/* bytes of header and code, and how many are fed */
	int cancel_sig;		/* a SIGNAL that came while the call waited for the runtime */
};

/* What an EXEC asks for; the strings point into the EXEC payload. */
struct exec_req {
	char **argv;		/* NULL-terminated */
	char **env;		/* the E records, NULL-terminated */
	size_t nargs, nenv;
	const char *workdir, *user;
	const char *restore;	/* the S record, or NULL */
	int tty, want_stdin;
	unsigned short rows, cols;
};

/* The user a command runs as, resolved in the agent before it forks. */
#define AGENT_MAX_GROUPS 64

struct creds {
	int set;		/* a 'U' record was given */
	uid_t uid;
	gid_t gid;
	char home[512];		/* "" when the user has no passwd entry */
	char name[64];		/* the passwd entry's name, "" without one */
	gid_t groups[AGENT_MAX_GROUPS];	/* the primary group, then /etc/group's for name */
	int ngroups;
	char err[256];		/* non-empty: the user cannot be used, for the command's stderr */
};

/* --- sending --------------------------------------------------------------- */

static void session_end(struct session *s, enum agent_end why)
{
	if (s->end < 0)
		s->end = why;
}

/* Blocking send of every byte of iov; -1 when the host is gone. */
static int send_iov(int fd, struct iovec *iov, int n)
{
	struct msghdr m = { .msg_iov = iov, .msg_iovlen = (size_t)n };

	while (m.msg_iovlen) {
		ssize_t r = sendmsg(fd, &m, MSG_NOSIGNAL);

		if (r < 0) {
			if (errno == EINTR)
				continue;
			return -1;
		}
		while (m.msg_iovlen && (size_t)r >= m.msg_iov->iov_len) {
			r -= (ssize_t)m.msg_iov->iov_len;
			m.msg_iov++;
			m.msg_iovlen--;
		}
		if (m.msg_iovlen) {
			m.msg_iov->iov_base = (uint8_t *)m.msg_iov->iov_base + r;
			m.msg_iov->iov_len -= (size_t)r;
		}
	}
	return 0;
}

/* Finish sending a partly sent output frame, blocking: frames never interleave. */
static int tx_drain(struct session *s)
{
	struct iovec iov = { tx_buf + s->tx_off, s->tx_len - s->tx_off };

	if (!s->tx_len)
		return 0;
	s->tx_off = s->tx_len = 0;
	if (send_iov(s->fd, &iov, 1) < 0) {
		session_end(s, AGENT_END_HANGUP);
		return -1;
	}
	return 0;
}

static int send_frame(struct session *s, uint8_t type, const void *payload, uint32_t len)
{
	uint8_t hdr[AGENT_HDR_SIZE];
	struct iovec iov[2] = { { hdr, sizeof(hdr) }, { (void *)payload, len } };

	if (tx_drain(s) < 0)
		return -1;
	agent_hdr_pack(hdr, type, 0, len);
	if (send_iov(s->fd, iov, len ? 2 : 1) < 0) {
		session_end(s, AGENT_END_HANGUP);
		return -1;
	}
	return 0;
}

static int send_u32(struct session *s, uint8_t type, uint32_t v)
{
	uint8_t p[4];

	agent_put32(p, v);
	return send_frame(s, type, p, sizeof(p));
}

static void send_error(struct session *s, uint32_t code, const char *fmt, ...)
	__attribute__((format(printf, 3, 4)));

/* ERROR(code, message); the session ends after it either way. */
static void send_error(struct session *s, uint32_t code, const char *fmt, ...)
{
	uint8_t p[4 + ERROR_MSG_MAX + 1];
	va_list ap;
	int n;

	agent_put32(p, code);
	va_start(ap, fmt);
	n = vsnprintf((char *)p + 4, ERROR_MSG_MAX + 1, fmt, ap);
	va_end(ap);
	if (n < 0)
		n = 0;
	if (n > ERROR_MSG_MAX)
		n = ERROR_MSG_MAX;
	send_frame(s, AGENT_ERROR, p, 4 + (uint32_t)n);
	session_end(s, AGENT_END_ERROR);
}

/* --- receiving ------------------------------------------------------------- */

/* recv into the free end of rx_buf: >0 bytes, 0 EOF, -1 error (errno). */
static ssize_t rx_recv(struct session *s, int flags)
{
	ssize_t n;

	if (s->rx_off) {
		memmove(rx_buf, rx_buf + s->rx_off, s->rx_len - s->rx_off);
		s->rx_len -= s->rx_off;
		s->rx_off = 0;
	}
	n = recv(s->fd, rx_buf + s->rx_len, RX_CAP - s->rx_len, flags);
	if (n > 0)
		s->rx_len += (size_t)n;
	return n;
}

/*
 * The frame at the head of rx_buf: 1 complete (h filled), 0 incomplete, -1
 * malformed (ERROR sent).  The header is checked as soon as its 8 bytes are
 * in, before anything waits for the payload.
 */
static int frame_peek(struct session *s, struct agent_hdr *h)
{
	size_t have = s->rx_len - s->rx_off;
	const uint8_t *p = rx_buf + s->rx_off;

	if (have < AGENT_HDR_SIZE)
		return 0;
	if (agent_hdr_parse(p, AGENT_SIDE_GUEST, h) < 0) {
		send_error(s, AGENT_ERR_FRAME, "malformed frame header (type %u, flags 0x%x, length %u)",
			   p[4], p[5], agent_get32(p));
		return -1;
	}
	return have >= AGENT_HDR_SIZE + (size_t)h->len;
}

static uint8_t *frame_payload(const struct session *s)
{
	return rx_buf + s->rx_off + AGENT_HDR_SIZE;
}

static void frame_consume(struct session *s, const struct agent_hdr *h)
{
	s->rx_off += AGENT_HDR_SIZE + (size_t)h->len;
}

/* Wait for the next complete frame (no command runs yet): 0, or -1 and the session ended. */
static int frame_wait(struct session *s, struct agent_hdr *h)
{
	for (;;) {
		int r = frame_peek(s, h);
		ssize_t n;

		if (r)
			return r > 0 ? 0 : -1;
		n = rx_recv(s, 0);
		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0) {
			session_end(s, AGENT_END_HANGUP);
			return -1;
		}
	}
}

/* --- EXEC records ------------------------------------------------------------ */

/* Decimal without sign or spaces, at most max; *end is where it stopped. */
static int parse_uint(const char *p, const char **end, unsigned long max, unsigned long *v)
{
	unsigned long x = 0;

	if (*p < '0' || *p > '9')
		return -1;
	for (; *p >= '0' && *p <= '9'; p++) {
		x = x * 10 + (unsigned long)(*p - '0');
		if (x > max)
			return -1;
	}
	*end = p;
	*v = x;
	return 0;
}

/* "ROWSxCOLS", each 1..65535. */
static int parse_tty(const char *v, struct exec_req *r)
{
	unsigned long rows, cols;
	const char *p;

	if (parse_uint(v, &p, 65535, &rows) < 0 || *p != 'x' ||
	    parse_uint(p + 1, &p, 65535, &cols) < 0 || *p || !rows || !cols)
		return -1;
	r->rows = (unsigned short)rows;
	r->cols = (unsigned short)cols;
	return 0;
}

/* A name without ':' (it would be a passwd field separator), or UID[:GID]. */
static int user_ok(const char *v)
{
	unsigned long id;
	const char *p;

	if (!*v)
		return 0;
	if (*v < '0' || *v > '9')
		return !strchr(v, ':') && !strchr(v, '\n');
	if (parse_uint(v, &p, 0xfffffffeUL, &id) < 0)
		return 0;
	if (*p == ':' && parse_uint(p + 1, &p, 0xfffffffeUL, &id) < 0)
		return 0;
	return !*p;
}

/* Check one record and note it in r (counts only: pointers come in the second pass). */
static const char *exec_record(char type, const char *v, void *arg)
{
	struct exec_req *r = arg;

	switch (type) {
	case AGENT_REC_ARG:
		r->nargs++;
		return NULL;
	case AGENT_REC_ENV:
		if (v[0] == '=' || !strchr(v, '='))
			return "environment record is not KEY=VALUE";
		r->nenv++;
		return NULL;
	case AGENT_REC_WORKDIR:
		if (!*v || r->workdir)
			return "empty or repeated working directory";
		r->workdir = v;
		return NULL;
	case AGENT_REC_USER:
		if (r->user || !user_ok(v))
			return "user is not NAME, UID or UID:GID, or repeated";
		r->user = v;
		return NULL;
	case AGENT_REC_TTY:
		if (r->tty || parse_tty(v, r) < 0)
			return "tty is not ROWSxCOLS, or repeated";
		r->tty = 1;
		return NULL;
	case AGENT_REC_STDIN:
		if (r->want_stdin || strcmp(v, "1"))
			return "stdin record is not 1, or repeated";
		r->want_stdin = 1;
		return NULL;
	case AGENT_REC_RESTORE:
		if (r->restore || restored_parse(v, NULL, NULL, NULL) < 0)
			return "restore record is not REALTIME_NS:SEED_HEX, or repeated";
		r->restore = v;
		return NULL;
	default:
		return "unknown record type";
	}
}

typedef const char *(*record_fn)(char type, const char *v, void *arg);

/* Check every record with fn: 0, or -1 with what (*why) and where (*bad_off) is wrong. */
static int records_check(const char *p, size_t len, record_fn fn, void *arg, const char **why,
			 size_t *bad_off)
{
	for (size_t off = 0; off < len;) {
		const char *nul = memchr(p + off + 1, '\0', len - off - 1);

		*bad_off = off;
		*why = nul ? fn(p[off], p + off + 1, arg) : "record without a terminating NUL";
		if (*why)
			return -1;
		off = (size_t)(nul - p) + 1;
	}
	return 0;
}

/* Point r's argv and env (counted by the check) into the records: 0, or -1 out of memory. */
static int exec_collect(char *p, size_t len, struct exec_req *r)
{
	size_t na = 0, ne = 0;

	/* Counts are bounded by the checked payload length. */
	r->argv = malloc((r->nargs + r->nenv + 2) * sizeof(char *));
	if (!r->argv)
		return -1;
	r->env = r->argv + r->nargs + 1;
	for (size_t off = 0; off < len; off += strlen(p + off + 1) + 2) {
		if (p[off] == AGENT_REC_ARG)
			r->argv[na++] = p + off + 1;
		else if (p[off] == AGENT_REC_ENV)
			r->env[ne++] = p + off + 1;
	}
	r->argv[na] = NULL;
	r->env[ne] = NULL;
	return 0;
}

/*
 * Validate the records and point r's arrays into the payload.  0; -1 when
 * malformed (*why, *bad_off: what and where); -2 out of memory.  r->argv
 * must be freed.
 */
static int exec_parse(char *p, size_t len, struct exec_req *r, const char **why, size_t *bad_off)
{
	memset(r, 0, sizeof(*r));
	if (records_check(p, len, exec_record, r, why, bad_off) < 0)
		return -1;
	*bad_off = 0;
	*why = "no argv ('A') record";
	if (!r->nargs)
		return -1;
	return exec_collect(p, len, r) < 0 ? -2 : 0;
}

/* --- RUNCODE records ---------------------------------------------------------- */

/* What a RUNCODE asks for; the strings point into the request. */
struct code_req {
	struct exec_req x;	/* its E and W records: the interpreter's, if this call starts it */
	const char *runtime, *program, *code;
	size_t code_len;
};

static int runtime_name_ok(const char *v)
{
	size_t n = strspn(v, "abcdefghijklmnopqrstuvwxyz0123456789_-");

	return n && n <= RUNTIME_NAME_MAX && !v[n];
}

static const char *code_record(char type, const char *v, void *arg)
{
	struct code_req *r = arg;

	switch (type) {
	case AGENT_REC_RUNTIME:
		if (r->runtime || !runtime_name_ok(v))
			return "runtime name is not 1-32 of [a-z0-9_-], or repeated";
		r->runtime = v;
		return NULL;
	case AGENT_REC_PROGRAM:
		if (r->program || v[0] != '/')
			return "program is not an absolute path, or repeated";
		r->program = v;
		return NULL;
	case AGENT_REC_CODE:
		if (r->code)
			return "repeated code record";
		r->code = v;
		r->code_len = strlen(v);
		return NULL;
	case AGENT_REC_ENV:
	case AGENT_REC_WORKDIR:
	case AGENT_REC_RESTORE:
		return exec_record(type, v, &r->x);
	default:
		return "unknown record type";
	}
}

/* As exec_parse(), for RUNCODE: R, P and C once each, E and W as for EXEC. */
static int code_parse(char *p, size_t len, struct code_req *r, const char **why, size_t *bad_off)
{
	memset(r, 0, sizeof(*r));
	if (records_check(p, len, code_record, r, why, bad_off) < 0)
		return -1;
	*bad_off = 0;
	*why = !r->runtime ? "no runtime ('R') record" : !r->program ? "no program ('P') record"
							   : "no code ('C') record";
	if (!r->runtime || !r->program || !r->code)
		return -1;
	return exec_collect(p, len, &r->x) < 0 ? -2 : 0;
}

/* --- users ----------------------------------------------------------------- */

/* The whole passwd file, NUL-terminated; NULL with errno on failure. */
static char *file_slurp(const char *path)
{
	struct stat st;
	char *buf = NULL;
	size_t len = 0;
	int fd = open(path, O_RDONLY | O_CLOEXEC);

	int err = 0;

	if (fd < 0)
		return NULL;
	if (fstat(fd, &st) < 0) {
		err = errno;
		goto out;
	}
	if (st.st_size < 0 || (size_t)st.st_size > PASSWD_MAX) {
		err = EFBIG;
		goto out;
	}
	buf = malloc((size_t)st.st_size + 1);
	if (!buf) {
		err = ENOMEM;
		goto out;
	}
	while (len < (size_t)st.st_size) {
		ssize_t n = read(fd, buf + len, (size_t)st.st_size - len);

		if (n < 0 && errno == EINTR)
			continue;
		if (n <= 0)
			break;
		len += (size_t)n;
	}
	buf[len] = '\0';
out:
	close(fd);
	errno = err;
	return buf;
}

/*
 * Find name (or, when name is NULL, uid) in the passwd text: "name:pw:uid:
 * gid:gecos:home:shell" lines.  1 found (c->uid, c->gid, c->home set), 0 not.
 */
static int passwd_find(char *text, const char *name, uid_t uid, struct creds *c)
{
	for (char *line = text; line && *line;) {
		char *next = strchr(line, '\n'), *f[7];
		unsigned long u, g;
		const char *end;
		int n = 0;

		if (next)
			*next++ = '\0';
		for (char *q = line; n < 7 && q; n++) {
			f[n] = q;
			q = strchr(q, ':');
			if (q)
				*q++ = '\0';
		}
		line = next;
		if (n < 6 || parse_uint(f[2], &end, 0xfffffffeUL, &u) < 0 || *end ||
		    parse_uint(f[3], &end, 0xfffffffeUL, &g) < 0 || *end)
			continue;
		if (name ? strcmp(f[0], name) : (uid_t)u != uid)
			continue;
		c->uid = (uid_t)u;
		c->gid = (gid_t)g;
		snprintf(c->home, sizeof(c->home), "%s", f[5]);
		snprintf(c->name, sizeof(c->name), "%s", f[0]);
		return 1;
	}
	return 0;
}

/* Resolve a 'U' record; failures land in c->err for the command's stderr. */
/* Does the comma-separated member list name 'name'? */
static int group_has(const char *members, const char *name)
{
	size_t n = strlen(name);

	for (const char *m = members; m && *m; m = strchr(m, ',') ? strchr(m, ',') + 1 : NULL)
		if (!strncmp(m, name, n) && (m[n] == ',' || m[n] == '\0'))
			return 1;
	return 0;
}

/*
 * The supplementary groups of c->name from the group file beside 'passwd'
 * (/etc/group), as login and docker run -u set them.  A missing or broken
 * file just means none.
 */
static void groups_find(const char *passwd, struct creds *c)
{
	char path[512];
	const char *slash = strrchr(passwd, '/');
	char *text;

	if (!slash || (size_t)snprintf(path, sizeof(path), "%.*sgroup", (int)(slash - passwd + 1), passwd) >=
			      sizeof(path))
		return;
	text = file_slurp(path);
	for (char *line = text; line && *line && c->ngroups < AGENT_MAX_GROUPS;) {
		char *next = strchr(line, '\n'), *f[4];
		unsigned long g;
		const char *end;
		int n = 0;

		if (next)
			*next++ = '\0';
		for (char *q = line; n < 4 && q; n++) {
			f[n] = q;
			q = strchr(q, ':');
			if (q)
				*q++ = '\0';
		}
		line = next;
		if (n == 4 && parse_uint(f[2], &end, 0xfffffffeUL, &g) == 0 && !*end && (gid_t)g != c->gid &&
		    group_has(f[3], c->name))
			c->groups[c->ngroups++] = (gid_t)g;
	}
	free(text);
}

static void creds_resolve(const char *user, const char *passwd, struct creds *c)
{
	unsigned long uid = 0, gid = 0;
	const char *p = user;
	int numeric = user[0] >= '0' && user[0] <= '9';
	char *text;

	memset(c, 0, sizeof(*c));
	c->set = 1;
	if (numeric) {
		parse_uint(user, &p, 0xfffffffeUL, &uid);
		c->uid = (uid_t)uid;
	}
	text = file_slurp(passwd);
	if (!text && !numeric) {
		snprintf(c->err, sizeof(c->err), "user %s: %s: %s", user, passwd, strerror(errno));
		return;
	}
	/* A numeric user needs no entry: then its group is 0, as with docker -u. */
	if (!(text && passwd_find(text, numeric ? NULL : user, c->uid, c)) && !numeric)
		snprintf(c->err, sizeof(c->err), "user %s: no such user", user);
	free(text);
	if (numeric && *p == ':') {
		parse_uint(p + 1, &p, 0xfffffffeUL, &gid);
		c->gid = (gid_t)gid;
	}
	c->groups[0] = c->gid;
	c->ngroups = 1;
	if (c->name[0] && !c->err[0])
		groups_find(passwd, c);
}

/* --- environment --------------------------------------------------------------- */

static int env_has(char *const *env, size_t n, const char *key, size_t klen)
{
	for (size_t i = 0; i < n; i++)
		if (!strncmp(env[i], key, klen) && env[i][klen] == '=')
			return 1;
	return 0;
}

/*
 * E records, then base entries they do not override, then PATH, HOME and
 * TERM when still missing.  home_var is storage for "HOME=...".
 */
static char **env_build(const struct exec_req *r, char *const *base, const struct creds *c,
			char *home_var, size_t home_size)
{
	size_t nbase = 0, n;
	char **env;

	while (base && base[nbase])
		nbase++;
	env = malloc((r->nenv + nbase + 4) * sizeof(char *));
	if (!env)
		return NULL;
	/* A key given twice takes its last value, as with docker run -e A=1 -e A=2. */
	n = 0;
	for (size_t i = 0; i < r->nenv; i++) {
		const char *eq = strchr(r->env[i], '=');
		size_t klen = eq ? (size_t)(eq - r->env[i]) : strlen(r->env[i]);

		if (!env_has(r->env + i + 1, r->nenv - i - 1, r->env[i], klen))
			env[n++] = r->env[i];
	}
	for (size_t i = 0; i < nbase; i++) {
		const char *eq = strchr(base[i], '=');

		if (eq && !env_has(r->env, r->nenv, base[i], (size_t)(eq - base[i])))
			env[n++] = base[i];
	}
	if (!env_has(env, n, "PATH", 4))
		env[n++] = DEFAULT_PATH;
	if (!env_has(env, n, "HOME", 4)) {
		/* A user with no passwd entry gets /, root's home is for root. */
		const char *home = !c->set ? "/root" : c->home[0] ? c->home : "/";

		snprintf(home_var, home_size, "HOME=%s", home);
		env[n++] = home_var;
	}
	if (!env_has(env, n, "TERM", 4))
		env[n++] = "TERM=linux";
	env[n] = NULL;
	return env;
}

/* --- starting the command -------------------------------------------------- */

/* The fds the command gets; -1 where it gets /dev/null (stdin only). */
struct child_fds {
	int in, out, err;
	int ctty;		/* the pty slave to make the controlling tty, or -1 */
};

static void child_fail(int status, const char *fmt, ...) __attribute__((format(printf, 2, 3), noreturn));

/* Say why on the command's stderr, as a shell would, and exit. */
static void child_fail(int status, const char *fmt, ...)
{
	char msg[512];
	va_list ap;
	int n = snprintf(msg, sizeof(msg), "msvmm-init: ");

	va_start(ap, fmt);
	n += vsnprintf(msg + n, sizeof(msg) - (size_t)n - 1, fmt, ap);
	va_end(ap);
	if (n > (int)sizeof(msg) - 2)
		n = sizeof(msg) - 2;
	msg[n++] = '\n';
	(void)!write(STDERR_FILENO, msg, (size_t)n);
	_exit(status);
}

static void child_stdio(const struct child_fds *f)
{
	int in = f->in;

	if (in < 0)
		in = open("/dev/null", O_RDONLY | O_CLOEXEC);
	/* The sources are never 0-2: the console (or /dev/null) holds those. */
	if (in < 0 || dup2(in, 0) < 0 || dup2(f->out, 1) < 0 || dup2(f->err, 2) < 0)
		_exit(STATUS_CANNOT_EXEC);
}

static void child_creds(const struct creds *c)
{
	if (c->err[0])
		child_fail(STATUS_CANNOT_EXEC, "%s", c->err);
	if (setgroups((size_t)c->ngroups, c->groups) < 0 || setgid(c->gid) < 0 || setuid(c->uid) < 0)
		child_fail(STATUS_CANNOT_EXEC, "cannot run as %u:%u: %s", (unsigned)c->uid,
			   (unsigned)c->gid, strerror(errno));
}

/*
 * The vfork child: syscalls, formatting on the stack and exec only, since
 * it borrows the agent's memory until the exec.  environ is already the
 * command's, so execvp searches the command's PATH.
 */
static void __attribute__((noreturn)) child_exec(const struct exec_req *r, const struct creds *c,
						 const struct child_fds *f, int conn)
{
	sigset_t none;

	/* Its own session and process group: SIGNAL GROUP and hangup kill them all. */
	setsid();
	if (f->ctty >= 0)
		ioctl(f->ctty, TIOCSCTTY, 0);
	child_stdio(f);
	/* Every other fd of ours is O_CLOEXEC; the connection is the caller's. */
	close(conn);
	sigemptyset(&none);
	sigprocmask(SIG_SETMASK, &none, NULL);
	/* The user's own terminal, so that it can open it again by name. */
	if (c->set && f->ctty >= 0 && fchown(f->ctty, c->uid, c->gid) < 0)
		child_fail(STATUS_CANNOT_EXEC, "pty for %u:%u: %s", (unsigned)c->uid, (unsigned)c->gid,
			   strerror(errno));
	if (c->set)
		child_creds(c);
	/* If the session process dies (OOM, kill -9 -1), the command goes too; after setuid, which clears it. */
	prctl(PR_SET_PDEATHSIG, SIGKILL);
	if (r->workdir && chdir(r->workdir) < 0)
		child_fail(STATUS_CANNOT_EXEC, "cd %s: %s", r->workdir, strerror(errno));
	execvp(r->argv[0], r->argv);
	if (errno == ENOENT && !strchr(r->argv[0], '/'))
		child_fail(STATUS_NOT_FOUND, "%s: command not found", r->argv[0]);
	child_fail(errno == ENOENT ? STATUS_NOT_FOUND : STATUS_CANNOT_EXEC, "%s: %s", r->argv[0],
		   errno == EACCES ? "permission denied" : strerror(errno));
}

static int set_nonblock(int fd)
{
	int fl = fcntl(fd, F_GETFL);

	return fl < 0 ? -1 : fcntl(fd, F_SETFL, fl | O_NONBLOCK);
}

/*
 * A pipe whose agent end (ours: 0 read, 1 write) is non-blocking; the
 * command's end stays blocking, as programs expect.
 */
static int pipe_for(int p[2], int ours)
{
	if (pipe2(p, O_CLOEXEC) < 0)
		return -1;
	if (set_nonblock(p[ours]) < 0) {
		close(p[0]);
		close(p[1]);
		p[0] = p[1] = -1;
		return -1;
	}
	return 0;
}

/* The command's ends: ours must go, or its output never reaches EOF. */
static void close_child_ends(const struct child_fds *f)
{
	if (f->ctty >= 0) {
		close(f->ctty);	/* the pty slave: all of in, out and err */
		return;
	}
	if (f->in >= 0)
		close(f->in);
	if (f->out >= 0)
		close(f->out);
	if (f->err >= 0)
		close(f->err);
}

/* A new pty of the requested size: the master in s, the slave in f. */
static const char *open_pty(struct session *s, const struct exec_req *r, struct child_fds *f)
{
	struct winsize ws = { .ws_row = r->rows, .ws_col = r->cols };
	char name[64];
	int slave;

	s->pty_fd = posix_openpt(O_RDWR | O_NOCTTY | O_CLOEXEC | O_NONBLOCK);
	if (s->pty_fd < 0)
		return "posix_openpt";
	if (grantpt(s->pty_fd) < 0 || unlockpt(s->pty_fd) < 0 ||
	    ptsname_r(s->pty_fd, name, sizeof(name)))
		return "pty setup";
	slave = open(name, O_RDWR | O_NOCTTY | O_CLOEXEC);
	if (slave < 0)
		return "pty slave";
	/* stdin is the pty even without 'I' (it then gets no input), as with docker run -t. */
	f->in = f->out = f->err = f->ctty = slave;
	s->out_fd = s->pty_fd;
	s->in_fd = r->want_stdin ? s->pty_fd : -1;
	if (ioctl(s->pty_fd, TIOCSWINSZ, &ws) < 0)
		return "TIOCSWINSZ";
	return NULL;
}

/* Pipes for stdin (with 'I'), stdout and stderr. */
static const char *open_pipes(struct session *s, const struct exec_req *r, int p[3][2],
			      struct child_fds *f)
{
	if ((r->want_stdin && pipe_for(p[0], 1) < 0) || pipe_for(p[1], 0) < 0 ||
	    pipe_for(p[2], 0) < 0) {
		for (int i = 0; i < 6; i++)
			if (p[i / 2][i % 2] >= 0)
				close(p[i / 2][i % 2]);
		return "pipe";
	}
	f->in = p[0][0];
	f->out = p[1][1];
	f->err = p[2][1];
	s->in_fd = p[0][1];
	s->out_fd = p[1][0];
	s->err_fd = p[2][0];
	return NULL;
}

/* vfork with environ set to the command's; the agent never reads environ. */
static pid_t spawn(const struct exec_req *r, const struct creds *c, const struct child_fds *f,
		   char **env, int conn)
{
	extern char **environ;
	char **saved = environ;
	pid_t pid;

	environ = env;
	pid = vfork();
	if (pid == 0)
		child_exec(r, c, f, conn);
	environ = saved;
	return pid;
}

/* Set up the stdio, the user and the environment, and start the command. */
static const char *exec_start(struct session *s, const struct exec_req *r)
{
	int p[3][2] = { { -1, -1 }, { -1, -1 }, { -1, -1 } };
	struct child_fds f = { -1, -1, -1, -1 };
	struct creds c = { 0 };
	char home_var[sizeof(c.home) + 8];
	const char *why;
	char **env;

	if (r->user)
		creds_resolve(r->user, s->hooks && s->hooks->passwd ? s->hooks->passwd : "/etc/passwd",
			      &c);
	why = r->tty ? open_pty(s, r, &f) : open_pipes(s, r, p, &f);
	env = why ? NULL : env_build(r, s->base_env, &c, home_var, sizeof(home_var));
	if (!why && !env)
		why = "environment";
	if (!why) {
		s->pid = spawn(r, &c, &f, env, s->fd);
		if (s->pid < 0) {
			s->pid = 0;
			why = "vfork";
		}
	}
	free(env);
	close_child_ends(&f);
	return why;
}

/* --- the running command ------------------------------------------------------ */

/*
 * Stdin the command can no longer take (it closed its end): drop it, and
 * acknowledge it as taken so the host's window stays open.
 */
static void stdin_gone(struct session *s)
{
	if (s->in_fd >= 0 && s->in_fd != s->pty_fd)
		close(s->in_fd);
	s->in_fd = -1;
	s->inq_off = s->inq_len = 0;
	s->ack_due += s->in_held;
	s->in_held = 0;
}

/* Write what the command's stdin takes now; 0, or -1 when it is gone. */
static ssize_t stdin_write(struct session *s, const uint8_t *p, size_t len)
{
	ssize_t n = write(s->in_fd, p, len);

	if (n >= 0)
		return n;
	if (errno == EAGAIN || errno == EINTR)
		return 0;
	stdin_gone(s);
	return -1;
}

/* After the end of input has been delivered: close the pipe. */
static void stdin_maybe_close(struct session *s)
{
	if (s->stdin_eof && s->inq_len == 0 && s->in_fd >= 0 && s->in_fd != s->pty_fd) {
		close(s->in_fd);
		s->in_fd = -1;
	}
}

static void inq_append(struct session *s, const uint8_t *p, size_t len)
{
	if (s->inq_off) {
		memmove(inq_buf, inq_buf + s->inq_off, s->inq_len - s->inq_off);
		s->inq_len -= s->inq_off;
		s->inq_off = 0;
	}
	memcpy(inq_buf + s->inq_len, p, len);
	s->inq_len += len;
}

/* Bytes for stdin: straight to the command when nothing waits before them. */
static void stdin_data(struct session *s, const uint8_t *p, size_t len)
{
	ssize_t n = 0;

	if (s->in_fd < 0) {
		s->ack_due += len;	/* nobody will read it: dropped */
		return;
	}
	/* Enter from a raw terminal is '\r': that ends a line too. */
	s->pty_mid_line = p[len - 1] != '\n' && p[len - 1] != '\r';
	if (s->inq_len == 0) {
		n = stdin_write(s, p, len);
		if (n < 0) {
			s->ack_due += len;
			return;
		}
		s->ack_due += (size_t)n;
	}
	if ((size_t)n < len) {
		inq_append(s, p + n, len - (size_t)n);
		s->in_held += len - (size_t)n;
	}
}

/*
 * End of input: a pipe is closed once drained; a pty gets its EOF character
 * instead, twice after a partial line (the first only ends the line).
 */
static void stdin_end(struct session *s)
{
	struct termios t;
	uint8_t eof[2];

	s->stdin_eof = 1;
	if (s->in_fd < 0)
		return;
	if (s->in_fd != s->pty_fd) {
		stdin_maybe_close(s);
		return;
	}
	eof[0] = eof[1] = tcgetattr(s->pty_fd, &t) == 0 ? t.c_cc[VEOF] : 4;
	if (s->inq_len == 0) {
		ssize_t n = stdin_write(s, eof, 1u + (unsigned)s->pty_mid_line);

		if (n < 0 || n == 1 + s->pty_mid_line)
			return;
		inq_append(s, eof + n, 1u + (unsigned)s->pty_mid_line - (size_t)n);
		return;
	}
	inq_append(s, eof, 1u + (unsigned)s->pty_mid_line);
}

/*
 * On a pty a job-control shell moves its foreground job into a group of
 * its own: a group signal is for that job too, as a terminal's ^C would be.
 */
static void pty_fg_kill(struct session *s, int sig)
{
	pid_t fg = s->pty_fd >= 0 ? tcgetpgrp(s->pty_fd) : -1;

	if (fg > 0 && fg != s->pid)
		kill(-fg, sig);
}

static void handle_signal(struct session *s, const struct agent_hdr *h, const uint8_t *p)
{
	uint32_t sig = agent_get32(p);

	if (sig < 1 || sig >= (uint32_t)NSIG) {
		send_error(s, AGENT_ERR_REQUEST, "signal %u out of range", sig);
		return;
	}
	/* A RUNCODE still waiting for its runtime: the call ends before its code runs. */
	if (s->pid <= 0) {
		if (!s->cancel_sig)
			s->cancel_sig = (int)sig;
		return;
	}
	if (s->exited)
		return;
	kill(h->flags & AGENT_SIGNAL_F_GROUP ? -s->pid : s->pid, (int)sig);
	if (h->flags & AGENT_SIGNAL_F_GROUP)
		pty_fg_kill(s, (int)sig);
}

/* One frame from the host while the command runs. */
static void handle_run_frame(struct session *s, const struct agent_hdr *h, const uint8_t *p)
{
	struct winsize ws;

	switch (h->type) {
	case AGENT_STDIN:
		if (!s->want_stdin || s->stdin_eof)
			send_error(s, AGENT_ERR_REQUEST, "STDIN %s",
				   s->want_stdin ? "after the end of input" : "without an 'I' record");
		else if (s->in_held + s->ack_due + h->len > AGENT_STDIN_WINDOW)
			/* It would not fit: a host that keeps to the window never gets here. */
			send_error(s, AGENT_ERR_REQUEST,
				   "stdin beyond the window: %zu bytes not acknowledged, %u more",
				   s->in_held + s->ack_due, h->len);
		else if (h->len == 0)
			stdin_end(s);
		else
			stdin_data(s, p, h->len);
		break;
	case AGENT_RESIZE:
		/* Without a pty there is nothing to resize: harmless, ignored. */
		if (s->pty_fd >= 0) {
			memset(&ws, 0, sizeof(ws));
			ws.ws_row = agent_get16(p);
			ws.ws_col = agent_get16(p + 2);
			ioctl(s->pty_fd, TIOCSWINSZ, &ws);
		}
		break;
	case AGENT_SIGNAL:
		handle_signal(s, h, p);
		break;
	case AGENT_ERROR:
		session_end(s, AGENT_END_ERROR);
		break;
	default:
		send_error(s, AGENT_ERR_REQUEST, "frame type %u while a command runs", h->type);
	}
}

/*
 * Handle every complete frame received, in order.  Stdin never has to wait
 * for room (the window), so neither does a SIGNAL behind it.  What is left
 * is part of one frame, which rx_buf holds whole: there is always room to
 * receive more.
 */
static void rx_process(struct session *s)
{
	struct agent_hdr h;

	while (s->end < 0 && frame_peek(s, &h) > 0) {
		handle_run_frame(s, &h, frame_payload(s));
		frame_consume(s, &h);
	}
}

/* Move pending stdin on. */
static void inq_flush(struct session *s)
{
	ssize_t n = stdin_write(s, inq_buf + s->inq_off, s->inq_len - s->inq_off);

	if (n > 0) {
		/* The payload goes before a pty's VEOFs, which are not acknowledged. */
		size_t taken = (size_t)n < s->in_held ? (size_t)n : s->in_held;

		s->in_held -= taken;
		s->ack_due += taken;
		s->inq_off += (size_t)n;
		if (s->inq_off == s->inq_len) {
			s->inq_off = s->inq_len = 0;
			stdin_maybe_close(s);
		}
	}
}

static void sock_input(struct session *s)
{
	ssize_t n = rx_recv(s, MSG_DONTWAIT);

	if (n == 0 || (n < 0 && errno != EAGAIN && errno != EINTR)) {
		session_end(s, AGENT_END_HANGUP);
		return;
	}
	rx_process(s);
}

static void tx_flush(struct session *s)
{
	ssize_t n = send(s->fd, tx_buf + s->tx_off, s->tx_len - s->tx_off,
			 MSG_DONTWAIT | MSG_NOSIGNAL);

	if (n < 0) {
		if (errno != EAGAIN && errno != EINTR)
			session_end(s, AGENT_END_HANGUP);
		return;
	}
	s->tx_off += (size_t)n;
	if (s->tx_off == s->tx_len)
		s->tx_off = s->tx_len = 0;
}

static void out_close(struct session *s, int *fdp)
{
	if (*fdp != s->pty_fd)
		close(*fdp);
	*fdp = -1;
}

/*
 * STDIN_ACK for what was taken since the last one: every STDIN_ACK_EVERY
 * bytes, and whenever nothing is left buffered, so the host never waits for
 * an ACK that would not come.  It goes out through tx_buf like output, when
 * no other frame is half sent.
 */
static void ack_maybe(struct session *s)
{
	if (s->tx_len || !s->ack_due || (s->ack_due < STDIN_ACK_EVERY && s->in_held))
		return;
	agent_hdr_pack(tx_buf, AGENT_STDIN_ACK, 0, 4);
	agent_put32(tx_buf + AGENT_HDR_SIZE, (uint32_t)s->ack_due);
	s->ack_due = 0;
	s->tx_off = 0;
	s->tx_len = AGENT_HDR_SIZE + 4;
	tx_flush(s);
}

/*
 * Read one chunk of output into tx_buf behind its header and start sending
 * it.  The bytes read, 0 for none yet, -1 at the end of the stream (fd
 * closed).
 */
static ssize_t out_read(struct session *s, int *fdp, uint8_t type, size_t max)
{
	ssize_t n = read(*fdp, tx_buf + AGENT_HDR_SIZE, max < AGENT_MAX_PAYLOAD ? max : AGENT_MAX_PAYLOAD);

	if (n > 0) {
		agent_hdr_pack(tx_buf, type, 0, (uint32_t)n);
		s->tx_off = 0;
		s->tx_len = AGENT_HDR_SIZE + (size_t)n;
		tx_flush(s);
		return n;
	}
	if (n < 0 && (errno == EAGAIN || errno == EINTR))
		return 0;
	/* EOF, or EIO: no process holds the pty's slave side any more. */
	out_close(s, fdp);
	return -1;
}

static void reap(struct session *s)
{
	struct signalfd_siginfo si;

	while (read(s->sig_fd, &si, sizeof(si)) > 0)
		;
	if (waitpid(s->pid, &s->wstatus, WNOHANG) == s->pid) {
		s->exited = 1;
		s->status = agent_exit_status(s->wstatus);
	}
}

/* RUNCODE: the code block, header first, for the interpreter as its code FIFO takes it. */
static void feed_flush(struct session *s)
{
	struct iovec iov[2];
	size_t code_off = s->feed_off < sizeof(s->feed_hdr) ? 0 : s->feed_off - sizeof(s->feed_hdr);
	int n = 0;
	ssize_t w;

	if (s->feed_off < sizeof(s->feed_hdr))
		iov[n++] = (struct iovec){ s->feed_hdr + s->feed_off, sizeof(s->feed_hdr) - s->feed_off };
	iov[n++] = (struct iovec){ (char *)s->feed + code_off, s->feed_len - sizeof(s->feed_hdr) - code_off };
	w = writev(s->in_fd, iov, n);
	if (w < 0 && (errno == EAGAIN || errno == EINTR))
		return;
	/* Nobody reads it any more: the interpreter is gone, which its keeper reports. */
	s->feed_off = w < 0 ? s->feed_len : s->feed_off + (size_t)w;
}

/* RUNCODE: the call's end, or its interpreter's, from the status FIFO. */
static void code_status(struct session *s)
{
	int ended;

	if (!runtime_read_status(&s->rt, &s->status, &ended, s->notice, sizeof(s->notice)))
		return;
	s->exited = 1;
	if (ended)
		s->exit_flags |= AGENT_EXIT_F_RUNTIME_ENDED;
}

enum { P_SOCK, P_SIG, P_IN, P_OUT, P_ERR, P_NR };

/* Pump stdio until the command exits or the session ends. */
static void pump(struct session *s)
{
	ack_maybe(s);
	while (!s->exited && s->end < 0) {
		struct pollfd p[P_NR] = {
			[P_SOCK] = { s->fd, POLLIN | POLLRDHUP, 0 },
			[P_SIG] = { s->code_on ? s->rt.status_fd : s->sig_fd, POLLIN, 0 },
			[P_IN] = { s->inq_len || s->feed_off < s->feed_len ? s->in_fd : -1, POLLOUT, 0 },
			[P_OUT] = { s->tx_len ? -1 : s->out_fd, POLLIN, 0 },
			[P_ERR] = { s->tx_len ? -1 : s->err_fd, POLLIN, 0 },
		};

		if (s->tx_len)
			p[P_SOCK].events |= POLLOUT;
		if (poll(p, P_NR, -1) < 0) {
			if (errno == EINTR)
				continue;
			send_error(s, AGENT_ERR_INTERNAL, "poll: %s", strerror(errno));
			return;
		}
		if (p[P_SOCK].revents & POLLOUT)
			tx_flush(s);
		if (p[P_OUT].revents && !s->tx_len && s->out_fd >= 0)
			out_read(s, &s->out_fd, AGENT_STDOUT, AGENT_MAX_PAYLOAD);
		if (p[P_ERR].revents && !s->tx_len && s->err_fd >= 0)
			out_read(s, &s->err_fd, AGENT_STDERR, AGENT_MAX_PAYLOAD);
		if (p[P_IN].revents && s->feed_off < s->feed_len)
			feed_flush(s);
		else if (p[P_IN].revents && s->inq_len && s->in_fd >= 0)
			inq_flush(s);
		if (p[P_SOCK].revents & ~POLLOUT)
			sock_input(s);
		if (p[P_SIG].revents && s->code_on)
			code_status(s);
		else if (p[P_SIG].revents)
			reap(s);
		ack_maybe(s);
	}
}

/*
 * What the output still holds when the command has exited: a pipe exactly
 * FIONREAD bytes (later writes belong to processes it left behind).
 */
static void drain(struct session *s, int *fdp, uint8_t type)
{
	int avail = 0;
	size_t left = PTY_DRAIN_MAX;

	if (*fdp < 0)
		return;
	if (*fdp != s->pty_fd)
		left = ioctl(*fdp, FIONREAD, &avail) == 0 && avail > 0 ? (size_t)avail : 0;
	while (left && s->end < 0) {
		ssize_t n = out_read(s, fdp, type, left);

		if (n <= 0 || tx_drain(s) < 0)
			break;
		left -= (size_t)n;
	}
}

/* The rest of the output, the streams' ends, then EXIT: the last frame. */
static void send_exit(struct session *s)
{
	uint8_t f[3 * AGENT_HDR_SIZE + 4];
	struct iovec iov = { f, sizeof(f) };

	if (tx_drain(s) < 0)
		return;
	/* What it took is acknowledged to the last byte, for a host that counts. */
	if (s->ack_due && send_u32(s, AGENT_STDIN_ACK, (uint32_t)s->ack_due) < 0)
		return;
	s->ack_due = 0;
	drain(s, &s->out_fd, AGENT_STDOUT);
	drain(s, &s->err_fd, AGENT_STDERR);
	if (s->end >= 0 || tx_drain(s) < 0)
		return;
	/* After the command's own stderr: the agent's word on how it ended. */
	if (s->notice[0] && send_frame(s, AGENT_STDERR, s->notice, (uint32_t)strlen(s->notice)) < 0)
		return;
	agent_hdr_pack(f, AGENT_STDOUT, 0, 0);
	agent_hdr_pack(f + AGENT_HDR_SIZE, AGENT_STDERR, 0, 0);
	agent_hdr_pack(f + 2 * AGENT_HDR_SIZE, AGENT_EXIT, s->exit_flags, 4);
	agent_put32(f + 3 * AGENT_HDR_SIZE, s->status);
	if (send_iov(s->fd, &iov, 1) < 0)
		session_end(s, AGENT_END_HANGUP);
	session_end(s, AGENT_END_EXIT);
}

/*
 * The first requests after a restore carry the host's clock and fresh random
 * bytes (S): taken before anything runs.  0, or -1 with the ERROR sent.
 */
static int session_restore(struct session *s, const char *rec)
{
	int e;

	if (!rec)
		return 0;
	e = s->hooks && s->hooks->restore ? s->hooks->restore(s->hooks->arg, rec) : -restored_apply(rec);
	if (!e)
		return 0;
	send_error(s, AGENT_ERR_INTERNAL, "cannot take the host's clock and random seed: %s", strerror(e));
	return -1;
}

/* EXEC: start the command, answer STARTED, pump, answer EXIT. */
static void run_exec(struct session *s, const struct agent_hdr *h)
{
	struct exec_req r;
	size_t bad_off;
	const char *why;
	int err = exec_parse((char *)frame_payload(s), h->len, &r, &why, &bad_off);

	if (err == -1) {
		send_error(s, AGENT_ERR_REQUEST, "EXEC record at offset %zu: %s", bad_off, why);
		return;
	}
	if (err < 0) {
		send_error(s, AGENT_ERR_INTERNAL, "EXEC: out of memory");
		return;
	}
	if (session_restore(s, r.restore) < 0) {
		free(r.argv);
		return;
	}
	s->want_stdin = r.want_stdin;
	why = exec_start(s, &r);
	free(r.argv);
	if (why) {
		send_error(s, AGENT_ERR_INTERNAL, "cannot start the command: %s: %s", why,
			   strerror(errno));
		return;
	}
	/* The argv pointed into this frame: only now may it go. */
	frame_consume(s, h);
	if (send_u32(s, AGENT_STARTED, (uint32_t)s->pid) < 0)
		return;
	/* The host may have sent stdin right behind the EXEC. */
	rx_process(s);
	pump(s);
	if (s->exited && s->end < 0)
		send_exit(s);
}

/*
 * Wait for the runtime's lock, handling the host's frames meanwhile: 0
 * held, 1 a SIGNAL came first (s->cancel_sig), -1 the session ended.
 */
static int code_lock(struct session *s, const struct runtime_def *def, const char *name)
{
	const char *root = s->hooks && s->hooks->runtime_dir ? s->hooks->runtime_dir : RUNTIME_DIR_DEFAULT;

	for (;;) {
		struct pollfd p = { s->fd, POLLIN | POLLRDHUP, 0 };
		int r = runtime_trylock(&s->rt, root, def);

		if (r < 0) {
			send_error(s, AGENT_ERR_RUNTIME, "the %s runtime's lock in %s: %s", name, root,
				   strerror(errno));
			return -1;
		}
		if (r == 0)
			return 0;
		if (poll(&p, 1, RUNTIME_LOCK_RETRY_MS) > 0)
			sock_input(s);
		if (s->end >= 0)
			return -1;
		if (s->cancel_sig)
			return 1;
	}
}

/* A SIGNAL came while the call waited for a busy runtime: the code never ran. */
static void code_cancelled(struct session *s, const char *name)
{
	snprintf(s->notice, sizeof(s->notice),
		 "msvmm: signal %d came while the %s runtime was busy with another call: the code did not run\n",
		 s->cancel_sig, name);
	s->exited = 1;
	s->status = AGENT_EXIT_SIGNALED | (uint32_t)s->cancel_sig;
	send_exit(s);
}

/* Reach the interpreter (starting it if need be) and set the session up to feed and pump it. */
static int code_attach(struct session *s, const struct code_req *r)
{
	const struct creds none = { 0 };
	char home_var[sizeof(none.home) + 8];
	char **env = env_build(&r->x, s->base_env, &none, home_var, sizeof(home_var));
	struct runtime_fds fds;
	const char *why = "environment";
	int err = ENOMEM;

	if (env) {
		why = runtime_attach(&s->rt, r->program, env, r->x.workdir, &fds, s->notice, sizeof(s->notice));
		err = errno;
		free(env);
	}
	if (why) {
		send_error(s, AGENT_ERR_RUNTIME, "cannot start the %s runtime: %s: %s", r->runtime, why,
			   strerror(err));
		return -1;
	}
	s->pid = s->rt.pid;
	s->in_fd = fds.code;
	s->out_fd = fds.out;
	s->err_fd = fds.err;
	/* After a restore the interpreter's own generator is reseeded too (runtime.h). */
	agent_put32(s->feed_hdr, (uint32_t)r->code_len | (r->x.restore ? RUNTIME_F_RESEED : 0));
	s->feed = r->code;
	s->feed_len = sizeof(s->feed_hdr) + r->code_len;
	return 0;
}

/*
 * RUNCODE: take the runtime (waiting while another call has it), start its
 * interpreter if need be, feed it the code, pump its output, answer EXIT.
 */
static void run_code(struct session *s, const struct agent_hdr *h)
{
	const struct runtime_def *def;
	struct code_req r = { 0 };
	char names[128];
	size_t bad_off;
	const char *why;
	int err;

	/* A copy: frames are read on while the call waits, and the code is fed from it. */
	s->code_req = malloc(h->len);
	if (!s->code_req) {
		send_error(s, AGENT_ERR_INTERNAL, "RUNCODE: out of memory");
		return;
	}
	memcpy(s->code_req, frame_payload(s), h->len);
	frame_consume(s, h);
	err = code_parse(s->code_req, h->len, &r, &why, &bad_off);
	if (err == -1)
		send_error(s, AGENT_ERR_REQUEST, "RUNCODE record at offset %zu: %s", bad_off, why);
	else if (err < 0)
		send_error(s, AGENT_ERR_INTERNAL, "RUNCODE: out of memory");
	if (err)
		return;
	if (session_restore(s, r.x.restore) < 0)
		goto out;
	def = runtime_find(r.runtime);
	if (!def) {
		runtime_names(names, sizeof(names));
		send_error(s, AGENT_ERR_RUNTIME, "no runtime '%s' here (there is: %s)", r.runtime, names);
		goto out;
	}
	runtime_call_init(&s->rt);
	s->code_on = 1;
	err = code_lock(s, def, r.runtime);
	if (err > 0)
		code_cancelled(s, r.runtime);
	if (err || code_attach(s, &r) < 0 || send_u32(s, AGENT_STARTED, (uint32_t)s->pid) < 0)
		goto out;
	/* Why the state is gone, before anything the code writes. */
	if (s->notice[0] && send_frame(s, AGENT_STDERR, s->notice, (uint32_t)strlen(s->notice)) < 0)
		goto out;
	s->notice[0] = '\0';
	rx_process(s);
	pump(s);
	if (s->exited && s->end < 0)
		send_exit(s);
out:
	free(r.x.argv);
}

/* HELLO both ways, then one EXEC, RUNCODE or SHUTDOWN. */
static void session_run(struct session *s)
{
	struct agent_hdr h;
	uint32_t v;

	if (frame_wait(s, &h) < 0)
		return;
	if (h.type != AGENT_HELLO) {
		if (h.type == AGENT_ERROR)
			session_end(s, AGENT_END_ERROR);
		else
			send_error(s, AGENT_ERR_REQUEST, "expected HELLO, got frame type %u", h.type);
		return;
	}
	v = agent_get32(frame_payload(s));
	if (v != AGENT_PROTO_VERSION) {
		send_error(s, AGENT_ERR_VERSION, "protocol version %u not supported, only %u", v,
			   AGENT_PROTO_VERSION);
		return;
	}
	frame_consume(s, &h);
	if (send_u32(s, AGENT_HELLO, AGENT_PROTO_VERSION) < 0 || frame_wait(s, &h) < 0)
		return;
	switch (h.type) {
	case AGENT_EXEC:
		run_exec(s, &h);
		break;
	case AGENT_RUNCODE:
		run_code(s, &h);
		break;
	case AGENT_SHUTDOWN:
		if (s->hooks && s->hooks->shutdown)
			s->hooks->shutdown(s->hooks->arg);
		session_end(s, AGENT_END_SHUTDOWN);
		break;
	case AGENT_ERROR:
		session_end(s, AGENT_END_ERROR);
		break;
	default:
		send_error(s, AGENT_ERR_REQUEST, "expected EXEC, RUNCODE or SHUTDOWN, got frame type %u",
			   h.type);
	}
}

/*
 * A command still running when the session ends dies with its group.  A
 * runtime's interpreter outlives its calls: an unfinished one is interrupted.
 */
static void session_cleanup(struct session *s)
{
	if (s->code_on)
		runtime_release(&s->rt, s->out_fd, s->err_fd);
	else if (s->pid > 0 && !s->exited) {
		pty_fg_kill(s, SIGKILL);
		if (kill(-s->pid, SIGKILL) < 0)
			kill(s->pid, SIGKILL);
		while (waitpid(s->pid, NULL, 0) < 0 && errno == EINTR)
			;
	}
	if (s->in_fd >= 0 && s->in_fd != s->pty_fd)
		close(s->in_fd);
	if (s->out_fd >= 0 && s->out_fd != s->pty_fd)
		close(s->out_fd);
	if (s->err_fd >= 0)
		close(s->err_fd);
	if (s->pty_fd >= 0)
		close(s->pty_fd);
	if (s->sig_fd >= 0)
		close(s->sig_fd);
	free(s->code_req);
	close(s->fd);
}

enum agent_end agent_session(int fd, char *const *base_env, const struct agent_hooks *hooks)
{
	struct session s = {
		.fd = fd, .hooks = hooks, .base_env = base_env, .end = -1,
		.sig_fd = -1, .pty_fd = -1, .in_fd = -1, .out_fd = -1, .err_fd = -1,
	};
	const struct timespec zero = { 0, 0 };
	sigset_t block, old, chld, pipe_only;

	/* SIGCHLD arrives through the signalfd; EPIPE is handled where it happens. */
	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	block = chld;
	sigaddset(&block, SIGPIPE);
	sigprocmask(SIG_BLOCK, &block, &old);
	s.sig_fd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
	if (s.sig_fd < 0)
		send_error(&s, AGENT_ERR_INTERNAL, "signalfd: %s", strerror(errno));
	else
		session_run(&s);
	session_cleanup(&s);
	/* A SIGPIPE left pending by a write to a closed stdin must not fire now. */
	sigemptyset(&pipe_only);
	sigaddset(&pipe_only, SIGPIPE);
	sigtimedwait(&pipe_only, NULL, &zero);
	sigprocmask(SIG_SETMASK, &old, NULL);
	return (enum agent_end)s.end;
}

/* --- the listener ------------------------------------------------------------ */

/* Reap sessions and, as PID 1, every orphan: commands' leftovers end up here. */
static void reap_all(int sig_fd)
{
	struct signalfd_siginfo si;

	while (read(sig_fd, &si, sizeof(si)) > 0)
		;
	while (waitpid(-1, NULL, WNOHANG) > 0)
		;
}

static void accept_one(int lfd, int sig_fd, char *const *base_env,
		       const struct agent_hooks *hooks)
{
	int conn = accept4(lfd, NULL, NULL, SOCK_CLOEXEC);
	pid_t pid;

	if (conn < 0)
		return;
	pid = fork();
	if (pid == 0) {
		close(lfd);
		close(sig_fd);
		_exit(agent_session(conn, base_env, hooks));
	}
	if (pid < 0) {
		/* Tell the host why instead of a bare close; best effort. */
		uint8_t f[AGENT_HDR_SIZE + 4 + 128];
		int n = snprintf((char *)f + AGENT_HDR_SIZE + 4, 128, "cannot fork a session: %s", strerror(errno));

		n = n < 0 ? 0 : n > 127 ? 127 : n;
		agent_hdr_pack(f, AGENT_ERROR, 0, 4 + (uint32_t)n);
		agent_put32(f + AGENT_HDR_SIZE, AGENT_ERR_INTERNAL);
		(void)!send(conn, f, AGENT_HDR_SIZE + 4 + (size_t)n, MSG_DONTWAIT | MSG_NOSIGNAL);
	}
	close(conn);
}

int agent_serve(int lfd, char *const *base_env, const struct agent_hooks *hooks)
{
	sigset_t chld;
	int sig_fd;

	sigemptyset(&chld);
	sigaddset(&chld, SIGCHLD);
	if (sigprocmask(SIG_BLOCK, &chld, NULL) < 0)
		return -1;
	sig_fd = signalfd(-1, &chld, SFD_NONBLOCK | SFD_CLOEXEC);
	if (sig_fd < 0)
		return -1;
	if (hooks && hooks->ready)
		hooks->ready(hooks->arg);
	for (;;) {
		struct pollfd p[2] = { { lfd, POLLIN, 0 }, { sig_fd, POLLIN, 0 } };

		if (poll(p, 2, -1) < 0) {
			if (errno == EINTR)
				continue;
			close(sig_fd);
			return -1;
		}
		if (p[1].revents)
			reap_all(sig_fd);
		if (p[0].revents)
			accept_one(lfd, sig_fd, base_env, hooks);
	}
}

int agent_listen_loop(char *const *base_env, const struct agent_hooks *hooks)
{
	struct sockaddr_vm addr = {
		.svm_family = AF_VSOCK, .svm_port = AGENT_PORT, .svm_cid = VMADDR_CID_ANY,
	};
	/* Non-blocking: a connection reset between poll and accept must not block PID 1. */
	int fd = socket(AF_VSOCK, SOCK_STREAM | SOCK_CLOEXEC | SOCK_NONBLOCK, 0);
	int err;

	if (fd < 0)
		return -1;
	/* agent_serve() returns only on failure. */
	if (bind(fd, (struct sockaddr *)&addr, sizeof(addr)) == 0 && listen(fd, 64) == 0)
		agent_serve(fd, base_env, hooks);
	err = errno;
	close(fd);
	errno = err;
	return -1;
}
