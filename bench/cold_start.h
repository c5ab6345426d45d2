/* cold_start.h: the enclave cold-start section of ring_bench (see cold_start.c). */
#ifndef PSL_BENCH_COLD_START_H
#define PSL_BENCH_COLD_START_H

/* Measures and prints RESULT lines; returns 0 on success. */
int cold_start_section(const char *enclave_path);

#endif
