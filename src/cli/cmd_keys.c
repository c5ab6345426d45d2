/* cmd_keys.c: `psl keygen`: creates a key file (0600, never overwriting) and prints the public
 * key, which is what others need (a replica's key goes into capsule metadata). */
#include <getopt.h>
#include <stdio.h>
#include <string.h>

#include "base/bytes.h"
#include "base/rng.h"
#include "capsule/keyfile.h"
#include "cli/cli.h"

static const char keygen_usage[] =
    "Usage: psl keygen --out FILE [--type owner|server|capsule]\n"
    "\n"
    "Creates a new key file, readable only by you (mode 0600). An existing file is never\n"
    "overwritten.\n"
    "  --type owner    an Ed25519 signing key for a capsule owner (default)\n"
    "  --type server   an Ed25519 signing key for a storage server (psl-capsuled)\n"
    "  --type capsule  a 32-byte capsule secret: the key all of a capsule's data is encrypted\n"
    "                  under; give it only to clients and attested enclaves\n"
    "Prints the public key (hex) for owner and server keys.\n";

int cmd_keygen(int argc, char **argv)
{
    static const struct option opts[] = {{"out", required_argument, NULL, 'o'},
                                         {"type", required_argument, NULL, 't'},
                                         {"help", no_argument, NULL, 'h'},
                                         {NULL, 0, NULL, 0}};
    const char *out = NULL, *type = "owner";
    int c;
    optind = 1;
    while ((c = getopt_long(argc, argv, "o:t:h", opts, NULL)) != -1) {
        switch (c) {
        case 'o':
            out = optarg;
            break;
        case 't':
            type = optarg;
            break;
        case 'h':
            fputs(keygen_usage, stdout);
            return EXIT_OK;
        default:
            fputs(keygen_usage, stderr);
            return EXIT_USAGE;
        }
    }
    if (!out || optind != argc) {
        cli_error("keygen needs --out FILE and no other arguments; see `psl keygen --help`");
        return EXIT_USAGE;
    }
    bool signing = !strcmp(type, "owner") || !strcmp(type, "server");
    if (!signing && strcmp(type, "capsule") != 0) {
        cli_error("unknown key type '%s'; use owner, server or capsule", type);
        return EXIT_USAGE;
    }
    uint8_t *secret = secret_alloc(32);
    if (!secret) {
        cli_error("out of secure memory");
        return EXIT_RUNTIME;
    }
    rng_bytes(secret, 32);
    int rc = EXIT_RUNTIME;
    struct signer s = {0};
    if (signing && signer_init(&s, secret) != PSL_OK) {
        cli_error("cannot derive the key pair");
        goto out_free;
    }
    psl_err err = keyfile_write(out, signing ? KEYFILE_SIGNING : KEYFILE_CAPSULE, secret,
                                signing ? s.pk : NULL);
    if (err == PSL_ERR_EXISTS) {
        cli_error("%s already exists; psl never overwrites a key file (choose another path)", out);
        goto out_free;
    }
    if (err) {
        cli_error("cannot write %s: %s", out, psl_strerror(err));
        goto out_free;
    }
    if (signing) {
        char hex[65];
        hex_encode(hex, s.pk, 32);
        printf("%s\n", hex);
    } else {
        printf("wrote capsule key %s\n", out);
    }
    rc = EXIT_OK;
out_free:
    signer_deinit(&s);
    secret_free(secret);
    return rc;
}
