/*
 * loadgen: the echo benchmark's load generator.
 *
 * Opens N active connections to HOST:PORT (plus I idle ones), keeps D messages
 * of S bytes in flight on each active connection, runs a warm-up and then a
 * measured window of fixed duration, and verifies every byte that comes back
 * against the pattern that was sent. Then it stops queueing, drains what is in
 * flight, and prints one JSON object on the last line of stdout:
 * round trips/s, MB/s, latency percentiles, errors, bytes, its own CPU time.
 *
 * It prints "MARK window-start" and "MARK window-end" lines (flushed) at the
 * edges of the measured window, so that a driver can sample the server's CPU
 * time over exactly that window. With --sync 1 it then waits for one byte on
 * stdin (the driver's "sampled") before it starts the window's clock and
 * traffic, or goes on to drain: a driver that is slow to read the mark (a busy
 * machine, or real-time load beside it) still samples at the window's edges.
 * The run is always bounded: a hard deadline (--deadline) ends it with an
 * error, and alarm() backs that up.
 *
 * Usage: loadgen --port P [--host 127.0.0.1] [--connections N] [--depth D]
 *                [--size S] [--warmup W] [--duration T] [--idle I]
 *                [--deadline SECONDS]
 */
#define _GNU_SOURCE 1
#include <arpa/inet.h>
#include <errno.h>
#include <fcntl.h>
#include <inttypes.h>
#include <netinet/in.h>
#include <netinet/tcp.h>
#include <signal.h>
#include <stdarg.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/time.h>
#include <time.h>
#include <unistd.h>

#include "evloop.h"

#define PERIOD 65521u          /* prime: the pattern repeats off message boundaries */
#define CHUNK (256u * 1024u)   /* largest single send/recv */
#define MAX_ERRORS_KEPT 8
#define IDLE_BATCH 100

/* ---- latency histogram: log-linear, 128 sub-buckets per octave (<0.8% error) ---- */
#define SUB_BITS 7
#define SUB_COUNT (1u << SUB_BITS)
#define HIST_BUCKETS (2u * SUB_COUNT + 56u * SUB_COUNT)

static uint64_t hist[HIST_BUCKETS];
static uint64_t hist_count, hist_max;
static double hist_sum;

static unsigned hist_index(uint64_t v) {
    unsigned msb, shift;
    if (v < 2 * SUB_COUNT) return (unsigned)v;
    msb = 63u - (unsigned)__builtin_clzll(v);
    shift = msb - SUB_BITS;
    return 2 * SUB_COUNT + (msb - SUB_BITS - 1) * SUB_COUNT + (unsigned)((v >> shift) - SUB_COUNT);
}

static double hist_value(unsigned index) {
    unsigned octave, shift;
    uint64_t mantissa;
    if (index < 2 * SUB_COUNT) return (double)index;
    octave = (index - 2 * SUB_COUNT) / SUB_COUNT;
    mantissa = (index - 2 * SUB_COUNT) % SUB_COUNT + SUB_COUNT;
    shift = octave + 1;
    return (double)(mantissa << shift) + (double)(1ull << shift) / 2.0; /* bucket middle */
}

static void hist_record(uint64_t ns) {
    hist[hist_index(ns)]++;
    hist_count++;
    hist_sum += (double)ns;
    if (ns > hist_max) hist_max = ns;
}

static double hist_percentile(double fraction) {
    uint64_t rank, seen = 0;
    unsigned i;
    if (!hist_count) return 0.0;
    rank = (uint64_t)(fraction * (double)hist_count);
    if (rank >= hist_count) rank = hist_count - 1;
    for (i = 0; i < HIST_BUCKETS; i++) {
        seen += hist[i];
        if (seen > rank) {
            double value = hist_value(i);
            return value > (double)hist_max ? (double)hist_max : value;
        }
    }
    return (double)hist_max;
}

/* ---- options ---- */
struct options {
    const char *host;
    int port;
    int connections;
    int depth;
    long size;
    double warmup;
    double duration;
    int idle;
    double deadline;
    int sync;
};

/* ---- state ---- */
struct conn {
    int fd;
    int want_write;
    int failed;
    uint32_t pattern_offset;
    uint64_t queued;     /* bytes of messages queued so far */
    uint64_t sent;       /* bytes handed to the kernel */
    uint64_t received;   /* bytes received and verified */
    uint64_t completed;  /* messages whose echo has fully arrived */
    uint64_t *sent_at;   /* ring of depth send times (ns), by message number */
};

static unsigned char *pattern; /* PERIOD + CHUNK bytes: any CHUNK-long run is contiguous */
static unsigned char *recv_buffer;
static struct conn *conns;
static struct evloop loop;
static struct options opt;
static int error_count;
static char error_log[MAX_ERRORS_KEPT][160];
static int queueing = 1;       /* 0 once the window is over: drain only */
static int in_window;          /* completions now count */
static uint64_t window_round_trips, window_bytes;

static uint64_t now_ns(void) {
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000ull + (uint64_t)ts.tv_nsec;
}

static double cpu_seconds(void) {
    struct rusage usage;
    getrusage(RUSAGE_SELF, &usage);
    return (double)usage.ru_utime.tv_sec + (double)usage.ru_utime.tv_usec / 1e6 +
           (double)usage.ru_stime.tv_sec + (double)usage.ru_stime.tv_usec / 1e6;
}

static void report_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
static void report_error(const char *fmt, ...) {
    va_list args;
    if (error_count < MAX_ERRORS_KEPT) {
        va_start(args, fmt);
        vsnprintf(error_log[error_count], sizeof error_log[0], fmt, args);
        va_end(args);
    }
    error_count++;
}

static void fail_conn(struct conn *c, const char *what, int err) {
    if (c->failed) return;
    c->failed = 1;
    report_error("connection fd %d: %s%s%s", c->fd, what, err ? ": " : "", err ? strerror(err) : "");
    ev_set(&loop, c->fd, 0, 0, 0, 1, c->want_write);
}

static void make_pattern(void) {
    uint32_t x = 2463534242u;
    unsigned i;
    pattern = malloc(PERIOD + CHUNK);
    recv_buffer = malloc(CHUNK);
    if (!pattern || !recv_buffer) {
        fprintf(stderr, "loadgen: out of memory\n");
        exit(2);
    }
    for (i = 0; i < PERIOD; i++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        pattern[i] = (unsigned char)(x >> 24);
    }
    for (i = PERIOD; i < PERIOD + CHUNK; i++) pattern[i] = pattern[i - PERIOD];
}

static const unsigned char *pattern_at(const struct conn *c, uint64_t stream_offset) {
    return pattern + (uint32_t)((c->pattern_offset + stream_offset) % PERIOD);
}

static void set_interest(struct conn *c, uint64_t token, int want_write) {
    if (want_write == c->want_write) return;
    if (ev_set(&loop, c->fd, token, 1, want_write, 1, c->want_write) < 0) {
        fail_conn(c, "ev_set", errno);
        return;
    }
    c->want_write = want_write;
}

static void flush_sends(struct conn *c, uint64_t token) {
    while (c->sent < c->queued) {
        uint64_t left = c->queued - c->sent;
        size_t n = left > CHUNK ? CHUNK : (size_t)left;
        ssize_t done = send(c->fd, pattern_at(c, c->sent), n, MSG_NOSIGNAL);
        if (done < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) break;
            if (errno == EINTR) continue;
            fail_conn(c, "send", errno);
            return;
        }
        c->sent += (uint64_t)done;
        if ((size_t)done < n) break;
    }
    set_interest(c, token, c->sent < c->queued);
}

static void queue_message(struct conn *c, uint64_t at) {
    uint64_t number = c->queued / (uint64_t)opt.size;
    c->sent_at[number % (uint64_t)opt.depth] = at;
    c->queued += (uint64_t)opt.size;
}

static void on_readable(struct conn *c, uint64_t token) {
    int reads;
    for (reads = 0; reads < 4; reads++) {
        ssize_t n = recv(c->fd, recv_buffer, CHUNK, 0);
        uint64_t now, size = (uint64_t)opt.size;
        int queued_more = 0;
        if (n < 0) {
            if (errno == EAGAIN || errno == EWOULDBLOCK) return;
            if (errno == EINTR) continue;
            fail_conn(c, "recv", errno);
            return;
        }
        if (n == 0) {
            fail_conn(c, "closed by the server with echoes owed", 0);
            return;
        }
        if (c->received + (uint64_t)n > c->sent) {
            fail_conn(c, "received more bytes than were sent", 0);
            return;
        }
        if (memcmp(recv_buffer, pattern_at(c, c->received), (size_t)n) != 0) {
            fail_conn(c, "echoed bytes differ from the bytes sent", 0);
            return;
        }
        c->received += (uint64_t)n;
        if (in_window) window_bytes += (uint64_t)n;
        now = now_ns();
        while ((c->completed + 1) * size <= c->received) {
            uint64_t started = c->sent_at[c->completed % (uint64_t)opt.depth];
            c->completed++;
            if (in_window) {
                hist_record(now - started);
                window_round_trips++;
            }
            if (queueing) {
                queue_message(c, now);
                queued_more = 1;
            }
        }
        if (queued_more) flush_sends(c, token);
        if ((size_t)n < CHUNK) return;
    }
}

static int set_nonblocking(int fd, int on) {
    int flags = fcntl(fd, F_GETFL, 0);
    if (flags < 0) return -1;
    return fcntl(fd, F_SETFL, on ? (flags | O_NONBLOCK) : (flags & ~O_NONBLOCK));
}

/* A blocking connect with a timeout, then TCP_NODELAY. Returns the fd or -1. */
static int open_connection(const struct sockaddr_in *address, double timeout) {
    struct timeval tv;
    int one = 1;
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    if (fd < 0) return -1;
    tv.tv_sec = (time_t)timeout;
    tv.tv_usec = (suseconds_t)((timeout - (double)tv.tv_sec) * 1e6);
    setsockopt(fd, SOL_SOCKET, SO_SNDTIMEO, &tv, sizeof tv);
    setsockopt(fd, SOL_SOCKET, SO_RCVTIMEO, &tv, sizeof tv);
    if (connect(fd, (const struct sockaddr *)address, sizeof *address) < 0) {
        int saved = errno;
        close(fd);
        errno = saved;
        return -1;
    }
    setsockopt(fd, IPPROTO_TCP, TCP_NODELAY, &one, sizeof one);
    return fd;
}

/*
 * Idle connections: connect in batches, each sends one probe byte and waits for
 * its echo, so every idle connection is known to be accepted and registered by
 * the server before the measurement starts. Returns how many were established.
 */
static int open_idle(const struct sockaddr_in *address, int *idle_fds, uint64_t deadline) {
    int opened = 0;
    while (opened < opt.idle) {
        int batch = opt.idle - opened < IDLE_BATCH ? opt.idle - opened : IDLE_BATCH;
        int i;
        double left = (double)(deadline - now_ns()) / 1e9;
        if (left <= 0.05) {
            report_error("idle connections: deadline passed after %d of %d", opened, opt.idle);
            return opened;
        }
        for (i = 0; i < batch; i++) {
            int fd = open_connection(address, left);
            unsigned char probe = (unsigned char)(opened + i);
            if (fd < 0 || send(fd, &probe, 1, MSG_NOSIGNAL) != 1) {
                report_error("idle connection %d: connect/probe: %s", opened + i, strerror(errno));
                if (fd >= 0) close(fd);
                return opened + i;
            }
            idle_fds[opened + i] = fd;
        }
        for (i = 0; i < batch; i++) {
            unsigned char echo = 0;
            ssize_t n = recv(idle_fds[opened + i], &echo, 1, 0);
            if (n != 1 || echo != (unsigned char)(opened + i)) {
                report_error("idle connection %d: probe not echoed (%s)", opened + i,
                             n < 0 ? strerror(errno) : n == 0 ? "closed" : "wrong byte");
                for (; i < batch; i++) close(idle_fds[opened + i]);
                return opened;
            }
            set_nonblocking(idle_fds[opened + i], 1);
        }
        opened += batch;
    }
    return opened;
}

/* After the run: every idle connection must still be open with nothing unasked-for on it. */
static int check_idle(int *idle_fds, int count) {
    int i, still_open = 0;
    for (i = 0; i < count; i++) {
        unsigned char byte;
        ssize_t n = recv(idle_fds[i], &byte, 1, 0);
        if (n < 0 && (errno == EAGAIN || errno == EWOULDBLOCK)) still_open++;
        else report_error("idle connection %d: %s", i,
                          n == 0 ? "closed by the server" : n > 0 ? "unexpected data" : strerror(errno));
    }
    return still_open;
}

static void mark(const char *what) {
    printf("MARK %s\n", what);
    fflush(stdout);
    if (opt.sync) {
        char byte;
        ssize_t n;
        do n = read(STDIN_FILENO, &byte, 1); while (n < 0 && errno == EINTR);
        if (n != 1) report_error("--sync: the driver closed stdin at MARK %s", what);
    }
}

static void run_loop_until(uint64_t until, uint64_t hard_deadline, int drain) {
    struct ev_ready ready[512];
    for (;;) {
        uint64_t now = now_ns();
        int n, i, timeout_ms;
        if (now >= hard_deadline) {
            report_error("hard deadline reached");
            return;
        }
        if (drain) {
            int owed = 0;
            for (i = 0; i < opt.connections; i++)
                if (!conns[i].failed && conns[i].received < conns[i].queued) owed = 1;
            if (!owed) return;
            if (now >= until) {
                report_error("drain: echoes still owed when the drain time ran out");
                return;
            }
        } else if (now >= until) {
            return;
        }
        timeout_ms = (int)((until - now) / 1000000ull) + 1;
        if (timeout_ms > 100) timeout_ms = 100;
        n = ev_wait(&loop, ready, 512, timeout_ms);
        if (n < 0) {
            if (errno == EINTR) continue;
            report_error("ev_wait: %s", strerror(errno));
            return;
        }
        for (i = 0; i < n; i++) {
            struct conn *c = &conns[ready[i].token];
            if (c->failed) continue;
            if (ready[i].readable) on_readable(c, ready[i].token);
            if (!c->failed && ready[i].writable) flush_sends(c, ready[i].token);
        }
    }
}

static void on_alarm(int sig) {
    static const char text[] = "{\"fatal\": \"loadgen: alarm backstop fired\"}\n";
    (void)sig;
    if (write(STDOUT_FILENO, text, sizeof text - 1) < 0) _exit(3);
    _exit(3);
}

static void usage(void) {
    fprintf(stderr,
            "usage: loadgen --port P [--host 127.0.0.1] [--connections N] [--depth D] [--size S]\n"
            "               [--warmup SECONDS] [--duration SECONDS] [--idle I] [--deadline SECONDS]\n"
            "               [--sync 1]\n");
    exit(2);
}

static void parse(int argc, char **argv) {
    int i;
    opt.host = "127.0.0.1";
    opt.port = 0;
    opt.connections = 1;
    opt.depth = 1;
    opt.size = 1024;
    opt.warmup = 0.5;
    opt.duration = 2.0;
    opt.idle = 0;
    opt.deadline = 0;
    opt.sync = 0;
    for (i = 1; i < argc; i++) {
        const char *name = argv[i];
        const char *value = i + 1 < argc ? argv[i + 1] : NULL;
        if (!value) usage();
        if (!strcmp(name, "--host")) opt.host = value;
        else if (!strcmp(name, "--port")) opt.port = atoi(value);
        else if (!strcmp(name, "--connections")) opt.connections = atoi(value);
        else if (!strcmp(name, "--depth")) opt.depth = atoi(value);
        else if (!strcmp(name, "--size")) opt.size = atol(value);
        else if (!strcmp(name, "--warmup")) opt.warmup = atof(value);
        else if (!strcmp(name, "--duration")) opt.duration = atof(value);
        else if (!strcmp(name, "--idle")) opt.idle = atoi(value);
        else if (!strcmp(name, "--deadline")) opt.deadline = atof(value);
        else if (!strcmp(name, "--sync")) opt.sync = atoi(value);
        else usage();
        i++;
    }
    if (opt.port <= 0 || opt.port > 65535 || opt.connections < 1 || opt.depth < 1 ||
        opt.size < 1 || opt.warmup < 0 || opt.duration <= 0 || opt.idle < 0)
        usage();
    if (opt.deadline <= 0) opt.deadline = opt.warmup + opt.duration + 30.0 + opt.idle / 500.0;
}

static void raise_fd_limit(int needed) {
    struct rlimit limit;
    if (getrlimit(RLIMIT_NOFILE, &limit) != 0) return;
    if (limit.rlim_cur < limit.rlim_max) {
        limit.rlim_cur = limit.rlim_max;
        setrlimit(RLIMIT_NOFILE, &limit);
        getrlimit(RLIMIT_NOFILE, &limit);
    }
    if (limit.rlim_cur != RLIM_INFINITY && (rlim_t)needed > limit.rlim_cur) {
        fprintf(stderr, "loadgen: %d descriptors needed, RLIMIT_NOFILE allows %ju\n", needed,
                (uintmax_t)limit.rlim_cur);
        exit(2);
    }
}

static void print_json(double window_s, double client_cpu_s, double client_cpu_total_s,
                       int idle_open, int idle_established) {
    uint64_t sent = 0, received = 0;
    int i;
    for (i = 0; i < opt.connections; i++) {
        sent += conns[i].sent;
        received += conns[i].received;
    }
    printf("{\"backend\": \"%s\", \"connections\": %d, \"depth\": %d, \"size\": %ld, "
           "\"idle\": %d, \"idle_established\": %d, \"idle_open_at_end\": %d, "
           "\"warmup_s\": %.3f, \"window_s\": %.6f, ",
           EV_BACKEND, opt.connections, opt.depth, opt.size, opt.idle, idle_established,
           idle_open, opt.warmup, window_s);
    printf("\"round_trips\": %" PRIu64 ", \"round_trips_per_s\": %.1f, \"window_bytes\": %" PRIu64
           ", \"mb_per_s\": %.3f, ",
           window_round_trips, window_s > 0 ? (double)window_round_trips / window_s : 0.0,
           window_bytes, window_s > 0 ? (double)window_bytes / window_s / 1e6 : 0.0);
    printf("\"latency_us\": {\"count\": %" PRIu64 ", \"mean\": %.3f, \"p50\": %.3f, \"p90\": %.3f, "
           "\"p99\": %.3f, \"p999\": %.3f, \"max\": %.3f}, ",
           hist_count, hist_count ? hist_sum / (double)hist_count / 1e3 : 0.0,
           hist_percentile(0.50) / 1e3, hist_percentile(0.90) / 1e3, hist_percentile(0.99) / 1e3,
           hist_percentile(0.999) / 1e3, (double)hist_max / 1e3);
    printf("\"bytes_sent\": %" PRIu64 ", \"bytes_received\": %" PRIu64 ", "
           "\"client_cpu_s\": %.6f, \"client_cpu_total_s\": %.6f, \"errors\": %d, \"error_messages\": [",
           sent, received, client_cpu_s, client_cpu_total_s, error_count);
    for (i = 0; i < error_count && i < MAX_ERRORS_KEPT; i++) {
        const char *p;
        printf("%s\"", i ? ", " : "");
        for (p = error_log[i]; *p; p++) {
            if (*p == '"' || *p == '\\') putchar('\\');
            putchar((unsigned char)*p < 0x20 ? ' ' : *p);
        }
        putchar('"');
    }
    printf("]}\n");
    fflush(stdout);
}

int main(int argc, char **argv) {
    struct sockaddr_in address;
    uint64_t start, hard_deadline, window_start, window_end;
    double cpu_start, cpu_end, window_s;
    int *idle_fds = NULL, idle_established = 0, idle_open = 0, i;

    parse(argc, argv);
    signal(SIGPIPE, SIG_IGN);
    signal(SIGALRM, on_alarm);
    alarm((unsigned)opt.deadline + 5);
    raise_fd_limit(opt.connections + opt.idle + 32);
    make_pattern();
    start = now_ns();
    hard_deadline = start + (uint64_t)(opt.deadline * 1e9);

    memset(&address, 0, sizeof address);
    address.sin_family = AF_INET;
    address.sin_port = htons((uint16_t)opt.port);
    if (inet_pton(AF_INET, opt.host, &address.sin_addr) != 1) {
        fprintf(stderr, "loadgen: --host must be an IPv4 address, got %s\n", opt.host);
        return 2;
    }
    conns = calloc((size_t)opt.connections, sizeof *conns);
    if (!conns || ev_open(&loop, opt.connections + opt.idle + 64) < 0) {
        fprintf(stderr, "loadgen: cannot set up: %s\n", strerror(errno));
        return 2;
    }
    /* Active connections first, so that they get the low descriptor numbers on both sides. */
    for (i = 0; i < opt.connections; i++) {
        struct conn *c = &conns[i];
        c->fd = open_connection(&address, 10.0);
        c->sent_at = calloc((size_t)opt.depth, sizeof *c->sent_at);
        c->pattern_offset = (uint32_t)(((uint64_t)i * 7919u) % PERIOD);
        if (c->fd < 0 || !c->sent_at) {
            report_error("connection %d: connect: %s", i, strerror(errno));
            c->failed = 1;
            continue;
        }
        set_nonblocking(c->fd, 1);
        if (ev_set(&loop, c->fd, (uint64_t)i, 1, 0, 0, 0) < 0) fail_conn(c, "ev_set", errno);
    }
    if (opt.idle) {
        idle_fds = calloc((size_t)opt.idle, sizeof *idle_fds);
        idle_established = open_idle(&address, idle_fds, hard_deadline);
    }
    if (!error_count) {
        uint64_t now = now_ns();
        for (i = 0; i < opt.connections; i++) {
            int k;
            for (k = 0; k < opt.depth; k++) queue_message(&conns[i], now);
            flush_sends(&conns[i], (uint64_t)i);
        }
        run_loop_until(now + (uint64_t)(opt.warmup * 1e9), hard_deadline, 0);
    }
    mark("window-start");
    cpu_start = cpu_seconds();
    window_start = now_ns();
    in_window = 1;
    if (!error_count) run_loop_until(window_start + (uint64_t)(opt.duration * 1e9), hard_deadline, 0);
    in_window = 0;
    window_end = now_ns();
    cpu_end = cpu_seconds();
    mark("window-end");
    window_s = (double)(window_end - window_start) / 1e9;
    queueing = 0;
    if (!error_count) {
        uint64_t drain_until = now_ns() + 10000000000ull;
        run_loop_until(drain_until < hard_deadline ? drain_until : hard_deadline, hard_deadline, 1);
    }
    for (i = 0; i < opt.connections; i++)
        if (!conns[i].failed && conns[i].received != conns[i].sent)
            report_error("connection %d: %" PRIu64 " bytes sent, %" PRIu64 " echoed", i,
                         conns[i].sent, conns[i].received);
    if (idle_established) idle_open = check_idle(idle_fds, idle_established);
    if (idle_established < opt.idle && !error_count)
        report_error("only %d of %d idle connections established", idle_established, opt.idle);
    print_json(window_s, cpu_end - cpu_start, cpu_seconds(), idle_open, idle_established);
    for (i = 0; i < opt.connections; i++)
        if (conns[i].fd >= 0) close(conns[i].fd);
    for (i = 0; i < idle_established; i++) close(idle_fds[i]);
    return error_count ? 1 : 0;
}
