/* chain.c: verifies a set of records as a capsule DAG and reports writers, heads, forks and
 * failures. Work is O(n log n) in the number of records and memory is linear in it; nothing is
 * sized by a count read from the records themselves. A record that fails any check is reported
 * and excluded; it never contributes a head, a fork or a sync link. */
#include "capsule/chain.h"

#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "capsule/checkpoint.h"
#include "capsule/payload.h"

static const uint8_t zero_hash[HASH_SIZE];

/* Scratch holds a decrypted payload when a capsule key is given, else at most one cut. */
#define CUT_SCRATCH_SIZE (PSL_CUT_HEADS_MAX * sizeof(struct cut_head))
#define HEADS_CAP (CUT_SCRATCH_SIZE / sizeof(struct cut_head))

struct entry {
    struct record_view v;
    size_t index;
    uint32_t writer;   /* index into the writer table */
    uint64_t data_ops; /* operations of a decrypted DATA record; added to the writer once the
                        * record is known not to be a duplicate (pass_chains) */
};

/* A checkpoint head: the compactor vouches that the writer's record at seq has this hash and
 * that its index covers everything below it, which servers may therefore have collected. */
struct anchor {
    uint32_t writer;
    uint64_t seq;
    uint8_t hash[HASH_SIZE];
    uint64_t generation;
};

/* Checkpoints whose heads are used as anchors: the newest ones by generation. Collection only
 * ever leaves a writer's prefix up to the newest applied checkpoint's head, and cuts only grow,
 * so the newest few suffice; the bound keeps the work of a hostile set small. */
#define CHAIN_CHECKPOINTS_MAX 16u

struct chain_state {
    const struct capsule_meta *m;
    uint64_t now_ms;
    struct chain_report *rep;
    struct chain_writer *writers;
    struct aead_key *keys;   /* per writer, when a capsule key was given */
    uint32_t *table;         /* open addressing: writer index + 1, 0 = empty */
    size_t table_mask;
    size_t writer_cap;
    struct entry *valid;
    size_t valid_count;
    size_t failure_cap;
    size_t fork_cap;
    struct anchor *anchors; /* from compactors' checkpoints, sorted by (writer, seq) */
    size_t anchor_count;
    bool collected_any;     /* some writer's chain crossed a collected range */
};

static psl_err add_failure(struct chain_state *s, size_t index, psl_err err)
{
    struct chain_report *rep = s->rep;
    if (rep->failure_count == s->failure_cap) {
        size_t cap = s->failure_cap ? s->failure_cap * 2 : 16;
        struct chain_failure *f = realloc(rep->failures, cap * sizeof *f);
        if (!f)
            return PSL_ERR_NOMEM;
        rep->failures = f;
        s->failure_cap = cap;
    }
    rep->failures[rep->failure_count++] = (struct chain_failure){.index = index, .err = err};
    return PSL_OK;
}

static size_t writer_slot(const struct chain_state *s, const uint8_t id[HASH_SIZE])
{
    uint64_t h;
    memcpy(&h, id, sizeof h); /* ids are SHA-256 outputs: any 8 bytes hash well */
    size_t i = (size_t)h & s->table_mask;
    while (s->table[i] && memcmp(s->writers[s->table[i] - 1].id, id, HASH_SIZE) != 0)
        i = (i + 1) & s->table_mask;
    return i;
}

static struct chain_writer *writer_find(const struct chain_state *s, const uint8_t id[HASH_SIZE],
                                        uint32_t *index)
{
    size_t slot = writer_slot(s, id);
    if (!s->table[slot])
        return NULL;
    *index = s->table[slot] - 1;
    return &s->writers[*index];
}

static int entry_cmp(const void *a, const void *b)
{
    const struct entry *x = a, *y = b;
    if (x->writer != y->writer)
        return x->writer < y->writer ? -1 : 1;
    if (x->v.h.seq != y->v.h.seq)
        return x->v.h.seq < y->v.h.seq ? -1 : 1;
    int c = memcmp(x->v.hash, y->v.hash, HASH_SIZE);
    if (c)
        return c;
    return x->index < y->index ? -1 : x->index > y->index;
}

/* Finds the valid entry of (writer, seq) in the sorted array, or NULL. */
static const struct entry *entry_find(const struct chain_state *s, uint32_t writer, uint64_t seq)
{
    size_t lo = 0, hi = s->valid_count;
    while (lo < hi) {
        size_t mid = lo + (hi - lo) / 2;
        const struct entry *e = &s->valid[mid];
        if (e->writer < writer || (e->writer == writer && e->v.h.seq < seq))
            lo = mid + 1;
        else
            hi = mid;
    }
    if (lo < s->valid_count && s->valid[lo].writer == writer && s->valid[lo].v.h.seq == seq)
        return &s->valid[lo];
    return NULL;
}

/* Pass 1: CERT records, so that every writer is known before its other records. */
static psl_err pass_certs(struct chain_state *s, const struct record_view *views,
                          const psl_err *parse_err, size_t count)
{
    for (size_t i = 0; i < count; i++) {
        if (parse_err[i] || views[i].h.type != REC_CERT)
            continue;
        struct writer_cert c;
        psl_err err = record_check_cert(&views[i], s->m, s->now_ms, &c);
        if (err) {
            if ((err = add_failure(s, i, err)))
                return err;
            continue;
        }
        size_t slot = writer_slot(s, c.writer_id);
        if (!s->table[slot]) {
            PSL_ASSERT(s->rep->writer_count < s->writer_cap);
            struct chain_writer *w = &s->writers[s->rep->writer_count];
            memset(w, 0, sizeof *w);
            memcpy(w->id, c.writer_id, HASH_SIZE);
            w->cert = c;
            w->has_cert = true;
            s->table[slot] = (uint32_t)++s->rep->writer_count;
        }
        s->valid[s->valid_count++] =
            (struct entry){.v = views[i], .index = i, .writer = s->table[slot] - 1};
    }
    return PSL_OK;
}

static psl_err writer_key(struct chain_state *s, uint32_t wi, const uint8_t *capsule_key,
                          const struct aead_key **out)
{
    if (!s->keys[wi].hd) {
        uint8_t *k = secret_alloc(AEAD_KEY_SIZE);
        if (!k)
            return PSL_ERR_NOMEM;
        psl_err err = record_key_derive(k, capsule_key, s->writers[wi].id);
        if (!err)
            err = aead_key_init(&s->keys[wi], k);
        secret_free(k);
        if (err)
            return err;
    }
    *out = &s->keys[wi];
    return PSL_OK;
}

/* Checks that a verified record's payload decodes (and decrypts, with the capsule key).
 * Returns a verification error for the record, or PSL_OK. *fatal is set for resource errors. */
static psl_err check_payload(struct chain_state *s, struct entry *e, const uint8_t *capsule_key,
                             uint8_t *scratch, struct kv_op *ops, psl_err *fatal)
{
    const struct record_view *v = &e->v;
    const uint8_t *p = v->payload;
    size_t n = v->h.payload_size;
    uint64_t u;
    size_t count;
    struct cut_head *heads = (struct cut_head *)(void *)scratch;
    switch (v->h.type) {
    case REC_DATA:
    case REC_LSM_BLOCK:
    case REC_LSM_INDEX: {
        if (!capsule_key)
            return PSL_OK;
        const struct aead_key *key;
        psl_err err = writer_key(s, e->writer, capsule_key, &key);
        if (err) {
            *fatal = err;
            return PSL_OK;
        }
        size_t plain;
        err = record_open(v, key, scratch, PSL_RECORD_PAYLOAD_SIZE_MAX, &plain);
        if (err || v->h.type != REC_DATA)
            return err;
        err = data_decode(scratch, plain, ops, PSL_DATA_OPS_MAX, &count);
        if (!err)
            e->data_ops = count;
        return err;
    }
    case REC_EOE:
    case REC_SYNC:
        return cut_decode(p, n, &u, heads, HEADS_CAP, &count);
    case REC_HEAD:
        return head_decode(p, n, &u);
    case REC_REVOKE: {
        struct revocation r;
        return revoke_decode(p, n, &r);
    }
    case REC_RESULT:
        return n <= PSL_RESULT_SIZE_MAX ? PSL_OK : PSL_ERR_TOO_LARGE;
    case REC_CHECKPOINT: {
        struct checkpoint cp;
        return checkpoint_decode(&cp, p, n);
    }
    default:
        return PSL_ERR_BAD_TYPE;
    }
}

/* Pass 2: every other record: capsule, certificate, signature, payload. */
static psl_err pass_records(struct chain_state *s, const struct record_view *views,
                            const psl_err *parse_err, size_t count, const uint8_t *capsule_key,
                            uint8_t *scratch, struct kv_op *ops)
{
    for (size_t i = 0; i < count; i++) {
        if (parse_err[i] || views[i].h.type == REC_CERT)
            continue;
        uint32_t wi = 0;
        const struct chain_writer *w = writer_find(s, views[i].h.writer, &wi);
        psl_err err = record_check(&views[i], s->m, w ? &w->cert : NULL, s->now_ms, NULL);
        struct entry e = {.v = views[i], .index = i, .writer = wi};
        psl_err fatal = PSL_OK;
        if (!err)
            err = check_payload(s, &e, capsule_key, scratch, ops, &fatal);
        if (fatal)
            return fatal;
        if (err) {
            if ((err = add_failure(s, i, err)))
                return err;
            continue;
        }
        s->valid[s->valid_count++] = e;
    }
    return PSL_OK;
}

static psl_err add_fork(struct chain_state *s, const struct entry *a, const struct entry *b)
{
    struct chain_report *rep = s->rep;
    if (rep->fork_count == s->fork_cap) {
        size_t cap = s->fork_cap ? s->fork_cap * 2 : 4;
        struct chain_fork *f = realloc(rep->forks, cap * sizeof *f);
        if (!f)
            return PSL_ERR_NOMEM;
        rep->forks = f;
        s->fork_cap = cap;
    }
    struct chain_fork *f = &rep->forks[rep->fork_count++];
    memcpy(f->writer, s->writers[a->writer].id, HASH_SIZE);
    f->seq = a->v.h.seq;
    f->index_a = a->index;
    f->index_b = b->index;
    memcpy(f->hash_a, a->v.hash, HASH_SIZE);
    memcpy(f->hash_b, b->v.hash, HASH_SIZE);
    return PSL_OK;
}

static int anchor_cmp(const void *a, const void *b)
{
    const struct anchor *x = a, *y = b;
    if (x->writer != y->writer)
        return x->writer < y->writer ? -1 : 1;
    return x->seq < y->seq ? -1 : x->seq > y->seq ? 1 : 0;
}

static const struct anchor *anchor_find(const struct chain_state *s, uint32_t writer, uint64_t seq)
{
    struct anchor key = {.writer = writer, .seq = seq};
    return bsearch(&key, s->anchors, s->anchor_count, sizeof key, anchor_cmp);
}

/* Pass 2b: the heads of the newest valid CHECKPOINT records written by compactors become
 * anchors (a checkpoint from any other role vouches for nothing). */
static psl_err pass_anchors(struct chain_state *s)
{
    struct checkpoint pick[CHAIN_CHECKPOINTS_MAX]; /* point into the records: borrowed */
    size_t npick = 0, heads = 0;
    for (size_t i = 0; i < s->valid_count; i++) {
        const struct entry *e = &s->valid[i];
        struct checkpoint cp;
        if (e->v.h.type != REC_CHECKPOINT || s->writers[e->writer].cert.role != ROLE_COMPACTOR ||
            checkpoint_decode(&cp, e->v.payload, e->v.h.payload_size) != PSL_OK)
            continue;
        /* Keep the newest: when full, this one replaces the oldest picked if it is newer. */
        size_t slot = npick;
        if (npick == CHAIN_CHECKPOINTS_MAX) {
            slot = 0;
            for (size_t j = 1; j < npick; j++)
                if (pick[j].generation < pick[slot].generation)
                    slot = j;
            if (pick[slot].generation >= cp.generation)
                continue;
        } else {
            npick++;
        }
        pick[slot] = cp;
    }
    for (size_t j = 0; j < npick; j++)
        heads += pick[j].head_count;
    s->anchors = calloc(heads ? heads : 1, sizeof *s->anchors);
    if (!s->anchors)
        return PSL_ERR_NOMEM;
    for (size_t j = 0; j < npick; j++) {
        for (size_t k = 0; k < pick[j].head_count; k++) {
            struct checkpoint_head h;
            checkpoint_head_at(&pick[j], k, &h);
            uint32_t wi;
            if (!writer_find(s, h.writer, &wi))
                continue; /* a writer whose records are not in this set */
            struct anchor *an = &s->anchors[s->anchor_count++];
            an->writer = wi;
            an->seq = h.seq;
            memcpy(an->hash, h.hash, HASH_SIZE);
            an->generation = pick[j].generation;
        }
    }
    qsort(s->anchors, s->anchor_count, sizeof *s->anchors, anchor_cmp);
    return PSL_OK;
}

/* Pass 3: per writer, in seq order: duplicates, forks, contiguity and prev links. Duplicates are
 * removed from the valid array so later lookups see one record per (writer, seq, hash). */
static psl_err pass_chains(struct chain_state *s)
{
    qsort(s->valid, s->valid_count, sizeof *s->valid, entry_cmp);
    size_t out = 0;
    for (size_t i = 0; i < s->valid_count; i++) {
        struct entry *e = &s->valid[i];
        if (out && s->valid[out - 1].writer == e->writer && s->valid[out - 1].v.h.seq == e->v.h.seq &&
            memcmp(s->valid[out - 1].v.hash, e->v.hash, HASH_SIZE) == 0) {
            s->rep->duplicate_count++;
            continue;
        }
        s->valid[out++] = *e;
    }
    s->valid_count = out;

    size_t i = 0;
    while (i < s->valid_count) {
        uint32_t wi = s->valid[i].writer;
        struct chain_writer *w = &s->writers[wi];
        bool broken = false;
        uint64_t expect = 1;
        uint8_t prev[HASH_SIZE];
        memcpy(prev, zero_hash, HASH_SIZE);
        for (; i < s->valid_count && s->valid[i].writer == wi; i++) {
            struct entry *e = &s->valid[i];
            w->records++;
            w->data_ops += e->data_ops;
            if (e->v.h.seq > w->max_seq)
                w->max_seq = e->v.h.seq;
            if (i + 1 < s->valid_count && s->valid[i + 1].writer == wi &&
                s->valid[i + 1].v.h.seq == e->v.h.seq) {
                w->forked = true;
                broken = true;
                psl_err err = add_fork(s, e, &s->valid[i + 1]);
                if (err)
                    return err;
            }
            if (broken)
                continue; /* a fork ends the verified prefix */
            if (e->v.h.seq != expect) {
                /* A gap ends the verified prefix, unless it is the collected range below a
                 * compactor's checkpoint head: then the head record, whose hash the checkpoint
                 * names, continues the chain (its prev names a collected record). One such
                 * range per writer, after its CERT, as collection leaves it. */
                const struct anchor *a = NULL;
                if (e->v.h.seq > expect && expect >= 2 && !w->collected_to)
                    a = anchor_find(s, wi, e->v.h.seq);
                if (!a || memcmp(a->hash, e->v.hash, HASH_SIZE) != 0) {
                    broken = true; /* only the record right after a gap may bridge it */
                    continue;
                }
                w->collected_from = expect;
                w->collected_to = e->v.h.seq - 1;
                w->collected_generation = a->generation;
                s->collected_any = true;
                w->verified_seq = e->v.h.seq;
                memcpy(w->verified_hash, e->v.hash, HASH_SIZE);
                memcpy(prev, e->v.hash, HASH_SIZE);
                expect = e->v.h.seq + 1;
                continue;
            }
            if (memcmp(e->v.h.prev, prev, HASH_SIZE) != 0) {
                psl_err err = add_failure(s, e->index, PSL_ERR_BAD_PREV);
                if (err)
                    return err;
                broken = true;
                continue;
            }
            w->verified_seq = e->v.h.seq;
            memcpy(w->verified_hash, e->v.hash, HASH_SIZE);
            memcpy(prev, e->v.hash, HASH_SIZE);
            expect++;
        }
    }
    return PSL_OK;
}

static int hash_cmp(const void *a, const void *b)
{
    return memcmp(a, b, HASH_SIZE);
}

static bool role_may_sync(uint8_t role)
{
    return role == ROLE_COORDINATOR || role == ROLE_LEADER;
}

static bool role_may_revoke(const struct chain_state *s, const uint8_t pk[SIGN_PK_SIZE])
{
    if (memcmp(pk, s->m->owner_pk, SIGN_PK_SIZE) == 0)
        return true;
    uint8_t id[HASH_SIZE];
    uint32_t wi;
    writer_id_of(id, pk);
    const struct chain_writer *w = writer_find(s, id, &wi);
    return w && w->cert.role == ROLE_LEADER && !w->forked; /* a forked leader speaks for no one */
}

/* Pass 4: SYNC records (who wrote them, whether their cuts match the records), sync links of
 * every record, and revocations. */
static psl_err pass_links(struct chain_state *s, uint8_t *scratch)
{
    size_t sync_cap = s->rep->type_count[REC_SYNC];
    uint8_t(*syncs)[HASH_SIZE] = malloc((sync_cap ? sync_cap : 1) * HASH_SIZE);
    if (!syncs)
        return PSL_ERR_NOMEM;
    size_t nsync = 0;
    psl_err err = PSL_OK;
    for (size_t i = 0; i < s->valid_count; i++) {
        const struct entry *e = &s->valid[i];
        if (e->v.h.type != REC_SYNC)
            continue;
        psl_err bad = PSL_OK;
        if (!role_may_sync(s->writers[e->writer].cert.role))
            bad = PSL_ERR_CERT_ROLE;
        struct cut_head *heads = (struct cut_head *)(void *)scratch;
        uint64_t epoch;
        size_t n = 0;
        if (!bad)
            bad = cut_decode(e->v.payload, e->v.h.payload_size, &epoch, heads, HEADS_CAP, &n);
        for (size_t j = 0; !bad && j < n; j++) {
            uint32_t wi;
            if (!writer_find(s, heads[j].writer, &wi))
                continue; /* a writer whose records are not in this set */
            const struct entry *r = entry_find(s, wi, heads[j].seq);
            if (r && memcmp(r->v.hash, heads[j].hash, HASH_SIZE) != 0 && !s->writers[wi].forked)
                bad = PSL_ERR_BAD_SYNC;
        }
        if (bad) {
            if ((err = add_failure(s, e->index, bad)))
                goto out_free;
            continue;
        }
        PSL_ASSERT(nsync < sync_cap);
        memcpy(syncs[nsync++], e->v.hash, HASH_SIZE);
    }
    qsort(syncs, nsync, HASH_SIZE, hash_cmp);
    for (size_t i = 0; i < s->valid_count; i++) {
        const struct entry *e = &s->valid[i];
        if (memcmp(e->v.h.sync, zero_hash, HASH_SIZE) != 0) {
            if (bsearch(e->v.h.sync, syncs, nsync, HASH_SIZE, hash_cmp)) {
                s->rep->sync_links++;
            } else if (s->collected_any) {
                /* The set lacks a collected range: the SYNC may have been in it. */
                s->rep->sync_links_unresolved++;
            } else if ((err = add_failure(s, e->index, PSL_ERR_BAD_SYNC))) {
                goto out_free;
            }
        }
        if (e->v.h.type == REC_REVOKE) {
            struct revocation r;
            if (revoke_decode(e->v.payload, e->v.h.payload_size, &r) ||
                !revoke_verify(&r, s->m->name) || !role_may_revoke(s, r.revoker_pk)) {
                if ((err = add_failure(s, e->index, PSL_ERR_REVOKED)))
                    goto out_free;
                continue;
            }
            uint32_t wi;
            struct chain_writer *t = writer_find(s, r.target, &wi);
            if (t)
                t->revoked = true;
        }
    }
out_free:
    free(syncs);
    return err;
}

static size_t pow2_at_least(size_t n)
{
    size_t p = 16;
    while (p < n)
        p <<= 1;
    return p;
}

psl_err chain_verify(const struct capsule_meta *m, const struct chain_input *records, size_t count,
                     uint64_t now_ms, const uint8_t *capsule_key, struct chain_report *report)
{
    if (count > PSL_EXPORT_RECORDS_MAX)
        return PSL_ERR_TOO_LARGE;
    struct chain_report rep;
    memset(&rep, 0, sizeof rep);
    rep.record_count = count;
    struct chain_state s = {.m = m, .now_ms = now_ms, .rep = &rep};
    psl_err err = PSL_ERR_NOMEM;
    struct record_view *views = calloc(count ? count : 1, sizeof *views);
    psl_err *parse_err = calloc(count ? count : 1, sizeof *parse_err);
    size_t scratch_size = capsule_key ? PSL_RECORD_PAYLOAD_SIZE_MAX : CUT_SCRATCH_SIZE;
    uint8_t *scratch = malloc(scratch_size);
    struct kv_op *ops = capsule_key ? malloc(PSL_DATA_OPS_MAX * sizeof *ops) : NULL;
    s.valid = calloc(count ? count : 1, sizeof *s.valid);
    if (!views || !parse_err || !scratch || !s.valid || (capsule_key && !ops))
        goto out_free;

    size_t certs = 0;
    for (size_t i = 0; i < count; i++) {
        parse_err[i] = record_parse(&views[i], records[i].data, records[i].size);
        if (parse_err[i]) {
            if ((err = add_failure(&s, i, parse_err[i])))
                goto out_free;
            continue;
        }
        rep.type_count[views[i].h.type]++;
        certs += views[i].h.type == REC_CERT;
    }
    if (certs > PSL_WRITERS_MAX) {
        err = PSL_ERR_TOO_LARGE;
        goto out_free;
    }
    s.writer_cap = certs;
    s.table_mask = pow2_at_least(2 * certs + 1) - 1;
    s.writers = calloc(certs ? certs : 1, sizeof *s.writers);
    s.keys = calloc(certs ? certs : 1, sizeof *s.keys);
    s.table = calloc(s.table_mask + 1, sizeof *s.table);
    err = PSL_ERR_NOMEM;
    if (!s.writers || !s.keys || !s.table)
        goto out_free;

    err = pass_certs(&s, views, parse_err, count);
    if (!err)
        err = pass_records(&s, views, parse_err, count, capsule_key, scratch, ops);
    if (!err)
        err = pass_anchors(&s);
    if (!err)
        err = pass_chains(&s);
    if (!err)
        err = pass_links(&s, scratch);
    if (err)
        goto out_free;

    rep.valid_count = s.valid_count;
    rep.writers = s.writers;
    s.writers = NULL;
    rep.ok = rep.failure_count == 0 && rep.fork_count == 0;
    for (size_t i = 0; i < rep.writer_count; i++)
        if (rep.writers[i].verified_seq != rep.writers[i].max_seq)
            rep.ok = false;
    *report = rep;
    memset(&rep, 0, sizeof rep);
    err = PSL_OK;
out_free:
    chain_report_free(&rep);
    if (s.keys)
        for (size_t i = 0; i < s.writer_cap; i++)
            aead_key_deinit(&s.keys[i]);
    free(s.keys);
    free(s.table);
    free(s.writers);
    free(s.valid);
    free(s.anchors);
    free(ops);
    if (scratch && capsule_key)
        secret_wipe(scratch, scratch_size); /* it held plaintext */
    free(scratch);
    free(parse_err);
    free(views);
    return err;
}

void chain_report_free(struct chain_report *report)
{
    free(report->writers);
    free(report->forks);
    free(report->failures);
    memset(report, 0, sizeof *report);
}
