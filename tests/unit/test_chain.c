/* test_chain.c: unit tests of capsule DAG verification (src/capsule/chain.c). A valid
 * multi-writer capsule with an EOE/SYNC merge verifies whatever the input order; each way of
 * breaking it (replay, fork, gap, broken prev link, uncertified or foreign writer, a SYNC by a
 * worker, a dangling sync link, a lying cut, an undecryptable record, an unauthorised
 * revocation) is reported with the record's input index and the exact error. */
#include "capsule_fixture.h"
#include "capsule/checkpoint.h"

/* The valid capsule built by build_valid, and what verifying it must report. */
struct scenario {
    struct fx_recs r;
    uint64_t seq[FX_WRITERS];      /* records per writer = its head seq */
    uint64_t data_ops[FX_WRITERS]; /* DATA operations per writer */
    size_t w0_data;                /* index of a DATA record of W0 (seq 2) */
    size_t w0_cert;                /* index of W0's CERT */
    size_t sync;                   /* index of the SYNC record */
    uint8_t sync_hash[HASH_SIZE];
};

static size_t add(struct scenario *s, uint8_t *rec, size_t size, const uint8_t *hash)
{
    return fx_recs_add(&s->r, rec, size, hash);
}

static size_t add_cert(struct fx *f, struct scenario *s, unsigned wi)
{
    size_t size;
    uint8_t hash[HASH_SIZE];
    uint8_t *rec = fx_seal_cert(f, &f->w[wi], &size, hash);
    s->seq[wi]++;
    return add(s, rec, size, hash);
}

static size_t add_data(struct fx *f, struct scenario *s, unsigned wi, unsigned nops)
{
    size_t size;
    uint8_t hash[HASH_SIZE];
    uint8_t *rec = fx_seal_data(&f->w[wi], nops, (unsigned)s->r.n, &size, hash);
    s->seq[wi]++;
    s->data_ops[wi] += nops;
    return add(s, rec, size, hash);
}

/* An EOE reporting the writer's own head. */
static size_t add_eoe(struct fx *f, struct scenario *s, unsigned wi)
{
    struct fx_writer *w = &f->w[wi];
    struct cut_head h = {.seq = w->chain.seq};
    memcpy(h.writer, w->keys.writer_id, HASH_SIZE);
    memcpy(h.hash, w->chain.head, HASH_SIZE);
    size_t size;
    uint8_t hash[HASH_SIZE];
    uint8_t *rec = fx_seal_cut(w, REC_EOE, 1, &h, 1, &size, hash);
    s->seq[wi]++;
    return add(s, rec, size, hash);
}

static size_t add_head(struct fx *f, struct scenario *s, unsigned wi)
{
    size_t size;
    uint8_t hash[HASH_SIZE];
    uint8_t *rec = fx_seal_head(&f->w[wi], FX_NOW, &size, hash);
    s->seq[wi]++;
    return add(s, rec, size, hash);
}

static void cut_head_of(const struct fx *f, unsigned wi, struct cut_head *h)
{
    h->seq = f->w[wi].chain.seq;
    memcpy(h->writer, f->w[wi].keys.writer_id, HASH_SIZE);
    memcpy(h->hash, f->w[wi].chain.head, HASH_SIZE);
}

/* W0, W1: CERT, DATA..., EOE; the coordinator: CERT, SYNC over both heads; W0 and W1 then write
 * one DATA each linked to the SYNC; the leader: CERT, HEAD; the delegated worker: CERT (with its
 * delegation), DATA, HEAD. 16 records. */
static void build_valid(struct fx *f, struct scenario *s)
{
    memset(s, 0, sizeof *s);
    s->w0_cert = add_cert(f, s, FX_W0);
    add_cert(f, s, FX_W1);
    add_cert(f, s, FX_COORD);
    s->w0_data = add_data(f, s, FX_W0, 3);
    add_data(f, s, FX_W1, 4);
    add_data(f, s, FX_W0, 2);
    add_eoe(f, s, FX_W0);
    add_eoe(f, s, FX_W1);
    struct cut_head heads[2];
    cut_head_of(f, FX_W0, &heads[0]);
    cut_head_of(f, FX_W1, &heads[1]);
    size_t size;
    uint8_t *rec = fx_seal_cut(&f->w[FX_COORD], REC_SYNC, 1, heads, 2, &size, s->sync_hash);
    s->seq[FX_COORD]++;
    s->sync = add(s, rec, size, s->sync_hash);
    memcpy(f->w[FX_W0].chain.sync, s->sync_hash, HASH_SIZE);
    memcpy(f->w[FX_W1].chain.sync, s->sync_hash, HASH_SIZE);
    add_data(f, s, FX_W0, 1);
    add_data(f, s, FX_W1, 2);
    add_cert(f, s, FX_LEADER);
    add_head(f, s, FX_LEADER);
    add_cert(f, s, FX_DELEGATED);
    add_data(f, s, FX_DELEGATED, 5);
    add_head(f, s, FX_DELEGATED);
    assert_int_equal(s->r.n, 16);
}

static void verify(const struct fx *f, const struct fx_recs *r, uint64_t now, const uint8_t *key,
                   struct chain_report *rep)
{
    struct chain_input *in = calloc(r->n ? r->n : 1, sizeof *in);
    assert_non_null(in);
    fx_recs_inputs(r, in);
    assert_int_equal(chain_verify(&f->meta, in, r->n, now, key, rep), PSL_OK);
    free(in);
}

static const struct chain_writer *writer_of(const struct chain_report *rep,
                                            const uint8_t id[HASH_SIZE])
{
    for (size_t i = 0; i < rep->writer_count; i++)
        if (memcmp(rep->writers[i].id, id, HASH_SIZE) == 0)
            return &rep->writers[i];
    return NULL;
}

static const struct chain_writer *wr_of(const struct fx *f, const struct chain_report *rep,
                                        unsigned wi)
{
    return writer_of(rep, f->w[wi].keys.writer_id);
}

/* Asserts that the report lists exactly one failure, at index with err. */
static void assert_one_failure(const struct chain_report *rep, size_t index, psl_err err)
{
    if (rep->failure_count != 1)
        fail_msg("want 1 failure, got %zu (first: %s at %zu)", rep->failure_count,
                 rep->failure_count ? psl_err_name(rep->failures[0].err) : "-",
                 rep->failure_count ? rep->failures[0].index : 0);
    assert_int_equal(rep->failures[0].index, index);
    if (rep->failures[0].err != err)
        fail_msg("failure at %zu: got %s, want %s", index, psl_err_name(rep->failures[0].err),
                 psl_err_name(err));
    assert_false(rep->ok);
}

static bool has_failure(const struct chain_report *rep, size_t index, psl_err err)
{
    for (size_t i = 0; i < rep->failure_count; i++)
        if (rep->failures[i].index == index && rep->failures[i].err == err)
            return true;
    return false;
}

static void assert_valid_report(const struct fx *f, const struct scenario *s,
                                const struct chain_report *rep, bool with_key)
{
    assert_true(rep->ok);
    assert_int_equal(rep->record_count, s->r.n);
    assert_int_equal(rep->valid_count, s->r.n);
    assert_int_equal(rep->duplicate_count, 0);
    assert_int_equal(rep->fork_count, 0);
    assert_int_equal(rep->failure_count, 0);
    assert_int_equal(rep->writer_count, FX_WRITERS);
    assert_int_equal(rep->sync_links, 2);
    assert_int_equal(rep->type_count[REC_CERT], 5);
    assert_int_equal(rep->type_count[REC_DATA], 6);
    assert_int_equal(rep->type_count[REC_EOE], 2);
    assert_int_equal(rep->type_count[REC_SYNC], 1);
    assert_int_equal(rep->type_count[REC_HEAD], 2);
    assert_int_equal(rep->type_count[REC_REVOKE], 0);
    for (unsigned i = 0; i < FX_WRITERS; i++) {
        const struct chain_writer *w = wr_of(f, rep, i);
        assert_non_null(w);
        assert_true(w->has_cert);
        assert_false(w->forked);
        assert_false(w->revoked);
        assert_true(w->records == s->seq[i]);
        assert_true(w->max_seq == s->seq[i]);
        assert_true(w->verified_seq == s->seq[i]);
        assert_memory_equal(w->verified_hash, f->w[i].chain.head, HASH_SIZE);
        assert_memory_equal(w->cert.sig, f->w[i].cert.sig, SIGN_SIG_SIZE);
        assert_true(w->data_ops == (with_key ? s->data_ops[i] : 0));
    }
}

static void test_valid_capsule(void **state)
{
    struct fx *f = *state;
    struct scenario s;
    build_valid(f, &s);
    struct chain_report rep;
    verify(f, &s.r, FX_NOW, f->capsule_key, &rep);
    assert_valid_report(f, &s, &rep, true);
    assert_true(wr_of(f, &rep, FX_W0)->data_ops == 6);
    assert_true(wr_of(f, &rep, FX_DELEGATED)->data_ops == 5);
    chain_report_free(&rep);
    assert_null(rep.writers);
    assert_int_equal(rep.writer_count, 0);

    /* Without the capsule key the payloads stay sealed: same verdict, no operations counted. */
    verify(f, &s.r, FX_NOW, NULL, &rep);
    assert_valid_report(f, &s, &rep, false);
    chain_report_free(&rep);
    fx_recs_free(&s.r);
}

static void test_valid_capsule_any_order(void **state)
{
    struct fx *f = *state;
    struct scenario s;
    build_valid(f, &s);
    /* Reverse the input: every record comes before the CERT of its writer. */
    struct fx_recs rev;
    memset(&rev, 0, sizeof rev);
    for (size_t i = s.r.n; i-- > 0;)
        fx_recs_add(&rev, s.r.data[i], s.r.size[i], s.r.hash[i]);
    struct chain_report rep;
    verify(f, &rev, FX_NOW, f->capsule_key, &rep);
    assert_valid_report(f, &s, &rep, true);
    chain_report_free(&rep);
    fx_recs_free(&s.r); /* rev borrowed the same buffers */
}

static void test_empty_set(void **state)
{
    struct fx *f = *state;
    struct chain_report rep;
    memset(&rep, 0xff, sizeof rep);
    assert_int_equal(chain_verify(&f->meta, NULL, 0, FX_NOW, f->capsule_key, &rep), PSL_OK);
    assert_true(rep.ok);
    assert_int_equal(rep.record_count, 0);
    assert_int_equal(rep.valid_count, 0);
    assert_int_equal(rep.writer_count, 0);
    assert_int_equal(rep.failure_count, 0);
    assert_int_equal(rep.fork_count, 0);
    assert_int_equal(rep.sync_links, 0);
    chain_report_free(&rep);
}

static void test_replay_is_duplicate(void **state)
{
    struct fx *f = *state;
    struct scenario s;
    build_valid(f, &s);
    fx_recs_dup(&s.r, s.w0_data);
    fx_recs_dup(&s.r, s.w0_data);
    fx_recs_dup(&s.r, s.w0_cert);
    fx_recs_dup(&s.r, s.sync);
    struct chain_report rep;
    verify(f, &s.r, FX_NOW, f->capsule_key, &rep);
    assert_true(rep.ok);
    assert_int_equal(rep.record_count, 20);
    assert_int_equal(rep.duplicate_count, 4);
    assert_int_equal(rep.valid_count, 16);
    assert_int_equal(rep.fork_count, 0);
    assert_int_equal(rep.failure_count, 0);
    assert_int_equal(rep.sync_links, 2);
    const struct chain_writer *w = wr_of(f, &rep, FX_W0);
    assert_true(w->records == s.seq[FX_W0]);
    assert_true(w->verified_seq == s.seq[FX_W0]);
    /* A replayed batch is not counted twice. */
    assert_true(w->data_ops == s.data_ops[FX_W0]);
    chain_report_free(&rep);
    fx_recs_free(&s.r);
}

static void test_fork(void **state)
{
    struct fx *f = *state;
    struct scenario s;
    memset(&s, 0, sizeof s);
    struct fx_writer *w0 = &f->w[FX_W0];
    add_cert(f, &s, FX_W0);
    add_data(f, &s, FX_W0, 1);
    struct record_chain at2 = w0->chain;
    size_t ia = add_data(f, &s, FX_W0, 2);
    add_data(f, &s, FX_W0, 1); /* seq 4 on branch a */
    w0->chain = at2;
    size_t ib = add_data(f, &s, FX_W0, 3); /* a second, different seq 3 */
    add_cert(f, &s, FX_W1);
    add_data(f, &s, FX_W1, 1);
    assert_memory_not_equal(s.r.hash[ia], s.r.hash[ib], HASH_SIZE);

    struct chain_report rep;
    verify(f, &s.r, FX_NOW, f->capsule_key, &rep);
    assert_false(rep.ok);
    assert_int_equal(rep.failure_count, 0);
    assert_int_equal(rep.fork_count, 1);
    const struct chain_fork *k = &rep.forks[0];
    assert_memory_equal(k->writer, w0->keys.writer_id, HASH_SIZE);
    assert_true(k->seq == 3);
    /* Both records are kept as evidence, by input index and hash. */
    assert_true((k->index_a == ia && k->index_b == ib) || (k->index_a == ib && k->index_b == ia));
    const uint8_t *ha = k->index_a == ia ? s.r.hash[ia] : s.r.hash[ib];
    const uint8_t *hb = k->index_a == ia ? s.r.hash[ib] : s.r.hash[ia];
    assert_memory_equal(k->hash_a, ha, HASH_SIZE);
    assert_memory_equal(k->hash_b, hb, HASH_SIZE);
    const struct chain_writer *w = wr_of(f, &rep, FX_W0);
    assert_true(w->forked);
    assert_true(w->verified_seq == 2);
    assert_true(w->max_seq == 4);
    /* The other writer is unaffected. */
    const struct chain_writer *o = wr_of(f, &rep, FX_W1);
    assert_false(o->forked);
    assert_true(o->verified_seq == 2 && o->max_seq == 2);
    chain_report_free(&rep);
    fx_recs_free(&s.r);
}

static void test_fork_of_cert(void **state)
{
    struct fx *f = *state;
    struct scenario s;
    memset(&s, 0, sizeof s);
    size_t ia = add_cert(f, &s, FX_W0);
    /* The same writer key certified twice (another serial): two different seq-1 records. */
    record_chain_init(&f->w[FX_W0].chain, f->meta.name);
    f->w[FX_W0].cert.serial++;
    cert_sign(&f->w[FX_W0].cert, &f->owner);
    size_t ib = add_cert(f, &s, FX_W0);
    struct chain_report rep;
    verify(f, &s.r, FX_NOW, NULL, &rep);
    assert_false(rep.ok);
    assert_int_equal(rep.fork_count, 1);
    assert_true(rep.forks[0].seq == 1);
    assert_true(rep.forks[0].index_a + rep.forks[0].index_b == ia + ib);
    assert_int_equal(rep.writer_count, 1);
    assert_true(rep.writers[0].forked);
    assert_true(rep.writers[0].verified_seq == 0);
    chain_report_free(&rep);
    fx_recs_free(&s.r);
}

static void test_gap(void **state)
{
    struct fx *f = *state;
    struct scenario s;
    memset(&s, 0, sizeof s);
    add_cert(f, &s, FX_W0);
    add_data(f, &s, FX_W0, 1);
    size_t missing = add_data(f, &s, FX_W0, 1);
    add_data(f, &s, FX_W0, 1);
    add_data(f, &s, FX_W0, 1);
    /* Drop seq 3. */
    free(s.r.data[missing]);
    for (size_t i = missing; i + 1 < s.r.n; i++) {
        s.r.data[i] = s.r.data[i + 1];
        s.r.size[i] = s.r.size[i + 1];
        memcpy(s.r.hash[i], s.r.hash[i + 1], HASH_SIZE);
    }
    s.r.n--;
    struct chain_report rep;
    verify(f, &s.r, FX_NOW, f->capsule_key, &rep);
    assert_false(rep.ok);
    assert_int_equal(rep.failure_count, 0);
    assert_int_equal(rep.fork_count, 0);
    assert_int_equal(rep.valid_count, 4);
    const struct chain_writer *w = wr_of(f, &rep, FX_W0);
    assert_true(w->verified_seq == 2);
    assert_true(w->max_seq == 5);
    assert_true(w->records == 4);
    assert_memory_equal(w->verified_hash, s.r.hash[1], HASH_SIZE);
    chain_report_free(&rep);
    fx_recs_free(&s.r);
}

/* Removes records [from, from + n) of the set (input positions). */
static void drop_records(struct scenario *s, size_t from, size_t n)
{
    for (size_t k = 0; k < n; k++)
        free(s->r.data[from + k]);
    for (size_t i = from; i + n < s->r.n; i++) {
        s->r.data[i] = s->r.data[i + n];
        s->r.size[i] = s->r.size[i + n];
        memcpy(s->r.hash[i], s->r.hash[i + n], HASH_SIZE);
    }
    s->r.n -= n;
}

/* W0: CERT, DATA x4 (seq 1..5); a checkpoint by a writer of `role` names W0's record at seq
 * `anchor_seq` with the hash of the record at `hash_seq`; W0's seq 2 and 3 are then dropped, as
 * a collecting server leaves them when the anchor is seq 4. */
static void verify_collected(struct fx *f, uint8_t role, uint64_t anchor_seq, uint64_t hash_seq,
                             struct chain_report *rep, struct scenario *s)
{
    memset(s, 0, sizeof *s);
    record_chain_init(&f->w[FX_W0].chain, f->meta.name); /* a fresh chain on every call */
    add_cert(f, s, FX_W0);
    size_t first = add_data(f, s, FX_W0, 1);
    for (int i = 0; i < 3; i++)
        add_data(f, s, FX_W0, 1);
    struct fx_writer c = {.by_leader = false};
    fx_writer_keys(&c.keys, 41, f->capsule_key);
    fx_cert_make(f, &c.cert, &c.keys, role, &f->owner);
    record_chain_init(&c.chain, f->meta.name);
    size_t size;
    uint8_t hash[HASH_SIZE];
    uint8_t *rec = fx_seal_cert(f, &c, &size, hash);
    add(s, rec, size, hash);
    struct checkpoint_head h = {.seq = anchor_seq};
    memcpy(h.writer, f->w[FX_W0].keys.writer_id, HASH_SIZE);
    memcpy(h.hash, s->r.hash[first + hash_seq - 2], HASH_SIZE);
    struct checkpoint cp = {.index_seq = 2, .generation = 7, .head_count = 1, .heads = &h};
    uint8_t pl[CHECKPOINT_FIXED_SIZE + CHECKPOINT_HEAD_SIZE];
    struct wr w;
    wr_init(&w, pl, sizeof pl);
    assert_int_equal(checkpoint_encode(&cp, &w), PSL_OK);
    rec = fx_seal(&c, REC_CHECKPOINT, pl, w.pos, &size, hash);
    add(s, rec, size, hash);
    writer_keys_deinit(&c.keys);
    drop_records(s, first, 2); /* seq 2 and 3 */
    verify(f, &s->r, FX_NOW, f->capsule_key, rep);
}

/* A collected range below a compactor's checkpoint head verifies: the head record continues
 * the chain. A wrong hash, a checkpoint by a worker, or an anchor that is not the record right
 * after the gap (seq 5 while seq 4 follows the gap) leave the gap a gap. */
static void test_collected_range(void **state)
{
    struct fx *f = *state;
    struct scenario s;
    struct chain_report rep;
    verify_collected(f, ROLE_COMPACTOR, 4, 4, &rep, &s);
    assert_true(rep.ok);
    assert_int_equal(rep.failure_count, 0);
    const struct chain_writer *w = wr_of(f, &rep, FX_W0);
    assert_true(w->verified_seq == 5 && w->max_seq == 5);
    assert_true(w->collected_from == 2 && w->collected_to == 3);
    assert_true(w->collected_generation == 7);
    chain_report_free(&rep);
    fx_recs_free(&s.r);

    uint8_t roles[] = {ROLE_COMPACTOR, ROLE_WORKER, ROLE_COMPACTOR};
    uint64_t anchor[] = {4, 4, 5}, hashed[] = {5, 4, 5};
    for (size_t k = 0; k < sizeof roles; k++) {
        verify_collected(f, roles[k], anchor[k], hashed[k], &rep, &s);
        assert_false(rep.ok);
        w = wr_of(f, &rep, FX_W0);
        assert_true(w->verified_seq == 1 && w->collected_to == 0);
        chain_report_free(&rep);
        fx_recs_free(&s.r);
    }
}

static void test_broken_prev(void **state)
{
    struct fx *f = *state;
    struct scenario s;
    memset(&s, 0, sizeof s);
    add_cert(f, &s, FX_W0);
    add_data(f, &s, FX_W0, 1);
    /* seq 3, correctly signed by W0, but its prev names something else. */
    struct record_header h = {.type = REC_DATA, .seq = 3, .lamport = 3};
    memcpy(h.capsule, f->meta.name, HASH_SIZE);
    memset(h.prev, 0x3d, HASH_SIZE);
    uint8_t pl[128];
    size_t pn = fx_data_plain(pl, sizeof pl, 1, 77);
    size_t size;
    uint8_t hash[HASH_SIZE];
    uint8_t *rec = fx_seal_hdr(&f->w[FX_W0].keys, &h, pl, pn, &size, hash);
    size_t bad = fx_recs_add(&s.r, rec, size, hash);
    struct chain_report rep;
    verify(f, &s.r, FX_NOW, f->capsule_key, &rep);
    assert_one_failure(&rep, bad, PSL_ERR_BAD_PREV);
    const struct chain_writer *w = wr_of(f, &rep, FX_W0);
    assert_true(w->verified_seq == 2);
    assert_true(w->max_seq == 3);
    chain_report_free(&rep);
    fx_recs_free(&s.r);
}

static void test_uncertified_writer(void **state)
{
    struct fx *f = *state;
    struct scenario s;
    build_valid(f, &s);
    /* A writer whose CERT is not in the set. */
    struct writer_keys stray;
    fx_writer_keys(&stray, 9, f->capsule_key);
    struct fx_writer x = {.keys = stray};
    record_chain_init(&x.chain, f->meta.name);
    x.chain.seq = 1;
    size_t size;
    uint8_t *rec = fx_seal_data(&x, 1, 1, &size, NULL);
    size_t bad = fx_recs_add(&s.r, rec, size, NULL);
    struct chain_report rep;
    verify(f, &s.r, FX_NOW, f->capsule_key, &rep);
    assert_one_failure(&rep, bad, PSL_ERR_UNKNOWN_WRITER);
    assert_int_equal(rep.writer_count, FX_WRITERS);
    assert_null(writer_of(&rep, stray.writer_id));
    chain_report_free(&rep);
    writer_keys_deinit(&stray);
    fx_recs_free(&s.r);
}

static void test_foreign_record(void **state)
{
    struct fx *f = *state;
    struct scenario s;
    build_valid(f, &s);
    struct fx_writer *w = &f->w[FX_W0];
    record_chain_init(&w->chain, f->other.name);
    w->chain.seq = 1;
    size_t size;
    uint8_t *rec = fx_seal_data(w, 1, 1, &size, NULL);
    size_t bad = fx_recs_add(&s.r, rec, size, NULL);
    struct chain_report rep;
    verify(f, &s.r, FX_NOW, f->capsule_key, &rep);
    assert_one_failure(&rep, bad, PSL_ERR_WRONG_CAPSULE);
    chain_report_free(&rep);
    fx_recs_free(&s.r);
}

static void test_sync_by_worker(void **state)
{
    struct fx *f = *state;
    struct scenario s;
    build_valid(f, &s);
    struct cut_head h;
    cut_head_of(f, FX_W0, &h);
    size_t size;
    uint8_t hash[HASH_SIZE];
    uint8_t *rec = fx_seal_cut(&f->w[FX_W1], REC_SYNC, 2, &h, 1, &size, hash);
    size_t bad = fx_recs_add(&s.r, rec, size, hash);
    struct chain_report rep;
    verify(f, &s.r, FX_NOW, f->capsule_key, &rep);
    assert_one_failure(&rep, bad, PSL_ERR_CERT_ROLE);
    /* The refused SYNC itself links to the coordinator's SYNC (W1 had applied it). */
    assert_int_equal(rep.sync_links, 3);
    chain_report_free(&rep);
    fx_recs_free(&s.r);
}

static void test_sync_link_to_nothing(void **state)
{
    struct fx *f = *state;
    struct scenario s;
    build_valid(f, &s);
    memset(f->w[FX_W0].chain.sync, 0x6e, HASH_SIZE);
    size_t bad = add_data(f, &s, FX_W0, 1);
    /* A link to a record that exists but is no SYNC. */
    memcpy(f->w[FX_W1].chain.sync, s.r.hash[s.w0_data], HASH_SIZE);
    size_t bad2 = add_data(f, &s, FX_W1, 1);
    struct chain_report rep;
    verify(f, &s.r, FX_NOW, f->capsule_key, &rep);
    assert_false(rep.ok);
    assert_int_equal(rep.failure_count, 2);
    assert_true(has_failure(&rep, bad, PSL_ERR_BAD_SYNC));
    assert_true(has_failure(&rep, bad2, PSL_ERR_BAD_SYNC));
    assert_int_equal(rep.sync_links, 2);
    chain_report_free(&rep);
    fx_recs_free(&s.r);
}

static void test_sync_cut_lies(void **state)
{
    struct fx *f = *state;
    struct scenario s;
    memset(&s, 0, sizeof s);
    add_cert(f, &s, FX_W0);
    add_cert(f, &s, FX_COORD);
    add_data(f, &s, FX_W0, 1);
    add_data(f, &s, FX_W0, 1);
    /* The cut names W0's seq 2 (present) with a wrong hash. */
    struct cut_head h = {.seq = 2};
    memcpy(h.writer, f->w[FX_W0].keys.writer_id, HASH_SIZE);
    memset(h.hash, 0x99, HASH_SIZE);
    size_t size;
    uint8_t hash[HASH_SIZE];
    uint8_t *rec = fx_seal_cut(&f->w[FX_COORD], REC_SYNC, 1, &h, 1, &size, hash);
    size_t bad = fx_recs_add(&s.r, rec, size, hash);
    struct chain_report rep;
    verify(f, &s.r, FX_NOW, f->capsule_key, &rep);
    assert_one_failure(&rep, bad, PSL_ERR_BAD_SYNC);
    chain_report_free(&rep);

    /* The same cut with the right hash verifies; heads of writers or seqs absent from the set
     * are not held against it. */
    fx_recs_free(&s.r);
    memset(&s, 0, sizeof s);
    record_chain_init(&f->w[FX_W0].chain, f->meta.name);
    record_chain_init(&f->w[FX_COORD].chain, f->meta.name);
    add_cert(f, &s, FX_W0);
    add_cert(f, &s, FX_COORD);
    size_t d2 = add_data(f, &s, FX_W0, 1);
    struct cut_head heads[3];
    heads[0] = (struct cut_head){.seq = 2};
    memcpy(heads[0].writer, f->w[FX_W0].keys.writer_id, HASH_SIZE);
    memcpy(heads[0].hash, s.r.hash[d2], HASH_SIZE);
    heads[1] = heads[0];
    heads[1].seq = 9; /* not in the set */
    memset(heads[1].hash, 0x01, HASH_SIZE);
    heads[2] = heads[0];
    memset(heads[2].writer, 0x77, HASH_SIZE); /* a writer not in the set */
    rec = fx_seal_cut(&f->w[FX_COORD], REC_SYNC, 1, heads, 3, &size, hash);
    fx_recs_add(&s.r, rec, size, hash);
    memcpy(f->w[FX_W0].chain.sync, hash, HASH_SIZE);
    add_data(f, &s, FX_W0, 1);
    verify(f, &s.r, FX_NOW, f->capsule_key, &rep);
    assert_true(rep.ok);
    assert_int_equal(rep.failure_count, 0);
    assert_int_equal(rep.sync_links, 1);
    chain_report_free(&rep);
    fx_recs_free(&s.r);
}

static void test_decrypt_failure(void **state)
{
    struct fx *f = *state;
    struct scenario s;
    build_valid(f, &s);
    /* W0's next record sealed under a key derived from another capsule key. */
    struct fx_writer *w0 = &f->w[FX_W0];
    struct fx_writer bad_w = {.chain = w0->chain};
    fx_writer_keys(&bad_w.keys, FX_W0, f->other_key);
    size_t size;
    uint8_t hash[HASH_SIZE];
    uint8_t *rec = fx_seal_data(&bad_w, 1, 5, &size, hash);
    size_t bad = fx_recs_add(&s.r, rec, size, hash);
    writer_keys_deinit(&bad_w.keys);

    struct chain_report rep;
    verify(f, &s.r, FX_NOW, f->capsule_key, &rep);
    assert_one_failure(&rep, bad, PSL_ERR_DECRYPT);
    assert_true(wr_of(f, &rep, FX_W0)->data_ops == s.data_ops[FX_W0]);
    assert_true(wr_of(f, &rep, FX_W0)->verified_seq == s.seq[FX_W0]);
    chain_report_free(&rep);
    /* Without the key it cannot be told apart: the signature is good. */
    verify(f, &s.r, FX_NOW, NULL, &rep);
    assert_true(rep.ok);
    assert_true(wr_of(f, &rep, FX_W0)->verified_seq == s.seq[FX_W0] + 1);
    chain_report_free(&rep);
    /* The whole capsule under a wrong capsule key: every DATA record fails. */
    verify(f, &s.r, FX_NOW, f->other_key, &rep);
    assert_false(rep.ok);
    assert_int_equal(rep.failure_count, rep.type_count[REC_DATA] - 1);
    for (size_t i = 0; i < rep.failure_count; i++)
        assert_int_equal(rep.failures[i].err, PSL_ERR_DECRYPT);
    chain_report_free(&rep);
    fx_recs_free(&s.r);
}

static void test_revoke(void **state)
{
    struct fx *f = *state;
    struct scenario s;
    build_valid(f, &s);
    size_t size;
    /* The owner revokes W1; the leader writes the record. */
    uint8_t *rec =
        fx_seal_revoke(f, &f->w[FX_LEADER], f->w[FX_W1].keys.writer_id, &f->owner, &size, NULL);
    fx_recs_add(&s.r, rec, size, NULL);
    /* The leader revokes the delegated worker with its own key; a worker writes the record. */
    rec = fx_seal_revoke(f, &f->w[FX_W0], f->w[FX_DELEGATED].keys.writer_id,
                         &f->w[FX_LEADER].keys.sign, &size, NULL);
    fx_recs_add(&s.r, rec, size, NULL);
    struct chain_report rep;
    verify(f, &s.r, FX_NOW, f->capsule_key, &rep);
    assert_true(rep.ok);
    assert_int_equal(rep.failure_count, 0);
    assert_int_equal(rep.type_count[REC_REVOKE], 2);
    assert_true(wr_of(f, &rep, FX_W1)->revoked);
    assert_true(wr_of(f, &rep, FX_DELEGATED)->revoked);
    assert_false(wr_of(f, &rep, FX_W0)->revoked);
    assert_false(wr_of(f, &rep, FX_LEADER)->revoked);
    chain_report_free(&rep);
    fx_recs_free(&s.r);
}

static void test_revoke_unauthorised(void **state)
{
    struct fx *f = *state;
    struct scenario s;
    build_valid(f, &s);
    size_t size;
    /* A worker revoking another worker with its own key. */
    uint8_t *rec = fx_seal_revoke(f, &f->w[FX_W0], f->w[FX_W1].keys.writer_id,
                                  &f->w[FX_W0].keys.sign, &size, NULL);
    size_t bad1 = fx_recs_add(&s.r, rec, size, NULL);
    /* A coordinator, and a key with no standing at all. */
    rec = fx_seal_revoke(f, &f->w[FX_COORD], f->w[FX_W1].keys.writer_id, &f->w[FX_COORD].keys.sign,
                         &size, NULL);
    size_t bad2 = fx_recs_add(&s.r, rec, size, NULL);
    rec = fx_seal_revoke(f, &f->w[FX_COORD], f->w[FX_W1].keys.writer_id, &f->stranger, &size, NULL);
    size_t bad3 = fx_recs_add(&s.r, rec, size, NULL);
    /* A forged owner revocation: signed by the stranger, claiming the owner's key. The writer
     * re-seals it properly, so only the revocation inside is bad. */
    struct revocation r;
    memset(&r, 0, sizeof r);
    memcpy(r.target, f->w[FX_W1].keys.writer_id, HASH_SIZE);
    revoke_sign(&r, f->meta.name, &f->stranger);
    memcpy(r.revoker_pk, f->owner.pk, SIGN_PK_SIZE);
    uint8_t pl[REVOKE_SIZE];
    struct wr wr;
    wr_init(&wr, pl, sizeof pl);
    revoke_encode(&wr, &r);
    rec = fx_seal(&f->w[FX_LEADER], REC_REVOKE, pl, wr.pos, &size, NULL);
    size_t bad4 = fx_recs_add(&s.r, rec, size, NULL);
    /* An owner revocation for another capsule. */
    revoke_sign(&r, f->other.name, &f->owner);
    wr_init(&wr, pl, sizeof pl);
    revoke_encode(&wr, &r);
    rec = fx_seal(&f->w[FX_LEADER], REC_REVOKE, pl, wr.pos, &size, NULL);
    size_t bad5 = fx_recs_add(&s.r, rec, size, NULL);

    struct chain_report rep;
    verify(f, &s.r, FX_NOW, f->capsule_key, &rep);
    assert_false(rep.ok);
    assert_int_equal(rep.failure_count, 5);
    assert_true(has_failure(&rep, bad1, PSL_ERR_REVOKED));
    assert_true(has_failure(&rep, bad2, PSL_ERR_REVOKED));
    assert_true(has_failure(&rep, bad3, PSL_ERR_REVOKED));
    assert_true(has_failure(&rep, bad4, PSL_ERR_REVOKED));
    assert_true(has_failure(&rep, bad5, PSL_ERR_REVOKED));
    assert_false(wr_of(f, &rep, FX_W1)->revoked);
    chain_report_free(&rep);
    fx_recs_free(&s.r);
}

static void test_garbage_and_bad_certs(void **state)
{
    struct fx *f = *state;
    struct scenario s;
    build_valid(f, &s);
    /* Unparseable bytes. */
    uint8_t *junk = malloc(200);
    assert_non_null(junk);
    memset(junk, 'j', 200);
    size_t bad_junk = fx_recs_add(&s.r, junk, 200, NULL);
    /* A stray writer certified by a stranger, with one DATA record. */
    struct fx_writer x;
    memset(&x, 0, sizeof x);
    fx_writer_keys(&x.keys, 9, f->capsule_key);
    record_chain_init(&x.chain, f->meta.name);
    fx_cert_make(f, &x.cert, &x.keys, ROLE_WORKER, &f->stranger);
    size_t size;
    uint8_t *rec = fx_seal_cert(f, &x, &size, NULL);
    size_t bad_cert = fx_recs_add(&s.r, rec, size, NULL);
    rec = fx_seal_data(&x, 1, 1, &size, NULL);
    size_t bad_data = fx_recs_add(&s.r, rec, size, NULL);
    writer_keys_deinit(&x.keys);
    /* The delegated worker's CERT without its delegation. */
    struct fx_writer *wd = &f->w[FX_DELEGATED];
    uint8_t pl[1 + CERT_SIZE];
    struct wr wr;
    wr_init(&wr, pl, sizeof pl);
    certpl_encode(&wr, &wd->cert, NULL);
    record_chain_init(&wd->chain, f->meta.name);
    rec = fx_seal(wd, REC_CERT, pl, wr.pos, &size, NULL);
    size_t bad_deleg = fx_recs_add(&s.r, rec, size, NULL);

    struct chain_report rep;
    verify(f, &s.r, FX_NOW, f->capsule_key, &rep);
    assert_false(rep.ok);
    assert_int_equal(rep.record_count, 20);
    assert_int_equal(rep.failure_count, 4);
    assert_true(has_failure(&rep, bad_junk, PSL_ERR_BAD_MAGIC));
    assert_true(has_failure(&rep, bad_cert, PSL_ERR_CERT_ISSUER));
    assert_true(has_failure(&rep, bad_data, PSL_ERR_UNKNOWN_WRITER));
    assert_true(has_failure(&rep, bad_deleg, PSL_ERR_CERT_ISSUER));
    assert_int_equal(rep.writer_count, FX_WRITERS);
    chain_report_free(&rep);
    fx_recs_free(&s.r);
}

static void test_expired_at_now(void **state)
{
    struct fx *f = *state;
    struct scenario s;
    build_valid(f, &s);
    struct chain_report rep;
    verify(f, &s.r, FX_CERT_NA + 1, f->capsule_key, &rep);
    assert_false(rep.ok);
    assert_int_equal(rep.failure_count, s.r.n);
    assert_int_equal(rep.writer_count, 0);
    /* Every CERT is refused as expired, so every other record has no known writer. */
    size_t expired = 0, unknown = 0;
    for (size_t i = 0; i < rep.failure_count; i++) {
        expired += rep.failures[i].err == PSL_ERR_CERT_EXPIRED;
        unknown += rep.failures[i].err == PSL_ERR_UNKNOWN_WRITER;
    }
    assert_int_equal(expired, FX_WRITERS);
    assert_int_equal(unknown, s.r.n - FX_WRITERS);
    assert_true(has_failure(&rep, s.w0_cert, PSL_ERR_CERT_EXPIRED));
    assert_true(has_failure(&rep, s.w0_data, PSL_ERR_UNKNOWN_WRITER));
    chain_report_free(&rep);
    fx_recs_free(&s.r);
}

static void test_bad_payloads(void **state)
{
    struct fx *f = *state;
    struct scenario s;
    build_valid(f, &s);
    struct fx_writer *w0 = &f->w[FX_W0];
    size_t size;
    uint8_t *rec;
    /* Well signed records whose payloads do not decode for their type. */
    uint8_t nine[9] = {0};
    rec = fx_seal(w0, REC_HEAD, nine, sizeof nine, &size, NULL);
    size_t bad_head = fx_recs_add(&s.r, rec, size, NULL);
    uint8_t cut[12 + CUT_HEAD_SIZE] = {0};
    put_le32(cut + 8, 1); /* one head, with seq 0 */
    rec = fx_seal(w0, REC_EOE, cut, sizeof cut, &size, NULL);
    size_t bad_eoe = fx_recs_add(&s.r, rec, size, NULL);
    uint8_t short_revoke[REVOKE_SIZE - 1] = {0};
    rec = fx_seal(w0, REC_REVOKE, short_revoke, sizeof short_revoke, &size, NULL);
    size_t bad_revoke = fx_recs_add(&s.r, rec, size, NULL);
    uint8_t *big = calloc(1, PSL_RESULT_SIZE_MAX + 1);
    assert_non_null(big);
    rec = fx_seal(w0, REC_RESULT, big, PSL_RESULT_SIZE_MAX + 1, &size, NULL);
    size_t bad_result = fx_recs_add(&s.r, rec, size, NULL);
    rec = fx_seal(w0, REC_RESULT, big, PSL_RESULT_SIZE_MAX, &size, NULL); /* at the limit: fine */
    fx_recs_add(&s.r, rec, size, NULL);
    free(big);
    /* DATA that decrypts but holds an unknown opcode; an LSM block is only decrypted. */
    uint8_t ops[4 + DATA_OP_OVERHEAD + 1] = {1, 0, 0, 0, 7};
    put_le16(ops + 4 + 9, 1);
    rec = fx_seal(w0, REC_DATA, ops, sizeof ops, &size, NULL);
    size_t bad_data = fx_recs_add(&s.r, rec, size, NULL);
    rec = fx_seal(w0, REC_LSM_BLOCK, ops, sizeof ops, &size, NULL);
    fx_recs_add(&s.r, rec, size, NULL);

    struct chain_report rep;
    verify(f, &s.r, FX_NOW, f->capsule_key, &rep);
    assert_false(rep.ok);
    assert_int_equal(rep.failure_count, 5);
    assert_true(has_failure(&rep, bad_head, PSL_ERR_TRAILING));
    assert_true(has_failure(&rep, bad_eoe, PSL_ERR_BAD_SEQ));
    assert_true(has_failure(&rep, bad_revoke, PSL_ERR_TRUNCATED));
    assert_true(has_failure(&rep, bad_result, PSL_ERR_TOO_LARGE));
    assert_true(has_failure(&rep, bad_data, PSL_ERR_MALFORMED));
    assert_int_equal(rep.type_count[REC_LSM_BLOCK], 1);
    /* The refused records leave a gap in W0's chain. */
    assert_true(wr_of(f, &rep, FX_W0)->verified_seq == s.seq[FX_W0]);
    chain_report_free(&rep);
    /* Without the capsule key the DATA record's plaintext cannot be checked. */
    verify(f, &s.r, FX_NOW, NULL, &rep);
    assert_int_equal(rep.failure_count, 4);
    assert_false(has_failure(&rep, bad_data, PSL_ERR_MALFORMED));
    chain_report_free(&rep);
    fx_recs_free(&s.r);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, fx_setup, fx_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_valid_capsule),
        T(test_valid_capsule_any_order),
        T(test_empty_set),
        T(test_replay_is_duplicate),
        T(test_fork),
        T(test_fork_of_cert),
        T(test_gap),
        T(test_collected_range),
        T(test_broken_prev),
        T(test_uncertified_writer),
        T(test_foreign_record),
        T(test_sync_by_worker),
        T(test_sync_link_to_nothing),
        T(test_sync_cut_lies),
        T(test_decrypt_failure),
        T(test_revoke),
        T(test_revoke_unauthorised),
        T(test_garbage_and_bad_certs),
        T(test_expired_at_now),
        T(test_bad_payloads),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
