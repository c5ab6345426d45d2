/* cmd_graph.c: `psl capsule graph`: the capsule's DAG as Graphviz DOT (and SVG through `dot`
 * when it is installed). One cluster per writer holds its chain (prev links); dashed edges go
 * from a record to the SYNC record it names (the merges). The graph shows what the records say:
 * run `psl capsule verify` to know whether they verify. */
#include <getopt.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "capsule/export.h"
#include "capsule/record.h"
#include "cli/cli.h"

static const char graph_usage[] =
    "Usage: psl capsule graph FILE [--out OUT.dot|OUT.svg]\n"
    "\n"
    "Draws the DAG of an exported capsule: one box per record (type, seq, lamport), grouped by\n"
    "writer, solid edges for each writer's prev links and dashed edges to the SYNC record a\n"
    "record names (the merges). Prints Graphviz DOT on stdout, or writes OUT; an OUT ending in\n"
    ".svg is rendered with `dot -Tsvg` (install graphviz for that).\n";

#define GRAPH_WRITERS_MAX 4096u

static void dot_node_id(FILE *f, const uint8_t hash[HASH_SIZE])
{
    char buf[17];
    fprintf(f, "r%s", cli_short(hash, buf));
}

static void write_dot(FILE *f, const struct export_view *view)
{
    uint8_t(*writers)[HASH_SIZE] = calloc(GRAPH_WRITERS_MAX, HASH_SIZE);
    size_t nw = 0;
    fprintf(f, "digraph capsule {\n  rankdir=LR;\n  node [shape=box, fontname=\"monospace\", "
               "fontsize=10];\n");
    for (size_t i = 0; i < view->record_count && writers; i++) {
        struct record_view v;
        if (record_parse(&v, view->records[i].data, view->records[i].size) != PSL_OK)
            continue;
        size_t w = 0;
        while (w < nw && memcmp(writers[w], v.h.writer, HASH_SIZE) != 0)
            w++;
        if (w == nw && nw < GRAPH_WRITERS_MAX)
            memcpy(writers[nw++], v.h.writer, HASH_SIZE);
    }
    char wb[17];
    for (size_t w = 0; w < nw; w++) {
        fprintf(f, "  subgraph cluster_%zu {\n    label=\"writer %s\";\n", w,
                cli_short(writers[w], wb));
        for (size_t i = 0; i < view->record_count; i++) {
            struct record_view v;
            if (record_parse(&v, view->records[i].data, view->records[i].size) != PSL_OK ||
                memcmp(v.h.writer, writers[w], HASH_SIZE) != 0)
                continue;
            fprintf(f, "    ");
            dot_node_id(f, v.hash);
            fprintf(f, " [label=\"%s #%llu\\nlamport %llu\"%s];\n", record_type_name(v.h.type),
                    (unsigned long long)v.h.seq, (unsigned long long)v.h.lamport,
                    v.h.type == REC_SYNC ? ", style=filled, fillcolor=lightblue" : "");
        }
        fprintf(f, "  }\n");
    }
    static const uint8_t zero[HASH_SIZE];
    for (size_t i = 0; i < view->record_count; i++) {
        struct record_view v;
        if (record_parse(&v, view->records[i].data, view->records[i].size) != PSL_OK)
            continue;
        if (memcmp(v.h.prev, zero, HASH_SIZE) != 0) {
            fprintf(f, "  ");
            dot_node_id(f, v.h.prev);
            fprintf(f, " -> ");
            dot_node_id(f, v.hash);
            fprintf(f, ";\n");
        }
        if (memcmp(v.h.sync, zero, HASH_SIZE) != 0) {
            fprintf(f, "  ");
            dot_node_id(f, v.h.sync);
            fprintf(f, " -> ");
            dot_node_id(f, v.hash);
            fprintf(f, " [style=dashed, color=blue];\n");
        }
    }
    fprintf(f, "}\n");
    free(writers);
}

int cmd_graph(int argc, char **argv)
{
    static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *out = NULL;
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:h", opts, NULL)) != -1) {
        if (c == 'o') {
            out = optarg;
        } else if (c == 'h') {
            fputs(graph_usage, stdout);
            return EXIT_OK;
        } else {
            fputs(graph_usage, stderr);
            return EXIT_USAGE;
        }
    }
    if (optind != argc - 1) {
        cli_error("graph needs one export FILE; see `psl capsule graph --help`");
        return EXIT_USAGE;
    }
    uint8_t *buf;
    size_t size;
    psl_err err = file_read_all(argv[optind], &buf, &size);
    if (err) {
        cli_error("cannot read %s: %s", argv[optind], psl_strerror(err));
        return EXIT_RUNTIME;
    }
    struct export_view view;
    if ((err = export_parse(buf, size, &view))) {
        cli_error("%s is not a capsule export: %s", argv[optind], psl_strerror(err));
        free(buf);
        return EXIT_VERIFY_FAILED;
    }
    int rc = EXIT_OK;
    size_t n = out ? strlen(out) : 0;
    bool svg = n > 4 && !strcmp(out + n - 4, ".svg");
    FILE *f = stdout;
    if (svg) {
        if (system("command -v dot >/dev/null 2>&1") != 0) {
            cli_error("rendering SVG needs Graphviz's `dot` (apt-get install graphviz); "
                      "or write DOT with --out FILE.dot");
            rc = EXIT_RUNTIME;
            goto out_view;
        }
        char cmd[4200];
        /* The path goes to the shell quoted; refuse quotes in it rather than escape them. */
        if (strchr(out, '\'') || snprintf(cmd, sizeof cmd, "dot -Tsvg -o '%s'", out) >= (int)sizeof cmd) {
            cli_error("cannot use %s as an output path", out);
            rc = EXIT_USAGE;
            goto out_view;
        }
        f = popen(cmd, "w");
    } else if (out) {
        f = fopen(out, "w");
    }
    if (!f) {
        cli_error("cannot write %s", out);
        rc = EXIT_RUNTIME;
        goto out_view;
    }
    write_dot(f, &view);
    if (svg) {
        if (pclose(f) != 0) {
            cli_error("dot failed to render %s", out);
            rc = EXIT_RUNTIME;
        }
    } else if (out && fclose(f) != 0) {
        cli_error("cannot write %s", out);
        rc = EXIT_RUNTIME;
    }
    if (rc == EXIT_OK && out)
        printf("wrote %s (%zu records)\n", out, view.record_count);
out_view:
    export_view_free(&view);
    free(buf);
    return rc;
}
