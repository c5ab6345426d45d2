/* cold_start.c: the enclave cold-start section of ring_bench. One cold start is everything
 * between "a job needs a worker" and "the worker is provisioned": fork + exec of psl-enclave,
 * its start-up (ring attach, keys, seccomp) and HELLO, a report over a fresh nonce, sim evidence
 * signed by the platform key, the client's verification, the certificate, the sealed bundle,
 * and the enclave's unsealing, checks and engine start (READY). The floor printed beside it is a
 * bare fork + exec + wait of /bin/true, and of psl-enclave --help (the dynamic loading of the
 * enclave binary and its libraries). */
#include "cold_start.h"

#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include "attest/evidence.h"
#include "attest/provision.h"
#include "base/clock.h"
#include "base/rng.h"
#include "node/enclave_host.h"

#define RUNS 40

static int cmp_u64(const void *a, const void *b)
{
    uint64_t x = *(const uint64_t *)a, y = *(const uint64_t *)b;
    return x < y ? -1 : x > y;
}

static double pct_ms(uint64_t *ns, size_t n, double p)
{
    qsort(ns, n, sizeof *ns, cmp_u64);
    size_t i = (size_t)(p * (double)(n - 1) + 0.5);
    return (double)ns[i] / 1e6;
}

static uint64_t fork_exec_ns(const char *path, const char *arg)
{
    uint64_t t0 = clock_mono_ns();
    pid_t pid = fork();
    if (pid == 0) {
        int null = open("/dev/null", 1);
        if (null >= 0) {
            dup2(null, 1);
            dup2(null, 2);
        }
        execl(path, path, arg, (char *)NULL);
        _exit(127);
    }
    int st;
    waitpid(pid, &st, 0);
    return clock_mono_ns() - t0;
}

struct cs_ctx {
    struct signer owner, platform;
    struct capsule_meta meta;
    uint8_t *capsule_key;
    uint8_t measurement[HASH_SIZE];
    struct attest_policy policy;
    struct inproc_bus *bus;
    struct fabric *fab;
};

static int one_cold_start(struct cs_ctx *c, const char *enclave, uint64_t *ns)
{
    static const char script[] = "function main() return 1 end";
    uint64_t t0 = clock_mono_ns();
    struct enclave_host_config hc = {.enclave_path = enclave, .name = "cold"};
    struct enclave_host *h;
    if (enclave_host_start(&h, &hc, c->fab, 10000) != PSL_OK)
        return -1;
    uint8_t nonce[ATTEST_NONCE_SIZE];
    attest_nonce_new(nonce);
    struct enclave_report rp;
    uint8_t msg[ATTEST_MSG_SIZE_MAX];
    size_t msg_size;
    struct attest_verified v;
    struct writer_cert cert;
    uint8_t *sealed = NULL;
    size_t sealed_size;
    uint64_t now = clock_wall_ms();
    struct provision_issuer is = {.signer = &c->owner, .meta = &c->meta,
                                  .capsule_key = c->capsule_key};
    struct provision_cert_spec spec = {.role = ROLE_WORKER, .not_before_ms = now - 60000,
                                       .not_after_ms = now + 3600000};
    struct provision_job pj = {.worker_count = 1, .script = (const uint8_t *)script,
                               .script_size = sizeof script - 1, .chunk_name = "cold"};
    char why[256];
    int rc = -1;
    if (enclave_host_report(h, nonce, &rp, 5000) != PSL_OK)
        goto out;
    if (attest_sim_message(&c->platform, c->measurement, rp.report_data, rp.sign_pk, rp.kx_pk,
                           msg, sizeof msg, &msg_size) != PSL_OK ||
        attest_verify(&c->policy, msg, msg_size, nonce, &v) != PSL_OK ||
        provision_issue_cert(&is, &v, &spec, now, &cert) != PSL_OK ||
        provision_seal(&is, &cert, nonce, &pj, v.kx_pk, &sealed, &sealed_size) != PSL_OK)
        goto out;
    if (enclave_host_provision(h, sealed, sealed_size, why, sizeof why, 5000) != PSL_OK) {
        fprintf(stderr, "cold start: provisioning refused: %s\n", why);
        goto out;
    }
    *ns = clock_mono_ns() - t0;
    rc = 0;
out:
    free(sealed);
    enclave_host_stop(h, 0); /* not timed: a job's end, not its start */
    return rc;
}

int cold_start_section(const char *enclave)
{
    if (access(enclave, X_OK) != 0) {
        printf("# cold start: %s not found, skipped\n", enclave);
        return 0;
    }
    uint64_t bare[RUNS], bare_enclave[RUNS], cold[RUNS];
    for (int i = 0; i < RUNS; i++) {
        bare[i] = fork_exec_ns("/bin/true", NULL);
        bare_enclave[i] = fork_exec_ns(enclave, "--help");
    }
    struct cs_ctx c;
    memset(&c, 0, sizeof c);
    c.capsule_key = secret_alloc(AEAD_KEY_SIZE);
    if (!c.capsule_key || signer_init(&c.owner, NULL) || signer_init(&c.platform, NULL) ||
        attest_measure_file(enclave, c.measurement))
        return 1;
    rng_bytes(c.capsule_key, AEAD_KEY_SIZE);
    struct capsule_meta *m = &c.meta;
    m->version = META_VERSION;
    m->suite = PSL_SUITE_1;
    m->created_ms = clock_wall_ms();
    m->quorum_k = 1;
    m->replica_count = 1;
    memcpy(m->replicas[0], c.platform.pk, SIGN_PK_SIZE); /* any key: no server in this bench */
    m->measurement_count = 1;
    memcpy(m->measurements[0], c.measurement, HASH_SIZE);
    if (meta_sign(m, &c.owner))
        return 1;
    attest_policy_init(&c.policy, m);
    if (attest_policy_trust_platform(&c.policy, c.platform.pk) ||
        inproc_bus_create(&c.bus, 16u << 20) || fabric_inproc_connect(c.bus, &c.fab))
        return 1;
    int ok = 0;
    for (int i = 0; i < RUNS; i++)
        if (one_cold_start(&c, enclave, &cold[ok]) == 0)
            ok++;
    fabric_destroy(c.fab);
    inproc_bus_destroy(c.bus);
    signer_deinit(&c.owner);
    signer_deinit(&c.platform);
    secret_free(c.capsule_key);
    if (ok < RUNS / 2) {
        printf("# cold start: only %d of %d runs succeeded\n", ok, RUNS);
        return 1;
    }
    double floor = pct_ms(bare, RUNS, 0.5);
    double floor_enclave = pct_ms(bare_enclave, RUNS, 0.5);
    double p50 = pct_ms(cold, (size_t)ok, 0.5), p99 = pct_ms(cold, (size_t)ok, 0.99);
    printf("# cold start: spawn psl-enclave + HELLO + report + sim evidence + verify + certificate"
           " + sealed bundle + unseal/check/engine start (READY); %d runs\n", ok);
    printf("RESULT name=enclave.fork_exec_p50_ms value=%.3f unit=ms\n", floor);
    printf("RESULT name=enclave.fork_exec_enclave_help_p50_ms value=%.3f unit=ms\n", floor_enclave);
    printf("RESULT name=enclave.cold_start_p50_ms value=%.3f unit=ms floor=%.3f ratio=%.2f\n", p50,
           floor, p50 / floor);
    printf("RESULT name=enclave.cold_start_p99_ms value=%.3f unit=ms\n", p99);
    return 0;
}
