/* test_capsule_client.c: the client library's ACK checks (src/capsuled/client.c) on the
 * in-process bus, with the test playing the storage servers. A writer registered with its keys
 * (capsule_client_add_writer) counts an ACK only if its MAC verifies under the key it shares
 * with the named server: a valid signature with a broken MAC, a MAC made by another server in
 * a replica's name, an ACK made for another writer and relabelled, an ACK of another capsule,
 * a non-replica's ACK and a hash that is not the writer's record are all refused, and k valid
 * ones make the record durable. A writer never registered (a relaying client) is tracked by
 * signatures; registering it later switches it to MACs. */
#include <pthread.h>

#include "capsule_fixture.h"

#include "capsule/ack.h"
#include "capsuled/client.h"
#include "fabric/fabric.h"

struct world {
    struct fx fx;
    struct inproc_bus *bus;
    struct fabric *cli_fab, *srv_fab;
    struct capsule_client *cl;
    uint8_t hash[FX_WRITERS][3][HASH_SIZE]; /* hash of seq 1..2 of each writer */
};

static int world_setup(void **state)
{
    struct world *wd = calloc(1, sizeof *wd);
    if (!wd)
        return -1;
    fx_init(&wd->fx);
    assert_int_equal(inproc_bus_create(&wd->bus, 16u << 20), PSL_OK);
    assert_int_equal(fabric_inproc_connect(wd->bus, &wd->cli_fab), PSL_OK);
    assert_int_equal(fabric_inproc_connect(wd->bus, &wd->srv_fab), PSL_OK);
    struct capsule_client_config cc = {
        .fabric = wd->cli_fab, .meta = &wd->fx.meta, .resend_ms = 60000};
    assert_int_equal(capsule_client_open(&wd->cl, &cc), PSL_OK);
    *state = wd;
    return 0;
}

static int world_teardown(void **state)
{
    struct world *wd = *state;
    capsule_client_close(wd->cl);
    fabric_destroy(wd->srv_fab);
    fabric_destroy(wd->cli_fab);
    inproc_bus_destroy(wd->bus);
    fx_deinit(&wd->fx);
    free(wd);
    return 0;
}

/* Publishes writer wi's CERT (seq 1) and one DATA record (seq 2) through the client. */
static void publish_two(struct world *wd, unsigned wi)
{
    struct fx_writer *w = &wd->fx.w[wi];
    size_t size;
    uint8_t *rec = fx_seal_cert(&wd->fx, w, &size, wd->hash[wi][1]);
    assert_int_equal(capsule_client_publish(wd->cl, rec, size, 1000), PSL_OK);
    free(rec);
    rec = fx_seal_data(w, 2, wi, &size, wd->hash[wi][2]);
    assert_int_equal(capsule_client_publish(wd->cl, rec, size, 1000), PSL_OK);
    free(rec);
}

/* The ACK of seq 2 of writer wi by server s, MAC'd for writer mac_for. */
static void make_ack(struct world *wd, struct ack *a, unsigned wi, const struct signer *s,
                     unsigned mac_for)
{
    memset(a, 0, sizeof *a);
    memcpy(a->capsule, wd->fx.meta.name, HASH_SIZE);
    memcpy(a->writer, wd->fx.w[wi].keys.writer_id, HASH_SIZE);
    a->seq = 2;
    memcpy(a->record_hash, wd->hash[wi][2], HASH_SIZE);
    assert_int_equal(ack_sign_for(a, s, wd->fx.w[mac_for].keys.kx.pk), PSL_OK);
}

/* Delivers the ACK on writer wi's topic and waits until the client has handled it. */
static void deliver(struct world *wd, unsigned wi, const struct ack *a)
{
    uint8_t wire[ACK_SIZE];
    ack_encode(a, wire);
    char whex[2 * HASH_SIZE + 1], topic[FABRIC_TOPIC_SIZE_MAX];
    hex_encode(whex, wd->fx.w[wi].keys.writer_id, HASH_SIZE);
    topic_capsule(topic, wd->fx.meta.name, "ack", whex);
    assert_int_equal(fabric_publish(wd->srv_fab, topic, wire, sizeof wire), PSL_OK);
    assert_int_equal(fabric_flush(wd->srv_fab), PSL_OK);
}

static uint64_t rejected(struct world *wd)
{
    struct capsule_client_stats st;
    capsule_client_get_stats(wd->cl, &st);
    return st.acks_rejected;
}

static unsigned count(struct world *wd, unsigned wi)
{
    return capsule_client_ack_count(wd->cl, wd->fx.w[wi].keys.writer_id, 2);
}

/* Delivers an ACK that must be refused: nothing counts, the rejection is counted. */
static void want_refused(struct world *wd, unsigned wi, const struct ack *a, const char *what)
{
    uint64_t r0 = rejected(wd);
    unsigned c0 = count(wd, wi);
    deliver(wd, wi, a);
    if (count(wd, wi) != c0)
        fail_msg("%s: counted", what);
    if (rejected(wd) != r0 + 1)
        fail_msg("%s: not counted as rejected", what);
}

static void test_registered_writer_checks_macs(void **state)
{
    struct world *wd = *state;
    struct fx *f = &wd->fx;
    assert_int_equal(capsule_client_add_writer(wd->cl, &f->w[FX_W0].keys), PSL_OK);
    publish_two(wd, FX_W0);
    assert_int_equal(count(wd, FX_W0), 0);
    struct ack a;

    /* A valid signature does not stand in for the MAC. */
    make_ack(wd, &a, FX_W0, &f->servers[0], FX_W0);
    memset(a.mac, 0, HASH_SIZE);
    assert_int_equal(ack_verify(&a, &f->meta), PSL_OK);
    want_refused(wd, FX_W0, &a, "zeroed MAC, valid signature");

    /* Server 1 MACs in server 0's name with the key it shares with the writer; server 0's
     * signature is even valid. */
    struct kx_keypair s1;
    assert_int_equal(kx_from_signer(&s1, &f->servers[1]), PSL_OK);
    uint8_t *k = secret_alloc(ACK_KEY_SIZE);
    assert_non_null(k);
    assert_int_equal(ack_key_for_writer(k, &s1, f->servers[0].pk, f->w[FX_W0].keys.kx.pk),
                     PSL_OK);
    make_ack(wd, &a, FX_W0, &f->servers[0], FX_W0);
    assert_int_equal(ack_sign(&a, &f->servers[0], k), PSL_OK);
    want_refused(wd, FX_W0, &a, "MAC by another server");
    secret_free(k);
    kx_deinit(&s1);

    /* Made for writer W1 (its MAC key) and relabelled as W0's. */
    make_ack(wd, &a, FX_W0, &f->servers[0], FX_W1);
    want_refused(wd, FX_W0, &a, "MAC for another writer");

    /* Another capsule; a key outside the replica set; a field changed after the MAC. */
    make_ack(wd, &a, FX_W0, &f->servers[0], FX_W0);
    memcpy(a.capsule, f->other.name, HASH_SIZE);
    assert_int_equal(ack_sign_for(&a, &f->servers[0], f->w[FX_W0].keys.kx.pk), PSL_OK);
    want_refused(wd, FX_W0, &a, "other capsule");
    make_ack(wd, &a, FX_W0, &f->stranger, FX_W0);
    want_refused(wd, FX_W0, &a, "not a replica");
    make_ack(wd, &a, FX_W0, &f->servers[0], FX_W0);
    a.record_hash[0] ^= 1;
    want_refused(wd, FX_W0, &a, "hash changed after the MAC");

    /* A valid MAC for a hash that is not the writer's record: fork evidence, not counted. */
    make_ack(wd, &a, FX_W0, &f->servers[0], FX_W0);
    memcpy(a.record_hash, wd->hash[FX_W0][1], HASH_SIZE);
    assert_int_equal(ack_sign_for(&a, &f->servers[0], f->w[FX_W0].keys.kx.pk), PSL_OK);
    deliver(wd, FX_W0, &a);
    assert_int_equal(count(wd, FX_W0), 0);
    struct capsule_client_stats st;
    capsule_client_get_stats(wd->cl, &st);
    assert_true(st.acks_conflicting == 1);

    /* k = 2 valid ACKs: durable. A broken signature does not matter to the writer. */
    make_ack(wd, &a, FX_W0, &f->servers[0], FX_W0);
    memset(a.sig, 0, SIGN_SIG_SIZE);
    deliver(wd, FX_W0, &a);
    assert_int_equal(count(wd, FX_W0), 1);
    make_ack(wd, &a, FX_W0, &f->servers[2], FX_W0);
    deliver(wd, FX_W0, &a);
    assert_int_equal(count(wd, FX_W0), 2);
    assert_int_equal(capsule_client_wait_durable(wd->cl, f->w[FX_W0].keys.writer_id, 2, 1000),
                     PSL_OK);
}

static void test_relay_checks_signatures_until_registered(void **state)
{
    struct world *wd = *state;
    struct fx *f = &wd->fx;
    publish_two(wd, FX_W1); /* not registered: a relay of someone else's records */
    struct ack a;
    make_ack(wd, &a, FX_W1, &f->servers[0], FX_W1);
    memset(a.mac, 0, HASH_SIZE); /* the relay cannot check MACs: the signature counts */
    deliver(wd, FX_W1, &a);
    assert_int_equal(count(wd, FX_W1), 1);
    make_ack(wd, &a, FX_W1, &f->servers[1], FX_W1);
    memset(a.sig, 0, SIGN_SIG_SIZE);
    want_refused(wd, FX_W1, &a, "relay: broken signature");

    /* Registered now: its keys are adopted, and MACs decide. */
    assert_int_equal(capsule_client_add_writer(wd->cl, &f->w[FX_W1].keys), PSL_OK);
    make_ack(wd, &a, FX_W1, &f->servers[1], FX_W1);
    memset(a.mac, 0, HASH_SIZE);
    want_refused(wd, FX_W1, &a, "registered: zeroed MAC");
    make_ack(wd, &a, FX_W1, &f->servers[1], FX_W1);
    memset(a.sig, 0, SIGN_SIG_SIZE);
    deliver(wd, FX_W1, &a);
    assert_int_equal(count(wd, FX_W1), 2);
}

#define T(fn) cmocka_unit_test_setup_teardown(fn, world_setup, world_teardown)

int main(void)
{
    const struct CMUnitTest tests[] = {
        T(test_registered_writer_checks_macs),
        T(test_relay_checks_signatures_until_registered),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
