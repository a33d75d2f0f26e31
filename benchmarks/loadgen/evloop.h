/*
 * evloop.h: a tiny level-triggered readiness shim shared by the benchmark's C
 * programs (loadgen.c and peers/c_echo.c).
 *
 * epoll on Linux, kqueue on FreeBSD and the other BSDs, poll(2) elsewhere or
 * when compiled with -DEV_USE_POLL (to measure whether plain poll keeps up).
 * Each descriptor carries a caller token; ev_wait() fills `struct ev_ready`
 * with the token and what is ready. kqueue may report one descriptor twice in
 * a batch (one event per filter): callers handle read and write independently.
 */
#ifndef BENCH_EVLOOP_H
#define BENCH_EVLOOP_H

#include <errno.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#if !defined(EV_USE_POLL) && defined(__linux__)
#define EV_USE_EPOLL 1
#include <sys/epoll.h>
#define EV_BACKEND "epoll"
#elif !defined(EV_USE_POLL) && (defined(__FreeBSD__) || defined(__NetBSD__) || \
                                defined(__OpenBSD__) || defined(__DragonFly__) || defined(__APPLE__))
#define EV_USE_KQUEUE 1
#include <sys/types.h>
#include <sys/event.h>
#include <sys/time.h>
#define EV_BACKEND "kqueue"
#else
#ifndef EV_USE_POLL
#define EV_USE_POLL 1
#endif
#include <poll.h>
#define EV_BACKEND "poll"
#endif

struct ev_ready {
    uint64_t token;
    int readable;
    int writable;
    int failed; /* hang-up or error reported by the kernel */
};

struct evloop {
#if defined(EV_USE_EPOLL) || defined(EV_USE_KQUEUE)
    int kfd;
#else
    struct pollfd *fds;   /* dense array of watched descriptors */
    uint64_t *tokens;     /* token of fds[i] */
    int *slot_of;         /* descriptor number -> index in fds, or -1 */
    int count;
    int capacity;         /* max descriptor number + 1 */
#endif
};

/* Open a loop able to watch descriptors below max_fd. 0 on success. */
static int ev_open(struct evloop *ev, int max_fd) {
#if defined(EV_USE_EPOLL)
    (void)max_fd;
    ev->kfd = epoll_create1(EPOLL_CLOEXEC);
    return ev->kfd < 0 ? -1 : 0;
#elif defined(EV_USE_KQUEUE)
    (void)max_fd;
    ev->kfd = kqueue();
    return ev->kfd < 0 ? -1 : 0;
#else
    int i;
    ev->capacity = max_fd;
    ev->count = 0;
    ev->fds = calloc((size_t)max_fd, sizeof *ev->fds);
    ev->tokens = calloc((size_t)max_fd, sizeof *ev->tokens);
    ev->slot_of = malloc((size_t)max_fd * sizeof *ev->slot_of);
    if (!ev->fds || !ev->tokens || !ev->slot_of) return -1;
    for (i = 0; i < max_fd; i++) ev->slot_of[i] = -1;
    return 0;
#endif
}

#if defined(EV_USE_KQUEUE)
static int ev_kq_change(struct evloop *ev, int fd, int filter, int on, uint64_t token) {
    struct kevent change;
    EV_SET(&change, fd, filter, on ? EV_ADD : EV_DELETE, 0, 0, (void *)(uintptr_t)token);
    if (kevent(ev->kfd, &change, 1, NULL, 0, NULL) < 0 && !(errno == ENOENT && !on)) return -1;
    return 0;
}
#endif

/*
 * Set the interest of fd to (want_read, want_write); was_read/was_write is
 * the interest it had (both 0 if it is not watched yet). 0 on success.
 */
static int ev_set(struct evloop *ev, int fd, uint64_t token, int want_read, int want_write,
                  int was_read, int was_write) {
#if defined(EV_USE_EPOLL)
    struct epoll_event event;
    int op;
    memset(&event, 0, sizeof event);
    event.events = (want_read ? EPOLLIN : 0) | (want_write ? EPOLLOUT : 0);
    event.data.u64 = token;
    if (!was_read && !was_write) op = EPOLL_CTL_ADD;
    else if (!want_read && !want_write) op = EPOLL_CTL_DEL;
    else op = EPOLL_CTL_MOD;
    if (!was_read && !was_write && !want_read && !want_write) return 0;
    return epoll_ctl(ev->kfd, op, fd, &event);
#elif defined(EV_USE_KQUEUE)
    if (want_read != was_read && ev_kq_change(ev, fd, EVFILT_READ, want_read, token) < 0) return -1;
    if (want_write != was_write && ev_kq_change(ev, fd, EVFILT_WRITE, want_write, token) < 0)
        return -1;
    return 0;
#else
    int slot;
    short events = (short)((want_read ? POLLIN : 0) | (want_write ? POLLOUT : 0));
    (void)was_read;
    (void)was_write;
    if (fd < 0 || fd >= ev->capacity) {
        errno = EINVAL;
        return -1;
    }
    slot = ev->slot_of[fd];
    if (!events) {
        if (slot >= 0) { /* move the last entry into the hole */
            int last = --ev->count;
            ev->fds[slot] = ev->fds[last];
            ev->tokens[slot] = ev->tokens[last];
            ev->slot_of[ev->fds[slot].fd] = slot;
            ev->slot_of[fd] = -1;
        }
        return 0;
    }
    if (slot < 0) {
        slot = ev->count++;
        ev->slot_of[fd] = slot;
        ev->fds[slot].fd = fd;
    }
    ev->fds[slot].events = events;
    ev->tokens[slot] = token;
    return 0;
#endif
}

/* Wait up to timeout_ms for readiness; returns the number of entries filled, or -1. */
static int ev_wait(struct evloop *ev, struct ev_ready *out, int max, int timeout_ms) {
#if defined(EV_USE_EPOLL)
    struct epoll_event events[512];
    int n, i;
    if (max > 512) max = 512;
    n = epoll_wait(ev->kfd, events, max, timeout_ms);
    for (i = 0; i < n; i++) {
        out[i].token = events[i].data.u64;
        out[i].readable = (events[i].events & (EPOLLIN | EPOLLHUP | EPOLLERR)) != 0;
        out[i].writable = (events[i].events & (EPOLLOUT | EPOLLERR)) != 0;
        out[i].failed = (events[i].events & (EPOLLHUP | EPOLLERR)) != 0;
    }
    return n;
#elif defined(EV_USE_KQUEUE)
    struct kevent events[512];
    struct timespec timeout;
    int n, i;
    if (max > 512) max = 512;
    timeout.tv_sec = timeout_ms / 1000;
    timeout.tv_nsec = (long)(timeout_ms % 1000) * 1000000L;
    n = kevent(ev->kfd, NULL, 0, events, max, timeout_ms < 0 ? NULL : &timeout);
    for (i = 0; i < n; i++) {
        out[i].token = (uint64_t)(uintptr_t)events[i].udata;
        out[i].readable = events[i].filter == EVFILT_READ;
        out[i].writable = events[i].filter == EVFILT_WRITE;
        out[i].failed = (events[i].flags & (EV_EOF | EV_ERROR)) != 0;
    }
    return n;
#else
    int n, i, filled = 0;
    n = poll(ev->fds, (nfds_t)ev->count, timeout_ms);
    if (n <= 0) return n;
    for (i = 0; i < ev->count && filled < max; i++) {
        short revents = ev->fds[i].revents;
        if (!revents) continue;
        out[filled].token = ev->tokens[i];
        out[filled].readable = (revents & (POLLIN | POLLHUP | POLLERR)) != 0;
        out[filled].writable = (revents & (POLLOUT | POLLERR)) != 0;
        out[filled].failed = (revents & (POLLHUP | POLLERR | POLLNVAL)) != 0;
        filled++;
    }
    return filled;
#endif
}

#endif /* BENCH_EVLOOP_H */
