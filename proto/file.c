/* file.c - small file helpers. */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "proto.h"

int proto_read_file(const char *path, char **out, size_t *len)
{
    *out = NULL; if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) { proto_set_detail("%s: %s", path, strerror(errno)); return PROTO_E_IO; }
    size_t cap = 1 << 16, n = 0; char *b = malloc(cap);
    int rc = PROTO_OK;
    for (;;) {
        if (!b) { rc = PROTO_E_NOMEM; break; }
        size_t k = fread(b + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) { if (ferror(f)) { proto_set_detail("%s: %s", path, strerror(errno)); rc = PROTO_E_IO; } break; }
        if (n + 1 >= cap) { char *nb = realloc(b, cap *= 2); if (!nb) { free(b); b = NULL; } else b = nb; }
    }
    fclose(f);
    if (rc != PROTO_OK) { free(b); return rc; }
    b[n] = 0; *out = b; if (len) *len = n;
    return PROTO_OK;
}
