/* fuzz_export.c: libFuzzer target for export_parse (capsule export files) and, on what parses,
 * meta_decode of the embedded metadata and chain_verify of the records, as `psl capsule verify`
 * does. When the embedded metadata does not verify (the usual case for mutated inputs) the records
 * are checked against the fixture capsule instead, so mutated records still reach the chain
 * passes. No capsule key is given, and at most FUZZ_EXPORT_RECORDS_MAX records are verified per
 * input to keep each execution bounded (chain_verify allocates a 4 MiB scratch per call).
 * Invariants checked: the parsed view lies inside the input, and the report is self-consistent. */
#include <string.h>

#include "base/assert.h"
#include "capsule/export.h"
#include "fuzz_fixture.h"

#define FUZZ_EXPORT_RECORDS_MAX 64u

/* Whether [p, p + n) lies inside [base, base + size). */
static bool view_inside(const uint8_t *p, size_t n, const uint8_t *base, size_t size)
{
    if (p < base || n > size)
        return false;
    return (size_t)(p - base) <= size - n;
}

static void check_report(const struct chain_report *rep, size_t count)
{
    PSL_ASSERT(rep->record_count == count);
    PSL_ASSERT(rep->valid_count + rep->duplicate_count <= count);
    size_t types = 0;
    for (size_t t = 0; t <= REC_TYPE_MAX; t++)
        types += rep->type_count[t];
    PSL_ASSERT(types <= count);
    PSL_ASSERT(rep->writer_count <= rep->type_count[REC_CERT]);
    for (size_t i = 0; i < rep->writer_count; i++) {
        const struct chain_writer *w = &rep->writers[i];
        PSL_ASSERT(w->has_cert && w->verified_seq <= w->max_seq);
        PSL_ASSERT(w->records <= count);
    }
    for (size_t i = 0; i < rep->fork_count; i++)
        PSL_ASSERT(rep->forks[i].index_a < count && rep->forks[i].index_b < count);
    for (size_t i = 0; i < rep->failure_count; i++)
        PSL_ASSERT(rep->failures[i].index < count && rep->failures[i].err != PSL_OK);
    if (rep->ok)
        PSL_ASSERT(rep->failure_count == 0 && rep->fork_count == 0);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const struct fuzz_fixture *fx = fixture_get();
    struct export_view xv;
    if (export_parse(data, size, &xv) != PSL_OK)
        return 0;

    PSL_ASSERT(view_inside(xv.meta, xv.meta_size, data, size));
    for (size_t i = 0; i < xv.record_count; i++) {
        const struct chain_input *r = &xv.records[i];
        PSL_ASSERT(r->size >= 1 && r->size <= PSL_RECORD_SIZE_MAX);
        PSL_ASSERT(view_inside(r->data, r->size, data, size));
    }

    struct capsule_meta m;
    const struct capsule_meta *mp = &fx->meta;
    if (meta_decode(&m, xv.meta, xv.meta_size) == PSL_OK)
        mp = &m;
    size_t count =
        xv.record_count < FUZZ_EXPORT_RECORDS_MAX ? xv.record_count : FUZZ_EXPORT_RECORDS_MAX;
    struct chain_report rep;
    if (chain_verify(mp, xv.records, count, FIXTURE_NOW_MS, NULL, &rep) == PSL_OK) {
        check_report(&rep, count);
        chain_report_free(&rep);
    }
    export_view_free(&xv);
    return 0;
}
