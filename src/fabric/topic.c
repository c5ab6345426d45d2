/* topic.c: topic validation, NATS-style pattern matching, and the topic names of DESIGN §8. */
#include <stdio.h>
#include <string.h>

#include "base/bytes.h"
#include "fabric/fabric.h"

static bool token_char_ok(char c)
{
    return (c >= 'a' && c <= 'z') || (c >= 'A' && c <= 'Z') || (c >= '0' && c <= '9') ||
           c == '_' || c == '-';
}

bool topic_is_valid(const char *topic)
{
    size_t n = strnlen(topic, FABRIC_TOPIC_SIZE_MAX);
    if (n == 0 || n == FABRIC_TOPIC_SIZE_MAX)
        return false;
    bool empty_token = true;
    for (size_t i = 0; i < n; i++) {
        if (topic[i] == '.') {
            if (empty_token)
                return false;
            empty_token = true;
        } else if (token_char_ok(topic[i])) {
            empty_token = false;
        } else {
            return false;
        }
    }
    return !empty_token;
}

bool topic_matches(const char *pattern, const char *topic)
{
    const char *p = pattern, *t = topic;
    for (;;) {
        const char *pe = strchr(p, '.'), *te = strchr(t, '.');
        size_t pl = pe ? (size_t)(pe - p) : strlen(p);
        size_t tl = te ? (size_t)(te - t) : strlen(t);
        if (pl == 1 && p[0] == '>')
            return tl > 0;
        if (!(pl == 1 && p[0] == '*') && (pl != tl || memcmp(p, t, pl) != 0))
            return false;
        if (!pe || !te)
            return !pe && !te;
        p = pe + 1;
        t = te + 1;
    }
}

void topic_capsule(char *out, const uint8_t capsule[HASH_SIZE], const char *kind,
                   const char *suffix)
{
    char hex[2 * HASH_SIZE + 1];
    hex_encode(hex, capsule, HASH_SIZE);
    snprintf(out, FABRIC_TOPIC_SIZE_MAX, "psl.%s.%s%s%s", hex, kind, suffix ? "." : "",
             suffix ? suffix : "");
}
