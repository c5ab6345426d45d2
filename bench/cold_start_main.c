/* cold_start_main.c: runs the enclave cold-start section on its own (ring_bench runs it too). */
#include <stdlib.h>

#include "cold_start.h"
#include "crypto/crypto.h"

int main(int argc, char **argv)
{
    if (psl_crypto_init() != PSL_OK)
        return 1;
    const char *env = getenv("PSL_ENCLAVE");
    return cold_start_section(argc > 1 ? argv[1] : env ? env : PSL_ENCLAVE_PATH);
}
