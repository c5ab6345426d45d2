/* fuzz_ring.c: libFuzzer target for the receiving side of a ring (and the sending side's head
 * check) against a hostile peer that writes the shared region. Invariants checked: no read or
 * write outside the region (ASan sees any: the region is a heap buffer of exactly its size);
 * every message handed out fits the caller's buffer and the ring's limit; PSL_ERR_MALFORMED is
 * sticky; a ring_attach of fuzzer bytes either fails or gives a capacity that matches the region.
 *
 * Input layout (little-endian, missing bytes read as zero):
 *   [0]      warm-up: this many 200-byte messages are sent and received first, so that the
 *            hostile frames start at varied offsets (and near the end of the area)
 *   [1..8]   the tail, as a signed distance from the consumer's head (the consumer waits on frame
 *            headers, not on the tail: whatever is written there must change nothing)
 *   [9..16]  the head that the "consumer" writes, as a signed distance from the producer's tail
 *   [17..18] the receive buffer's capacity
 *   [19..]   bytes written into the data area starting at the head's offset (wrapping)
 * The whole input is also tried as a region header for ring_attach. */
#include <stdlib.h>
#include <string.h>

#include "base/assert.h"
#include "fuzz_fixture.h"
#include "ring/ring.h"

#define FUZZ_CAP      4096u
#define FUZZ_RECV_MAX 64
#define FUZZ_SEND_MAX 8

static uint64_t get_le(const uint8_t *data, size_t size, size_t at, size_t width)
{
    uint64_t v = 0;
    for (size_t i = 0; i < width; i++)
        if (at + i < size)
            v |= (uint64_t)data[at + i] << (8 * i);
    return v;
}

static void fuzz_recv_side(const uint8_t *data, size_t size)
{
    size_t region = ring_region_size(FUZZ_CAP);
    uint8_t *mem = aligned_alloc(4096, region);
    PSL_ASSERT(mem != NULL);
    PSL_ASSERT(ring_format(mem, region, FUZZ_CAP) == PSL_OK);
    struct ring r;
    PSL_ASSERT(ring_attach(&r, mem, region) == PSL_OK);
    ring_set_spin(&r, 0);

    /* Honest traffic first, to move the positions. */
    static uint8_t buf[FUZZ_CAP];
    memset(buf, 0x5a, 200);
    unsigned warm = size > 0 ? data[0] : 0;
    for (unsigned i = 0; i < warm; i++) {
        uint32_t type;
        size_t got;
        PSL_ASSERT(ring_send(&r, 1, buf, 200, 0) == PSL_OK);
        PSL_ASSERT(ring_recv(&r, &type, buf, sizeof buf, &got, 0) == PSL_OK);
        PSL_ASSERT(type == 1 && got == 200);
    }

    /* The hostile producer writes frames and a tail. */
    struct ring_shared *sh = (struct ring_shared *)mem;
    uint8_t *area = mem + RING_HEADER_SIZE;
    uint32_t off = (uint32_t)(r.head & (FUZZ_CAP - 1u));
    for (size_t i = 19; i < size && i - 19 < FUZZ_CAP; i++)
        area[(off + (i - 19)) & (FUZZ_CAP - 1u)] = data[i];
    atomic_store(&sh->tail, r.head + get_le(data, size, 1, 8));
    size_t cap = (size_t)get_le(data, size, 17, 2) % (sizeof buf + 1);

    psl_err err = PSL_OK;
    for (int i = 0; i < FUZZ_RECV_MAX; i++) {
        uint32_t type;
        size_t got = 0;
        err = ring_recv(&r, &type, buf, cap, &got, 0);
        if (err == PSL_OK) {
            PSL_ASSERT(got <= cap && got <= ring_msg_size_max(FUZZ_CAP));
            PSL_ASSERT(type != RING_TYPE_PAD);
            continue;
        }
        if (err == PSL_ERR_TOO_LARGE) {
            PSL_ASSERT(got > cap && got <= ring_msg_size_max(FUZZ_CAP));
            cap = sizeof buf; /* take it next time */
            continue;
        }
        PSL_ASSERT(err == PSL_ERR_NOT_FOUND || err == PSL_ERR_MALFORMED);
        break;
    }
    if (err == PSL_ERR_MALFORMED) {
        uint32_t type;
        size_t got;
        uint64_t sound = 1; /* type 1, size 0 at the head: still refused */
        memcpy(area + (r.head & (FUZZ_CAP - 1u)), &sound, sizeof sound);
        PSL_ASSERT(ring_recv(&r, &type, buf, sizeof buf, &got, 0) == PSL_ERR_MALFORMED);
        PSL_ASSERT(ring_send(&r, 1, buf, 1, 0) == PSL_ERR_MALFORMED);
    }

    /* The hostile consumer writes a head; the producer must only ever write inside the area. */
    if (err != PSL_ERR_MALFORMED) {
        atomic_store(&sh->head, r.tail + get_le(data, size, 9, 8));
        for (int i = 0; i < FUZZ_SEND_MAX; i++) {
            psl_err serr = ring_send(&r, 2, buf, 1500, 0);
            PSL_ASSERT(serr == PSL_OK || serr == PSL_ERR_BUSY || serr == PSL_ERR_MALFORMED);
            if (serr != PSL_OK)
                break;
        }
    }
    free(mem);
}

static void fuzz_attach(const uint8_t *data, size_t size)
{
    size_t region = ring_region_size(FUZZ_CAP);
    uint8_t *mem = aligned_alloc(4096, region);
    PSL_ASSERT(mem != NULL);
    memset(mem, 0, region);
    memcpy(mem, data, size < RING_HEADER_SIZE ? size : RING_HEADER_SIZE);
    struct ring r;
    if (ring_attach(&r, mem, region) == PSL_OK) {
        PSL_ASSERT(r.cap == FUZZ_CAP);
        ring_set_spin(&r, 0);
        static uint8_t buf[FUZZ_CAP];
        for (int i = 0; i < FUZZ_RECV_MAX; i++) {
            uint32_t type;
            size_t got;
            if (ring_recv(&r, &type, buf, sizeof buf, &got, 0) != PSL_OK)
                break;
        }
    }
    free(mem);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    fuzz_recv_side(data, size);
    fuzz_attach(data, size);
    return 0;
}
