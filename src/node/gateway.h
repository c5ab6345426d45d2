/* gateway.h: psl-node's HTTP API (DESIGN §10; reference: docs/api.md), on libmicrohttpd with
 * JSON bodies (jansson). It validates every field a client sends (types, sizes, base64, hex)
 * before handing it to the job host, refuses bodies over GATEWAY_BODY_SIZE_MAX with 413 before
 * reading them whole, and answers every error with {"error": "..."}. It relays sealed bytes only:
 * it can read no bundle, result or lambda log line. */
#ifndef PSL_NODE_GATEWAY_H
#define PSL_NODE_GATEWAY_H

#include <stdint.h>

#include "node/jobhost.h"
#include "node/servers.h"

/* The largest request body: one sealed bundle (a 1 MiB script and 1 MiB of args, base64) and
 * the JSON around it fit; clients send bundles in several requests when they are bigger. */
#define GATEWAY_BODY_SIZE_MAX (4u << 20)
/* The largest capsule export the node builds in memory for GET /v1/capsules/{name}/export. */
#define GATEWAY_EXPORT_SIZE_MAX (256u << 20)
/* Sealed log lines returned by one GET /v1/jobs/{id}. */
#define GATEWAY_LOG_LINES_PER_GET 256u

struct gateway_config {
    const char *listen;  /* "HOST:PORT", an IPv4 address (e.g. 127.0.0.1:8080) */
    const char *node_id; /* shown in /v1/status */
    const char *fabric_name; /* "inproc" or the NATS URL, shown in /v1/status */
    struct jobhost *jobhost;       /* borrowed */
    struct pool *pool;             /* borrowed */
    const struct signer *platform; /* borrowed: its public key is published */
    uint8_t measurement[HASH_SIZE];
    struct node_servers *servers; /* borrowed; count 0: none embedded */
    struct fabric *fabric;        /* borrowed: exports read the capsule servers through it */
};

struct gateway;

/* Listens and serves on threads of its own. PSL_ERR_INVALID_ARG for a bad listen address,
 * PSL_ERR_IO when it cannot listen. */
psl_err gateway_start(struct gateway **out, const struct gateway_config *cfg) PSL_MUST_USE;
void gateway_stop(struct gateway *g);
/* The port it listens on (useful with port 0). */
uint16_t gateway_port(const struct gateway *g);

#endif
