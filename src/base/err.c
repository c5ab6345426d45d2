/* err.c: messages for psl_err. The table is indexed by the enum, so adding an error means adding
 * one row here (checklist: err.h, this table, docs/protocol.md if it is a wire-visible error). */
#include "base/err.h"

struct err_row {
    const char *name;
    const char *msg;
};

static const struct err_row err_rows[PSL_ERR__COUNT] = {
    [PSL_OK] = {"ok", "success"},
    [PSL_ERR_NOMEM] = {"nomem", "out of memory"},
    [PSL_ERR_INVALID_ARG] = {"invalid_arg", "invalid argument"},
    [PSL_ERR_IO] = {"io", "input/output error"},
    [PSL_ERR_EXISTS] = {"exists", "already exists"},
    [PSL_ERR_NOT_FOUND] = {"not_found", "not found"},
    [PSL_ERR_CRYPTO_INIT] = {"crypto_init", "crypto library initialisation failed"},
    [PSL_ERR_CRYPTO] = {"crypto", "crypto operation failed"},
    [PSL_ERR_STORAGE_FULL] = {"storage_full", "storage is full (disk or database map); appends are refused until space returns"},
    [PSL_ERR_TIMEOUT] = {"timeout", "timed out"},
    [PSL_ERR_CLOSED] = {"closed", "shutting down or closed"},
    [PSL_ERR_BUSY] = {"busy", "too many requests in flight; retry later"},
    [PSL_ERR_TRUNCATED] = {"truncated", "input is truncated"},
    [PSL_ERR_TOO_LARGE] = {"too_large", "a length or count exceeds its limit"},
    [PSL_ERR_TRAILING] = {"trailing", "unexpected bytes after the end of the input"},
    [PSL_ERR_MALFORMED] = {"malformed", "malformed input"},
    [PSL_ERR_BAD_MAGIC] = {"bad_magic", "wrong magic bytes"},
    [PSL_ERR_BAD_VERSION] = {"bad_version", "unsupported format version"},
    [PSL_ERR_BAD_SUITE] = {"bad_suite", "unsupported crypto suite"},
    [PSL_ERR_BAD_TYPE] = {"bad_type", "unknown type"},
    [PSL_ERR_AUTH] = {"auth", "authentication failed"},
    [PSL_ERR_WRONG_CAPSULE] = {"wrong_capsule", "belongs to another capsule"},
    [PSL_ERR_UNKNOWN_WRITER] = {"unknown_writer", "writer has no known certificate"},
    [PSL_ERR_CERT_EXPIRED] = {"cert_expired", "certificate is outside its validity window"},
    [PSL_ERR_CERT_FOREIGN] = {"cert_foreign", "certificate is for another capsule"},
    [PSL_ERR_CERT_ISSUER] = {"cert_issuer", "certificate issuer is not the owner or a delegated leader"},
    [PSL_ERR_CERT_ROLE] = {"cert_role", "certificate role is not allowed"},
    [PSL_ERR_CERT_MEASUREMENT] = {"cert_measurement", "enclave measurement is not allowed by the capsule policy"},
    [PSL_ERR_BAD_SIGNATURE] = {"bad_signature", "signature does not verify"},
    [PSL_ERR_BAD_MAC] = {"bad_mac", "message authentication code does not verify"},
    [PSL_ERR_BAD_PREV] = {"bad_prev", "prev link does not match the previous record"},
    [PSL_ERR_BAD_SEQ] = {"bad_seq", "sequence number is invalid"},
    [PSL_ERR_DECRYPT] = {"decrypt", "payload does not decrypt"},
    [PSL_ERR_REPLAY] = {"replay", "record was already seen"},
    [PSL_ERR_FORK] = {"fork", "two different records for one (writer, seq)"},
    [PSL_ERR_NOT_REPLICA] = {"not_replica", "server is not in the capsule's replica set"},
    [PSL_ERR_REVOKED] = {"revoked", "writer is revoked"},
    [PSL_ERR_BAD_SYNC] = {"bad_sync", "sync link or cut does not match the records"},
    [PSL_ERR_ATTEST_PLATFORM] = {"attest_platform", "evidence is not signed by a trusted platform key"},
    [PSL_ERR_ATTEST_MEASUREMENT] = {"attest_measurement", "enclave measurement is not allowed by the policy"},
    [PSL_ERR_ATTEST_NONCE] = {"attest_nonce", "evidence answers another nonce (stale or replayed)"},
    [PSL_ERR_ATTEST_BINDING] = {"attest_binding", "evidence report data does not bind the enclave's keys"},
    [PSL_ERR_LAMBDA] = {"lambda", "the lambda raised an error"},
    [PSL_ERR_LAMBDA_BUDGET] = {"lambda_budget", "the lambda exhausted its instruction budget"},
    [PSL_ERR_LAMBDA_MEMORY] = {"lambda_memory", "the lambda exceeded its memory cap"},
    [PSL_ERR_PEER_DEAD] = {"peer_dead", "the process at the other end is gone"},
};

const char *psl_strerror(psl_err err)
{
    if ((unsigned)err >= PSL_ERR__COUNT || !err_rows[err].msg)
        return "unknown error";
    return err_rows[err].msg;
}

const char *psl_err_name(psl_err err)
{
    if ((unsigned)err >= PSL_ERR__COUNT || !err_rows[err].name)
        return "unknown";
    return err_rows[err].name;
}

bool psl_err_is_auth(psl_err err)
{
    return err >= PSL_ERR_AUTH && err <= PSL_ERR_ATTEST_BINDING;
}

psl_err psl_err_outward(psl_err err)
{
    return psl_err_is_auth(err) ? PSL_ERR_AUTH : err;
}
