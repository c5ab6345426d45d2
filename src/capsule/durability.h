/* durability.h: k-of-n durability of one writer's records from storage server ACKs (DESIGN
 * §3.4, §5.5). An ACK for seq s from a replica covers that replica's whole prefix 1..s, so per
 * replica only the highest acknowledged seq matters; a seq is durable once k distinct replicas'
 * acknowledged seqs reach it. Pure bookkeeping: the caller checks each ACK (the writer its MAC,
 * ack_verify_mac; anyone else its signature, ack_verify) and that its hash names the writer's
 * own record before recording it here. */
#ifndef PSL_CAPSULE_DURABILITY_H
#define PSL_CAPSULE_DURABILITY_H

#include <stdbool.h>
#include <stdint.h>

#include "base/limits.h"

struct durability {
    unsigned n, k;
    uint64_t acked[PSL_REPLICAS_MAX]; /* per replica index: highest acknowledged seq */
    uint64_t durable;                 /* highest seq covered by k replicas */
};

void durability_init(struct durability *d, unsigned replica_count, unsigned quorum_k);
/* Records that replica idx acknowledged up to seq; returns true when the durable seq advanced.
 * Older ACKs (seq at or below what idx already acknowledged) change nothing. */
bool durability_ack(struct durability *d, unsigned idx, uint64_t seq);
/* How many replicas have acknowledged seq (or more). */
unsigned durability_count(const struct durability *d, uint64_t seq);

#endif
