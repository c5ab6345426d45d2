/* json_get.c: prints the value at a dotted path of a JSON document (the tests' jq):
 *   json_get FILE results.0.result.pi      -> 3.14...
 * Objects are indexed by key, arrays by number. Strings print raw, other values as compact
 * JSON. Exit 1 when the path does not exist, 2 on usage or parse errors. */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include <jansson.h>

int main(int argc, char **argv)
{
    if (argc != 3) {
        fprintf(stderr, "usage: json_get FILE PATH\n");
        return 2;
    }
    json_error_t jerr;
    json_t *root = json_load_file(argv[1], JSON_DECODE_ANY, &jerr);
    if (!root) {
        fprintf(stderr, "json_get: %s: line %d: %s\n", argv[1], jerr.line, jerr.text);
        return 2;
    }
    char *path = strdup(argv[2]);
    json_t *cur = root;
    for (char *tok = strtok(path, "."); tok && cur; tok = strtok(NULL, ".")) {
        if (json_is_array(cur)) {
            char *end;
            long i = strtol(tok, &end, 10);
            cur = *end ? NULL : json_array_get(cur, (size_t)i);
        } else {
            cur = json_object_get(cur, tok);
        }
    }
    free(path);
    int rc = 1;
    if (cur) {
        if (json_is_string(cur)) {
            puts(json_string_value(cur));
        } else {
            char *s = json_dumps(cur, JSON_COMPACT | JSON_ENCODE_ANY);
            puts(s ? s : "");
            free(s);
        }
        rc = 0;
    }
    json_decref(root);
    return rc;
}
