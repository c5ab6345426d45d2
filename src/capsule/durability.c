/* durability.c: k-of-n ACK bookkeeping (see durability.h). The durable seq is the k-th largest
 * acknowledged seq, so it never goes backwards: acknowledged seqs only grow. */
#include "capsule/durability.h"

#include <string.h>

#include "base/assert.h"

void durability_init(struct durability *d, unsigned replica_count, unsigned quorum_k)
{
    PSL_ASSERT(replica_count >= 1 && replica_count <= PSL_REPLICAS_MAX);
    PSL_ASSERT(quorum_k >= 1 && quorum_k <= replica_count);
    memset(d, 0, sizeof *d);
    d->n = replica_count;
    d->k = quorum_k;
}

bool durability_ack(struct durability *d, unsigned idx, uint64_t seq)
{
    PSL_ASSERT(idx < d->n);
    if (seq <= d->acked[idx])
        return false;
    d->acked[idx] = seq;
    /* k-th largest of at most 16 values: count, for each candidate, how many reach it. */
    uint64_t best = d->durable;
    for (unsigned i = 0; i < d->n; i++) {
        uint64_t cand = d->acked[i];
        if (cand > best && durability_count(d, cand) >= d->k)
            best = cand;
    }
    if (best == d->durable)
        return false;
    d->durable = best;
    return true;
}

unsigned durability_count(const struct durability *d, uint64_t seq)
{
    unsigned c = 0;
    for (unsigned i = 0; i < d->n; i++)
        c += d->acked[i] >= seq;
    return c;
}
