/* servers.h: storage servers embedded in a host process (the embedded default of `psl run`, and
 * `psl-node --embedded-servers N` for a single machine), and the small data-directory helpers
 * both share. Server i keeps its key in <dir>/servers/s<i>.key (created on first use, 0600) and
 * its database in <dir>/servers/s<i>; each has its own fabric connection. */
#ifndef PSL_NODE_SERVERS_H
#define PSL_NODE_SERVERS_H

#include <stdint.h>

#include "capsuled/server.h"

#define NODE_SERVERS_MAX 16u
#define NODE_PATH_SIZE 1024u

/* Formats a path; PSL_ERR_TOO_LARGE when it does not fit. */
psl_err node_pathf(char *out, size_t cap, const char *fmt, ...)
    __attribute__((format(printf, 3, 4))) PSL_MUST_USE;
/* mkdir -p with mode 0700. */
psl_err node_mkdir_p(const char *path) PSL_MUST_USE;
/* Loads the signing key file at path, creating it on first use. *out on success only. */
psl_err node_signing_key(struct signer *out, const char *path) PSL_MUST_USE;

/* Makes one fabric connection per server (inproc bus or NATS). */
typedef psl_err (*node_connect_fn)(void *ctx, unsigned i, struct fabric **out);

struct node_servers {
    unsigned count;
    struct signer keys[NODE_SERVERS_MAX];
    uint8_t pks[NODE_SERVERS_MAX][SIGN_PK_SIZE];
    struct fabric *fabrics[NODE_SERVERS_MAX];
    struct capsuled *servers[NODE_SERVERS_MAX];
};

/* Starts count (<= NODE_SERVERS_MAX) servers under dir. On failure everything started is
 * stopped and the log names the path. own_delivery: each server's fabric connection has
 * delivery threads of its own (NATS), so servers commit lone records inline
 * (capsuled_config.inline_commit); false on the in-process bus. */
psl_err node_servers_start(struct node_servers *s, const char *dir, unsigned count,
                           node_connect_fn connect, void *ctx, bool own_delivery) PSL_MUST_USE;
void node_servers_stop(struct node_servers *s);
/* Acknowledgements sent by all of them so far. */
uint64_t node_servers_acks(struct node_servers *s);

#endif
