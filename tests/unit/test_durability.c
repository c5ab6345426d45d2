/* test_durability.c: k-of-n durability bookkeeping: the durable seq is the highest seq that k
 * distinct replicas cover, ACKs are cumulative, stale and repeated ACKs change nothing. */
#include <setjmp.h>
#include <stdarg.h>
#include <stddef.h>
#include <stdint.h>

#include <cmocka.h>

#include "capsule/durability.h"

static void test_two_of_three(void **state)
{
    (void)state;
    struct durability d;
    durability_init(&d, 3, 2);
    assert_false(durability_ack(&d, 0, 10)); /* one replica is not a quorum */
    assert_int_equal(d.durable, 0);
    assert_true(durability_ack(&d, 2, 7)); /* replicas 0 and 2 both cover 7 */
    assert_int_equal(d.durable, 7);
    assert_int_equal(durability_count(&d, 7), 2);
    assert_int_equal(durability_count(&d, 8), 1);
    assert_true(durability_ack(&d, 1, 12)); /* 0 and 1 cover 10 */
    assert_int_equal(d.durable, 10);
    assert_false(durability_ack(&d, 1, 11)); /* older than what 1 acknowledged: ignored */
    assert_int_equal(d.acked[1], 12);
    assert_false(durability_ack(&d, 1, 12)); /* repeated */
    assert_int_equal(d.durable, 10);
    assert_int_equal(durability_count(&d, 1), 3);
}

static void test_quorum_extremes(void **state)
{
    (void)state;
    struct durability d;
    durability_init(&d, 1, 1);
    assert_true(durability_ack(&d, 0, 3));
    assert_int_equal(d.durable, 3);
    durability_init(&d, 5, 5);
    for (unsigned i = 0; i < 4; i++)
        assert_false(durability_ack(&d, i, 100 + i));
    assert_int_equal(d.durable, 0);
    assert_true(durability_ack(&d, 4, 50)); /* all five cover 50 */
    assert_int_equal(d.durable, 50);
}

static void test_never_goes_backwards(void **state)
{
    (void)state;
    struct durability d;
    durability_init(&d, 4, 3);
    uint64_t last = 0;
    uint64_t x = 12345;
    for (int i = 0; i < 10000; i++) {
        x = x * 6364136223846793005ull + 1442695040888963407ull;
        unsigned idx = (unsigned)(x >> 60) % 4;
        uint64_t seq = (x >> 20) % 1000;
        (void)durability_ack(&d, idx, seq);
        assert_true(d.durable >= last);
        assert_true(durability_count(&d, d.durable) >= 3 || d.durable == 0);
        last = d.durable;
    }
}

int main(void)
{
    const struct CMUnitTest tests[] = {
        cmocka_unit_test(test_two_of_three),
        cmocka_unit_test(test_quorum_extremes),
        cmocka_unit_test(test_never_goes_backwards),
    };
    return cmocka_run_group_tests(tests, NULL, NULL);
}
