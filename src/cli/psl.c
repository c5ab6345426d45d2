/* psl.c: entry point of the psl command: dispatches subcommands and prints help.
 * Exit codes: 0 success, 1 verification failed, 2 usage error, 3 runtime error, 4 a job's
 * worker failed. */
#include <errno.h>
#include <stdarg.h>
#include <stdlib.h>
#include <stdio.h>
#include <string.h>

#include "base/log.h"
#include "cli/cli.h"
#include "crypto/crypto.h"

static const char usage[] =
    "psl: Paranoid Stateful Lambdas\n"
    "\n"
    "Usage: psl COMMAND [OPTIONS]\n"
    "\n"
    "Commands:\n"
    "  run SCRIPT        run a Lua lambda on N workers of a whole federation in this process\n"
    "                    tree (enclaves, storage servers, fabric) and verify everything\n"
    "  keygen            create a key file (owner, storage server or capsule key)\n"
    "  capsule create    create and sign a capsule's metadata; prints the capsule name\n"
    "  capsule verify    verify an exported capsule: writers, heads, forks, failures\n"
    "  capsule log       list the records of an exported capsule, one per line\n"
    "  capsule fetch     export a capsule from its storage servers (freshness read)\n"
    "  capsule serve     ask a capsule's storage servers to serve it (run-time admission)\n"
    "  capsule graph     draw a capsule's DAG (writers' chains, SYNC merges) as DOT or SVG\n"
    "  job submit SCRIPT run a Lua lambda as a job on psl-nodes (--node URL): attested,\n"
    "                    provisioned sealed, results verified; keeps a job file\n"
    "  job status FILE   follow a submitted job, verify its results and its capsule\n"
    "  deploy SCRIPT     deploy a Lua function on a psl-node (--node URL --name NAME): one warm\n"
    "                    attested enclave serves its handle(args); keeps a function file\n"
    "  invoke NAME       invoke a deployed function (--args STRING): sealed, result verified\n"
    "  status            show a psl-node's status (--node URL): platform key, pool, jobs\n"
    "  demo              build a demo capsule with three writers and a SYNC merge, export\n"
    "                    it, verify it, and print a summary\n"
    "\n"
    "Run `psl COMMAND --help` for the options of a command.\n"
    "\n"
    "Exit codes: 0 success; 1 verification failed; 2 usage error; 3 runtime error;\n"
    "4 a job's worker failed.\n"
    "Environment: PSL_LOG=debug|info|warn|error|off sets the log level (default warn).\n";

void cli_error(const char *fmt, ...)
{
    va_list ap;
    fputs("psl: error: ", stderr);
    va_start(ap, fmt);
    vfprintf(stderr, fmt, ap);
    va_end(ap);
    fputc('\n', stderr);
}

bool cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out)
{
    char *end;
    errno = 0;
    unsigned long long v = strtoull(s, &end, 10);
    if (!*s || *end || errno || v < min || v > max || s[0] == '-')
        return false;
    *out = v;
    return true;
}

const char *cli_short(const uint8_t *hash, char buf[17])
{
    static const char digits[] = "0123456789abcdef";
    for (int i = 0; i < 8; i++) {
        buf[2 * i] = digits[hash[i] >> 4];
        buf[2 * i + 1] = digits[hash[i] & 15];
    }
    buf[16] = '\0';
    return buf;
}

int main(int argc, char **argv)
{
    const char *lvl = getenv("PSL_LOG");
    int level = lvl ? log_level_parse(lvl) : PSL_LOG_WARN;
    log_set_level(level < 0 ? PSL_LOG_WARN : (enum psl_log_level)level);
    if (argc < 2) {
        fputs(usage, stderr);
        return EXIT_USAGE;
    }
    const char *cmd = argv[1];
    if (!strcmp(cmd, "--help") || !strcmp(cmd, "-h") || !strcmp(cmd, "help")) {
        fputs(usage, stdout);
        return EXIT_OK;
    }
    if (psl_crypto_init() != PSL_OK) {
        cli_error("cannot initialise libsodium/libgcrypt; check the installation (scripts/install-deps)");
        return EXIT_RUNTIME;
    }
    if (!strcmp(cmd, "keygen"))
        return cmd_keygen(argc - 1, argv + 1);
    if (!strcmp(cmd, "capsule"))
        return cmd_capsule(argc - 1, argv + 1);
#ifdef PSL_HAVE_RUN
    if (!strcmp(cmd, "run"))
        return cmd_run(argc - 1, argv + 1);
#endif
#ifdef PSL_HAVE_JOB
    if (!strcmp(cmd, "job"))
        return cmd_job(argc - 1, argv + 1);
    if (!strcmp(cmd, "status"))
        return cmd_status(argc - 1, argv + 1);
    if (!strcmp(cmd, "deploy"))
        return cmd_deploy(argc - 1, argv + 1);
    if (!strcmp(cmd, "invoke"))
        return cmd_invoke(argc - 1, argv + 1);
#endif
    if (!strcmp(cmd, "demo"))
        return cmd_demo(argc - 1, argv + 1);
    cli_error("unknown command '%s'; run `psl --help` for the list", cmd);
    return EXIT_USAGE;
}
