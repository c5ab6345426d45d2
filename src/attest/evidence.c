/* evidence.c: evidence and attestation-message encodings, the sim platform, and the verifier.
 * The verifier believes nothing in evidence until a trusted platform key's signature covers it,
 * and answers every failure with the first check that failed, in the fixed order of
 * attest_verify_evidence, so that a test can pin which check refused what. */
#include "attest/evidence.h"

#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/assert.h"
#include "base/bytes.h"
#include "base/rng.h"
#include "capsule/keyfile.h"

static const uint8_t evidence_magic[4] = {'P', 'S', 'L', 'E'};
static const uint8_t attest_msg_magic[4] = {'P', 'S', 'L', 'T'};
#define EVIDENCE_SIG_TAG  "psl-evidence-v1"
#define REPORT_BIND_TAG   "psl-report-v1"
#define PLATFORM_KEY_FILE "platform.key"

const char *evidence_describe(uint8_t tee_type)
{
    switch (tee_type) {
    case TEE_SIM:
        return "sim (simulation: no hardware protection)";
    case TEE_SGX:
        return "sgx";
    case TEE_SEV_SNP:
        return "sev-snp";
    case TEE_TDX:
        return "tdx";
    default:
        return "unknown tee";
    }
}

void attest_nonce_new(uint8_t out[ATTEST_NONCE_SIZE])
{
    rng_bytes(out, ATTEST_NONCE_SIZE);
}

void attest_report_data(uint8_t out[EVIDENCE_REPORT_DATA_SIZE], const uint8_t sign_pk[SIGN_PK_SIZE],
                        const uint8_t kx_pk[KX_PK_SIZE], const uint8_t nonce[ATTEST_NONCE_SIZE])
{
    const struct hash_part parts[] = {
        {REPORT_BIND_TAG, sizeof REPORT_BIND_TAG - 1},
        {sign_pk, SIGN_PK_SIZE},
        {kx_pk, KX_PK_SIZE},
    };
    hash_sha256_parts(out, parts, sizeof parts / sizeof parts[0]);
    memcpy(out + HASH_SIZE, nonce, ATTEST_NONCE_SIZE);
}

/* ---- evidence encoding ---- */

/* Writes everything before the signature; returns its size, or 0 when out is too small. */
static size_t evidence_encode_body(const struct evidence *ev, uint8_t *out, size_t cap)
{
    struct wr w;
    wr_init(&w, out, cap);
    wr_bytes(&w, evidence_magic, sizeof evidence_magic);
    wr_u8(&w, EVIDENCE_VERSION);
    wr_u8(&w, ev->tee_type);
    wr_u16(&w, ev->flags);
    wr_bytes(&w, ev->measurement, HASH_SIZE);
    wr_bytes(&w, ev->report_data, EVIDENCE_REPORT_DATA_SIZE);
    wr_bytes(&w, ev->platform_pk, SIGN_PK_SIZE);
    wr_u16(&w, ev->hw_report_size);
    if (ev->hw_report_size)
        wr_bytes(&w, ev->hw_report, ev->hw_report_size);
    return w.err ? 0 : w.pos;
}

psl_err evidence_encode(const struct evidence *ev, uint8_t *out, size_t cap, size_t *out_size)
{
    if (ev->hw_report_size > EVIDENCE_HW_REPORT_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    size_t n = evidence_encode_body(ev, out, cap);
    if (!n || cap - n < SIGN_SIG_SIZE)
        return PSL_ERR_TOO_LARGE;
    memcpy(out + n, ev->sig, SIGN_SIG_SIZE);
    *out_size = n + SIGN_SIG_SIZE;
    return PSL_OK;
}

psl_err evidence_decode(struct evidence *out, const uint8_t *buf, size_t size)
{
    if (size > PSL_EVIDENCE_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    if (size < EVIDENCE_FIXED_SIZE)
        return PSL_ERR_TRUNCATED;
    if (memcmp(buf, evidence_magic, sizeof evidence_magic) != 0)
        return PSL_ERR_BAD_MAGIC;
    struct evidence ev;
    struct rd r;
    rd_init(&r, buf + sizeof evidence_magic, size - sizeof evidence_magic);
    if (rd_u8(&r) != EVIDENCE_VERSION)
        return PSL_ERR_BAD_VERSION;
    ev.tee_type = rd_u8(&r);
    if (ev.tee_type < TEE_SIM || ev.tee_type > TEE_TYPE_MAX)
        return PSL_ERR_BAD_TYPE;
    ev.flags = rd_u16(&r);
    if (ev.flags & ~EVIDENCE_FLAGS_KNOWN)
        return PSL_ERR_MALFORMED;
    rd_copy(&r, ev.measurement, HASH_SIZE);
    rd_copy(&r, ev.report_data, EVIDENCE_REPORT_DATA_SIZE);
    rd_copy(&r, ev.platform_pk, SIGN_PK_SIZE);
    ev.hw_report_size = rd_u16(&r);
    /* The sim platform has no hardware report; a hardware one always has. */
    if ((ev.tee_type == TEE_SIM) != (ev.hw_report_size == 0))
        return PSL_ERR_MALFORMED;
    ev.hw_report = ev.hw_report_size ? rd_take(&r, ev.hw_report_size) : NULL;
    rd_copy(&r, ev.sig, SIGN_SIG_SIZE);
    psl_err err = rd_finish(&r);
    if (err)
        return err;
    *out = ev;
    return PSL_OK;
}

/* ---- the sim backend ---- */

static void evidence_sim_digest(const struct evidence *ev, uint8_t h[HASH_SIZE])
{
    uint8_t body[EVIDENCE_FIXED_SIZE];
    PSL_ASSERT(ev->hw_report_size == 0);
    size_t n = evidence_encode_body(ev, body, sizeof body);
    PSL_ASSERT(n == EVIDENCE_FIXED_SIZE - SIGN_SIG_SIZE);
    hash_sha256(h, body, n);
}

void evidence_sim_sign(struct evidence *ev, const struct signer *platform,
                       const uint8_t measurement[HASH_SIZE],
                       const uint8_t report_data[EVIDENCE_REPORT_DATA_SIZE])
{
    memset(ev, 0, sizeof *ev);
    ev->tee_type = TEE_SIM;
    ev->flags = 0;
    memcpy(ev->measurement, measurement, HASH_SIZE);
    memcpy(ev->report_data, report_data, EVIDENCE_REPORT_DATA_SIZE);
    memcpy(ev->platform_pk, platform->pk, SIGN_PK_SIZE);
    ev->hw_report_size = 0;
    ev->hw_report = NULL;
    uint8_t h[HASH_SIZE];
    evidence_sim_digest(ev, h);
    sign_tagged(platform, ev->sig, EVIDENCE_SIG_TAG, h);
}

psl_err attest_sim_platform_load(struct signer *out, const char *dir)
{
    char path[4096];
    int len = snprintf(path, sizeof path, "%s/%s", dir, PLATFORM_KEY_FILE);
    if (len < 0 || (size_t)len >= sizeof path)
        return PSL_ERR_INVALID_ARG;
    return keyfile_signer(out, path, NULL);
}

psl_err attest_measure_file(const char *path, uint8_t out[HASH_SIZE])
{
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0)
        return errno == ENOENT ? PSL_ERR_NOT_FOUND : PSL_ERR_IO;
    psl_err err = PSL_ERR_IO;
    struct stat st;
    if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode) || st.st_size < 0)
        goto out_close;
    size_t size = (size_t)st.st_size;
    if (size == 0) {
        hash_sha256(out, "", 0);
        err = PSL_OK;
        goto out_close;
    }
    void *map = mmap(NULL, size, PROT_READ, MAP_PRIVATE, fd, 0);
    if (map == MAP_FAILED)
        goto out_close;
    hash_sha256(out, map, size);
    munmap(map, size);
    err = PSL_OK;
out_close:
    close(fd);
    return err;
}

/* ---- attestation messages ---- */

psl_err attest_msg_encode(const struct evidence *ev, const uint8_t sign_pk[SIGN_PK_SIZE],
                          const uint8_t kx_pk[KX_PK_SIZE], uint8_t *out, size_t cap,
                          size_t *out_size)
{
    if (cap < ATTEST_MSG_HEADER_SIZE)
        return PSL_ERR_TOO_LARGE;
    size_t ev_size = 0;
    psl_err err =
        evidence_encode(ev, out + ATTEST_MSG_HEADER_SIZE, cap - ATTEST_MSG_HEADER_SIZE, &ev_size);
    if (err)
        return err;
    _Static_assert(PSL_EVIDENCE_SIZE_MAX <= UINT16_MAX, "evidence_size is a u16");
    PSL_ASSERT(ev_size <= PSL_EVIDENCE_SIZE_MAX);
    struct wr w;
    wr_init(&w, out, ATTEST_MSG_HEADER_SIZE);
    wr_bytes(&w, attest_msg_magic, sizeof attest_msg_magic);
    wr_u8(&w, EVIDENCE_VERSION);
    wr_bytes(&w, sign_pk, SIGN_PK_SIZE);
    wr_bytes(&w, kx_pk, KX_PK_SIZE);
    wr_u16(&w, (uint16_t)ev_size);
    PSL_ASSERT_SIZE(w, ATTEST_MSG_HEADER_SIZE);
    *out_size = ATTEST_MSG_HEADER_SIZE + ev_size;
    return PSL_OK;
}

psl_err attest_msg_decode(struct attest_msg *out, const uint8_t *buf, size_t size)
{
    if (size > ATTEST_MSG_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    if (size < ATTEST_MSG_HEADER_SIZE)
        return PSL_ERR_TRUNCATED;
    if (memcmp(buf, attest_msg_magic, sizeof attest_msg_magic) != 0)
        return PSL_ERR_BAD_MAGIC;
    struct attest_msg m;
    struct rd r;
    rd_init(&r, buf + sizeof attest_msg_magic, size - sizeof attest_msg_magic);
    if (rd_u8(&r) != EVIDENCE_VERSION)
        return PSL_ERR_BAD_VERSION;
    rd_copy(&r, m.sign_pk, SIGN_PK_SIZE);
    rd_copy(&r, m.kx_pk, KX_PK_SIZE);
    m.evidence_size = rd_u16(&r);
    if (m.evidence_size > PSL_EVIDENCE_SIZE_MAX)
        return PSL_ERR_TOO_LARGE;
    m.evidence = rd_take(&r, m.evidence_size);
    psl_err err = rd_finish(&r);
    if (err)
        return err;
    *out = m;
    return PSL_OK;
}

/* ---- verification ---- */

void attest_policy_init(struct attest_policy *p, const struct capsule_meta *m)
{
    memset(p, 0, sizeof *p);
    p->tee_mask = TEE_BIT(TEE_SIM);
    p->allow_debug = false;
    if (m) {
        PSL_ASSERT(m->measurement_count <= PSL_MEASUREMENTS_MAX);
        p->measurement_count = m->measurement_count;
        memcpy(p->measurements, m->measurements, (size_t)m->measurement_count * HASH_SIZE);
    }
}

static bool policy_trusts_platform(const struct attest_policy *p, const uint8_t pk[SIGN_PK_SIZE])
{
    for (unsigned i = 0; i < p->platform_key_count; i++)
        if (memcmp(p->platform_keys[i], pk, SIGN_PK_SIZE) == 0)
            return true;
    return false;
}

psl_err attest_policy_trust_platform(struct attest_policy *p, const uint8_t pk[SIGN_PK_SIZE])
{
    if (policy_trusts_platform(p, pk))
        return PSL_OK;
    if (p->platform_key_count >= PSL_PLATFORM_KEYS_MAX)
        return PSL_ERR_TOO_LARGE;
    memcpy(p->platform_keys[p->platform_key_count++], pk, SIGN_PK_SIZE);
    return PSL_OK;
}

static bool policy_allows_measurement(const struct attest_policy *p,
                                      const uint8_t measurement[HASH_SIZE])
{
    if (p->measurement_count == 0)
        return true;
    for (unsigned i = 0; i < p->measurement_count && i < PSL_MEASUREMENTS_MAX; i++)
        if (memcmp(p->measurements[i], measurement, HASH_SIZE) == 0)
            return true;
    return false;
}

/* The platform's signature over the evidence. Only the sim backend exists: a hardware type
 * would verify its hw_report here (DCAP quote, SNP report chain) and require the report's
 * measurement and report-data fields to equal the evidence's (docs/attestation.md). */
static psl_err evidence_check_platform(const struct attest_policy *p, const struct evidence *ev)
{
    if (ev->tee_type != TEE_SIM)
        return PSL_ERR_ATTEST_PLATFORM; /* no backend for this type in this build */
    if (!policy_trusts_platform(p, ev->platform_pk))
        return PSL_ERR_ATTEST_PLATFORM;
    uint8_t h[HASH_SIZE];
    evidence_sim_digest(ev, h);
    if (!sign_verify_tagged(ev->platform_pk, ev->sig, EVIDENCE_SIG_TAG, h))
        return PSL_ERR_BAD_SIGNATURE;
    return PSL_OK;
}

psl_err attest_verify_evidence(const struct attest_policy *p, const uint8_t *evidence,
                               size_t evidence_size, const uint8_t sign_pk[SIGN_PK_SIZE],
                               const uint8_t kx_pk[KX_PK_SIZE],
                               const uint8_t nonce[ATTEST_NONCE_SIZE], struct attest_verified *out)
{
    struct evidence ev;
    psl_err err = evidence_decode(&ev, evidence, evidence_size);
    if (err)
        return err;
    if (!(p->tee_mask & TEE_BIT(ev.tee_type)))
        return PSL_ERR_ATTEST_PLATFORM;
    if ((ev.flags & EVIDENCE_FLAG_DEBUG) && !p->allow_debug)
        return PSL_ERR_ATTEST_PLATFORM;
    err = evidence_check_platform(p, &ev);
    if (err)
        return err;
    /* Signed by a trusted platform from here on. */
    if (!ct_equal(ev.report_data + HASH_SIZE, nonce, ATTEST_NONCE_SIZE))
        return PSL_ERR_ATTEST_NONCE;
    uint8_t want[EVIDENCE_REPORT_DATA_SIZE];
    attest_report_data(want, sign_pk, kx_pk, nonce);
    if (!ct_equal(ev.report_data, want, HASH_SIZE))
        return PSL_ERR_ATTEST_BINDING;
    if (!policy_allows_measurement(p, ev.measurement))
        return PSL_ERR_ATTEST_MEASUREMENT;

    struct attest_verified v;
    v.tee_type = ev.tee_type;
    v.flags = ev.flags;
    memcpy(v.measurement, ev.measurement, HASH_SIZE);
    memcpy(v.sign_pk, sign_pk, SIGN_PK_SIZE);
    memcpy(v.kx_pk, kx_pk, KX_PK_SIZE);
    memcpy(v.platform_pk, ev.platform_pk, SIGN_PK_SIZE);
    v.description = evidence_describe(ev.tee_type);
    *out = v;
    return PSL_OK;
}

psl_err attest_verify(const struct attest_policy *p, const uint8_t *msg, size_t msg_size,
                      const uint8_t nonce[ATTEST_NONCE_SIZE], struct attest_verified *out)
{
    struct attest_msg m;
    psl_err err = attest_msg_decode(&m, msg, msg_size);
    if (err)
        return err;
    return attest_verify_evidence(p, m.evidence, m.evidence_size, m.sign_pk, m.kx_pk, nonce, out);
}

psl_err attest_sim_message(const struct signer *platform, const uint8_t measurement[HASH_SIZE],
                           const uint8_t report_data[EVIDENCE_REPORT_DATA_SIZE],
                           const uint8_t sign_pk[SIGN_PK_SIZE], const uint8_t kx_pk[KX_PK_SIZE],
                           uint8_t *out, size_t cap, size_t *out_size)
{
    struct evidence ev;
    evidence_sim_sign(&ev, platform, measurement, report_data);
    return attest_msg_encode(&ev, sign_pk, kx_pk, out, cap, out_size);
}
