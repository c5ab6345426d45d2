/* psl_sim.c: the psl-sim program, a driver of the deterministic simulator (sim.h).
 *   psl-sim --seed N                replay one seed, narrating faults and checks on stderr
 *   psl-sim --seeds A..B            run seeds A to B inclusive
 *   psl-sim --count N [--first S]   run N seeds from S (default 1)
 *   psl-sim --determinism N [--first S]  run N seeds twice each and compare run fingerprints
 * Every failing seed is printed with its replay command; the exit status is 1 when any run
 * failed, 2 on bad usage. */
#include <inttypes.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "sim.h"

static int usage(void)
{
    fprintf(stderr, "usage: psl-sim --seed N | --seeds A..B | --count N [--first S] |\n"
                    "               --determinism N [--first S]   [--quiet] [--ops N] [--lsm]\n");
    return 2;
}

static bool parse_u64(const char *s, uint64_t *out)
{
    char *end;
    if (!s || !*s)
        return false;
    unsigned long long v = strtoull(s, &end, 0);
    if (*end)
        return false;
    *out = v;
    return true;
}

static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + (double)ts.tv_nsec / 1e9;
}

static void print_failure(uint64_t seed, const struct sim_result *r)
{
    printf("psl-sim: FAILED seed=%" PRIu64 " invariant=%s (replay: psl-sim --seed %" PRIu64 ")\n"
           "         %s\n",
           seed, r->invariant, seed, r->detail);
}

int main(int argc, char **argv)
{
    uint64_t first = 1, count = 0, one = 0, determinism = 0, ops = 0;
    bool single = false, quiet = false, lsm = false;
    for (int i = 1; i < argc; i++) {
        const char *a = argv[i], *v = i + 1 < argc ? argv[i + 1] : NULL;
        if (strcmp(a, "--seed") == 0 && parse_u64(v, &one)) {
            single = true;
            i++;
        } else if (strcmp(a, "--seeds") == 0 && v) {
            const char *dots = strstr(v, "..");
            uint64_t lo, hi;
            char buf[32];
            if (!dots || (size_t)(dots - v) >= sizeof buf)
                return usage();
            memcpy(buf, v, (size_t)(dots - v));
            buf[dots - v] = 0;
            if (!parse_u64(buf, &lo) || !parse_u64(dots + 2, &hi) || hi < lo)
                return usage();
            first = lo;
            count = hi - lo + 1;
            i++;
        } else if (strcmp(a, "--count") == 0 && parse_u64(v, &count)) {
            i++;
        } else if (strcmp(a, "--first") == 0 && parse_u64(v, &first)) {
            i++;
        } else if (strcmp(a, "--determinism") == 0 && parse_u64(v, &determinism)) {
            i++;
        } else if (strcmp(a, "--ops") == 0 && parse_u64(v, &ops)) {
            i++;
        } else if (strcmp(a, "--lsm") == 0) {
            lsm = true;
        } else if (strcmp(a, "--quiet") == 0) {
            quiet = true;
        } else {
            return usage();
        }
    }
    struct sim_options o = {.verbose = false, .ops_per_worker = (unsigned)ops, .lsm = lsm};
    struct sim_result r;
    if (single) {
        o.verbose = !quiet;
        sim_run(one, &o, &r);
        printf("psl-sim: seed=%" PRIu64 " %s: %" PRIu64 " steps, %" PRIu64 " ms simulated, "
               "%" PRIu64 " records, %" PRIu64 " messages (%" PRIu64 " dropped, %" PRIu64
               " flipped), %" PRIu64 " replayed, %" PRIu64 " forged, %" PRIu64 " forks, %" PRIu64
               " worker and %" PRIu64 " server crashes, %" PRIu64 " partitions, %" PRIu64
               " flushes checked%s\n",
               one, r.ok ? "ok" : "FAILED", r.steps, r.sim_ms, r.records, r.messages, r.dropped,
               r.flipped, r.replayed, r.forged, r.forks, r.worker_crashes, r.server_crashes,
               r.partitions, r.flushes_checked, r.convergence_exempt ? " (convergence exempt)" : "");
        if (r.lsm)
            printf("psl-sim: CapsuleDB on: newest index generation %" PRIu64 "\n",
                   r.lsm_generation);
        printf("psl-sim: fingerprint ");
        for (int k = 0; k < 8; k++)
            printf("%02x", r.fingerprint[k]);
        printf("\n");
        if (!r.ok)
            print_failure(one, &r);
        return r.ok ? 0 : 1;
    }
    if (determinism) {
        unsigned bad = 0;
        for (uint64_t s = first; s < first + determinism; s++) {
            struct sim_result r2;
            sim_run(s, &o, &r);
            sim_run(s, &o, &r2);
            if (memcmp(r.fingerprint, r2.fingerprint, sizeof r.fingerprint) != 0 || r.ok != r2.ok ||
                r.steps != r2.steps || r.messages != r2.messages) {
                printf("psl-sim: FAILED seed=%" PRIu64 " invariant=determinism (two runs of the "
                       "seed differ; replay: psl-sim --seed %" PRIu64 ")\n", s, s);
                bad++;
            }
        }
        printf("psl-sim: determinism: %" PRIu64 " seeds run twice, %u differ\n", determinism, bad);
        return bad ? 1 : 0;
    }
    if (!count)
        return usage();
    double t0 = now_s();
    uint64_t failed = 0, exempt = 0, records = 0, forks = 0, flushes = 0;
    for (uint64_t s = first; s < first + count; s++) {
        sim_run(s, &o, &r);
        records += r.records;
        forks += r.forks;
        flushes += r.flushes_checked;
        exempt += r.convergence_exempt;
        if (!r.ok) {
            failed++;
            print_failure(s, &r);
            fflush(stdout);
        } else if (!quiet && count <= 20) {
            printf("psl-sim: seed=%" PRIu64 " ok\n", s);
        }
    }
    printf("psl-sim: %" PRIu64 " seeds (%" PRIu64 "..%" PRIu64 ") in %.1f s: %" PRIu64
           " failed, %" PRIu64 " convergence-exempt; %" PRIu64 " records, %" PRIu64
           " forks injected, %" PRIu64 " flushes checked\n",
           count, first, first + count - 1, now_s() - t0, failed, exempt, records, forks, flushes);
    return failed ? 1 : 0;
}
