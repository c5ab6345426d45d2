/* bloom.h: the Bloom filter of a CapsuleDB block (DESIGN §6), carried in the signed index so that
 * a reader skips blocks that cannot hold a key without fetching them.
 * Filters must be the same bits on every machine, so the hash is fixed: per key
 *   d = SHA-256("psl-bloom-v1" || key),  h1 = LE64(d[0..8]),  h2 = LE64(d[8..16])
 * and probe i (0 <= i < hashes) sets bit ((h1 + i * h2) mod 2^64) mod (8 * size), bit b being
 * (byte b / 8, mask 1 << (b % 8)) (Kirsch-Mitzenmacher double hashing). The filter is inside the
 * encrypted index, so an unkeyed hash reveals nothing to storage servers; the keys it is built
 * from come from certified writers only. The digest of a key is computed once per lookup and
 * reused for every block's filter. */
#ifndef PSL_LSM_BLOOM_H
#define PSL_LSM_BLOOM_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#define LSM_BLOOM_BITS_PER_KEY_DEFAULT 10u /* about 1% false positives with 7 hashes */
#define LSM_BLOOM_HASHES_DEFAULT       7u
#define LSM_BLOOM_BITS_PER_KEY_MAX     16u
#define LSM_BLOOM_HASHES_MAX           16u
/* Filter bytes of one block: 16 bits per key at LSM_BLOCK_ENTRIES_MAX entries. */
#define LSM_BLOOM_SIZE_MAX (1u << 17)

struct lsm_bloom_probe {
    uint64_t h1, h2;
};

/* Hashes key (key_size >= 1) once for every filter it is tested against or added to. */
void lsm_bloom_probe_init(struct lsm_bloom_probe *p, const uint8_t *key, size_t key_size);

/* Filter size in bytes for entry_count keys at bits_per_key: ceil(entry_count * bits / 8),
 * at least 1 and at most LSM_BLOOM_SIZE_MAX. */
size_t lsm_bloom_size_for(size_t entry_count, unsigned bits_per_key);

/* Sets the key's bits in bits (size >= 1 bytes, hashes >= 1 probes). */
void lsm_bloom_add(uint8_t *bits, size_t size, unsigned hashes, const struct lsm_bloom_probe *p);

/* False only if the key was never added (no false negatives). */
bool lsm_bloom_may_contain(const uint8_t *bits, size_t size, unsigned hashes,
                           const struct lsm_bloom_probe *p);

#endif
