/* capsuled_bench.c: durable appends through three real psl-capsuled processes over a real
 * nats-server on loopback, beside the physical floors measured in the same run. The bench
 * starts nats-server and three psl-capsuled child processes (separate processes, as in
 * production; data directories on the disk of $TMPDIR, default /tmp) and plays one writer
 * through the capsule client (k = 2 of 3). Every child is stopped on every exit path.
 *
 * Record sizes: a DATA record carrying one PUT of a 1 KiB (16 KiB) value; "size" below is the
 * whole sealed record (header, encrypted op, tag, signature), and every floor uses that size.
 *
 * Results:
 *   append_<s>.durable_rate  records/s made durable (published and acknowledged by k = 2
 *                            servers), one writer pipelining with a bounded window (4 MiB of
 *                            unacknowledged records), over a fixed record count.
 *   ack_<s> p50/p99          one record at a time: publish, wait until durable (the client
 *                            checks ACK MACs), wait for the third ACK too, repeat. A separate
 *                            shorter pass with a second ACK subscriber shows when each ACK
 *                            reaches the process (the "breakdown" line; not a figure).
 * Floors (same run, same directory, same nats-server, same sizes):
 *   fsync_<s>.p50            write() of one record at the end of a file, then fdatasync.
 *   disk_group_commit_<s>    the disk's append rate under the server's group commit: write()
 *                            records back to back for 1000 us (at most the server's 8 MiB
 *                            batch), then one fdatasync; records / elapsed over >= 1 s. The
 *                            servers run with --commit-window-us (default 0: commit when the
 *                            previous commit is done).
 *   nats_pubsub_<s>          raw libnats: one publisher, one subscriber (separate connections),
 *                            messages/s received over a fixed message count.
 *   nats_rtt_<s>.p50         raw libnats request of the record size answered by an echo of an
 *                            ACK's size (ACK_SIZE, 237 bytes): the network shape of one ACK
 *                            round trip.
 *   cpu_floor_<s>            informational: the crypto one durable record costs on this
 *                            machine at least (writer: AES-GCM + SHA-256 + Ed25519 sign; each
 *                            of 3 servers: SHA-256 + Ed25519 verify), spread over all cores.
 * Ratios: append ratio_vs_floor = durable rate / min(disk group commit, NATS pub/sub);
 * ack ratio_vs_bound = ack p50 / (3 x fsync p50 + NATS round trip p50), with both floors
 * measured between the blocks of ACK samples (fsync_<s>.p50, nats_rtt_<s>.p50); the floors at
 * the start of the run, before the servers exist, are printed too (*_at_start, and
 * ratio_vs_bound_at_start).
 * Breakdown lines (not RESULT) give CPU per record of each process during each phase, read
 * from /proc, so a figure below its floor says where the time went. */
#define FLOOR_WINDOW_US 1000u

#include <errno.h>
#include <fcntl.h>
#include <getopt.h>
#include <inttypes.h>
#include <nats/nats.h>
#include <netinet/in.h>
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/resource.h>
#include <sys/socket.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include "base/bytes.h"
#include "base/clock.h"
#include "base/log.h"
#include "base/rng.h"
#include "capsule/ack.h"
#include "capsule/export.h"
#include "capsule/keyfile.h"
#include "capsule/payload.h"
#include "capsule/record.h"
#include "capsuled/client.h"
#include "crypto/crypto.h"
#include "base/assert.h"
#include "fabric/fabric.h"

#ifndef PSL_CAPSULED_PATH
#define PSL_CAPSULED_PATH "psl-capsuled"
#endif

#define PROBE_SAMPLES 200u /* samples of the diagnostic ACK-arrival pass */
#define LAT_BLOCKS 4u            /* the ACK samples run in blocks, the bound's floors between */
#define FLOOR_FSYNC_SAMPLES 75u  /* fsync samples before each block */
#define FLOOR_RTT_SAMPLES 250u   /* NATS round trips before each block */
#define SERVERS      3
#define QUORUM       2
#define CHILDREN_MAX (SERVERS + 1)
#define PATH_SIZE    1024
#define SIZES        2

static const size_t value_sizes[SIZES] = {1024, 16 * 1024};
static const char *const size_names[SIZES] = {"1k", "16k"};

struct opts {
    uint32_t commit_window_us;
    uint64_t records[SIZES]; /* throughput run */
    unsigned samples;        /* latency samples */
    bool keep;
};

static struct {
    pid_t pid[CHILDREN_MAX];
    int count;
    char dir[PATH_SIZE];
    bool keep;
} kids;

/* ---- child processes ---- */

static void stop_children(void)
{
    for (int i = kids.count - 1; i >= 0; i--)
        if (kids.pid[i] > 0)
            kill(kids.pid[i], SIGTERM);
    for (int i = kids.count - 1; i >= 0; i--) {
        if (kids.pid[i] <= 0)
            continue;
        int st;
        for (int t = 0; t < 100; t++) {
            if (waitpid(kids.pid[i], &st, WNOHANG) == kids.pid[i])
                goto reaped;
            usleep(50000);
        }
        kill(kids.pid[i], SIGKILL);
        waitpid(kids.pid[i], &st, 0);
    reaped:
        kids.pid[i] = 0;
    }
    kids.count = 0;
    if (kids.dir[0] && !kids.keep) {
        char cmd[PATH_SIZE + 16];
        snprintf(cmd, sizeof cmd, "rm -rf '%s'", kids.dir);
        if (system(cmd) != 0)
            fprintf(stderr, "capsuled_bench: could not remove %s\n", kids.dir);
        kids.dir[0] = 0;
    }
}

static void on_signal(int sig)
{
    (void)sig;
    stop_children();
    _exit(130);
}

static _Noreturn void die(const char *what, const char *why)
{
    fprintf(stderr, "capsuled_bench: %s: %s\n", what, why);
    stop_children();
    exit(1);
}

static void check(psl_err err, const char *what)
{
    if (err)
        die(what, psl_strerror(err));
}

static pid_t spawn(char *const argv[], const char *log_path)
{
    pid_t pid = fork();
    if (pid < 0)
        die("fork", strerror(errno));
    if (pid == 0) {
        int fd = open(log_path, O_WRONLY | O_CREAT | O_APPEND, 0600);
        if (fd >= 0) {
            dup2(fd, 1);
            dup2(fd, 2);
            close(fd);
        }
        execvp(argv[0], argv);
        fprintf(stderr, "exec %s: %s\n", argv[0], strerror(errno));
        _exit(127);
    }
    kids.pid[kids.count++] = pid;
    return pid;
}

static uint16_t free_port(void)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {.sin_family = AF_INET, .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    socklen_t len = sizeof a;
    if (fd < 0 || bind(fd, (struct sockaddr *)&a, sizeof a) != 0 ||
        getsockname(fd, (struct sockaddr *)&a, &len) != 0)
        die("free port", strerror(errno));
    close(fd);
    return ntohs(a.sin_port);
}

static bool port_open(uint16_t port)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    bool ok = fd >= 0 && connect(fd, (struct sockaddr *)&a, sizeof a) == 0;
    if (fd >= 0)
        close(fd);
    return ok;
}

/* GET /metrics from a server and returns one sample's value (0 when absent). */
static double metric(uint16_t port, const char *name)
{
    int fd = socket(AF_INET, SOCK_STREAM, 0);
    struct sockaddr_in a = {
        .sin_family = AF_INET, .sin_port = htons(port), .sin_addr.s_addr = htonl(INADDR_LOOPBACK)};
    static char buf[65536];
    size_t n = 0;
    if (fd < 0 || connect(fd, (struct sockaddr *)&a, sizeof a) != 0) {
        if (fd >= 0)
            close(fd);
        return 0;
    }
    static const char req[] = "GET /metrics HTTP/1.0\r\nHost: 127.0.0.1\r\n\r\n";
    if (write(fd, req, sizeof req - 1) != (ssize_t)(sizeof req - 1)) {
        close(fd);
        return 0;
    }
    ssize_t k;
    while (n < sizeof buf - 1 && (k = read(fd, buf + n, sizeof buf - 1 - n)) > 0)
        n += (size_t)k;
    close(fd);
    buf[n] = 0;
    size_t nl = strlen(name);
    for (char *p = buf; (p = strstr(p, name)); p += nl)
        if ((p == buf || p[-1] == '\n') && p[nl] == ' ')
            return strtod(p + nl + 1, NULL);
    return 0;
}

/* CPU seconds (user + system) a process has used so far. */
static double proc_cpu_s(pid_t pid)
{
    char p[64], buf[1024];
    snprintf(p, sizeof p, "/proc/%d/stat", (int)pid);
    FILE *f = fopen(p, "r");
    if (!f)
        return 0;
    size_t n = fread(buf, 1, sizeof buf - 1, f);
    fclose(f);
    buf[n] = 0;
    char *s = strrchr(buf, ')');
    unsigned long long ut = 0, st = 0;
    /* fields after the command: state(3) ... utime(14) stime(15) */
    if (!s || sscanf(s + 2, "%*c %*d %*d %*d %*d %*d %*u %*u %*u %*u %*u %llu %llu", &ut, &st) != 2)
        return 0;
    return (double)(ut + st) / (double)sysconf(_SC_CLK_TCK);
}

static double self_cpu_s(void)
{
    struct rusage r;
    getrusage(RUSAGE_SELF, &r);
    return (double)r.ru_utime.tv_sec + (double)r.ru_utime.tv_usec / 1e6 +
           (double)r.ru_stime.tv_sec + (double)r.ru_stime.tv_usec / 1e6;
}

static double now_s(void)
{
    return (double)clock_mono_ns() / 1e9;
}

static int cmp_double(const void *a, const void *b)
{
    double x = *(const double *)a, y = *(const double *)b;
    return x < y ? -1 : x > y;
}

static double quantile(double *v, size_t n, double q)
{
    qsort(v, n, sizeof *v, cmp_double);
    size_t i = (size_t)(q * (double)(n - 1) + 0.5);
    return v[i < n ? i : n - 1];
}

/* ---- the federation under test ---- */

struct fed {
    struct opts o;
    char dir[PATH_SIZE];
    char url[64];
    pid_t nats_pid;
    pid_t server_pid[SERVERS];
    uint16_t metrics_port[SERVERS];
    struct capsule_meta meta;
    struct signer owner;
    uint8_t *capsule_key;
};

static void fed_files(struct fed *f)
{
    char p[PATH_SIZE + 32];
    check(signer_init(&f->owner, NULL), "owner key");
    memset(&f->meta, 0, sizeof f->meta);
    f->meta.version = META_VERSION;
    f->meta.suite = PSL_SUITE_1;
    f->meta.created_ms = clock_wall_ms();
    f->meta.quorum_k = QUORUM;
    f->meta.replica_count = SERVERS;
    memcpy(f->meta.label, "capsuled bench", 14);
    f->meta.label_size = 14;
    uint8_t seed[SIGN_SEED_SIZE];
    for (int i = 0; i < SERVERS; i++) {
        struct signer s;
        rng_bytes(seed, sizeof seed);
        check(signer_init(&s, seed), "server key");
        snprintf(p, sizeof p, "%s/s%d.key", f->dir, i);
        check(keyfile_write(p, KEYFILE_SIGNING, seed, s.pk), "server key file");
        memcpy(f->meta.replicas[i], s.pk, SIGN_PK_SIZE);
        signer_deinit(&s);
    }
    secret_wipe(seed, sizeof seed);
    check(meta_sign(&f->meta, &f->owner), "metadata");
    uint8_t enc[META_SIZE_MAX];
    size_t enc_size;
    check(meta_encode(&f->meta, enc, sizeof enc, &enc_size), "metadata");
    snprintf(p, sizeof p, "%s/capsule.pslx", f->dir);
    FILE *x = fopen(p, "wx");
    if (!x)
        die(p, strerror(errno));
    struct export_writer w;
    export_begin(&w, x, enc, enc_size);
    check(export_finish(&w), "export");
    fclose(x);
    f->capsule_key = secret_alloc(AEAD_KEY_SIZE);
    if (!f->capsule_key)
        die("secret_alloc", "out of memory");
    rng_bytes(f->capsule_key, AEAD_KEY_SIZE);
}

static const char *nats_path(void)
{
    const char *e = getenv("PSL_NATS_SERVER");
    if (e)
        return e;
    if (access("/usr/sbin/nats-server", X_OK) == 0)
        return "/usr/sbin/nats-server";
    return "nats-server";
}

static void fed_start_nats(struct fed *f)
{
    char conf[PATH_SIZE + 32], logp[PATH_SIZE + 32];
    uint16_t port = free_port();
    snprintf(conf, sizeof conf, "%s/nats.conf", f->dir);
    snprintf(logp, sizeof logp, "%s/nats.log", f->dir);
    FILE *c = fopen(conf, "w");
    if (!c)
        die(conf, strerror(errno));
    fprintf(c,
            "listen: 127.0.0.1:%u\nmax_payload: 8MB\nmax_pending: 512MB\nwrite_deadline: \"30s\"\n",
            port);
    fclose(c);
    char *argv[] = {(char *)nats_path(), "-c", conf, NULL};
    f->nats_pid = spawn(argv, logp);
    for (int i = 0; i < 200 && !port_open(port); i++)
        usleep(25000);
    if (!port_open(port))
        die("nats-server", "did not start (is it installed? set PSL_NATS_SERVER)");
    snprintf(f->url, sizeof f->url, "nats://127.0.0.1:%u", port);
}

static void fed_start_servers(struct fed *f)
{
    const char *bin = getenv("PSL_CAPSULED") ? getenv("PSL_CAPSULED") : PSL_CAPSULED_PATH;
    for (int i = 0; i < SERVERS; i++) {
        char data[PATH_SIZE + 32], key[PATH_SIZE + 32], cap[PATH_SIZE + 32], ready[PATH_SIZE + 32],
            logp[PATH_SIZE + 32], port[16], window[16];
        snprintf(data, sizeof data, "%s/data%d", f->dir, i);
        snprintf(key, sizeof key, "%s/s%d.key", f->dir, i);
        snprintf(cap, sizeof cap, "%s/capsule.pslx", f->dir);
        snprintf(ready, sizeof ready, "%s/s%d.ready", f->dir, i);
        snprintf(logp, sizeof logp, "%s/s%d.log", f->dir, i);
        f->metrics_port[i] = free_port();
        snprintf(port, sizeof port, "%u", f->metrics_port[i]);
        snprintf(window, sizeof window, "%u", f->o.commit_window_us);
        char *argv[] = {
            (char *)bin, "--data-dir",         data,   "--key",          key,    "--fabric",
            f->url,      "--capsule",          cap,    "--metrics-port", port,   "--ready-file",
            ready,       "--commit-window-us", window, "--log-level",    "warn", NULL};
        f->server_pid[i] = spawn(argv, logp);
        int t;
        for (t = 0; t < 400 && access(ready, F_OK) != 0; t++) {
            if (waitpid(f->server_pid[i], NULL, WNOHANG) == f->server_pid[i])
                die(bin, "exited during start-up (see its log; set PSL_CAPSULED to its path)");
            usleep(25000);
        }
        if (t == 400)
            die(bin, "not ready after 10 s");
    }
}

/* ---- floors ---- */

/* Fills lat[samples] with the latencies of write() of one record at the end of a file, then
 * fdatasync. */
static void fsync_samples(const char *dir, size_t size, unsigned samples, double *lat)
{
    char p[PATH_SIZE + 32];
    snprintf(p, sizeof p, "%s/fsync.floor", dir);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    if (fd < 0)
        die(p, strerror(errno));
    uint8_t *buf = malloc(size);
    if (!buf)
        die("malloc", "out of memory");
    memset(buf, 0xa5, size);
    for (unsigned i = 0; i < samples; i++) {
        double t0 = now_s();
        if (write(fd, buf, size) != (ssize_t)size || fdatasync(fd) != 0)
            die("fsync floor", strerror(errno));
        lat[i] = (now_s() - t0) * 1e6;
    }
    close(fd);
    unlink(p);
    free(buf);
}

static double group_commit_rate(const char *dir, size_t size, uint32_t window_us, double *batch_avg)
{
    char p[PATH_SIZE + 32];
    snprintf(p, sizeof p, "%s/group.floor", dir);
    int fd = open(p, O_WRONLY | O_CREAT | O_TRUNC | O_APPEND, 0600);
    if (fd < 0)
        die(p, strerror(errno));
    uint8_t *buf = malloc(size);
    if (!buf)
        die("malloc", "out of memory");
    memset(buf, 0x5a, size);
    uint64_t records = 0, batches = 0;
    size_t batch_max = (8u << 20) / size; /* the server's commit_bytes_max */
    double t0 = now_s(), t;
    do {
        double w0 = now_s();
        size_t n = 0;
        do {
            if (write(fd, buf, size) != (ssize_t)size)
                die("group commit floor", strerror(errno));
            n++;
        } while (n < batch_max && (now_s() - w0) * 1e6 < window_us);
        if (fdatasync(fd) != 0)
            die("group commit floor", strerror(errno));
        records += n;
        batches++;
        t = now_s();
        if (lseek(fd, 0, SEEK_END) > (off_t)(256u << 20) && ftruncate(fd, 0) != 0)
            die("group commit floor", strerror(errno));
    } while (t - t0 < 1.0);
    close(fd);
    unlink(p);
    free(buf);
    *batch_avg = (double)records / (double)batches;
    return (double)records / (t - t0);
}

struct counter {
    volatile uint64_t n;
    volatile double t_last;
};

static void on_count(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)nc;
    (void)sub;
    struct counter *c = closure;
    c->n++;
    c->t_last = now_s();
    natsMsg_Destroy(msg);
}

static void on_echo(natsConnection *nc, natsSubscription *sub, natsMsg *msg, void *closure)
{
    (void)sub;
    (void)closure;
    static const uint8_t ack[ACK_SIZE];
    const char *reply = natsMsg_GetReply(msg);
    if (reply)
        natsConnection_Publish(nc, reply, ack, (int)sizeof ack);
    natsMsg_Destroy(msg);
}

static natsConnection *nats_conn(const char *url, bool asap)
{
    natsOptions *o = NULL;
    natsConnection *nc = NULL;
    if (natsOptions_Create(&o) != NATS_OK || natsOptions_SetURL(o, url) != NATS_OK ||
        natsOptions_SetSendAsap(o, asap) != NATS_OK || natsConnection_Connect(&nc, o) != NATS_OK)
        die("libnats", "cannot connect");
    natsOptions_Destroy(o);
    return nc;
}

/* Messages/s that every one of `subs` subscribers (each on its own connection, as the servers
 * are) receives from one publisher: the slowest subscriber's count over its elapsed time. */
static double nats_pubsub_rate(const char *url, size_t size, uint64_t count, unsigned subs,
                               uint64_t *dropped)
{
    natsConnection *pub = nats_conn(url, false), *subc[SERVERS];
    natsSubscription *sub[SERVERS];
    static struct counter c[SERVERS];
    PSL_ASSERT(subs >= 1 && subs <= SERVERS);
    for (unsigned k = 0; k < subs; k++) {
        subc[k] = nats_conn(url, false);
        c[k].n = 0;
        if (natsConnection_Subscribe(&sub[k], subc[k], "bench.pubsub", on_count, &c[k]) !=
            NATS_OK)
            die("libnats", "subscribe");
        natsSubscription_SetPendingLimits(sub[k], -1, -1);
        natsConnection_Flush(subc[k]);
    }
    uint8_t *buf = calloc(1, size);
    if (!buf)
        die("malloc", "out of memory");
    double t0 = now_s();
    for (uint64_t i = 0; i < count; i++)
        if (natsConnection_Publish(pub, "bench.pubsub", buf, (int)size) != NATS_OK)
            die("libnats", "publish");
    natsConnection_Flush(pub);
    double rate = 0;
    *dropped = 0;
    for (unsigned k = 0; k < subs; k++) {
        for (int i = 0; i < 3000 && c[k].n < count; i++)
            usleep(10000);
        double r = (double)c[k].n / (c[k].t_last - t0);
        if (k == 0 || r < rate)
            rate = r;
        int64_t d = 0;
        natsSubscription_GetDropped(sub[k], &d);
        *dropped += (uint64_t)d;
    }
    for (unsigned k = 0; k < subs; k++) {
        natsSubscription_Destroy(sub[k]);
        natsConnection_Destroy(subc[k]);
    }
    natsConnection_Destroy(pub);
    free(buf);
    return rate;
}

/* Fills lat[samples] with raw libnats request/reply round trips (record-sized request,
 * ACK-sized answer). */
static void nats_rtt_samples(const char *url, size_t size, unsigned samples, double *lat)
{
    natsConnection *req = nats_conn(url, true), *rep = nats_conn(url, true);
    natsSubscription *sub = NULL;
    if (natsConnection_Subscribe(&sub, rep, "bench.echo", on_echo, NULL) != NATS_OK)
        die("libnats", "subscribe");
    natsConnection_Flush(rep);
    uint8_t *buf = calloc(1, size);
    if (!buf)
        die("malloc", "out of memory");
    for (unsigned i = 0; i < samples + 20; i++) {
        natsMsg *m = NULL;
        double t0 = now_s();
        if (natsConnection_Request(&m, req, "bench.echo", buf, (int)size, 5000) != NATS_OK)
            die("libnats", "request");
        double dt = (now_s() - t0) * 1e6;
        natsMsg_Destroy(m);
        if (i >= 20)
            lat[i - 20] = dt; /* the first requests set up the reply inbox */
    }
    natsSubscription_Destroy(sub);
    natsConnection_Destroy(req);
    natsConnection_Destroy(rep);
    free(buf);
}

/* The p50 of `samples` latencies that fill (fsync_samples, nats_rtt_samples) measures at
 * `where` (a directory or a URL). */
static double p50_of(void (*fill)(const char *, size_t, unsigned, double *), const char *where,
                     size_t size, unsigned samples)
{
    double *lat = calloc(samples, sizeof *lat);
    if (!lat)
        die("malloc", "out of memory");
    fill(where, size, samples, lat);
    double p50 = quantile(lat, samples, 0.5);
    free(lat);
    return p50;
}

/* Minimal crypto per durable record, per core-second: the writer seals once (AES-GCM of the
 * payload, SHA-256, Ed25519 sign); each server hashes and verifies once. */
static double crypto_us_per_record(size_t rec_size)
{
    struct signer s;
    check(signer_init(&s, NULL), "signer");
    uint8_t key[AEAD_KEY_SIZE] = {1}, nonce[AEAD_NONCE_SIZE] = {0}, tag[AEAD_TAG_SIZE];
    struct aead_key k;
    check(aead_key_init(&k, key), "aead key");
    uint8_t *buf = calloc(1, rec_size);
    uint8_t hash[HASH_SIZE], sig[SIGN_SIG_SIZE];
    if (!buf)
        die("malloc", "out of memory");
    const unsigned n = 400;
    double t0 = now_s();
    for (unsigned i = 0; i < n; i++) {
        put_le64(nonce, i);
        check(aead_seal(&k, nonce, buf, PSL_RECORD_HEADER_SIZE, buf + PSL_RECORD_HEADER_SIZE,
                        rec_size - PSL_RECORD_HEADER_SIZE - 80, tag),
              "aead");
        hash_sha256(hash, buf, rec_size - 64);
        sign_tagged(&s, sig, RECORD_SIG_TAG, hash);
    }
    double writer = (now_s() - t0) / n;
    t0 = now_s();
    for (unsigned i = 0; i < n; i++) {
        hash_sha256(hash, buf, rec_size - 64);
        if (sign_verify_tagged(s.pk, sig, RECORD_SIG_TAG, hash) != (i == n))
            (void)0; /* the hash changed with the buffer: the verify result is not the point */
    }
    double server = (now_s() - t0) / n;
    aead_key_deinit(&k);
    signer_deinit(&s);
    free(buf);
    return (writer + SERVERS * server) * 1e6;
}

/* ---- ACK arrival probe: when each server's ACK for the sample in flight reaches the writer's
 * process (before the client verifies it), to split the ACK latency ---- */

struct probe {
    pthread_mutex_t mu;
    const struct capsule_meta *meta;
    uint64_t seq;            /* the sample in flight */
    double t0;               /* its publish time */
    double arrival[SERVERS]; /* seconds after t0; 0: not yet */
    unsigned arrived;
};

static void on_probe_ack(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    struct probe *p = ctx;
    double t = now_s();
    struct ack a;
    if (ack_decode(&a, data, size))
        return;
    int idx = meta_replica_index(p->meta, a.server_pk);
    pthread_mutex_lock(&p->mu);
    if (idx >= 0 && a.seq >= p->seq && p->arrival[idx] == 0) {
        p->arrival[idx] = t - p->t0;
        p->arrived++;
    }
    pthread_mutex_unlock(&p->mu);
}

/* ---- the writer ---- */

struct writer {
    struct writer_keys wk;
    struct writer_cert cert;
    struct record_chain chain;
    uint64_t lamport;
    uint8_t *buf;
    size_t cap;
};

static void writer_init(struct writer *w, struct fed *f)
{
    check(writer_keys_init(&w->wk, NULL, NULL, f->capsule_key), "writer keys");
    uint64_t now = clock_wall_ms();
    memset(&w->cert, 0, sizeof w->cert);
    w->cert.role = ROLE_WORKER;
    memcpy(w->cert.capsule, f->meta.name, HASH_SIZE);
    memcpy(w->cert.sign_pk, w->wk.sign.pk, SIGN_PK_SIZE);
    memcpy(w->cert.kx_pk, w->wk.kx.pk, KX_PK_SIZE);
    w->cert.not_before_ms = now - 3600000;
    w->cert.not_after_ms = now + 24 * 3600000ull;
    w->cert.serial = rng_u64();
    cert_sign(&w->cert, &f->owner);
    record_chain_init(&w->chain, f->meta.name);
    w->cap = record_sealed_size(64 * 1024, REC_DATA);
    w->buf = malloc(w->cap);
    if (!w->buf)
        die("malloc", "out of memory");
}

static size_t writer_cert_record(struct writer *w)
{
    struct wr wr;
    wr_init(&wr, w->buf + PSL_RECORD_HEADER_SIZE, w->cap - PSL_RECORD_HEADER_SIZE);
    certpl_encode(&wr, &w->cert, NULL);
    size_t size;
    uint8_t hash[HASH_SIZE];
    check(wr.err, "cert payload");
    check(record_chain_seal(&w->chain, &w->wk, REC_CERT, ++w->lamport, w->buf, w->cap, wr.pos,
                            &size, hash),
          "seal");
    return size;
}

static size_t writer_data_record(struct writer *w, size_t value_size)
{
    static uint8_t value[64 * 1024];
    char key[32];
    int ks = snprintf(key, sizeof key, "bench/%" PRIu64, w->chain.seq + 1);
    struct kv_op op = {.op = OP_PUT,
                       .lamport = ++w->lamport,
                       .key_size = (uint16_t)ks,
                       .key = (const uint8_t *)key,
                       .value_size = (uint32_t)value_size,
                       .value = value};
    struct wr wr;
    wr_init(&wr, w->buf + PSL_RECORD_HEADER_SIZE,
            w->cap - PSL_RECORD_HEADER_SIZE - AEAD_TAG_SIZE - PSL_RECORD_SIG_SIZE);
    data_encode(&wr, &op, 1);
    check(wr.err, "data payload");
    size_t size;
    uint8_t hash[HASH_SIZE];
    check(record_chain_seal(&w->chain, &w->wk, REC_DATA, w->lamport, w->buf, w->cap, wr.pos, &size,
                            hash),
          "seal");
    return size;
}

struct cpu_snap {
    double server[SERVERS], nats, self, t;
};

static void cpu_take(const struct fed *f, struct cpu_snap *s)
{
    for (int i = 0; i < SERVERS; i++)
        s->server[i] = proc_cpu_s(f->server_pid[i]);
    s->nats = proc_cpu_s(f->nats_pid);
    s->self = self_cpu_s();
    s->t = now_s();
}

/* acc += b - a, field by field (to sum the blocks of a phase). */
static void cpu_add(struct cpu_snap *acc, const struct cpu_snap *a, const struct cpu_snap *b)
{
    for (int i = 0; i < SERVERS; i++)
        acc->server[i] += b->server[i] - a->server[i];
    acc->nats += b->nats - a->nats;
    acc->self += b->self - a->self;
    acc->t += b->t - a->t;
}

static void cpu_report(const char *phase, const struct cpu_snap *a, const struct cpu_snap *b,
                       uint64_t records)
{
    double srv = 0;
    for (int i = 0; i < SERVERS; i++)
        srv += b->server[i] - a->server[i];
    double total = srv + (b->nats - a->nats) + (b->self - a->self);
    double wall = b->t - a->t;
    printf("breakdown %s: wall %.2fs, CPU %.2fs of %.2fs available (2 cores: %.0f%% busy); per "
           "record: "
           "3 servers %.1f us, nats-server %.1f us, writer+client %.1f us, total %.1f us\n",
           phase, wall, total, 2 * wall, 100 * total / (2 * wall), srv / (double)records * 1e6,
           (b->nats - a->nats) / (double)records * 1e6, (b->self - a->self) / (double)records * 1e6,
           total / (double)records * 1e6);
}

static void server_stats(const struct fed *f, const char *phase, double stored0[SERVERS],
                         double commits0[SERVERS], double dup0[SERVERS], double ae0[SERVERS])
{
    static double inl0[SERVERS]; /* like the others: the previous call's values */
    for (int i = 0; i < SERVERS; i++) {
        double stored = metric(f->metrics_port[i], "psl_capsuled_records_stored_total");
        double commits = metric(f->metrics_port[i], "psl_capsuled_commits_total");
        double inl = metric(f->metrics_port[i], "psl_capsuled_inline_commits_total");
        double dup = metric(f->metrics_port[i], "psl_capsuled_records_duplicate_total");
        double ae = metric(f->metrics_port[i], "psl_capsuled_anti_entropy_records_total");
        double p50 =
            metric(f->metrics_port[i], "psl_capsuled_commit_latency_seconds{quantile=\"0.5\"}");
        if (phase)
            printf("breakdown %s: server %d stored %.0f in %.0f commits (%.1f per batch, %.0f "
                   "inline), duplicates %.0f "
                   "(anti-entropy fetched %.0f), commit p50 ~%.0f us (whole run)\n",
                   phase, i, stored - stored0[i], commits - commits0[i],
                   (stored - stored0[i]) / (commits - commits0[i] > 0 ? commits - commits0[i] : 1),
                   inl - inl0[i], dup - dup0[i], ae - ae0[i], p50 * 1e6);
        stored0[i] = stored;
        commits0[i] = commits;
        inl0[i] = inl;
        dup0[i] = dup;
        ae0[i] = ae;
    }
}

/* The latency phase is about an idle system: a server that fell behind in the throughput phase
 * (its group commits lagging the others') would still be storing that backlog, competing for
 * the two cores. So wait, at most CATCH_UP_S, until every server has stored every record the
 * writer has published (its stored-records counter; one writer, no forks, fresh servers), and
 * say how long that took. */
#define CATCH_UP_S 60.0
static void wait_caught_up(const struct fed *f, const char *phase, uint64_t records)
{
    double t0 = now_s(), have[SERVERS];
    for (;;) {
        int behind = -1;
        for (int i = 0; i < SERVERS; i++) {
            have[i] = metric(f->metrics_port[i], "psl_capsuled_records_stored_total");
            if (have[i] < (double)records && behind < 0)
                behind = i;
        }
        if (behind < 0)
            break;
        if (now_s() - t0 > CATCH_UP_S) {
            char why[160];
            snprintf(why, sizeof why,
                     "server %d stored %.0f of %" PRIu64 " records after %.0f s; the latency "
                     "phase needs servers that have caught up",
                     behind, have[behind], records, CATCH_UP_S);
            die(phase, why);
        }
        usleep(5000);
    }
    printf("breakdown %s: waited %.3f s until all %d servers stored all %" PRIu64 " records\n",
           phase, now_s() - t0, SERVERS, records);
}

int main(int argc, char **argv)
{
    static const struct option table[] = {{"commit-window-us", required_argument, NULL, 'w'},
                                          {"records-1k", required_argument, NULL, '1'},
                                          {"records-16k", required_argument, NULL, '6'},
                                          {"samples", required_argument, NULL, 's'},
                                          {"keep", no_argument, NULL, 'k'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    struct fed f;
    memset(&f, 0, sizeof f);
    f.o = (struct opts){  .commit_window_us = 0, .records = {20000, 3000}, .samples = 500};
    int ch;
    while ((ch = getopt_long(argc, argv, "h", table, NULL)) != -1) {
        switch (ch) {
        case 'w':
            f.o.commit_window_us = (uint32_t)strtoul(optarg, NULL, 10);
            break;
        case '1':
            f.o.records[0] = strtoull(optarg, NULL, 10);
            break;
        case '6':
            f.o.records[1] = strtoull(optarg, NULL, 10);
            break;
        case 's':
            f.o.samples = (unsigned)strtoul(optarg, NULL, 10);
            break;
        case 'k':
            f.o.keep = true;
            break;
        default:
            printf(
                "Usage: capsuled_bench [--commit-window-us N] [--records-1k N] [--records-16k N]\n"
                "                      [--samples N] [--keep]\n"
                "Environment: PSL_CAPSULED, PSL_NATS_SERVER (paths), TMPDIR (data directories).\n");
            return ch == 'h' ? 0 : 2;
        }
    }
    if (f.o.samples < 10 || !f.o.records[0] || !f.o.records[1]) {
        fprintf(stderr, "capsuled_bench: --samples must be >= 10 and record counts > 0\n");
        return 2;
    }
    if (psl_crypto_init() != PSL_OK)
        die("crypto", "cannot initialise");
    log_set_level(PSL_LOG_WARN);
    signal(SIGINT, on_signal);
    signal(SIGTERM, on_signal);
    signal(SIGPIPE, SIG_IGN);
    const char *tmp = getenv("TMPDIR") ? getenv("TMPDIR") : "/tmp";
    snprintf(f.dir, sizeof f.dir, "%s/psl-capsuled-bench.XXXXXX", tmp);
    if (!mkdtemp(f.dir))
        die("mkdtemp", strerror(errno));
    snprintf(kids.dir, sizeof kids.dir, "%s", f.dir);
    kids.keep = f.o.keep;
    printf("capsuled_bench: 1 writer, %d psl-capsuled processes (k = %d), nats-server on loopback, "
           "data in %s, commit window %u us, %ld cores\n",
           SERVERS, QUORUM, f.dir, f.o.commit_window_us, sysconf(_SC_NPROCESSORS_ONLN));
    fed_files(&f);
    fed_start_nats(&f);

    /* The record sizes, exactly as the writer will produce them. */
    struct writer w;
    writer_init(&w, &f);
    size_t rec_size[SIZES];
    {
        struct writer probe;
        writer_init(&probe, &f);
        (void)writer_cert_record(&probe);
        for (int s = 0; s < SIZES; s++)
            rec_size[s] = writer_data_record(&probe, value_sizes[s]);
        writer_keys_deinit(&probe.wk);
        free(probe.buf);
    }

    /* Floors, measured before the servers exist so nothing else competes. */
    double fsync_p50[SIZES], gc_rate[SIZES], gc_batch[SIZES], ps_rate[SIZES], fan_rate[SIZES],
        rtt_p50[SIZES], cpu_us[SIZES];
    for (int s = 0; s < SIZES; s++) {
        fsync_p50[s] = p50_of(fsync_samples, f.dir, rec_size[s], 300);
        gc_rate[s] = group_commit_rate(f.dir, rec_size[s], FLOOR_WINDOW_US, &gc_batch[s]);
        uint64_t dropped;
        uint64_t count = s == 0 ? 200000 : 20000;
        ps_rate[s] = nats_pubsub_rate(f.url, rec_size[s], count, 1, &dropped);
        if (dropped)
            printf("note: the NATS floor subscriber dropped %" PRIu64 " messages\n", dropped);
        fan_rate[s] = nats_pubsub_rate(f.url, rec_size[s], count, SERVERS, &dropped);
        if (dropped)
            printf("note: the NATS fan-out subscribers dropped %" PRIu64 " messages\n", dropped);
        rtt_p50[s] = p50_of(nats_rtt_samples, f.url, rec_size[s], 1000);
        cpu_us[s] = crypto_us_per_record(rec_size[s]);
        printf(
            "floors %s (record %zu bytes): fsync p50 %.0f us; disk group commit %.0f records/s "
            "(%.0f records per fdatasync); NATS pub/sub %.0f msgs/s (to each of %d subscribers: "
            "%.0f msgs/s); NATS round trip p50 %.0f us; crypto %.0f us of CPU per durable "
            "record\n",
            size_names[s], rec_size[s], fsync_p50[s], gc_rate[s], gc_batch[s], ps_rate[s],
            SERVERS, fan_rate[s], rtt_p50[s], cpu_us[s]);
    }

    fed_start_servers(&f);
    struct fabric *fab;
    check(fabric_nats_connect(f.url, "capsuled_bench", &fab), "fabric");
    struct capsule_client *cl;
    struct capsule_client_config cc = {
        .fabric = fab, .meta = &f.meta, .unacked_bytes_max = 4u << 20};
    check(capsule_client_open(&cl, &cc), "client");
    check(capsule_client_add_writer(cl, &w.wk), "client writer"); /* ACKs checked by MAC */
    static struct probe probe;
    pthread_mutex_init(&probe.mu, NULL);
    probe.meta = &f.meta;
    probe.seq = UINT64_MAX;
    char ack_topic[FABRIC_TOPIC_SIZE_MAX];
    {
        char whex[2 * HASH_SIZE + 1];
        hex_encode(whex, w.wk.writer_id, HASH_SIZE);
        topic_capsule(ack_topic, f.meta.name, "ack", whex);
    }
    size_t size = writer_cert_record(&w);
    check(capsule_client_publish(cl, w.buf, size, 10000), "publish");
    check(capsule_client_wait_durable(cl, w.wk.writer_id, w.chain.seq, 10000),
          "first record durable");

    double stored0[SERVERS], commits0[SERVERS], dup0[SERVERS], ae0[SERVERS];
    server_stats(&f, NULL, stored0, commits0, dup0, ae0);
    double rate[SIZES], ack_p50[SIZES], ack_p99[SIZES], fsync_in[SIZES], rtt_in[SIZES];
    for (int s = 0; s < SIZES; s++) {
        char phase[64];
        /* (a) throughput: pipelined, bounded window */
        for (int i = 0; i < 200; i++) { /* warm-up */
            size = writer_data_record(&w, value_sizes[s]);
            check(capsule_client_publish(cl, w.buf, size, 60000), "publish");
        }
        check(capsule_client_wait_durable(cl, w.wk.writer_id, w.chain.seq, 60000),
              "warm-up durable");
        server_stats(&f, NULL, stored0, commits0, dup0, ae0);
        struct cpu_snap a, b;
        cpu_take(&f, &a);
        double t0 = now_s();
        for (uint64_t i = 0; i < f.o.records[s]; i++) {
            size = writer_data_record(&w, value_sizes[s]);
            check(capsule_client_publish(cl, w.buf, size, 60000), "publish");
        }
        check(capsule_client_wait_durable(cl, w.wk.writer_id, w.chain.seq, 120000), "durable");
        double dt = now_s() - t0;
        cpu_take(&f, &b);
        rate[s] = (double)f.o.records[s] / dt;
        snprintf(phase, sizeof phase, "append_%s", size_names[s]);
        cpu_report(phase, &a, &b, f.o.records[s]);
        server_stats(&f, phase, stored0, commits0, dup0, ae0);

        /* (b) latency: one record at a time */
        double *lat = calloc(f.o.samples, sizeof *lat);
        double *nth[SERVERS];
        for (int k = 0; k < SERVERS; k++)
            nth[k] = calloc(f.o.samples, sizeof(double));
        if (!lat || !nth[0] || !nth[1] || !nth[2])
            die("malloc", "out of memory");
        snprintf(phase, sizeof phase, "ack_%s", size_names[s]);
        wait_caught_up(&f, phase, w.chain.seq);
        server_stats(&f, NULL, stored0, commits0, dup0, ae0); /* the phase counts its own */
        usleep(300000);
        /* The bound's floors are measured in the same minutes as the samples, between blocks of
         * them (the servers idle): on a shared machine the disk and the scheduler drift over a
         * run, and a bound measured a minute earlier compares against another machine. */
        double *fs_lat = calloc((size_t)LAT_BLOCKS * FLOOR_FSYNC_SAMPLES, sizeof(double));
        double *rt_lat = calloc((size_t)LAT_BLOCKS * FLOOR_RTT_SAMPLES, sizeof(double));
        if (!fs_lat || !rt_lat)
            die("malloc", "out of memory");
        struct cpu_snap zero = {0}, acc = {0};
        unsigned per_block = (f.o.samples + LAT_BLOCKS - 1) / LAT_BLOCKS;
        for (unsigned i = 0; i < f.o.samples; i++) {
            if (i % per_block == 0) {
                unsigned blk = i / per_block;
                if (i) {
                    cpu_take(&f, &b);
                    cpu_add(&acc, &a, &b);
                }
                fsync_samples(f.dir, rec_size[s], FLOOR_FSYNC_SAMPLES,
                              fs_lat + (size_t)blk * FLOOR_FSYNC_SAMPLES);
                nats_rtt_samples(f.url, rec_size[s], FLOOR_RTT_SAMPLES,
                                 rt_lat + (size_t)blk * FLOOR_RTT_SAMPLES);
                usleep(20000);
                cpu_take(&f, &a);
            }
            size = writer_data_record(&w, value_sizes[s]);
            double l0 = now_s();
            check(capsule_client_publish(cl, w.buf, size, 10000), "publish");
            check(capsule_client_wait_durable(cl, w.wk.writer_id, w.chain.seq, 10000), "durable");
            lat[i] = (now_s() - l0) * 1e6;
            /* Idle again before the next sample: the slowest server's ACK may come after
             * durability (up to 100 ms). */
            for (int t = 0; t < 2000 && capsule_client_ack_count(cl, w.wk.writer_id,
                                                                 w.chain.seq) < SERVERS;
                 t++)
                usleep(50);
        }
        cpu_take(&f, &b);
        cpu_add(&acc, &a, &b);
        ack_p50[s] = quantile(lat, f.o.samples, 0.5);
        ack_p99[s] = quantile(lat, f.o.samples, 0.99);
        fsync_in[s] = quantile(fs_lat, LAT_BLOCKS * FLOOR_FSYNC_SAMPLES, 0.5);
        rtt_in[s] = quantile(rt_lat, LAT_BLOCKS * FLOOR_RTT_SAMPLES, 0.5);
        free(fs_lat);
        free(rt_lat);
        printf("floors during ack_%s (between %u blocks of samples): fsync p50 %.0f us, NATS round "
               "trip p50 %.0f us (at the start of the run: %.0f us, %.0f us)\n",
               size_names[s], LAT_BLOCKS, fsync_in[s], rtt_in[s], fsync_p50[s], rtt_p50[s]);

        /* (c) where the time goes: a shorter pass with a second subscriber on the ACK topic
         * that notes when each server's ACK reaches the writer's process, before the client
         * checks it. Not part of the figures: the extra subscriber costs the process a thread
         * wake per ACK, on the path it measures. */
        uint64_t probe_sub;
        check(fabric_subscribe(fab, ack_topic, on_probe_ack, &probe, &probe_sub),
              "probe subscribe");
        unsigned probes = f.o.samples < PROBE_SAMPLES ? f.o.samples : PROBE_SAMPLES;
        double *plat = calloc(probes, sizeof *plat);
        if (!plat)
            die("malloc", "out of memory");
        for (unsigned i = 0; i < probes; i++) {
            size = writer_data_record(&w, value_sizes[s]);
            pthread_mutex_lock(&probe.mu);
            probe.seq = w.chain.seq;
            memset(probe.arrival, 0, sizeof probe.arrival);
            probe.arrived = 0;
            double l0 = probe.t0 = now_s();
            pthread_mutex_unlock(&probe.mu);
            check(capsule_client_publish(cl, w.buf, size, 10000), "publish");
            check(capsule_client_wait_durable(cl, w.wk.writer_id, w.chain.seq, 10000), "durable");
            plat[i] = (now_s() - l0) * 1e6;
            for (int t = 0; t < 2000 && probe.arrived < SERVERS; t++)
                usleep(50);
            pthread_mutex_lock(&probe.mu);
            double v[SERVERS];
            memcpy(v, probe.arrival, sizeof v);
            pthread_mutex_unlock(&probe.mu);
            qsort(v, SERVERS, sizeof v[0], cmp_double);
            for (int k = 0; k < SERVERS; k++)
                nth[k][i] = v[k] * 1e6; /* one that never came counts as 0 (sorted first) */
        }
        fabric_unsubscribe(fab, probe_sub);
        printf("breakdown ack_%s: measured p50 %.0f us (no second subscriber); probe pass of %u: "
               "ACK arrival at the writer's process (before the client's check), p50: first "
               "%.0f us, second %.0f us, third %.0f us; durable (k = 2) p50 %.0f us\n",
               size_names[s], ack_p50[s], probes, quantile(nth[0], probes, 0.5),
               quantile(nth[1], probes, 0.5), quantile(nth[2], probes, 0.5),
               quantile(plat, probes, 0.5));
        free(plat);
        for (int k = 0; k < SERVERS; k++)
            free(nth[k]);
        free(lat);
        snprintf(phase, sizeof phase, "ack_%s", size_names[s]);
        cpu_report(phase, &zero, &acc, f.o.samples);
        server_stats(&f, phase, stored0, commits0, dup0, ae0);
    }
    struct capsule_client_stats cs;
    capsule_client_get_stats(cl, &cs);
    printf("client: published %" PRIu64 ", re-sent %" PRIu64 ", valid ACKs %" PRIu64 "\n",
           cs.published, cs.resent, cs.acks_valid);
    capsule_client_close(cl);
    fabric_destroy(fab);

    for (int s = 0; s < SIZES; s++) {
        const char *n = size_names[s];
        double floor = gc_rate[s] < ps_rate[s] ? gc_rate[s] : ps_rate[s];
        double cpu_floor = (double)sysconf(_SC_NPROCESSORS_ONLN) * 1e6 / cpu_us[s];
        printf("RESULT name=capsuled.fsync_%s.p50 value=%.1f unit=us\n", n, fsync_in[s]);
        printf("RESULT name=capsuled.fsync_%s.p50_at_start value=%.1f unit=us\n", n,
               fsync_p50[s]);
        printf("RESULT name=capsuled.disk_group_commit_%s.rate value=%.0f unit=records/s\n", n,
               gc_rate[s]);
        printf("RESULT name=capsuled.nats_pubsub_%s.rate value=%.0f unit=msgs/s\n", n, ps_rate[s]);
        /* informational: the fabric alone, delivering every record to the 3 servers */
        printf("RESULT name=capsuled.nats_fanout3_%s.rate value=%.0f unit=msgs/s\n", n,
               fan_rate[s]);
        printf("RESULT name=capsuled.nats_rtt_%s.p50 value=%.1f unit=us\n", n, rtt_in[s]);
        printf("RESULT name=capsuled.nats_rtt_%s.p50_at_start value=%.1f unit=us\n", n,
               rtt_p50[s]);
        printf("RESULT name=capsuled.append_%s.durable_rate value=%.0f unit=records/s floor=%.0f "
               "ratio=%.4f\n",
               n, rate[s], floor, rate[s] / floor);
        printf("RESULT name=capsuled.append_%s.ratio_vs_floor value=%.4f unit=x\n", n,
               rate[s] / floor);
        printf("RESULT name=capsuled.append_%s.cpu_floor value=%.0f unit=records/s\n", n,
               cpu_floor);
        printf("RESULT name=capsuled.append_%s.ratio_vs_cpu_floor value=%.3f unit=x\n", n,
               rate[s] / cpu_floor);
        double bound = 3 * fsync_in[s] + rtt_in[s];
        double bound0 = 3 * fsync_p50[s] + rtt_p50[s];
        const char *ack = s == 0 ? "ack" : "ack_16k";
        printf("RESULT name=capsuled.%s_p50 value=%.1f unit=us floor=%.1f ratio=%.3f\n", ack,
               ack_p50[s], bound, ack_p50[s] / bound);
        printf("RESULT name=capsuled.%s_p99 value=%.1f unit=us\n", ack, ack_p99[s]);
        printf("RESULT name=capsuled.%s_p50.bound value=%.1f unit=us\n", ack, bound);
        printf("RESULT name=capsuled.%s_p50.ratio_vs_bound value=%.3f unit=x\n", ack,
               ack_p50[s] / bound);
        printf("RESULT name=capsuled.%s_p50.ratio_vs_bound_at_start value=%.3f unit=x\n", ack,
               ack_p50[s] / bound0);
    }
    writer_keys_deinit(&w.wk);
    free(w.buf);
    signer_deinit(&f.owner);
    secret_free(f.capsule_key);
    stop_children();
    return 0;
}
