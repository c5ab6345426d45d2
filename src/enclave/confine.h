/* confine.h: the enclave's seccomp allow-list (DESIGN §7.1). */
#ifndef PSL_ENCLAVE_CONFINE_H
#define PSL_ENCLAVE_CONFINE_H

#include "base/err.h"

/* Installs the allow-list on every thread of the process (TSYNC). Afterwards the process may
 * only wait on and wake futexes, read clocks and sleep, manage its memory, draw randomness and
 * exit: no file, socket, process or signal system call. Anything else kills the whole process
 * with SIGSYS, which its host reports. Errors: PSL_ERR_IO when the filter cannot be loaded. */
psl_err enclave_confine(void) PSL_MUST_USE;

/* The self-test of the confinement: performs a forbidden system call (openat of /etc/hostname).
 * Returns only if the filter did not stop it. */
void enclave_confine_selftest(void);

#endif
