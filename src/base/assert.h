/* assert.h: PSL_ASSERT, for invariants of our own. It stays on in release builds: a broken
 * invariant of the log or of the crypto state stops the process rather than continuing.
 * Never use it on data from outside; that gets an error return. */
#ifndef PSL_BASE_ASSERT_H
#define PSL_BASE_ASSERT_H

_Noreturn void psl_assert_fail(const char *expr, const char *file, int line);

#define PSL_ASSERT(expr)                                                                           \
    do {                                                                                           \
        if (__builtin_expect(!(expr), 0))                                                          \
            psl_assert_fail(#expr, __FILE__, __LINE__);                                            \
    } while (0)

/* Asserts that a writer filled exactly the expected number of bytes without error. */
#define PSL_ASSERT_SIZE(w, expected) PSL_ASSERT((w).err == PSL_OK && (w).pos == (expected))

#endif
