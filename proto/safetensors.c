/* safetensors.c - mmapped safetensors files, every offset checked before use.
 * Layout: u64 LE header length N, N bytes of JSON {name: {dtype, shape, data_offsets:[b,e]},
 * "__metadata__": {...}}, then the data area; offsets are relative to the data area. */
#include <errno.h>
#include <stdbool.h>
#include <stdio.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include "proto.h"

static int st_dtype(const char *s, enum proto_dtype *dt)
{
    static const struct { const char *name; enum proto_dtype dt; } map[] = {
        {"F32", PROTO_F32}, {"F16", PROTO_F16}, {"BF16", PROTO_BF16},
        {"I32", PROTO_I32}, {"U32", PROTO_U32}, {"U8", PROTO_U8},
    };
    for (size_t i = 0; i < sizeof map / sizeof map[0]; i++)
        if (strcmp(s, map[i].name) == 0) { *dt = map[i].dt; return PROTO_OK; }
    return PROTO_E_FORMAT;
}

static int cmp_begin(const void *a, const void *b)
{
    const struct proto_st_tensor *x = a, *y = b;
    const char *px = x->data, *py = y->data;
    return px < py ? -1 : px > py;
}

/* one tensor entry of the header; base = start of the data area, area = its length */
static int parse_entry(const cJSON *e, struct proto_st_tensor *t, const char *base, uint64_t area)
{
    const cJSON *dt = cJSON_GetObjectItemCaseSensitive(e, "dtype");
    const cJSON *sh = cJSON_GetObjectItemCaseSensitive(e, "shape");
    const cJSON *off = cJSON_GetObjectItemCaseSensitive(e, "data_offsets");
    if (!cJSON_IsString(dt) || !cJSON_IsArray(sh) || !cJSON_IsArray(off) || cJSON_GetArraySize(off) != 2) {
        proto_set_detail("tensor '%s': header entry lacks dtype/shape/data_offsets", t->name);
        return PROTO_E_FORMAT;
    }
    if (st_dtype(dt->valuestring, &t->dtype) != PROTO_OK) {
        proto_set_detail("tensor '%s': unsupported dtype %s", t->name, dt->valuestring);
        return PROTO_E_FORMAT;
    }
    int nd = cJSON_GetArraySize(sh);
    if (nd > PROTO_MAX_DIMS) { proto_set_detail("tensor '%s': %d dims (max %d)", t->name, nd, PROTO_MAX_DIMS); return PROTO_E_FORMAT; }
    t->ndim = nd;
    uint64_t numel = 1;
    for (int i = 0; i < nd; i++) {
        const cJSON *d = cJSON_GetArrayItem(sh, i);
        if (!cJSON_IsNumber(d) || d->valuedouble < 0 || d->valuedouble > 1e15 || d->valuedouble != (double)(uint64_t)d->valuedouble) {
            proto_set_detail("tensor '%s': bad shape", t->name); return PROTO_E_FORMAT;
        }
        t->shape[i] = (uint64_t)d->valuedouble;
        if (t->shape[i] && numel > UINT64_MAX / 16 / t->shape[i]) { proto_set_detail("tensor '%s': shape overflows", t->name); return PROTO_E_FORMAT; }
        numel *= t->shape[i];
    }
    double b = cJSON_GetArrayItem(off, 0)->valuedouble, e2 = cJSON_GetArrayItem(off, 1)->valuedouble;
    if (!cJSON_IsNumber(cJSON_GetArrayItem(off, 0)) || !cJSON_IsNumber(cJSON_GetArrayItem(off, 1))
        || b < 0 || e2 < b || e2 > (double)area || b != (double)(uint64_t)b || e2 != (double)(uint64_t)e2) {
        proto_set_detail("tensor '%s': data_offsets [%.0f, %.0f] outside the data area of %llu bytes",
                         t->name, b, e2, (unsigned long long)area);
        return PROTO_E_FORMAT;
    }
    uint64_t nbytes = (uint64_t)e2 - (uint64_t)b;
    if (nbytes != numel * proto_dtype_size(t->dtype)) {
        proto_set_detail("tensor '%s': %llu bytes for %llu elements of %s", t->name,
                         (unsigned long long)nbytes, (unsigned long long)numel, proto_dtype_name(t->dtype));
        return PROTO_E_FORMAT;
    }
    t->data = base + (uint64_t)b;
    t->nbytes = nbytes;
    return PROTO_OK;
}

static int cmp_name(const void *a, const void *b)
{
    const struct proto_st_tensor *x = a, *y = b;
    return strcmp(x->name, y->name);
}

/* No two tensors may have the same name (readers would disagree on which one is meant: the
 * Python and Rust readers refuse it or take the last) or share bytes. Sorts a copy. */
static int check_layout(const struct proto_st *st)
{
    struct proto_st_tensor *s = malloc((size_t)st->n * sizeof *s);   /* (n) */
    int rc = PROTO_OK;
    if (!s) return PROTO_E_NOMEM;
    memcpy(s, st->t, (size_t)st->n * sizeof *s);
    qsort(s, (size_t)st->n, sizeof *s, cmp_name);
    for (int i = 1; i < st->n && rc == PROTO_OK; i++)
        if (strcmp(s[i - 1].name, s[i].name) == 0) {
            proto_set_detail("tensor '%s' appears twice in the header", s[i].name);
            rc = PROTO_E_FORMAT;
        }
    if (rc == PROTO_OK) qsort(s, (size_t)st->n, sizeof *s, cmp_begin);
    for (int i = 1; i < st->n && rc == PROTO_OK; i++)
        if ((const char *)s[i - 1].data + s[i - 1].nbytes > (const char *)s[i].data && s[i].nbytes && s[i - 1].nbytes) {
            proto_set_detail("tensors '%s' and '%s' overlap", s[i - 1].name, s[i].name);
            rc = PROTO_E_FORMAT;
        }
    free(s);
    return rc;
}

/* An upper bound on the number of JSON values in text: 1 + its commas, '[' and '{' outside
 * strings (every value but the first follows one of them). Stops counting past the bound. */
static size_t json_values(const char *text, size_t n)
{
    size_t values = 1;
    bool in_str = false;
    for (size_t i = 0; i < n && values <= PROTO_ST_MAX_VALUES; i++) {
        char c = text[i];
        if (in_str) {
            if (c == '\\') i++;
            else if (c == '"') in_str = false;
        } else if (c == '"') in_str = true;
        else values += c == ',' || c == '[' || c == '{';
    }
    return values;
}

/* The header length: within the file and the bounds, its JSON values counted before parsing. */
static int header_len(const unsigned char *p, size_t len, uint64_t *out)
{
    uint64_t hlen = 0;
    if (len < 8) { proto_set_detail("file is %zu bytes, shorter than the 8-byte header length", len); return PROTO_E_FORMAT; }
    for (int i = 7; i >= 0; i--) hlen = hlen << 8 | p[i];
    if (hlen > PROTO_ST_MAX_HEADER) {
        proto_set_detail("header length %llu is over the bound of %u bytes", (unsigned long long)hlen, PROTO_ST_MAX_HEADER);
        return PROTO_E_FORMAT;
    }
    if (hlen > len - 8) {
        proto_set_detail("header length %llu is larger than the file (%zu bytes)", (unsigned long long)hlen, len);
        return PROTO_E_FORMAT;
    }
    if (json_values((const char *)p + 8, (size_t)hlen) > PROTO_ST_MAX_VALUES) {
        proto_set_detail("header of %llu bytes holds more than %u JSON values (the bound)", (unsigned long long)hlen,
                         PROTO_ST_MAX_VALUES);
        return PROTO_E_FORMAT;
    }
    *out = hlen;
    return PROTO_OK;
}

int proto_st_parse(struct proto_st *st, const void *buf, size_t len)
{
    const unsigned char *p = buf;
    st->n = 0; st->t = NULL;
    uint64_t hlen;
    int hr = header_len(p, len, &hlen);
    if (hr) return hr;
    cJSON *root = cJSON_ParseWithLength((const char *)p + 8, (size_t)hlen);
    if (!root || !cJSON_IsObject(root)) {
        cJSON_Delete(root);
        proto_set_detail("header is not a JSON object");
        return PROTO_E_FORMAT;
    }
    const char *base = (const char *)p + 8 + hlen;
    uint64_t area = len - 8 - hlen;
    int cap = cJSON_GetArraySize(root), rc = PROTO_OK;
    st->t = calloc(cap ? (size_t)cap : 1, sizeof *st->t);
    if (!st->t) { cJSON_Delete(root); return PROTO_E_NOMEM; }
    const cJSON *e;
    cJSON_ArrayForEach(e, root) {
        if (strcmp(e->string, "__metadata__") == 0) continue;
        struct proto_st_tensor *t = &st->t[st->n];
        if (strlen(e->string) >= sizeof t->name) { proto_set_detail("tensor name too long"); rc = PROTO_E_FORMAT; break; }
        strcpy(t->name, e->string);
        if (!cJSON_IsObject(e)) { proto_set_detail("tensor '%s': entry is not an object", t->name); rc = PROTO_E_FORMAT; break; }
        if ((rc = parse_entry(e, t, base, area)) != PROTO_OK) break;
        st->n++;
    }
    cJSON_Delete(root);
    if (rc == PROTO_OK && st->n > 1) rc = check_layout(st);
    if (rc != PROTO_OK) { free(st->t); st->t = NULL; st->n = 0; }
    return rc;
}

int proto_st_open(struct proto_st *st, const char *path)
{
    memset(st, 0, sizeof *st);
    snprintf(st->path, sizeof st->path, "%s", path);
    int fd = open(path, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { proto_set_detail("%s: %s", path, strerror(errno)); return PROTO_E_IO; }
    struct stat sb;
    if (fstat(fd, &sb) != 0) { proto_set_detail("%s: %s", path, strerror(errno)); close(fd); return PROTO_E_IO; }
    st->map_len = (size_t)sb.st_size;
    if (st->map_len > 0) {
        st->map = mmap(NULL, st->map_len, PROT_READ, MAP_PRIVATE, fd, 0);
        if (st->map == MAP_FAILED) { st->map = NULL; proto_set_detail("%s: mmap: %s", path, strerror(errno)); close(fd); return PROTO_E_IO; }
    }
    close(fd);
    int rc = proto_st_parse(st, st->map ? st->map : "", st->map_len);
    if (rc != PROTO_OK) {
        char d[512];
        snprintf(d, sizeof d, "%s", proto_detail());
        proto_set_detail("%s: %s", path, d);
        proto_st_close(st);
    }
    return rc;
}

int proto_st_check(const struct proto_st_tensor *t, const char *what, int ndim, const uint64_t *shape,
                   const char *source)
{
    if (t->dtype != PROTO_F32 && t->dtype != PROTO_F16 && t->dtype != PROTO_BF16) {
        proto_set_detail("%s has dtype %s (f32, f16 or bf16 expected)", what, proto_dtype_name(t->dtype));
        return PROTO_E_FORMAT;
    }
    bool same = t->ndim == ndim;
    for (int i = 0; same && i < ndim; i++) same = t->shape[i] == shape[i];
    if (same) return PROTO_OK;
    char got[96], want[96];
    proto_set_detail("%s has shape [%s], %s [%s]", what, proto_shape_str(t->shape, t->ndim, got, sizeof got), source,
                     proto_shape_str(shape, ndim, want, sizeof want));
    return PROTO_E_MISMATCH;
}

const struct proto_st_tensor *proto_st_find(const struct proto_st *st, const char *name)
{
    for (int i = 0; i < st->n; i++)
        if (strcmp(st->t[i].name, name) == 0) return &st->t[i];
    return NULL;
}

void proto_st_close(struct proto_st *st)
{
    if (!st) return;
    if (st->map) munmap(st->map, st->map_len);
    free(st->t);
    st->map = NULL; st->t = NULL; st->n = 0; st->map_len = 0;
}

static const struct proto_st_entry *g_sort_base;
static int cmp_entry_name(const void *a, const void *b)
{
    return strcmp(g_sort_base[*(const int *)a].name, g_sort_base[*(const int *)b].name);
}

int proto_st_write(const char *path, const struct proto_st_entry *e, int n, enum proto_dtype dt)
{
    static const char *names[PROTO_DTYPE_COUNT] = {[PROTO_F32] = "F32", [PROTO_F16] = "F16", [PROTO_BF16] = "BF16"};
    if (dt != PROTO_F32 && dt != PROTO_F16 && dt != PROTO_BF16) return PROTO_E_INVAL;
    const size_t es = proto_dtype_size(dt);
    int *order = malloc((size_t)(n ? n : 1) * sizeof *order);
    if (!order) return PROTO_E_NOMEM;
    for (int i = 0; i < n; i++) order[i] = i;
    g_sort_base = e;
    qsort(order, (size_t)n, sizeof *order, cmp_entry_name);
    char *hdr = NULL; size_t hl = 0;
    FILE *mf = open_memstream(&hdr, &hl);
    if (!mf) { free(order); return PROTO_E_NOMEM; }
    fputs("{\"__metadata__\":{\"format\":\"pt\"}", mf);
    uint64_t off = 0;
    for (int i = 0; i < n; i++) {
        const struct proto_st_entry *t = &e[order[i]];
        uint64_t numel = 1;
        fprintf(mf, ",\"%s\":{\"dtype\":\"%s\",\"shape\":[", t->name, names[dt]);
        for (int k = 0; k < t->ndim; k++) { fprintf(mf, "%s%llu", k ? "," : "", (unsigned long long)t->shape[k]); numel *= t->shape[k]; }
        fprintf(mf, "],\"data_offsets\":[%llu,%llu]}", (unsigned long long)off, (unsigned long long)(off + numel * es));
        off += numel * es;
    }
    fputc('}', mf);
    while (ftell(mf) % 8) fputc(' ', mf);
    fclose(mf);
    int err = PROTO_OK;
    FILE *f = fopen(path, "wb");
    if (!f) { proto_set_detail("%s: %s", path, strerror(errno)); err = PROTO_E_IO; goto out; }
    uint8_t len8[8];
    for (int k = 0; k < 8; k++) len8[k] = (uint8_t)((uint64_t)hl >> (8 * k));
    fwrite(len8, 1, 8, f);
    fwrite(hdr, 1, hl, f);
    struct proto_buf tmp = {0};
    for (int i = 0; i < n && !err; i++) {
        const struct proto_st_entry *t = &e[order[i]];
        size_t numel = 1;
        for (int k = 0; k < t->ndim; k++) numel *= (size_t)t->shape[k];
        if (dt == PROTO_F32) { if (numel) fwrite(t->data, 4, numel, f); continue; }
        if ((err = proto_buf_reserve(&tmp, numel * es + 1))) break;
        proto_convert_from_f32(tmp.p, dt, t->data, numel);
        fwrite(tmp.p, es, numel, f);
    }
    proto_buf_destroy(&tmp);
    int bad = ferror(f);
    if ((fclose(f) != 0 || bad) && !err) { proto_set_detail("%s: write failed: %s", path, strerror(errno)); err = PROTO_E_IO; }
out:
    free(hdr); free(order);
    return err;
}
