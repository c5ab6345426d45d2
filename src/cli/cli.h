/* cli.h: shared pieces of the psl command: exit codes, error reporting, subcommand entry
 * points. Every error is one line on stderr naming what was wrong and what to do. */
#ifndef PSL_CLI_CLI_H
#define PSL_CLI_CLI_H

#include <stdbool.h>
#include <stdint.h>

#include "base/err.h"
#include "capsule/meta.h"

/* Exit codes (documented in docs/cli.md and `psl --help`). */
enum {
    EXIT_OK = 0,
    EXIT_VERIFY_FAILED = 1, /* the command ran, and what it checked did not verify */
    EXIT_USAGE = 2,         /* bad command line */
    EXIT_RUNTIME = 3,       /* I/O, missing file, resource error */
    EXIT_JOB_FAILED = 4,    /* psl run: a worker failed (lambda error, enclave died) */
};

void cli_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

int cmd_keygen(int argc, char **argv);
int cmd_capsule(int argc, char **argv);
int cmd_demo(int argc, char **argv);
int cmd_fetch(int argc, char **argv);
int cmd_run(int argc, char **argv);
int cmd_job(int argc, char **argv);    /* psl job submit|status (cmd_job.c) */
int cmd_status(int argc, char **argv); /* psl status --node URL (cmd_job.c) */
int cmd_deploy(int argc, char **argv); /* psl deploy SCRIPT --name NAME (cmd_job.c) */
int cmd_invoke(int argc, char **argv); /* psl invoke NAME|FUNCFILE (cmd_job.c) */
int cmd_graph(int argc, char **argv);
int cmd_serve(int argc, char **argv);

/* Loads and verifies the metadata and record list of an export file. *buf owns the bytes that
 * view points into. Returns an exit code (EXIT_OK on success) after reporting any error. */
struct export_view;
int cli_load_export(const char *path, uint8_t **buf, struct export_view *view,
                    struct capsule_meta *meta);

/* Reads a capsule key file into secret memory (32 bytes); returns NULL after reporting. */
uint8_t *cli_load_capsule_key(const char *path);

/* Parses a decimal integer in [min, max] (no sign, no trailing bytes); false otherwise. */
bool cli_parse_u64(const char *s, uint64_t min, uint64_t max, uint64_t *out);

/* Short hex prefix of a hash for one-line output (16 hex digits). */
const char *cli_short(const uint8_t *hash, char buf[17]);

#endif
