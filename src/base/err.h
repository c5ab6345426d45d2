/* err.h: the one error enum of psl and its messages.
 * Every fallible function returns psl_err (0 = PSL_OK) and writes its outputs only on success.
 * Verification failures are distinct internally (for logs and counters) but a peer only ever
 * learns PSL_ERR_AUTH through psl_err_outward(). */
#ifndef PSL_BASE_ERR_H
#define PSL_BASE_ERR_H

#include <stdbool.h>

#define PSL_MUST_USE __attribute__((warn_unused_result))

typedef enum psl_err {
    PSL_OK = 0,
    /* generic */
    PSL_ERR_NOMEM,
    PSL_ERR_INVALID_ARG,
    PSL_ERR_IO,
    PSL_ERR_EXISTS,
    PSL_ERR_NOT_FOUND,
    PSL_ERR_CRYPTO_INIT,
    PSL_ERR_CRYPTO,
    PSL_ERR_STORAGE_FULL,
    PSL_ERR_TIMEOUT,
    PSL_ERR_CLOSED,
    PSL_ERR_BUSY,
    /* decoding of outside bytes */
    PSL_ERR_TRUNCATED,
    PSL_ERR_TOO_LARGE,
    PSL_ERR_TRAILING,
    PSL_ERR_MALFORMED,
    PSL_ERR_BAD_MAGIC,
    PSL_ERR_BAD_VERSION,
    PSL_ERR_BAD_SUITE,
    PSL_ERR_BAD_TYPE,
    /* verification (all map to PSL_ERR_AUTH outward) */
    PSL_ERR_AUTH,
    PSL_ERR_WRONG_CAPSULE,
    PSL_ERR_UNKNOWN_WRITER,
    PSL_ERR_CERT_EXPIRED,
    PSL_ERR_CERT_FOREIGN,
    PSL_ERR_CERT_ISSUER,
    PSL_ERR_CERT_ROLE,
    PSL_ERR_CERT_MEASUREMENT,
    PSL_ERR_BAD_SIGNATURE,
    PSL_ERR_BAD_MAC,
    PSL_ERR_BAD_PREV,
    PSL_ERR_BAD_SEQ,
    PSL_ERR_DECRYPT,
    PSL_ERR_REPLAY,
    PSL_ERR_FORK,
    PSL_ERR_NOT_REPLICA,
    PSL_ERR_REVOKED,
    PSL_ERR_BAD_SYNC,
    PSL_ERR_ATTEST_PLATFORM,    /* evidence not signed by a trusted platform key */
    PSL_ERR_ATTEST_MEASUREMENT, /* evidence measurement not allowed by the policy */
    PSL_ERR_ATTEST_NONCE,       /* evidence for another (stale or replayed) nonce */
    PSL_ERR_ATTEST_BINDING,     /* report data does not bind the presented keys */
    /* enclaves and lambdas (not authentication failures) */
    PSL_ERR_LAMBDA,             /* the lambda raised an error (message says where) */
    PSL_ERR_LAMBDA_BUDGET,      /* the lambda exhausted its instruction budget */
    PSL_ERR_LAMBDA_MEMORY,      /* the lambda exceeded its memory cap */
    PSL_ERR_PEER_DEAD,          /* the process at the other end of a ring is gone */
    PSL_ERR__COUNT
} psl_err;

/* Returns a static, human-readable message; never NULL. */
const char *psl_strerror(psl_err err);

/* Short stable identifier ("bad_signature"), for counters and key=value logs. */
const char *psl_err_name(psl_err err);

/* True for errors that mean "this input failed authentication or validation". */
bool psl_err_is_auth(psl_err err);

/* What may be told to a peer: every authentication failure collapses to PSL_ERR_AUTH. */
psl_err psl_err_outward(psl_err err);

#endif
