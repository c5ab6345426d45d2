/* sim.h: the deterministic simulator of SCL engines and storage servers (tests/sim/sim.c).
 * One seed decides everything: the workload, the fabric's faults, crashes, the adversary and
 * every key, so sim_run(seed) replays exactly. */
#ifndef PSL_TESTS_SIM_H
#define PSL_TESTS_SIM_H

#include <stdbool.h>
#include <stdint.h>

struct sim_options {
    bool verbose;          /* narrate faults and checks on stderr */
    unsigned ops_per_worker; /* 0: drawn from the seed (40..120) */
    bool lsm;              /* a compactor in every run (otherwise in every fourth seed) */
};

struct sim_result {
    bool ok;
    char invariant[48];   /* the first invariant that broke ("" when ok) */
    char detail[256];
    uint8_t fingerprint[32]; /* SHA-256 of the run's observable outcome (determinism checks) */
    bool convergence_exempt; /* a crashed writer's record reached a worker but no server */
    uint64_t steps, sim_ms, records, messages, dropped, flipped, replayed, forged, forks,
        worker_crashes, server_crashes, partitions, flushes_checked;
    bool lsm;                 /* the run had a compactor */
    uint64_t lsm_generation;  /* the newest index any live node adopted */
};

/* Runs one simulation. Installs (and afterwards removes) the rng and clock seams: not
 * reentrant, one run at a time per process. */
void sim_run(uint64_t seed, const struct sim_options *o, struct sim_result *r);

#endif
