/* export.h: capsule export files, so a capsule can be audited offline.
 * Format ("PSLX"):
 *   magic[4] version u8 reserved[3]=0 meta_size u32 meta[meta_size]
 *   then records, each: size u32 (1..PSL_RECORD_SIZE_MAX) || record[size]
 *   then the end mark: size u32 = 0 || record_count u64
 * The end mark makes truncation at a record boundary detectable. The file itself is not signed:
 * the metadata and every record are, and `psl capsule verify` checks them. */
#ifndef PSL_CAPSULE_EXPORT_H
#define PSL_CAPSULE_EXPORT_H

#include <stdint.h>
#include <stdio.h>

#include "capsule/chain.h"
#include "capsule/meta.h"

#define EXPORT_VERSION 1u

/* Streaming writer over a FILE (borrowed). Errors are sticky; check export_finish. */
struct export_writer {
    FILE *f;
    uint64_t count;
    psl_err err;
};
void export_begin(struct export_writer *x, FILE *f, const uint8_t *meta, size_t meta_size);
void export_add(struct export_writer *x, const uint8_t *rec, size_t size);
psl_err export_finish(struct export_writer *x) PSL_MUST_USE;

/* A parsed export; the record views point into the caller's buffer. */
struct export_view {
    const uint8_t *meta;
    size_t meta_size;
    struct chain_input *records; /* owned: free with export_view_free */
    size_t record_count;
};

/* Parses an export held in memory: framing, limits, end mark and count. The record array is
 * sized from a count the bytes could actually hold, checked before allocation. Does not verify
 * the metadata or the records (see meta_decode and chain_verify). */
psl_err export_parse(const uint8_t *buf, size_t size, struct export_view *out) PSL_MUST_USE;
void export_view_free(struct export_view *v);

/* Reads a whole file into memory (bounded by PSL_EXPORT_SIZE_MAX); free the result with free(). */
psl_err file_read_all(const char *path, uint8_t **out, size_t *out_size) PSL_MUST_USE;

#endif
