/* confine.c: the seccomp allow-list of psl-enclave, built with libseccomp. Once loaded the
 * enclave can only use its rings (shared memory it already mapped, futexes), memory, time and
 * randomness; the default action kills the process, so a compromised lambda runtime cannot
 * open a file or a socket, spawn a process or signal another one. The list is what glibc's
 * malloc and threads, libsodium, libgcrypt and Lua need at run time, and nothing more. */
#include "enclave/confine.h"

#include <fcntl.h>
#include <seccomp.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

static const int allowed[] = {
    /* rings and threads: futex waits and wakes, yields */
    SCMP_SYS(futex), SCMP_SYS(sched_yield), SCMP_SYS(set_robust_list), SCMP_SYS(rseq),
    /* time */
    SCMP_SYS(clock_gettime), SCMP_SYS(clock_nanosleep), SCMP_SYS(nanosleep),
    SCMP_SYS(gettimeofday), SCMP_SYS(clock_getres),
    /* memory (malloc arenas, sodium_malloc guard pages, Lua) */
    SCMP_SYS(mmap), SCMP_SYS(munmap), SCMP_SYS(mremap), SCMP_SYS(mprotect), SCMP_SYS(madvise),
    SCMP_SYS(brk), SCMP_SYS(mlock), SCMP_SYS(munlock),
    /* randomness for sealing (libsodium) */
    SCMP_SYS(getrandom),
    /* glibc's malloc counts CPUs (sched_getaffinity) the first time a thread finds every arena
     * busy and makes a new one: rare, under contention, and fatal here if refused */
    SCMP_SYS(sched_getaffinity),
    /* ends: thread and process exit, signal return, abort() on a broken invariant */
    SCMP_SYS(exit), SCMP_SYS(exit_group), SCMP_SYS(rt_sigreturn), SCMP_SYS(rt_sigprocmask),
    SCMP_SYS(getpid), SCMP_SYS(gettid), SCMP_SYS(tgkill), SCMP_SYS(restart_syscall),
#ifdef PSL_SANITIZE_BUILD
    /* ASan and UBSan builds only: the runtime's per-thread signal stacks and CPU queries, and
     * its reports on stderr. Release builds never allow these. */
    SCMP_SYS(sigaltstack), SCMP_SYS(write),
#endif
};

static _Atomic uint32_t *note_word;

/* SIGSYS from the filter (SCMP_ACT_TRAP): leave the exit note, then die of SIGSYS. The handler
 * was installed with SA_RESETHAND, so the signal raised again (tgkill: allowed) takes the default
 * action once this handler returns. Only async-signal-safe operations here. */
static void on_sigsys(int sig, siginfo_t *info, void *uctx)
{
    (void)uctx;
    if (note_word)
        atomic_store_explicit(note_word, CONFINE_NOTE_SYSCALL | ((uint32_t)info->si_syscall & 0xffffu),
                              memory_order_relaxed); /* read by the host after our death */
    raise(sig);
}

void confine_syscall_name(int nr, char *out, size_t cap)
{
    char *name = seccomp_syscall_resolve_num_arch(SCMP_ARCH_NATIVE, nr);
    snprintf(out, cap, "%s", name ? name : "?");
    free(name);
}

psl_err enclave_confine(_Atomic uint32_t *note)
{
    note_word = note;
    struct sigaction sa;
    memset(&sa, 0, sizeof sa);
    sa.sa_sigaction = on_sigsys;
    sa.sa_flags = (int)(SA_SIGINFO | (unsigned)SA_RESETHAND);
    sigemptyset(&sa.sa_mask);
    if (sigaction(SIGSYS, &sa, NULL) != 0)
        return PSL_ERR_IO;
    /* Trap rather than kill outright, so the handler can say which call it was; the process
     * still dies of SIGSYS. */
    scmp_filter_ctx ctx = seccomp_init(SCMP_ACT_TRAP);
    if (!ctx)
        return PSL_ERR_IO;
    psl_err err = PSL_ERR_IO;
    if (seccomp_attr_set(ctx, SCMP_FLTATR_CTL_TSYNC, 1) != 0)
        goto out_release;
    for (size_t i = 0; i < sizeof allowed / sizeof allowed[0]; i++) {
        if (seccomp_rule_add(ctx, SCMP_ACT_ALLOW, allowed[i], 0) != 0)
            goto out_release;
    }
    if (seccomp_load(ctx) != 0)
        goto out_release;
    err = PSL_OK;
out_release:
    seccomp_release(ctx);
    return err;
}

void enclave_confine_selftest(void)
{
    int fd = open("/etc/hostname", O_RDONLY);
    if (fd >= 0)
        close(fd);
}
