/* chain.h: verification of a set of records as a capsule DAG (DESIGN §3.3, §5.3).
 * Every record is parsed and verified (CERT records first, so certificates are known); then per
 * writer: seq contiguity from 1 and prev links (the verified prefix), duplicates (replays) and
 * forks (two valid records with one (writer, seq) and different hashes, kept as evidence); sync
 * links must name a SYNC record of the set written by a coordinator or leader, and a SYNC's cut
 * must agree with the records it lists. The report owns its arrays; free with chain_report_free. */
#ifndef PSL_CAPSULE_CHAIN_H
#define PSL_CAPSULE_CHAIN_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "capsule/record.h"

struct chain_input {
    const uint8_t *data; /* borrowed */
    size_t size;
};

struct chain_writer {
    uint8_t id[HASH_SIZE];
    struct writer_cert cert;
    bool has_cert;
    bool forked;
    bool revoked;
    uint64_t records;        /* valid records of this writer, duplicates excluded */
    uint64_t max_seq;        /* highest valid seq seen */
    uint64_t verified_seq;   /* highest seq reachable from 1 by contiguous, prev-linked records
                              * (across at most one collected range, see below) */
    uint8_t verified_hash[HASH_SIZE];
    /* Records [collected_from, collected_to] are absent and covered by a compactor's checkpoint
     * of generation collected_generation, whose head for this writer is the record at
     * collected_to + 1 (present, with the hash the checkpoint names): servers of a capsule with
     * retention "collect" dropped them. 0 when nothing was bridged. */
    uint64_t collected_from, collected_to, collected_generation;
    uint64_t data_ops;       /* operations in this writer's DATA records (counted when decrypted) */
};

struct chain_fork {
    uint8_t writer[HASH_SIZE];
    uint64_t seq;
    size_t index_a, index_b; /* positions in the input: the two records are the evidence */
    uint8_t hash_a[HASH_SIZE], hash_b[HASH_SIZE];
};

struct chain_failure {
    size_t index; /* position in the input */
    psl_err err;
};

struct chain_report {
    size_t record_count;
    size_t valid_count;
    size_t duplicate_count;
    size_t type_count[REC_TYPE_MAX + 1];
    struct chain_writer *writers;
    size_t writer_count;
    struct chain_fork *forks;
    size_t fork_count;
    struct chain_failure *failures;
    size_t failure_count;
    size_t sync_links;    /* records whose sync field named a SYNC of the set */
    size_t sync_links_unresolved; /* named a SYNC absent from a set with collected ranges */
    bool ok;              /* no failures, no forks, every writer fully verified */
};

/* Verifies records against capsule m at time now_ms (certificate validity windows).
 * capsule_key may be NULL; when given, every encrypted record is also decrypted and its payload
 * decoded, so a record that does not decrypt is a failure. Returns PSL_OK when the report was
 * produced (even if it says the chain is bad), or an error for resource exhaustion or inputs over
 * limits. */
psl_err chain_verify(const struct capsule_meta *m, const struct chain_input *records, size_t count,
                     uint64_t now_ms, const uint8_t *capsule_key,
                     struct chain_report *report) PSL_MUST_USE;
void chain_report_free(struct chain_report *report);

#endif
