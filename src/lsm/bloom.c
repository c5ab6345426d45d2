/* bloom.c: Bloom filters for CapsuleDB blocks (scheme in bloom.h). Invariant: the bit positions
 * depend only on the key, the filter size and the probe count, never on the machine, the process
 * or a secret, because the compactor signs the filters into the index and every reader must agree
 * with them bit for bit. */
#include "lsm/bloom.h"

#include "base/assert.h"
#include "base/bytes.h"
#include "crypto/crypto.h"

static const char bloom_tag[] = "psl-bloom-v1";

void lsm_bloom_probe_init(struct lsm_bloom_probe *p, const uint8_t *key, size_t key_size)
{
    const struct hash_part parts[2] = {
        {.data = bloom_tag, .size = sizeof bloom_tag - 1},
        {.data = key, .size = key_size},
    };
    uint8_t d[HASH_SIZE];
    hash_sha256_parts(d, parts, 2);
    p->h1 = get_le64(d);
    p->h2 = get_le64(d + 8);
}

size_t lsm_bloom_size_for(size_t entry_count, unsigned bits_per_key)
{
    size_t bits = entry_count * bits_per_key; /* both bounded by their limits: no overflow */
    size_t n = (bits + 7) / 8;
    if (n < 1)
        n = 1;
    return n > LSM_BLOOM_SIZE_MAX ? LSM_BLOOM_SIZE_MAX : n;
}

void lsm_bloom_add(uint8_t *bits, size_t size, unsigned hashes, const struct lsm_bloom_probe *p)
{
    PSL_ASSERT(size >= 1);
    uint64_t m = (uint64_t)size * 8;
    uint64_t h = p->h1;
    for (unsigned i = 0; i < hashes; i++, h += p->h2) {
        uint64_t b = h % m;
        bits[b / 8] |= (uint8_t)(1u << (b % 8));
    }
}

bool lsm_bloom_may_contain(const uint8_t *bits, size_t size, unsigned hashes,
                           const struct lsm_bloom_probe *p)
{
    PSL_ASSERT(size >= 1);
    uint64_t m = (uint64_t)size * 8;
    uint64_t h = p->h1;
    for (unsigned i = 0; i < hashes; i++, h += p->h2) {
        uint64_t b = h % m;
        if (!(bits[b / 8] & (1u << (b % 8))))
            return false;
    }
    return true;
}
