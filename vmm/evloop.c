// SPDX-License-Identifier: Apache-2.0
#include "evloop.h"

#include <errno.h>
#include <string.h>
#include <sys/epoll.h>
#include <sys/eventfd.h>
#include <unistd.h>

#define EVLOOP_BATCH 16

int evloop_init(struct evloop *l)
{
	struct epoll_event ev = { .events = EPOLLIN, .data.ptr = NULL };

	memset(l, 0, sizeof(*l));
	pthread_mutex_init(&l->run_lock, NULL);
	l->wake_fd = -1;
	l->epfd = epoll_create1(EPOLL_CLOEXEC);
	if (l->epfd < 0)
		return -errno;
	l->wake_fd = eventfd(0, EFD_CLOEXEC | EFD_NONBLOCK);
	if (l->wake_fd < 0 || epoll_ctl(l->epfd, EPOLL_CTL_ADD, l->wake_fd, &ev) < 0) {
		int e = errno;

		evloop_destroy(l);
		return -e;
	}
	return 0;
}

int evloop_add(struct evloop *l, int fd, uint32_t events, evloop_fn fn, void *opaque)
{
	struct epoll_event ev = { .events = events };

	if (l->nr == EVLOOP_MAX_HANDLERS || l->started)
		return -EINVAL;
	l->handlers[l->nr] = (struct evloop_handler){ fd, fn, opaque };
	ev.data.ptr = &l->handlers[l->nr];
	if (epoll_ctl(l->epfd, EPOLL_CTL_ADD, fd, &ev) < 0)
		return -errno;
	l->nr++;
	return 0;
}

static void *evloop_thread(void *p)
{
	struct evloop *l = p;
	struct epoll_event evs[EVLOOP_BATCH];

	while (!atomic_load(&l->stop)) {
		int n = epoll_wait(l->epfd, evs, EVLOOP_BATCH, -1);

		pthread_mutex_lock(&l->run_lock);
		for (int i = 0; i < n; i++) {
			struct evloop_handler *h = evs[i].data.ptr;

			if (h)
				h->fn(h->opaque, evs[i].events);
		}
		pthread_mutex_unlock(&l->run_lock);
	}
	return NULL;
}

int evloop_start(struct evloop *l)
{
	int rc = pthread_create(&l->thread, NULL, evloop_thread, l);

	if (rc)
		return -rc;
	l->started = 1;
	return 0;
}

void evloop_pause(struct evloop *l)
{
	pthread_mutex_lock(&l->run_lock);
}

void evloop_resume(struct evloop *l)
{
	pthread_mutex_unlock(&l->run_lock);
}

void evloop_stop(struct evloop *l)
{
	uint64_t one = 1;

	if (!l->started)
		return;
	atomic_store(&l->stop, 1);
	if (write(l->wake_fd, &one, sizeof(one)) < 0) {
		/* The counter cannot overflow from one write; nothing else can fail here. */
	}
	pthread_join(l->thread, NULL);
	l->started = 0;
}

void evloop_destroy(struct evloop *l)
{
	evloop_stop(l);
	if (l->wake_fd >= 0)
		close(l->wake_fd);
	if (l->epfd >= 0)
		close(l->epfd);
	l->wake_fd = l->epfd = -1;
	pthread_mutex_destroy(&l->run_lock);
}
