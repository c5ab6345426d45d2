/* cmd_run.c: `psl run SCRIPT --workers N`, the embedded default: a whole federation in one
 * process tree (src/node/federation.h). It prints progress while the job runs, then each
 * worker's verified result and a summary, or one JSON object with --json. */
#include <getopt.h>
#include <limits.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include <jansson.h>

#include "base/bytes.h"
#include "base/log.h"
#include "capsule/export.h"
#include "cli/cli.h"
#include "node/federation.h"

#define RUN_WORKERS_MAX 64u

static const char run_usage[] =
    "Usage: psl run SCRIPT [--workers N] [--data DIR] [--json] [options]\n"
    "\n"
    "Runs the Lua lambda SCRIPT on N workers of a whole federation started in this process tree:\n"
    "an in-process fabric, embedded storage servers under DIR, and one psl-enclave per worker\n"
    "(TEE: sim, simulation: no hardware protection). Every worker is attested, certified and\n"
    "provisioned, runs the script's main(args), flushes, and returns its result signed and\n"
    "sealed to this client. Then the capsule is exported from the servers and verified.\n"
    "\n"
    "  -w, --workers N     workers (default 1, at most 64)\n"
    "  -d, --data DIR      data directory: keys, server databases, capsule exports\n"
    "                      (default ./psl-data)\n"
    "  -a, --args STRING   passed to every worker's main (default: none)\n"
    "      --args-file F   the same, read from file F (at most 1 MiB)\n"
    "      --json          print one JSON object instead of text\n"
    "  -q, --quiet         no progress and no lambda log lines on stderr\n"
    "      --mem-mb N      memory cap per worker in MiB (default 256)\n"
    "      --insn N        instruction budget per worker (default 20000000000)\n"
    "      --timeout S     give up on workers without a result after S seconds (default 600)\n"
    "      --servers N     embedded storage servers (default 3; k = 2 acknowledge)\n"
    "      --enclave PATH  the psl-enclave binary (default: next to psl, or $PSL_ENCLAVE)\n"
    "      --thread-mode   run enclaves on threads of this process (benchmarks, debugging)\n"
    "  -h, --help          this text\n"
    "\n"
    "Exit status: 0 every worker succeeded and everything verified; 1 a result or the capsule\n"
    "did not verify; 2 usage; 3 runtime error; 4 a worker failed (its error is printed).\n"
    "Lambda API: docs/lambda-api.md. Examples: examples/.\n";

struct run_opts {
    bool json, quiet, progress_shown;
};

static void on_log(void *ctx, const char *worker, const char *line, size_t size)
{
    struct run_opts *o = ctx;
    if (o->quiet)
        return;
    if (o->progress_shown) {
        fputs("\r\033[K", stderr);
        o->progress_shown = false;
    }
    fprintf(stderr, "[%s] %.*s\n", worker, (int)size, line);
}

static void on_progress(void *ctx, const uint64_t s[RING_STATS_COUNT], unsigned done,
                        unsigned workers, double elapsed_s)
{
    struct run_opts *o = ctx;
    if (o->quiet || !isatty(STDERR_FILENO))
        return;
    fprintf(stderr, "\r\033[K  %.1fs  workers done %u/%u  ops %llu  records %llu  sealed %.1f KiB",
            elapsed_s, done, workers, (unsigned long long)s[RING_STAT_OPS],
            (unsigned long long)s[RING_STAT_RECORDS], (double)s[RING_STAT_BYTES] / 1024.0);
    o->progress_shown = true;
}

/* The enclave binary: --enclave, $PSL_ENCLAVE, or psl-enclave next to this executable. */
static bool find_enclave(char *out, size_t cap, const char *given)
{
    if (given) {
        snprintf(out, cap, "%s", given);
        return access(out, X_OK) == 0;
    }
    const char *env = getenv("PSL_ENCLAVE");
    if (env && *env) {
        snprintf(out, cap, "%s", env);
        return access(out, X_OK) == 0;
    }
    char self[PATH_MAX];
    ssize_t n = readlink("/proc/self/exe", self, sizeof self - 1);
    if (n <= 0)
        return false;
    self[n] = '\0';
    char *slash = strrchr(self, '/');
    if (!slash)
        return false;
    *slash = '\0';
    int n2 = snprintf(out, cap, "%s/psl-enclave", self);
    return n2 > 0 && (size_t)n2 < cap && access(out, X_OK) == 0;
}

static void print_json(const struct fed_job_report *r)
{
    json_t *o = json_object();
    char hex[2 * HASH_SIZE + 1];
    hex_encode(hex, r->capsule, HASH_SIZE);
    json_object_set_new(o, "workers", json_integer(r->workers));
    json_t *arr = json_array();
    for (unsigned i = 0; i < r->workers; i++) {
        const struct fed_worker_result *w = &r->results[i];
        json_t *e = json_object();
        json_object_set_new(e, "worker", json_integer(i));
        json_t *val = NULL;
        if (w->ok && w->text)
            val = json_loads(w->text, JSON_DECODE_ANY, NULL);
        json_object_set_new(e, "result", val ? val : json_null());
        json_object_set_new(e, "ok", json_boolean(w->ok));
        json_object_set_new(e, "verified", json_boolean(w->verified));
        if (!w->ok)
            json_object_set_new(e, "error", json_string(w->why[0] ? w->why
                                                      : w->text ? w->text
                                                                : psl_strerror(w->err)));
        json_object_set_new(e, "ops", json_integer((json_int_t)w->stats[RING_STAT_OPS]));
        json_object_set_new(e, "records", json_integer((json_int_t)w->stats[RING_STAT_RECORDS]));
        json_array_append_new(arr, e);
    }
    json_object_set_new(o, "results", arr);
    json_object_set_new(o, "records", json_integer((json_int_t)r->records));
    json_object_set_new(o, "ops", json_integer((json_int_t)r->ops));
    json_object_set_new(o, "bytes", json_integer((json_int_t)r->bytes));
    json_object_set_new(o, "durable", json_boolean(r->durable));
    json_object_set_new(o, "acks", json_integer((json_int_t)r->acks));
    json_object_set_new(o, "ops_per_s", json_real(r->run_s > 0 ? (double)r->ops / r->run_s : 0));
    json_object_set_new(o, "elapsed_s", json_real(r->elapsed_s));
    json_object_set_new(o, "capsule", json_string(hex));
    json_object_set_new(o, "chain_verified", json_boolean(r->chain_verified));
    json_object_set_new(o, "chain_records", json_integer((json_int_t)r->chain_records));
    json_object_set_new(o, "forks", json_integer((json_int_t)r->forks));
    json_object_set_new(o, "export", json_string(r->export_path));
    json_object_set_new(o, "capsule_key_file", json_string(r->key_path));
    json_object_set_new(o, "tee", json_string(r->tee));
    char *text = json_dumps(o, JSON_COMPACT);
    if (text) {
        puts(text);
        free(text);
    }
    json_decref(o);
}

static void print_text(const struct fed_job_report *r)
{
    for (unsigned i = 0; i < r->workers; i++) {
        const struct fed_worker_result *w = &r->results[i];
        if (w->ok)
            printf("worker %-3u ok      %s  %s\n", i, w->verified ? "verified" : "NOT VERIFIED",
                   w->text ? w->text : "");
        else
            printf("worker %-3u FAILED  %s  %s\n", i, w->verified ? "verified" : "-",
                   w->why[0] ? w->why : w->text ? w->text : psl_strerror(w->err));
    }
    char hex[2 * HASH_SIZE + 1];
    hex_encode(hex, r->capsule, HASH_SIZE);
    printf("capsule   %s\n", hex);
    printf("records   %llu sealed, %llu operations, %.1f KiB\n", (unsigned long long)r->records,
           (unsigned long long)r->ops, (double)r->bytes / 1024.0);
    printf("durable   %s (%llu server acks)\n",
           r->durable ? "yes: every worker's records acknowledged by k storage servers"
                      : "NO: some worker did not finish its flush",
           (unsigned long long)r->acks);
    printf("ops/s     %.0f (%.2f s from the last provisioning to the last result; %.2f s in all)\n",
           r->run_s > 0 ? (double)r->ops / r->run_s : 0.0, r->run_s, r->elapsed_s);
    printf("chain     %s (%zu records exported from the servers, forks %zu)\n",
           r->chain_verified ? "verified" : "NOT VERIFIED", r->chain_records, r->forks);
    printf("tee       %s\n", r->tee);
    printf("audit     psl capsule verify %s --key %s\n", r->export_path, r->key_path);
}

int cmd_run(int argc, char **argv)
{
    static const struct option opts[] = {{"workers", required_argument, NULL, 'w'},
                                         {"data", required_argument, NULL, 'd'},
                                         {"args", required_argument, NULL, 'a'},
                                         {"args-file", required_argument, NULL, 'F'},
                                         {"json", no_argument, NULL, 'j'},
                                         {"quiet", no_argument, NULL, 'q'},
                                         {"mem-mb", required_argument, NULL, 'M'},
                                         {"insn", required_argument, NULL, 'I'},
                                         {"timeout", required_argument, NULL, 'T'},
                                         {"servers", required_argument, NULL, 'S'},
                                         {"enclave", required_argument, NULL, 'E'},
                                         {"thread-mode", no_argument, NULL, 'R'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    uint64_t workers = 1, mem_mb = 0, insn = 0, timeout_s = 600, servers = 3;
    const char *data = "psl-data", *args = NULL, *args_file = NULL, *enclave = NULL;
    bool thread_mode = false;
    struct run_opts o = {0};
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "w:d:a:qh", opts, NULL)) != -1) {
        bool ok = true;
        switch (c) {
        case 'w':
            ok = cli_parse_u64(optarg, 1, RUN_WORKERS_MAX, &workers);
            break;
        case 'd':
            data = optarg;
            break;
        case 'a':
            args = optarg;
            break;
        case 'F':
            args_file = optarg;
            break;
        case 'j':
            o.json = true;
            break;
        case 'q':
            o.quiet = true;
            break;
        case 'M':
            ok = cli_parse_u64(optarg, 1, 1u << 20, &mem_mb);
            break;
        case 'I':
            ok = cli_parse_u64(optarg, 1000, UINT64_MAX, &insn);
            break;
        case 'T':
            ok = cli_parse_u64(optarg, 1, 7 * 24 * 3600, &timeout_s);
            break;
        case 'S':
            ok = cli_parse_u64(optarg, 1, 16, &servers);
            break;
        case 'E':
            enclave = optarg;
            break;
        case 'R':
            thread_mode = true;
            break;
        case 'h':
            fputs(run_usage, stdout);
            return EXIT_OK;
        default:
            fputs(run_usage, stderr);
            return EXIT_USAGE;
        }
        if (!ok) {
            cli_error("invalid value '%s' for --%s; see `psl run --help`", optarg,
                      c == 'w' ? "workers (1..64)" : c == 'M' ? "mem-mb" : c == 'I' ? "insn (>= 1000)"
                      : c == 'T' ? "timeout (seconds)" : "servers (1..16)");
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        cli_error("run needs exactly one SCRIPT; see `psl run --help`");
        return EXIT_USAGE;
    }
    const char *script_path = argv[optind];
    uint8_t *script;
    size_t script_size;
    psl_err err = file_read_all(script_path, &script, &script_size);
    if (err) {
        cli_error("cannot read %s: %s", script_path, psl_strerror(err));
        return EXIT_RUNTIME;
    }
    if (script_size == 0 || script_size > PSL_SCRIPT_SIZE_MAX) {
        cli_error("%s: a script must be 1 byte to %u KiB", script_path, PSL_SCRIPT_SIZE_MAX / 1024);
        free(script);
        return EXIT_USAGE;
    }
    uint8_t *args_buf = NULL;
    size_t args_size = args ? strlen(args) : 0;
    if (args_file) {
        if (args) {
            cli_error("give --args or --args-file, not both");
            free(script);
            return EXIT_USAGE;
        }
        if ((err = file_read_all(args_file, &args_buf, &args_size))) {
            cli_error("cannot read %s: %s", args_file, psl_strerror(err));
            free(script);
            return EXIT_RUNTIME;
        }
        args = (const char *)args_buf;
    }
    if (args_size > PSL_ARGS_SIZE_MAX) {
        cli_error("the args are %zu bytes; at most %u are allowed", args_size, PSL_ARGS_SIZE_MAX);
        free(args_buf);
        free(script);
        return EXIT_USAGE;
    }
    char enclave_path[PATH_MAX];
    if (!thread_mode && !find_enclave(enclave_path, sizeof enclave_path, enclave)) {
        cli_error("cannot find an executable psl-enclave (%s); build it, or pass --enclave PATH",
                  enclave ? enclave : "looked next to psl and in $PSL_ENCLAVE");
        free(args_buf);
        free(script);
        return EXIT_RUNTIME;
    }
    const char *name = strrchr(script_path, '/');
    name = name ? name + 1 : script_path;
    if (!o.json && !o.quiet)
        fprintf(stderr, "psl run %s: %llu worker%s, %s enclaves, tee sim (simulation: no hardware protection), data %s\n",
                name, (unsigned long long)workers, workers == 1 ? "" : "s",
                thread_mode ? "thread-mode" : "process", data);
    struct fed_config fc = {.data_dir = data,
                            .enclave_path = thread_mode ? NULL : enclave_path,
                            .servers = (unsigned)servers,
                            .on_log = on_log,
                            .log_ctx = &o};
    struct fed *f;
    if ((err = fed_open(&f, &fc))) {
        cli_error("cannot start the embedded federation in %s: %s", data, psl_strerror(err));
        free(args_buf);
        free(script);
        return EXIT_RUNTIME;
    }
    struct fed_job_config jc = {.name = name,
                                .script = script,
                                .script_size = script_size,
                                .args = (const uint8_t *)args,
                                .args_size = args_size,
                                .workers = (unsigned)workers,
                                .mem_bytes = mem_mb << 20,
                                .insn_budget = insn,
                                .timeout_ms = (uint32_t)(timeout_s * 1000),
                                .on_progress = on_progress,
                                .progress_ctx = &o};
    struct fed_job_report rep;
    err = fed_run_job(f, &jc, &rep);
    if (o.progress_shown)
        fputs("\r\033[K", stderr);
    int rc;
    if (err) {
        cli_error("the job could not run: %s", psl_strerror(err));
        rc = EXIT_RUNTIME;
    } else {
        if (o.json)
            print_json(&rep);
        else
            print_text(&rep);
        bool all_ok = true, all_verified = rep.chain_verified;
        for (unsigned i = 0; i < rep.workers; i++) {
            all_ok &= rep.results[i].ok;
            all_verified &= rep.results[i].verified || !rep.results[i].ok;
        }
        rc = !all_verified ? EXIT_VERIFY_FAILED : !all_ok ? EXIT_JOB_FAILED : EXIT_OK;
        fed_job_report_free(&rep);
    }
    fed_close(f);
    free(args_buf);
    free(script);
    return rc;
}
