/* ring_bench.c: the enclave boundary's rings between two processes (fork; the child maps the
 * memfd itself with ring_chan_attach_fd, as an enclave does), beside the floors measured in the
 * same run. Every message received is checked (type, size, sequence number), so a figure is
 * never the speed of losing messages.
 *
 * Sections (main calls one function per section, in this order):
 *   pingpong    floor: one shared 64-byte-aligned atomic word bounced between the processes, each
 *               spinning until the word holds its turn: the cost of moving one cache line there
 *               and back, the least any shared-memory round trip can take here.
 *   socketpair  floor: 64-byte echo over an AF_UNIX stream socketpair (write + blocking read on
 *               each side): the system-call path a ring avoids.
 *   ring rtt    64-byte and 4 KiB echo over a ring_chan: send on tx, the child receives and
 *               sends the same bytes back, the parent receives them.
 *   ring rate   one-way: the parent sends N messages back to back, the child receives and checks
 *               them all and then acknowledges; msgs/s = N / (first send .. acknowledgement).
 * Round trips are timed one by one (clock_gettime, vDSO; the clock read is inside every sample,
 * floors included); p50 and p99 come from all samples after a warm-up (for the rings: at least
 * one lap of each ring, so the figures are the steady state, not first touches of new pages).
 *
 * Spinning: for these figures both processes spin while waiting (ring_set_spin of one second,
 * so no futex sleep happens between messages), as does the ping-pong floor. These are the
 * figures of a boundary that burns a core on each side while it waits; with the default spin
 * (RING_SPIN_NS_DEFAULT) an idle gap longer than the spin costs a futex wake-up instead.
 * The ring capacity is PSL_RING_CAPACITY_DEFAULT unless --capacity says otherwise.
 *
 * Results: ring.rtt_p50_ns, ring.rtt_p99_ns (64 B), ring.rtt_4k_p50_ns, ring.rtt_4k_p99_ns,
 * ring.rate_64_per_s, ring.rate_4k_per_s, ring.pingpong_p50_ns, ring.pingpong_p99_ns,
 * ring.socketpair_p50_ns, ring.socketpair_p99_ns, ring.rtt_p50.ratio_vs_pingpong (target <= 2),
 * ring.rtt_p50.speedup_vs_socketpair (target >= 20). */
#include <errno.h>
#include <inttypes.h>
#include <sched.h>
#include <signal.h>
#include <stdatomic.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/socket.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#ifdef PSL_ENCLAVE_PATH
#include "cold_start.h"
#include "crypto/crypto.h"
#endif
#include "base/limits.h"
#include "ring/ring.h"

#define SPIN_BENCH_NS 1000000000u /* 1 s: never sleeps between messages */
#define MSG_TYPE_ECHO 1u
#define MSG_TYPE_DATA 2u
#define MSG_TYPE_DONE 3u
#define LAT_SIZE_MAX  4096u

struct config {
    uint32_t rtt_iters;    /* timed round trips per latency section */
    uint32_t socket_iters; /* the socketpair floor is ~50x slower: fewer round trips */
    uint32_t rate_msgs_64; /* messages per one-way rate run */
    uint32_t rate_msgs_4k;
    int rate_reps;     /* rate runs; the median is reported */
    uint32_t capacity; /* ring capacity in bytes */
};

struct lat {
    double p50, p99;
};

struct results {
    struct lat pingpong, socketpair, rtt64, rtt4k;
    double rate64, rate4k;
};

static _Noreturn void die(const char *what, const char *why)
{
    fprintf(stderr, "ring_bench: %s failed: %s\n", what, why);
    exit(1);
}

static void check(psl_err err, const char *what)
{
    if (err != PSL_OK)
        die(what, psl_strerror(err));
}

static uint64_t now_ns(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

static void cpu_relax(void)
{
#if defined(__x86_64__) || defined(__i386__)
    __builtin_ia32_pause();
#endif
}

static int cmp_u32(const void *a, const void *b)
{
    uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b;
    return (x > y) - (x < y);
}

static struct lat percentiles(uint32_t *s, size_t n)
{
    qsort(s, n, sizeof *s, cmp_u32);
    size_t i50 = n / 2, i99 = (n * 99) / 100;
    return (struct lat){.p50 = s[i50], .p99 = s[i99]};
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return (x > y) - (x < y);
}

static double median(double *v, int n)
{
    qsort(v, (size_t)n, sizeof *v, cmp_double);
    return v[n / 2];
}

static uint32_t *alloc_samples(uint32_t n)
{
    uint32_t *s = malloc((size_t)n * sizeof *s);
    if (!s)
        die("malloc", "out of memory");
    return s;
}

/* Pins the calling process to one CPU (when the machine has two or more): every section runs
 * its two processes on two different CPUs, the same two each time, so that the ring and its
 * floors cross the same distance (left to the scheduler, the pair sometimes shares a CPU and
 * sometimes not, and the figures jump by 3x from run to run). */
static void pin_to(int cpu)
{
    if (sysconf(_SC_NPROCESSORS_ONLN) < 2)
        return;
    cpu_set_t set;
    CPU_ZERO(&set);
    CPU_SET((size_t)cpu, &set);
    (void)sched_setaffinity(0, sizeof set, &set);
}

static pid_t fork_child(void)
{
    fflush(stdout);
    pid_t pid = fork();
    if (pid < 0)
        die("fork", strerror(errno));
    pin_to(pid == 0 ? 1 : 0);
    return pid;
}

static void reap(pid_t pid, const char *what)
{
    int status;
    if (waitpid(pid, &status, 0) != pid || !WIFEXITED(status) || WEXITSTATUS(status) != 0)
        die(what, "child process failed");
}

static uint32_t sample_of(uint64_t t0, uint64_t t1)
{
    uint64_t d = t1 - t0;
    return d > UINT32_MAX ? UINT32_MAX : (uint32_t)d;
}

/* ---- floor: cache-line ping-pong ---- */

static struct lat bench_pingpong(const struct config *cfg)
{
    _Atomic uint64_t *word = mmap(NULL, 4096, PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS,
                                  -1, 0); /* page-aligned, so 64-byte aligned */
    if (word == MAP_FAILED)
        die("mmap", strerror(errno));
    atomic_init(word, 0);
    uint32_t warm = cfg->rtt_iters / 10, total = cfg->rtt_iters + warm;
    pid_t pid = fork_child();
    if (pid == 0) {
        /* Child: waits for each odd value and answers with the next even one. */
        for (uint64_t v = 1; v < 2ull * total; v += 2) {
            /* Acquire/release: the word is the only data; the orders mirror a real handoff. */
            while (atomic_load_explicit(word, memory_order_acquire) != v)
                cpu_relax();
            atomic_store_explicit(word, v + 1, memory_order_release);
        }
        _exit(0);
    }
    uint32_t *s = alloc_samples(cfg->rtt_iters);
    uint64_t t0 = now_ns();
    for (uint32_t i = 0; i < total; i++) {
        uint64_t v = 2ull * i + 1;
        atomic_store_explicit(word, v, memory_order_release);
        while (atomic_load_explicit(word, memory_order_acquire) != v + 1)
            cpu_relax();
        uint64_t t1 = now_ns();
        if (i >= warm)
            s[i - warm] = sample_of(t0, t1);
        t0 = t1;
    }
    reap(pid, "pingpong child");
    struct lat l = percentiles(s, cfg->rtt_iters);
    free(s);
    munmap((void *)word, 4096);
    return l;
}

/* ---- floor: socketpair echo ---- */

static void full_io(int fd, void *buf, size_t size, bool writing)
{
    size_t done = 0;
    while (done < size) {
        ssize_t n = writing ? write(fd, (uint8_t *)buf + done, size - done)
                            : read(fd, (uint8_t *)buf + done, size - done);
        if (n < 0 && errno == EINTR)
            continue;
        if (n <= 0)
            die(writing ? "write" : "read", n < 0 ? strerror(errno) : "end of file");
        done += (size_t)n;
    }
}

static struct lat bench_socketpair(const struct config *cfg)
{
    int sv[2];
    if (socketpair(AF_UNIX, SOCK_STREAM, 0, sv) != 0)
        die("socketpair", strerror(errno));
    uint32_t warm = cfg->socket_iters / 10, total = cfg->socket_iters + warm;
    uint8_t msg[64];
    memset(msg, 0x5a, sizeof msg);
    pid_t pid = fork_child();
    if (pid == 0) {
        close(sv[0]);
        for (uint32_t i = 0; i < total; i++) {
            full_io(sv[1], msg, sizeof msg, false);
            full_io(sv[1], msg, sizeof msg, true);
        }
        _exit(0);
    }
    close(sv[1]);
    uint32_t *s = alloc_samples(cfg->socket_iters);
    uint64_t t0 = now_ns();
    for (uint32_t i = 0; i < total; i++) {
        memcpy(msg, &i, sizeof i);
        full_io(sv[0], msg, sizeof msg, true);
        full_io(sv[0], msg, sizeof msg, false);
        uint32_t back;
        memcpy(&back, msg, sizeof back);
        if (back != i)
            die("socketpair echo", "wrong message");
        uint64_t t1 = now_ns();
        if (i >= warm)
            s[i - warm] = sample_of(t0, t1);
        t0 = t1;
    }
    reap(pid, "socketpair child");
    close(sv[0]);
    struct lat l = percentiles(s, cfg->socket_iters);
    free(s);
    return l;
}

/* ---- rings ---- */

/* Forks the enclave-side child: it maps the channel's memfd itself and runs fn on it. */
static pid_t spawn_ring_child(struct ring_chan *host, void (*fn)(struct ring_chan *c))
{
    pid_t pid = fork_child();
    if (pid == 0) {
        struct ring_chan c;
        int fd = dup(host->fd);
        if (fd < 0)
            _exit(1);
        munmap(host->map, host->map_size); /* the child uses only its own mapping */
        if (ring_chan_attach_fd(&c, fd) != PSL_OK)
            _exit(1);
        ring_set_spin(&c.tx, SPIN_BENCH_NS);
        ring_set_spin(&c.rx, SPIN_BENCH_NS);
        fn(&c);
        ring_chan_destroy(&c);
        _exit(0);
    }
    return pid;
}

static void child_echo(struct ring_chan *c)
{
    static uint8_t buf[LAT_SIZE_MAX];
    for (;;) {
        uint32_t type;
        size_t size;
        psl_err err = ring_recv(&c->rx, &type, buf, sizeof buf, &size, -1);
        if (err == PSL_ERR_CLOSED)
            return;
        if (err != PSL_OK || type != MSG_TYPE_ECHO)
            _exit(1);
        if (ring_send(&c->tx, type, buf, size, -1) != PSL_OK)
            _exit(1);
    }
}

static struct lat bench_ring_rtt(const struct config *cfg, size_t msg_size)
{
    struct ring_chan c;
    check(ring_chan_create(&c, cfg->capacity), "ring_chan_create");
    ring_set_spin(&c.tx, SPIN_BENCH_NS);
    ring_set_spin(&c.rx, SPIN_BENCH_NS);
    pid_t pid = spawn_ring_child(&c, child_echo);
    static uint8_t out[LAT_SIZE_MAX], in[LAT_SIZE_MAX];
    memset(out, 0xa5, msg_size);
    /* Warm-up: at least one lap of each ring, so that the figure is the steady state (every data
     * line in some cache) rather than the first touches of a freshly zeroed mapping. */
    uint32_t lap = (uint32_t)(cfg->capacity / (msg_size + RING_FRAME_HEADER_SIZE) + 1u);
    uint32_t warm = cfg->rtt_iters / 10 > lap ? cfg->rtt_iters / 10 : lap;
    uint32_t total = cfg->rtt_iters + warm;
    uint32_t *s = alloc_samples(cfg->rtt_iters);
    uint64_t t0 = now_ns();
    for (uint32_t i = 0; i < total; i++) {
        memcpy(out, &i, sizeof i);
        check(ring_send(&c.tx, MSG_TYPE_ECHO, out, msg_size, -1), "ring_send");
        uint32_t type, back;
        size_t size;
        check(ring_recv(&c.rx, &type, in, sizeof in, &size, -1), "ring_recv");
        memcpy(&back, in, sizeof back);
        if (type != MSG_TYPE_ECHO || size != msg_size || back != i)
            die("ring echo", "wrong message");
        uint64_t t1 = now_ns();
        if (i >= warm)
            s[i - warm] = sample_of(t0, t1);
        t0 = t1;
    }
    struct ring_stats st;
    ring_get_stats(&c.rx, &st);
    ring_close(&c.tx);
    reap(pid, "ring echo child");
    if (st.recv_sleeps != 0)
        printf("# note: the parent slept %" PRIu64 " times in ring_recv (%zu B)\n", st.recv_sleeps,
               msg_size);
    ring_chan_destroy(&c);
    struct lat l = percentiles(s, cfg->rtt_iters);
    free(s);
    return l;
}

/* The rate child: receives messages until DONE, checks each one's sequence number, and answers
 * DONE with the count it saw. */
static void child_sink(struct ring_chan *c)
{
    static uint8_t buf[LAT_SIZE_MAX];
    uint64_t expect = 0;
    for (;;) {
        uint32_t type;
        size_t size;
        psl_err err = ring_recv(&c->rx, &type, buf, sizeof buf, &size, -1);
        if (err == PSL_ERR_CLOSED)
            return;
        if (err != PSL_OK)
            _exit(1);
        uint64_t seq;
        if (size < sizeof seq)
            _exit(1);
        memcpy(&seq, buf, sizeof seq);
        if (type == MSG_TYPE_DONE) {
            if (seq != expect ||
                ring_send(&c->tx, MSG_TYPE_DONE, &expect, sizeof expect, -1) != PSL_OK)
                _exit(1);
            expect = 0;
            continue;
        }
        if (type != MSG_TYPE_DATA || seq != expect)
            _exit(1);
        expect++;
    }
}

static double bench_ring_rate(const struct config *cfg, size_t msg_size, uint32_t msgs)
{
    struct ring_chan c;
    check(ring_chan_create(&c, cfg->capacity), "ring_chan_create");
    ring_set_spin(&c.tx, SPIN_BENCH_NS);
    ring_set_spin(&c.rx, SPIN_BENCH_NS);
    pid_t pid = spawn_ring_child(&c, child_sink);
    static uint8_t out[LAT_SIZE_MAX];
    memset(out, 0x3c, msg_size);
    double rates[16];
    int reps = cfg->rate_reps < 16 ? cfg->rate_reps : 16;
    for (int r = -1; r < reps; r++) { /* r = -1: warm-up */
        uint64_t t0 = now_ns();
        for (uint64_t i = 0; i < msgs; i++) {
            memcpy(out, &i, sizeof i);
            check(ring_send(&c.tx, MSG_TYPE_DATA, out, msg_size, -1), "ring_send");
        }
        uint64_t n = msgs;
        check(ring_send(&c.tx, MSG_TYPE_DONE, &n, sizeof n, -1), "ring_send done");
        uint32_t type;
        size_t size;
        uint64_t back;
        check(ring_recv(&c.rx, &type, &back, sizeof back, &size, -1), "ring_recv done");
        if (type != MSG_TYPE_DONE || back != msgs)
            die("ring rate", "the child saw a different count");
        uint64_t t1 = now_ns();
        if (r >= 0)
            rates[r] = (double)msgs * 1e9 / (double)(t1 - t0);
    }
    ring_close(&c.tx);
    reap(pid, "ring sink child");
    ring_chan_destroy(&c);
    return median(rates, reps);
}

/* ---- output ---- */

static void print_results(const struct results *r)
{
    printf("# %-28s %12s %12s\n", "section", "p50 ns", "p99 ns");
    printf("# %-28s %12.0f %12.0f\n", "floor: cache-line ping-pong", r->pingpong.p50,
           r->pingpong.p99);
    printf("# %-28s %12.0f %12.0f\n", "floor: socketpair 64 B", r->socketpair.p50,
           r->socketpair.p99);
    printf("# %-28s %12.0f %12.0f\n", "ring rtt 64 B", r->rtt64.p50, r->rtt64.p99);
    printf("# %-28s %12.0f %12.0f\n", "ring rtt 4 KiB", r->rtt4k.p50, r->rtt4k.p99);
    printf("# ring one-way rate: 64 B %.0f msgs/s, 4 KiB %.0f msgs/s (%.0f MB/s)\n", r->rate64,
           r->rate4k, r->rate4k * 4096 / 1e6);

    printf("RESULT name=ring.rtt_p50_ns value=%.0f unit=ns floor=%.0f ratio=%.2f\n", r->rtt64.p50,
           r->pingpong.p50, r->rtt64.p50 / r->pingpong.p50);
    printf("RESULT name=ring.rtt_p99_ns value=%.0f unit=ns floor=%.0f ratio=%.2f\n", r->rtt64.p99,
           r->pingpong.p99, r->rtt64.p99 / r->pingpong.p99);
    printf("RESULT name=ring.rtt_4k_p50_ns value=%.0f unit=ns floor=%.0f ratio=%.2f\n",
           r->rtt4k.p50, r->pingpong.p50, r->rtt4k.p50 / r->pingpong.p50);
    printf("RESULT name=ring.rtt_4k_p99_ns value=%.0f unit=ns floor=%.0f ratio=%.2f\n",
           r->rtt4k.p99, r->pingpong.p99, r->rtt4k.p99 / r->pingpong.p99);
    printf("RESULT name=ring.rate_64_per_s value=%.0f unit=msgs/s\n", r->rate64);
    printf("RESULT name=ring.rate_4k_per_s value=%.0f unit=msgs/s\n", r->rate4k);
    printf("RESULT name=ring.pingpong_p50_ns value=%.0f unit=ns\n", r->pingpong.p50);
    printf("RESULT name=ring.pingpong_p99_ns value=%.0f unit=ns\n", r->pingpong.p99);
    printf("RESULT name=ring.socketpair_p50_ns value=%.0f unit=ns\n", r->socketpair.p50);
    printf("RESULT name=ring.socketpair_p99_ns value=%.0f unit=ns\n", r->socketpair.p99);
    printf("RESULT name=ring.rtt_p50.ratio_vs_pingpong value=%.2f unit=x floor=%.0f\n",
           r->rtt64.p50 / r->pingpong.p50, r->pingpong.p50);
    printf("RESULT name=ring.rtt_p50.speedup_vs_socketpair value=%.1f unit=x floor=%.0f\n",
           r->socketpair.p50 / r->rtt64.p50, r->socketpair.p50);
}

/* A decimal count, or -1 if the text is not one. */
static long parse_long(const char *text)
{
    char *end;
    errno = 0;
    long n = strtol(text, &end, 10);
    return errno != 0 || end == text || *end != '\0' ? -1 : n;
}

static void usage(void)
{
    fprintf(stderr,
            "usage: ring_bench [--quick] [--capacity BYTES] [--iters N]\n"
            "  --quick    20k round trips per latency section (about 3 s)\n"
            "  --capacity ring capacity, a power of two >= 16384 (default %u)\n"
            "  --iters N  timed round trips per ring and ping-pong section (default "
            "200000)\n",
            PSL_RING_CAPACITY_DEFAULT);
}

int main(int argc, char **argv)
{
    struct config cfg = {.rtt_iters = 200000,
                         .socket_iters = 50000,
                         .rate_msgs_64 = 1000000,
                         .rate_msgs_4k = 200000,
                         .rate_reps = 5,
                         .capacity = PSL_RING_CAPACITY_DEFAULT};
    for (int i = 1; i < argc; i++) {
        if (strcmp(argv[i], "--quick") == 0) {
            cfg = (struct config){.rtt_iters = 20000,
                                  .socket_iters = 5000,
                                  .rate_msgs_64 = 200000,
                                  .rate_msgs_4k = 50000,
                                  .rate_reps = 3,
                                  .capacity = cfg.capacity};
        } else if (strcmp(argv[i], "--capacity") == 0 && i + 1 < argc) {
            long n = parse_long(argv[++i]);
            if (n <= 0 || n > (long)RING_CAPACITY_MAX || ring_region_size((uint32_t)n) == 0 ||
                ring_msg_size_max((uint32_t)n) < LAT_SIZE_MAX) {
                usage();
                return 2;
            }
            cfg.capacity = (uint32_t)n;
        } else if (strcmp(argv[i], "--iters") == 0 && i + 1 < argc) {
            long n = parse_long(argv[++i]);
            if (n < 100 || n > 10000000) {
                usage();
                return 2;
            }
            cfg.rtt_iters = (uint32_t)n;
        } else {
            usage();
            return 2;
        }
    }
    signal(SIGPIPE, SIG_IGN);
    printf("# ring_bench: 2 processes (fork), ring capacity %u B; both sides SPIN while waiting "
           "(spin %u ms: this burns a core on each side), %u timed round trips per ring section\n",
           cfg.capacity, SPIN_BENCH_NS / 1000000u, cfg.rtt_iters);

    /* One function per section; the enclave cold start (cold_start.c) comes last. */
    struct results r;
    r.pingpong = bench_pingpong(&cfg);
    r.socketpair = bench_socketpair(&cfg);
    r.rtt64 = bench_ring_rtt(&cfg, 64);
    r.rtt4k = bench_ring_rtt(&cfg, 4096);
    r.rate64 = bench_ring_rate(&cfg, 64, cfg.rate_msgs_64);
    r.rate4k = bench_ring_rate(&cfg, 4096, cfg.rate_msgs_4k);
    print_results(&r);
#ifdef PSL_ENCLAVE_PATH
    if (psl_crypto_init() != PSL_OK)
        return 1;
    const char *enclave = getenv("PSL_ENCLAVE") ? getenv("PSL_ENCLAVE") : PSL_ENCLAVE_PATH;
    if (cold_start_section(enclave) != 0)
        return 1;
#endif
    return 0;
}
