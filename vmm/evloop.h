/* SPDX-License-Identifier: Apache-2.0 */
/*
 * The device event loop: one thread per VM waiting in epoll on the fds that
 * carry device work (queue-notify ioeventfds, backend sockets), so device
 * processing never runs on a vCPU thread.
 */
#ifndef MSVMM_EVLOOP_H
#define MSVMM_EVLOOP_H

#include <pthread.h>
#include <stdatomic.h>
#include <stdint.h>

#define EVLOOP_MAX_HANDLERS 64

typedef void (*evloop_fn)(void *opaque, uint32_t events);

struct evloop_handler {
	int fd;
	evloop_fn fn;
	void *opaque;
};

struct evloop {
	int epfd;
	int wake_fd;     /* eventfd that interrupts epoll_wait for stop */
	pthread_t thread;
	int started;
	_Atomic int stop;
	/* Held by the loop thread while it runs handlers: evloop_pause() takes it. */
	pthread_mutex_t run_lock;
	struct evloop_handler handlers[EVLOOP_MAX_HANDLERS];
	unsigned int nr;
};

int evloop_init(struct evloop *l);
/* Watch fd for 'events' (EPOLLIN...); fn runs on the loop thread.  Before start only. */
int evloop_add(struct evloop *l, int fd, uint32_t events, evloop_fn fn, void *opaque);
int evloop_start(struct evloop *l);
/*
 * Keep the loop thread out of every handler until evloop_resume() (a
 * snapshot needs the devices still): returns once no handler runs.
 */
void evloop_pause(struct evloop *l);
void evloop_resume(struct evloop *l);
/* Stop and join the thread (idempotent). */
void evloop_stop(struct evloop *l);
void evloop_destroy(struct evloop *l);

#endif
