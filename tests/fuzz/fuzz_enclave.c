/* fuzz_enclave.c: libFuzzer target for the enclave's dispatcher of host messages (what a hostile
 * host writes into the inbound ring, after ring_recv copied it out). The input is a sequence of
 * frames {type u32, size u16, bytes}; each is handed to one enclave, whose answers go to a sink
 * that checks them: every answer has an outbound type, and nothing is answered to a message the
 * enclave must not act on with anything but an error. It must never crash or leak. */
#include <string.h>

#include "base/assert.h"
#include "base/bytes.h"
#include "crypto/crypto.h"
#include "enclave/enclave.h"
#include "fuzz_fixture.h"
#include "ring/abi.h"

static void sink(void *ctx, uint32_t type, const uint8_t *data, size_t size)
{
    (void)ctx;
    (void)data;
    PSL_ASSERT(type >= RING_E2H_HELLO && type <= RING_E2H_INVOKE_RESULT);
    if (type == RING_E2H_REPORT)
        PSL_ASSERT(size == RING_REPORT_SIZE);
    else if (type == RING_E2H_INVOKE_RESULT) /* a refusal: no function bundle, no result */
        PSL_ASSERT(size == RING_INVOKE_RESULT_HEAD_SIZE);
    else if (type == RING_E2H_REPORT)
        PSL_ASSERT(size == RING_REPORT_SIZE);
    else if (type == RING_E2H_ERROR)
        PSL_ASSERT(size >= 2);
    else
        PSL_ASSERT(type == RING_E2H_READY || type == RING_E2H_LOG); /* READY needs a real bundle */
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    static struct enclave *e;
    if (!e) {
        PSL_ASSERT(psl_crypto_init() == PSL_OK);
        PSL_ASSERT(enclave_test_create(&e, sink, NULL) == PSL_OK);
    }
    struct rd r;
    rd_init(&r, data, size);
    while (rd_left(&r) >= 6) {
        uint32_t type = rd_u32(&r);
        size_t n = rd_u16(&r);
        if (n > rd_left(&r))
            n = rd_left(&r);
        const uint8_t *p = rd_take(&r, n);
        if (type == RING_H2E_SHUTDOWN)
            continue; /* ends the loop in the real enclave; nothing to dispatch here */
        enclave_test_handle(e, type, p, n);
    }
    return 0;
}
