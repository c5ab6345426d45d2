/* confine.h: the enclave's seccomp allow-list (DESIGN §7.1). */
#ifndef PSL_ENCLAVE_CONFINE_H
#define PSL_ENCLAVE_CONFINE_H

#include "base/err.h"

#include <stdatomic.h>
#include <stddef.h>
#include <stdint.h>

/* The exit note a confined enclave leaves when seccomp refuses a call: this bit, or'ed with the
 * system call number (x86-64). */
#define CONFINE_NOTE_SYSCALL 0x80000000u

/* Installs the allow-list on every thread of the process (TSYNC). Afterwards the process may
 * only wait on and wake futexes, read clocks and sleep, manage its memory, draw randomness and
 * exit: no file, socket, process or signal system call. Anything else ends the whole process
 * with SIGSYS, which its host reports; first, the refused call's number is stored in *note
 * (CONFINE_NOTE_SYSCALL | nr; note may be NULL), a word in memory the host can read.
 * Errors: PSL_ERR_IO when the filter or the SIGSYS handler cannot be installed. */
psl_err enclave_confine(_Atomic uint32_t *note) PSL_MUST_USE;

/* Writes the name of system call nr on this machine ("openat", or "?") into out[cap]. */
void confine_syscall_name(int nr, char *out, size_t cap);

/* The self-test of the confinement: performs a forbidden system call (openat of /etc/hostname).
 * Returns only if the filter did not stop it. */
void enclave_confine_selftest(void);

#endif
