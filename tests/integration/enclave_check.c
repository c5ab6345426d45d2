/* enclave_check.c: integration checks of real psl-enclave processes, each trying to break a
 * property of DESIGN §7:
 *   seccomp  ENCLAVE          a forbidden system call after start-up kills only the enclave
 *                             (SIGSYS), and the host reports it
 *   garbage  ENCLAVE          hostile host messages (unknown types, wrong sizes, records before
 *                             provisioning, sealed garbage, random bytes) are refused with an
 *                             error message; the enclave stays alive and still attests
 *   refuse   ENCLAVE DIR      provisioning through a real enclave: a bundle for another enclave,
 *                             one for a stale nonce, and one whose certificate names another
 *                             capsule are refused; the honest one then works
 *   secrecy  ENCLAVE DIR      runs a job that writes known plaintext, and scans everything the
 *                             host can see (ring traffic both ways, every fabric message, the
 *                             servers' database files) for the capsule key and the plaintext
 * Exit 0 when the property held; prints FAIL and exits 1 otherwise. */
#include <dirent.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>

#include "attest/evidence.h"
#include "attest/provision.h"
#include "ring/ring.h"
#include "base/clock.h"
#include "base/rng.h"
#include "capsule/export.h"
#include "capsule/keyfile.h"
#include "node/enclave_host.h"
#include "ring/abi.h"
#include "node/federation.h"

static _Noreturn void fail(const char *fmt, const char *detail)
{
    printf("FAIL: enclave_check: ");
    printf(fmt, detail ? detail : "");
    printf("\n");
    fflush(stdout);
    exit(1);
}

static void must(psl_err err, const char *what)
{
    if (err)
        fail("%s", what), (void)0;
}

static struct fabric *bus_fabric(struct inproc_bus **bus)
{
    struct fabric *fab;
    must(inproc_bus_create(bus, 16u << 20), "inproc_bus_create");
    must(fabric_inproc_connect(*bus, &fab), "fabric_inproc_connect");
    return fab;
}

/* ---- seccomp ---- */

static int check_seccomp(const char *enclave)
{
    struct inproc_bus *bus;
    struct fabric *fab = bus_fabric(&bus);
    struct enclave_host_config hc = {.enclave_path = enclave, .selftest_seccomp = true,
                                     .name = "seccomp"};
    struct enclave_host *h;
    psl_err err = enclave_host_start(&h, &hc, fab, 10000);
    /* The enclave says HELLO, then tries the forbidden call: it may die before or after the
     * host saw the HELLO. Either way the host must report SIGSYS. */
    if (err == PSL_OK) {
        uint64_t deadline = clock_mono_ns() + 10000000000ull;
        while (!enclave_host_dead(h) && clock_mono_ns() < deadline) {
            struct timespec ts = {0, 10000000};
            nanosleep(&ts, NULL);
        }
        if (!enclave_host_dead(h))
            fail("%s", "the enclave survived a forbidden system call");
        const char *why = enclave_host_exit_reason(h);
        printf("enclave ended: %s\n", why);
        if (!strstr(why, "SIGSYS"))
            fail("exit reason does not name SIGSYS: %s", why);
        if (!strstr(why, "openat"))
            fail("exit reason does not name the refused call (openat): %s", why);
        enclave_host_stop(h, 1000);
    } else if (err != PSL_ERR_PEER_DEAD) {
        fail("start: %s", psl_strerror(err));
    } else {
        printf("enclave died during start-up (before HELLO was read)\n");
    }
    /* The host survives and can start an honest enclave afterwards. */
    hc.selftest_seccomp = false;
    hc.name = "after";
    if (enclave_host_start(&h, &hc, fab, 10000) != PSL_OK)
        fail("%s", "a fresh enclave did not start after the killed one");
    uint8_t nonce[32] = {1};
    struct enclave_report rp;
    must(enclave_host_report(h, nonce, &rp, 5000), "report from a confined enclave");
    enclave_host_stop(h, 2000);
    fabric_destroy(fab);
    inproc_bus_destroy(bus);
    printf("ok: seccomp kills the enclave on a forbidden call; the host reports it\n");
    return 0;
}

/* ---- garbage ---- */

static int check_garbage(const char *enclave)
{
    struct inproc_bus *bus;
    struct fabric *fab = bus_fabric(&bus);
    struct enclave_host_config hc = {.enclave_path = enclave, .name = "garbage"};
    struct enclave_host *h;
    must(enclave_host_start(&h, &hc, fab, 10000), "start");
    uint8_t junk[4096];
    rng_bytes(junk, sizeof junk);
    struct {
        uint32_t type;
        size_t size;
    } cases[] = {
        {999, 0},         {999, 10},          {RING_H2E_ATTEST, 0},  {RING_H2E_ATTEST, 31},
        {RING_H2E_ATTEST, 33}, {RING_H2E_PROVISION, 0}, {RING_H2E_PROVISION, 4000},
        {RING_H2E_RECORD, 300}, {RING_H2E_ACK, 100}, {RING_H2E_REPLY, 50},
        {0xfffffffeu, 1}, {102, 128}, /* an E2H type sent the wrong way */
    };
    size_t n = sizeof cases / sizeof cases[0];
    for (size_t i = 0; i < n; i++)
        must(enclave_host_send_raw(h, cases[i].type, junk, cases[i].size), "send garbage");
    /* Random frames. */
    for (int i = 0; i < 200; i++) {
        uint32_t t = (uint32_t)(rng_u64() % 16);
        if (t == RING_H2E_SHUTDOWN || t == RING_TYPE_NONE) /* 0 marks an empty ring slot */
            t = 77;
        size_t size = (size_t)(rng_u64() % sizeof junk);
        must(enclave_host_send_raw(h, t, junk, size), "send random frame");
    }
    /* It must still be alive and answer a proper ATTEST. */
    uint8_t nonce[32];
    rng_bytes(nonce, sizeof nonce);
    struct enclave_report rp;
    psl_err err = enclave_host_report(h, nonce, &rp, 10000);
    if (err)
        fail("no report after garbage: %s", enclave_host_exit_reason(h));
    uint8_t rd[64];
    attest_report_data(rd, rp.sign_pk, rp.kx_pk, nonce);
    if (memcmp(rd, rp.report_data, 64) != 0)
        fail("%s", "report data does not bind the keys and nonce");
    if (!enclave_host_last_error(h)[0])
        fail("%s", "garbage was not answered with an error message");
    printf("last refusal: %s\n", enclave_host_last_error(h));
    if (enclave_host_dead(h))
        fail("%s", "enclave died");
    enclave_host_stop(h, 2000);
    fabric_destroy(fab);
    inproc_bus_destroy(bus);
    printf("ok: garbage refused with errors; enclave alive and attesting\n");
    return 0;
}

/* ---- refuse: provisioning refusals through a real enclave ---- */

struct refuse_ctx {
    struct signer owner, platform;
    struct capsule_meta meta, other_meta;
    uint8_t measurement[HASH_SIZE];
    uint8_t capsule_key[AEAD_KEY_SIZE];
    struct attest_policy policy;
};

static void make_meta(struct capsule_meta *m, struct signer *owner, const uint8_t meas[HASH_SIZE],
                      const char *label)
{
    memset(m, 0, sizeof *m);
    m->version = META_VERSION;
    m->suite = PSL_SUITE_1;
    m->created_ms = clock_wall_ms();
    m->label_size = (uint8_t)strlen(label);
    memcpy(m->label, label, m->label_size);
    m->quorum_k = 1;
    m->replica_count = 1;
    struct signer srv;
    must(signer_init(&srv, NULL), "server key");
    memcpy(m->replicas[0], srv.pk, SIGN_PK_SIZE);
    signer_deinit(&srv);
    m->measurement_count = 1;
    memcpy(m->measurements[0], meas, HASH_SIZE);
    must(meta_sign(m, owner), "meta_sign");
}

/* The attestation message of enclave h over nonce, with its evidence signed by platform for
 * measurement (the true one, or a lie). */
static size_t worker_msg(struct enclave_host *h, const struct signer *platform,
                         const uint8_t measurement[HASH_SIZE], const uint8_t nonce[32],
                         uint8_t msg[ATTEST_MSG_SIZE_MAX])
{
    struct enclave_report rp;
    must(enclave_host_report(h, nonce, &rp, 5000), "report");
    size_t size;
    must(attest_sim_message(platform, measurement, rp.report_data, rp.sign_pk, rp.kx_pk, msg,
                            ATTEST_MSG_SIZE_MAX, &size),
         "msg");
    return size;
}

/* Attests h; returns the verified identity and the nonce used. */
static void attest(struct refuse_ctx *c, struct enclave_host *h, uint8_t nonce[32],
                   struct attest_verified *v)
{
    attest_nonce_new(nonce);
    uint8_t msg[ATTEST_MSG_SIZE_MAX];
    size_t size = worker_msg(h, &c->platform, c->measurement, nonce, msg);
    must(attest_verify(&c->policy, msg, size, nonce, v), "attest_verify");
}

/* A bundle of capsule m whose certificate is issued for capsule cert_m and keys v. */
static void bundle2(struct refuse_ctx *c, const struct capsule_meta *m,
                    const struct capsule_meta *cert_m, const struct attest_verified *v,
                    const uint8_t nonce[32], const uint8_t to_kx[KX_PK_SIZE], uint8_t **out,
                    size_t *size)
{
    static const char script[] = "function main() return 1 end";
    uint64_t now = clock_wall_ms();
    struct provision_issuer is = {.signer = &c->owner, .meta = m, .capsule_key = c->capsule_key};
    struct provision_issuer cis = is;
    cis.meta = cert_m;
    struct provision_cert_spec spec = {.role = ROLE_WORKER, .not_before_ms = now - 1000,
                                       .not_after_ms = now + 3600000};
    struct writer_cert cert;
    must(provision_issue_cert(&cis, v, &spec, now, &cert), "issue cert");
    struct provision_job pj = {.worker_count = 1, .script = (const uint8_t *)script,
                               .script_size = sizeof script - 1, .chunk_name = "refuse"};
    must(provision_seal(&is, &cert, nonce, &pj, to_kx, out, size), "seal");
}

static void bundle(struct refuse_ctx *c, const struct capsule_meta *m,
                   const struct attest_verified *v, const uint8_t nonce[32],
                   const uint8_t to_kx[KX_PK_SIZE], uint8_t **out, size_t *size)
{
    bundle2(c, m, m, v, nonce, to_kx, out, size);
}

static void expect_refused(struct enclave_host *h, const uint8_t *b, size_t size, const char *what)
{
    char why[256] = "";
    psl_err err = enclave_host_provision(h, b, size, why, sizeof why, 5000);
    if (err == PSL_OK)
        fail("the enclave accepted %s", what);
    if (enclave_host_dead(h))
        fail("the enclave died on %s", what);
    printf("refused %s: %s\n", what, why);
}

static int check_refuse(const char *enclave, const char *dir)
{
    struct refuse_ctx c;
    must(signer_init(&c.owner, NULL), "owner");
    must(attest_sim_platform_load(&c.platform, dir), "platform key");
    must(attest_measure_file(enclave, c.measurement), "measure");
    make_meta(&c.meta, &c.owner, c.measurement, "refuse test");
    make_meta(&c.other_meta, &c.owner, c.measurement, "another capsule");
    rng_bytes(c.capsule_key, sizeof c.capsule_key);
    attest_policy_init(&c.policy, &c.meta);
    must(attest_policy_trust_platform(&c.policy, c.platform.pk), "trust");

    struct inproc_bus *bus;
    struct fabric *fab = bus_fabric(&bus);
    struct enclave_host_config hc = {.enclave_path = enclave, .name = "a"};
    struct enclave_host *a, *b;
    must(enclave_host_start(&a, &hc, fab, 10000), "start a");
    hc.name = "b";
    must(enclave_host_start(&b, &hc, fab, 10000), "start b");
    uint8_t na[32], nb[32];
    struct attest_verified va, vb;
    attest(&c, a, na, &va);
    attest(&c, b, nb, &vb);
    uint8_t *x;
    size_t xs;
    /* 1. a bundle sealed to another enclave (b's) handed to a */
    bundle(&c, &c.meta, &vb, nb, vb.kx_pk, &x, &xs);
    expect_refused(a, x, xs, "a bundle sealed to another enclave");
    free(x);
    /* 2. a's own keys, but the nonce of an earlier session (replay) */
    uint8_t old_nonce[32];
    memcpy(old_nonce, na, 32);
    attest(&c, a, na, &va); /* a new session: a now expects the new nonce */
    bundle(&c, &c.meta, &va, old_nonce, va.kx_pk, &x, &xs);
    expect_refused(a, x, xs, "a bundle for a stale nonce (replayed session)");
    free(x);
    /* 3. a certificate for another enclave's keys (b's), sealed to a */
    bundle(&c, &c.meta, &vb, na, va.kx_pk, &x, &xs);
    expect_refused(a, x, xs, "a certificate for another enclave's keys");
    free(x);
    /* 3b. a certificate of another capsule in this capsule's bundle */
    bundle2(&c, &c.meta, &c.other_meta, &va, na, va.kx_pk, &x, &xs);
    expect_refused(a, x, xs, "a certificate for another capsule");
    free(x);
    /* 4. garbage sealed to a's key */
    uint8_t junk[200], sealed[200 + SEAL_OVERHEAD];
    rng_bytes(junk, sizeof junk);
    must(seal_box(sealed, junk, sizeof junk, va.kx_pk), "seal junk");
    expect_refused(a, sealed, sizeof sealed, "sealed garbage");
    /* 5. the honest bundle works */
    bundle(&c, &c.meta, &va, na, va.kx_pk, &x, &xs);
    char why[256];
    psl_err err = enclave_host_provision(a, x, xs, why, sizeof why, 5000);
    free(x);
    if (err)
        fail("the honest bundle was refused: %s", why);
    printf("accepted the honest bundle\n");
    enclave_host_stop(a, 2000);
    enclave_host_stop(b, 2000);
    fabric_destroy(fab);
    inproc_bus_destroy(bus);
    signer_deinit(&c.owner);
    signer_deinit(&c.platform);
    printf("ok: provisioning refusals hold through a real enclave\n");
    return 0;
}

/* ---- leader: a delegated leader enclave certifies a worker without the owner ---- */

static int check_leader(const char *enclave, const char *dir)
{
    struct refuse_ctx c;
    must(signer_init(&c.owner, NULL), "owner");
    must(attest_sim_platform_load(&c.platform, dir), "platform key");
    must(attest_measure_file(enclave, c.measurement), "measure");
    make_meta(&c.meta, &c.owner, c.measurement, "leader test");
    rng_bytes(c.capsule_key, sizeof c.capsule_key);
    attest_policy_init(&c.policy, &c.meta);
    must(attest_policy_trust_platform(&c.policy, c.platform.pk), "trust");
    struct inproc_bus *bus;
    struct fabric *fab = bus_fabric(&bus);
    struct enclave_host_config hc = {.enclave_path = enclave, .name = "leader"};
    struct enclave_host *L, *W;
    must(enclave_host_start(&L, &hc, fab, 10000), "start leader");
    hc.name = "worker";
    must(enclave_host_start(&W, &hc, fab, 10000), "start worker");

    /* The owner attests the leader, delegates to it and provisions it: its last act. */
    uint8_t nl[32];
    struct attest_verified vl;
    attest(&c, L, nl, &vl);
    uint64_t now = clock_wall_ms();
    struct delegation d = {.roles_mask = ROLE_BIT(ROLE_WORKER) | ROLE_BIT(ROLE_COORDINATOR),
                           .not_before_ms = now - 60000,
                           .not_after_ms = now + 3600000,
                           .serial = 7};
    memcpy(d.capsule, c.meta.name, HASH_SIZE);
    memcpy(d.leader_pk, vl.sign_pk, SIGN_PK_SIZE);
    memcpy(d.measurement, c.measurement, HASH_SIZE);
    deleg_sign(&d, &c.owner);
    uint8_t args[4 + DELEG_SIZE + 1 + SIGN_PK_SIZE + 5];
    memcpy(args, RING_LEADER_MAGIC, 4);
    deleg_encode(&d, args + 4);
    args[4 + DELEG_SIZE] = 1;
    memcpy(args + 4 + DELEG_SIZE + 1, c.platform.pk, SIGN_PK_SIZE);
    memcpy(args + 4 + DELEG_SIZE + 1 + SIGN_PK_SIZE, "hello", 5);
    static const char script[] = "function main(a) local me, n = psl.worker() return {a, me, n} end";
    struct provision_issuer is = {.signer = &c.owner, .meta = &c.meta, .capsule_key = c.capsule_key};
    struct provision_cert_spec spec = {.role = ROLE_LEADER, .not_before_ms = now - 60000,
                                       .not_after_ms = now + 3600000};
    struct writer_cert lcert;
    must(provision_issue_cert(&is, &vl, &spec, now, &lcert), "leader cert");
    struct kx_keypair client;
    must(kx_init(&client, NULL), "client key");
    struct provision_job pj = {.worker_count = 1, .script = (const uint8_t *)script,
                               .script_size = sizeof script - 1, .chunk_name = "led.lua",
                               .args = args, .args_size = sizeof args};
    rng_bytes(pj.job_id, JOB_ID_SIZE);
    memcpy(pj.client_kx_pk, client.pk, KX_PK_SIZE);
    memcpy(pj.client_sign_pk, c.owner.pk, SIGN_PK_SIZE);
    uint8_t *x;
    size_t xs;
    must(provision_seal(&is, &lcert, nl, &pj, vl.kx_pk, &x, &xs), "seal leader");
    char why[256];
    if (enclave_host_provision(L, x, xs, why, sizeof why, 5000) != PSL_OK)
        fail("the leader was not provisioned: %s", why);
    free(x);
    signer_deinit(&c.owner); /* the owner goes offline */

    /* 1. A worker whose evidence claims another measurement is refused by the leader. */
    uint8_t nonce[32], msg[ATTEST_MSG_SIZE_MAX];
    must(enclave_host_leader_nonce(L, 0, nonce, 5000), "leader nonce");
    uint8_t other[HASH_SIZE];
    memcpy(other, c.measurement, HASH_SIZE);
    other[0] ^= 1;
    size_t ms = worker_msg(W, &c.platform, other, nonce, msg);
    if (enclave_host_leader_issue(L, 0, msg, ms, &x, &xs, why, sizeof why, 5000) == PSL_OK)
        fail("%s", "the leader certified a worker of another measurement");
    printf("leader refused another measurement: %s\n", why);
    /* 2. Replaying a message after its nonce was used is refused too. */
    if (enclave_host_leader_issue(L, 0, msg, ms, &x, &xs, why, sizeof why, 5000) == PSL_OK)
        fail("%s", "the leader accepted a replayed attestation");
    printf("leader refused a replay: %s\n", why);
    /* 3. The honest worker: nonce from the leader, evidence, certificate under the delegation. */
    must(enclave_host_leader_nonce(L, 0, nonce, 5000), "leader nonce");
    ms = worker_msg(W, &c.platform, c.measurement, nonce, msg);
    if (enclave_host_leader_issue(L, 0, msg, ms, &x, &xs, why, sizeof why, 5000) != PSL_OK)
        fail("the leader refused the honest worker: %s", why);
    if (enclave_host_provision(W, x, xs, why, sizeof why, 5000) != PSL_OK)
        fail("the worker refused the leader's bundle: %s", why);
    free(x);
    psl_err job_err;
    uint8_t *sealed;
    size_t ss;
    must(enclave_host_wait_result(W, 30000, &job_err, &sealed, &ss), "worker result");
    struct result_opened ro;
    must(result_open(&client, &c.meta, pj.job_id, clock_wall_ms(), sealed, ss, &ro),
         "the client could not verify the result");
    free(sealed);
    if (job_err || ro.size < 2 || ro.data[0] != 1 ||
        memcmp(ro.data + 1, "[\"hello\",0,1]", ro.size - 1) != 0)
        fail("%s", "unexpected result");
    if (memcmp(ro.cert.issuer_pk, vl.sign_pk, SIGN_PK_SIZE) != 0)
        fail("%s", "the worker's certificate was not issued by the leader");
    printf("worker certified by the leader returned %.*s\n", (int)ro.size - 1,
           (const char *)ro.data + 1);
    result_opened_free(&ro);
    kx_deinit(&client);
    enclave_host_stop(W, 2000);
    enclave_host_stop(L, 2000);
    fabric_destroy(fab);
    inproc_bus_destroy(bus);
    signer_deinit(&c.platform);
    printf("ok: a delegated leader enclave certifies workers without the owner\n");
    return 0;
}

/* ---- secrecy ---- */

#define MARK_KEY "psl-secret-key-7f3a9c"
#define MARK_VALUE "psl-secret-value-51d0e2"
#define MARK_CODE "psl-secret-code-comment-a81b"
#define MARK_ARGS "psl-secret-args-93c4"
#define MARK_RESULT "psl-secret-result-2e77"
#define MARK_LOG "psl-secret-log-6b10"

static const char secrecy_script[] =
    "-- " MARK_CODE "\n"
    "function main(args)\n"
    "  local me = psl.worker()\n"
    "  for i = 1, 50 do psl.put('" MARK_KEY "' .. me .. '/' .. i, '" MARK_VALUE "' .. i) end\n"
    "  psl.log('" MARK_LOG "')\n"
    "  psl.barrier('b')\n"
    "  assert(psl.get('" MARK_KEY "0/1') == '" MARK_VALUE "1')\n"
    "  return args .. '" MARK_RESULT "'\n"
    "end\n";

struct seen {
    pthread_mutex_t mu;
    uint8_t *buf;
    size_t size, cap;
    size_t messages;
};

static void seen_add(struct seen *s, const uint8_t *data, size_t size)
{
    pthread_mutex_lock(&s->mu);
    if (s->size + size + 1 > s->cap) {
        size_t cap = (s->cap + size + 1) * 2;
        uint8_t *b = realloc(s->buf, cap);
        if (!b)
            fail("%s", "out of memory");
        s->buf = b;
        s->cap = cap;
    }
    if (size)
        memcpy(s->buf + s->size, data, size); /* empty messages (SHUTDOWN) have no data */
    s->size += size;
    s->buf[s->size++] = 0; /* a separator: no match spans two messages */
    s->messages++;
    pthread_mutex_unlock(&s->mu);
}

static void tap(void *ctx, int dir, uint32_t type, const uint8_t *data, size_t size)
{
    (void)dir;
    (void)type;
    seen_add(ctx, data, size);
}

static void fabric_tap(void *ctx, const char *topic, const uint8_t *data, size_t size)
{
    (void)topic;
    seen_add(ctx, data, size);
}

static void add_files(struct seen *s, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d)
        return;
    struct dirent *de;
    while ((de = readdir(d))) {
        if (de->d_name[0] == '.')
            continue;
        char path[2048];
        snprintf(path, sizeof path, "%s/%s", dir, de->d_name);
        struct stat st;
        if (stat(path, &st) != 0)
            continue;
        if (S_ISDIR(st.st_mode)) {
            add_files(s, path);
        } else if (S_ISREG(st.st_mode) && !strstr(de->d_name, ".key")) {
            uint8_t *buf;
            size_t size;
            if (file_read_all(path, &buf, &size) == PSL_OK) {
                seen_add(s, buf, size);
                free(buf);
            }
        }
    }
    closedir(d);
}

static bool contains(const struct seen *s, const void *needle, size_t n)
{
    return memmem(s->buf, s->size, needle, n) != NULL;
}

static int check_secrecy(const char *enclave, const char *dir)
{
    struct seen s = {.mu = PTHREAD_MUTEX_INITIALIZER};
    struct fed_config fc = {.data_dir = dir, .enclave_path = enclave, .on_tap = tap,
                            .on_fabric_tap = fabric_tap, .tap_ctx = &s};
    struct fed *f;
    must(fed_open(&f, &fc), "fed_open");
    struct fed_job_config jc = {.name = "secrecy.lua",
                                .script = (const uint8_t *)secrecy_script,
                                .script_size = sizeof secrecy_script - 1,
                                .args = (const uint8_t *)MARK_ARGS,
                                .args_size = sizeof MARK_ARGS - 1,
                                .workers = 2,
                                .timeout_ms = 60000};
    struct fed_job_report rep;
    must(fed_run_job(f, &jc, &rep), "fed_run_job");
    for (unsigned i = 0; i < rep.workers; i++) {
        if (!rep.results[i].ok || !rep.results[i].verified)
            fail("a worker failed: %s", rep.results[i].why[0] ? rep.results[i].why : rep.results[i].text);
        if (!rep.results[i].text || !strstr(rep.results[i].text, MARK_RESULT))
            fail("%s", "the client did not get the result");
    }
    if (!rep.chain_verified)
        fail("%s", "the capsule does not verify");
    fed_close(f);
    /* What the servers stored, on disk (the export is the client's: not scanned). */
    char servers[1200];
    snprintf(servers, sizeof servers, "%s/servers", dir);
    add_files(&s, servers);
    uint8_t *key = secret_alloc(AEAD_KEY_SIZE);
    must(keyfile_read(rep.key_path, KEYFILE_CAPSULE, key), "read the capsule key");
    printf("scanned %zu messages and files, %zu bytes\n", s.messages, s.size);
    if (s.messages < 100 || s.size < 10000)
        fail("%s", "too little traffic was captured for the scan to mean anything");
    static const char *marks[] = {MARK_KEY, MARK_VALUE, MARK_CODE, MARK_ARGS, MARK_RESULT,
                                  MARK_LOG};
    for (size_t i = 0; i < sizeof marks / sizeof marks[0]; i++)
        if (contains(&s, marks[i], strlen(marks[i])))
            fail("the host saw plaintext: %s", marks[i]);
    if (contains(&s, key, AEAD_KEY_SIZE))
        fail("%s", "the host saw the capsule key");
    /* A control: the scan does find what is public (the capsule name is in every record). */
    if (!contains(&s, rep.capsule, HASH_SIZE))
        fail("%s", "the scan is broken: it does not even find the capsule name");
    secret_free(key);
    fed_job_report_free(&rep);
    free(s.buf);
    printf("ok: no capsule key, key, value, code, args, result or log line in plaintext\n");
    return 0;
}

int main(int argc, char **argv)
{
    if (psl_crypto_init() != PSL_OK)
        fail("%s", "crypto init");
    if (argc >= 3 && !strcmp(argv[1], "seccomp"))
        return check_seccomp(argv[2]);
    if (argc >= 3 && !strcmp(argv[1], "garbage"))
        return check_garbage(argv[2]);
    if (argc >= 4 && !strcmp(argv[1], "refuse"))
        return check_refuse(argv[2], argv[3]);
    if (argc >= 4 && !strcmp(argv[1], "leader"))
        return check_leader(argv[2], argv[3]);
    if (argc >= 4 && !strcmp(argv[1], "secrecy"))
        return check_secrecy(argv[2], argv[3]);
    fprintf(stderr, "usage: enclave_check seccomp|garbage ENCLAVE | refuse|leader|secrecy ENCLAVE DIR\n");
    return 2;
}
