/*
 * c_echo: a C echo server, the floor the Python servers are compared with.
 *
 * Level-triggered epoll (kqueue on the BSDs) through ../loadgen/evloop.h: read into one
 * shared 64 KiB buffer, send at once, keep what the kernel did not take and stop
 * reading that connection until it is flushed. Prints "listening on HOST:PORT"
 * once bound; SIGTERM or SIGINT closes everything and exits 0.
 *
 * Usage: c_echo [--host 127.0.0.1] [--port 0]
 */
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <unistd.h>

#include "../loadgen/evloop.h"

#define BUFFER_SIZE (64 * 1024)
#define LISTENER_TOKEN UINT64_MAX

struct pending {
    unsigned char *data; /* bytes the kernel did not take yet, or NULL */
    size_t length;
    size_t offset;
};

static volatile sig_atomic_t stopping;
static struct pending *pending; /* indexed by descriptor number */
static int max_fd;
static unsigned char buffer[BUFFER_SIZE];
static struct evloop loop;

static void on_signal(int sig) {
    (void)sig;
    stopping = 1;
}

static void close_conn(int fd) {
    int writing = pending[fd].data != NULL;
    ev_set(&loop, fd, (uint64_t)fd, 0, 0, !writing, writing);
    free(pending[fd].data);
    pending[fd].data = NULL;
    close(fd);
}

/* Send what is pending on fd; returns 1 when nothing is left. */
static int flush_pending(int fd) {
    struct pending *p = &pending[fd];
    while (p->offset < p->length) {
        ssize_t n = send(fd, p->data + p->offset, p->length - p->offset, MSG_NOSIGNAL);
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return 0;
            if (errno == EINTR) continue;
            return -1;
        }
        p->offset += (size_t)n;
    }
    free(p->data);
    p->data = NULL;
    return 1;
}

static void on_readable(int fd) {
    ssize_t n = recv(fd, buffer, sizeof buffer, 0);
    ssize_t sent = 0;
    if (n <= 0) {
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK || errno == EINTR)) return;
        close_conn(fd);
        return;
    }
    while (sent < n) {
        ssize_t done = send(fd, buffer + sent, (size_t)(n - sent), MSG_NOSIGNAL);
        if (done < 0) {
            if (errno == EINTR) continue;
            if (errno != EAGAIN && errno != EWOULDBLOCK) {
                close_conn(fd);
                return;
            }
            break;
        }
        sent += done;
    }
    if (sent < n) { /* keep the rest, stop reading until it is gone */
        pending[fd].length = (size_t)(n - sent);
        pending[fd].offset = 0;
        pending[fd].data = malloc(pending[fd].length);
        if (!pending[fd].data) {
            close_conn(fd);
            return;
        }
        memcpy(pending[fd].data, buffer + sent, pending[fd].length);
        ev_set(&loop, fd, (uint64_t)fd, 0, 1, 1, 0);
    }
}

static void on_writable(int fd) {
    int done = flush_pending(fd);
    if (done < 0) close_conn(fd);
    else if (done) ev_set(&loop, fd, (uint64_t)fd, 1, 0, 0, 1);
}

static void accept_batch(int listener) {
    int i, one = 1;
    for (i = 0; i < 64; i++) {
        int fd = accept(listener, NULL, NULL);
        if (fd < 0) return; /* EAGAIN, or EMFILE and friends: try again on the next event */
        if (fd >= max_fd) {
            close(fd);
            continue;
        }
        fcntl(fd, F_SETFL, fcntl(fd, F_GETFL, 0) | O_NONBLOCK);
        setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
        if (ev_set(&loop, fd, (uint64_t)fd, 1, 0, 0, 0) < 0) close(fd);
    }
}

int main(int argc, char **argv) {
    const char *host = "127.0.0.1";
    int port = 0, listener, one = 1, i;
    struct sockaddr_in address;
    socklen_t length = sizeof address;
    struct rlimit limit;
    struct ev_ready ready[512];
    struct sigaction action;

    for (i = 1; i + 1 < argc; i += 2) {
        if (!strcmp(argv[i], "--host")) host = argv[i + 1];
        else if (!strcmp(argv[i], "--port")) port = atoi(argv[i + 1]);
        else break;
    }
    if (i < argc) {
        fprintf(stderr, "usage: c_echo [--host 127.0.0.1] [--port 0]\n");
        return 2;
    }
    if (getrlimit(RLIMIT_NOFILE, &limit) == 0 && limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
    }
    getrlimit(RLIMIT_NOFILE, &limit);
    max_fd = limit.rlim_cur == RLIM_INFINITY || limit.rlim_cur > 1048576 ? 1048576 : (int)limit.rlim_cur;
    pending = calloc((size_t)max_fd, sizeof *pending);

    memset(&action, 0, sizeof action);
    action.sa_handler = on_signal; /* no SA_RESTART: the wait returns EINTR */
    sigaction(SIGTERM, &action, NULL);
    sigaction(SIGINT, &action, NULL);
    signal(SIGPIPE, SIG_IGN);

    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_port = htons((uint16_t)port);
    if (!pending || inet_pton(AF_INET, host, &address.sin_addr) != 1) {
        fprintf(stderr, "c_echo: bad host %s (IPv4 only) or out of memory\n", host);
        return 2;
    }
    listener = socket(AF_INET, SOCK_STREAM, 0);
    setsockopt(listener, SOL_SOCKET, SO_REUSEADDR, &one, sizeof one);
    if (listener < 0 || bind(listener, (struct sockaddr *)&address, sizeof address) < 0 ||
        listen(listener, 1024) < 0 || getsockname(listener, (struct sockaddr *)&address, &length) < 0) {
        fprintf(stderr, "c_echo: cannot listen on %s:%d: %s\n", host, port, strerror(errno));
        return 1;
    }
    fcntl(listener, F_SETFL, fcntl(listener, F_GETFL, 0) | O_NONBLOCK);
    if (ev_open(&loop, max_fd) < 0 || ev_set(&loop, listener, LISTENER_TOKEN, 1, 0, 0, 0) < 0) {
        fprintf(stderr, "c_echo: cannot set up the event loop: %s\n", strerror(errno));
        return 1;
    }
    printf("listening on %s:%d\n", host, ntohs(address.sin_port));
    fflush(stdout);

    while (!stopping) {
        int n = ev_wait(&loop, ready, 512, -1);
        if (n < 0) {
            if (errno == EINTR) continue;
            perror("c_echo: wait");
            return 1;
        }
        for (i = 0; i < n; i++) {
            uint64_t token = ready[i].token;
            int fd = (int)token;
            if (token == LISTENER_TOKEN) {
                accept_batch(listener);
                continue;
            }
            if (ready[i].writable && pending[fd].data) on_writable(fd);
            else if (ready[i].readable && !pending[fd].data) on_readable(fd);
        }
    }
    for (i = 0; i < max_fd; i++)
        if (pending[i].data) free(pending[i].data);
    close(listener);
    return 0;
}
