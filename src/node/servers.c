/* servers.c: embedded storage servers and data-directory helpers (see servers.h). A server key
 * is never overwritten: a key file that exists but cannot be read is an error, not a reason to
 * make a new identity. */
#include "node/servers.h"

#include <errno.h>
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include "base/log.h"
#include "capsule/keyfile.h"

psl_err node_pathf(char *out, size_t cap, const char *fmt, ...)
{
    va_list ap;
    va_start(ap, fmt);
    int n = vsnprintf(out, cap, fmt, ap);
    va_end(ap);
    return n < 0 || (size_t)n >= cap ? PSL_ERR_TOO_LARGE : PSL_OK;
}

psl_err node_mkdir_p(const char *path)
{
    char tmp[NODE_PATH_SIZE];
    if (snprintf(tmp, sizeof tmp, "%s", path) >= (int)sizeof tmp)
        return PSL_ERR_TOO_LARGE;
    for (char *p = tmp + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
            return PSL_ERR_IO;
        *p = '/';
    }
    if (mkdir(tmp, 0700) != 0 && errno != EEXIST)
        return PSL_ERR_IO;
    return PSL_OK;
}

psl_err node_signing_key(struct signer *out, const char *path)
{
    bool created = false;
    psl_err err = keyfile_signer(out, path, &created);
    if (err)
        LOG_ERROR("node", "msg=\"cannot read key file\" path=%s err=%s", path, psl_err_name(err));
    else if (created)
        LOG_INFO("node", "msg=\"created key\" path=%s", path);
    return err;
}

psl_err node_servers_start(struct node_servers *s, const char *dir, unsigned count,
                           node_connect_fn connect, void *ctx, bool own_delivery)
{
    memset(s, 0, sizeof *s);
    if (count > NODE_SERVERS_MAX)
        return PSL_ERR_INVALID_ARG;
    char path[NODE_PATH_SIZE];
    psl_err err;
    if ((err = node_pathf(path, sizeof path, "%s/servers", dir)) || (err = node_mkdir_p(path))) {
        LOG_ERROR("node", "msg=\"cannot create the servers directory\" path=%s", path);
        return err;
    }
    for (unsigned i = 0; i < count; i++) {
        if ((err = node_pathf(path, sizeof path, "%s/servers/s%u.key", dir, i)) ||
            (err = node_signing_key(&s->keys[i], path)))
            goto out_fail;
        memcpy(s->pks[i], s->keys[i].pk, SIGN_PK_SIZE);
        s->count = i + 1;
        if ((err = node_pathf(path, sizeof path, "%s/servers/s%u", dir, i)) ||
            (err = node_mkdir_p(path)) || (err = connect(ctx, i, &s->fabrics[i])))
            goto out_fail;
        struct capsuled_config sc = {.data_dir = path, .key = &s->keys[i],
                                     .fabric = s->fabrics[i], .inline_commit = own_delivery};
        if ((err = capsuled_start(&s->servers[i], &sc))) {
            LOG_ERROR("node", "msg=\"cannot start an embedded storage server\" path=%s err=%s",
                      path, psl_err_name(err));
            goto out_fail;
        }
    }
    return PSL_OK;
out_fail:
    node_servers_stop(s);
    return err;
}

void node_servers_stop(struct node_servers *s)
{
    for (unsigned i = 0; i < s->count; i++) {
        capsuled_stop(s->servers[i]);
        fabric_destroy(s->fabrics[i]);
        signer_deinit(&s->keys[i]);
    }
    memset(s, 0, sizeof *s);
}

uint64_t node_servers_acks(struct node_servers *s)
{
    uint64_t acks = 0;
    for (unsigned i = 0; i < s->count; i++) {
        struct capsuled_stats st;
        capsuled_get_stats(s->servers[i], &st);
        acks += st.acks_sent;
    }
    return acks;
}
