/* main.c: the psl-enclave program. A host (psl-node, or psl run) starts it with the memfd of a
 * ring channel; it attaches, confines itself and serves one provisioning over the rings (see
 * enclave.h). In the sim TEE this process is the enclave: it is separated from its host by the
 * kernel only, which protects nothing against the host itself, and it says so. */
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/prctl.h>
#include <unistd.h>

#ifdef PSL_SANITIZE_BUILD
#include <sanitizer/lsan_interface.h>
#endif

#include "attest/evidence.h"
#include "base/log.h"
#include "crypto/crypto.h"
#include "enclave/enclave.h"

static void usage(FILE *f)
{
    fprintf(f,
            "usage: psl-enclave [--fd N] [--actors N] [--no-confine] [--selftest-seccomp]\n"
            "\n"
            "The trusted worker of psl. It is started by a host (psl-node or `psl run`), never by\n"
            "hand: it talks only through the shared-memory rings whose memfd it inherits.\n"
            "TEE: sim (simulation: no hardware protection; the host can read this process).\n"
            "\n"
            "  --fd N              the ring channel's memfd (default 3)\n"
            "  --actors N          crypto actor threads (default 1)\n"
            "  --no-confine        do not install the seccomp allow-list (debugging only)\n"
            "  --selftest-seccomp  after confining, try a forbidden system call (tests: the\n"
            "                      kernel must kill the process with SIGSYS)\n"
            "  -h, --help          this text\n");
}

int main(int argc, char **argv)
{
    const char *lvl = getenv("PSL_LOG");
    int level = lvl ? log_level_parse(lvl) : PSL_LOG_WARN;
    log_set_level(level < 0 ? PSL_LOG_WARN : (enum psl_log_level)level);
    int fd = 3;
    struct enclave_config cfg = {.actors = 1, .confine = true, .redirect_logs = true,
                                 .tee_type = TEE_SIM};
    static const struct option opts[] = {{"fd", required_argument, NULL, 'f'},
                                          {"actors", required_argument, NULL, 'a'},
                                          {"no-confine", no_argument, NULL, 'n'},
                                          {"selftest-seccomp", no_argument, NULL, 's'},
                                          {"help", no_argument, NULL, 'h'},
                                          {NULL, 0, NULL, 0}};
    int c;
    while ((c = getopt_long(argc, argv, "h", opts, NULL)) != -1) {
        switch (c) {
        case 'f':
        case 'a': {
            char *end;
            long v = strtol(optarg, &end, 10);
            if (*end || end == optarg || v < 0 || v > 1024) {
                fprintf(stderr, "psl-enclave: --%s takes a small integer\n", c == 'f' ? "fd" : "actors");
                return 2;
            }
            if (c == 'f')
                fd = (int)v;
            else
                cfg.actors = (unsigned)v;
            break;
        }
        case 'n':
            cfg.confine = false;
            break;
        case 's':
            cfg.selftest_forbidden = true;
            break;
        case 'h':
            usage(stdout);
            return 0;
        default:
            usage(stderr);
            return 2;
        }
    }
    if (fd < 0 || cfg.actors < 1 || cfg.actors > 16) {
        fprintf(stderr, "psl-enclave: --fd must be >= 0 and --actors 1..16\n");
        return 2;
    }
    /* The enclave dies with its host: an orphan would hold its rings and keys forever. */
    pid_t parent = getppid();
    if (prctl(PR_SET_PDEATHSIG, SIGKILL) != 0 || getppid() != parent)
        return 1;
    if (psl_crypto_init() != PSL_OK) {
        fprintf(stderr, "psl-enclave: crypto initialisation failed\n");
        return 1;
    }
    struct ring_chan ch;
    psl_err err = ring_chan_attach_fd(&ch, fd);
    if (err) {
        fprintf(stderr, "psl-enclave: cannot attach the ring channel on fd %d: %s\n", fd,
                psl_strerror(err));
        return 1;
    }
    LOG_INFO("enclave", "msg=\"started\" tee=sim note=\"simulation: no hardware protection\"");
#ifdef PSL_SANITIZE_BUILD
    /* LeakSanitizer's exit-time check needs ptrace and clone, which the allow-list forbids: run
     * it now, before confinement, and not again. The enclave's code is leak-checked in thread
     * mode (psl run --thread-mode in examples.run) and in the unit tests. */
    __lsan_do_leak_check();
#endif
    err = enclave_run(&ch.rx, &ch.tx, &cfg);
    ring_chan_destroy(&ch);
    return err ? 1 : 0;
}
