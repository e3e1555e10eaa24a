/* tensor.c - dtypes, bf16/f16 conversion, aligned buffers, error strings and details. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "proto.h"

static const struct { const char *name; size_t size; } g_dtypes[PROTO_DTYPE_COUNT] = {
    [PROTO_F32] = {"f32", 4}, [PROTO_F16] = {"f16", 2}, [PROTO_BF16] = {"bf16", 2},
    [PROTO_I32] = {"i32", 4}, [PROTO_U32] = {"u32", 4}, [PROTO_U8] = {"u8", 1},
};

size_t proto_dtype_size(enum proto_dtype dt) { return (unsigned)dt < PROTO_DTYPE_COUNT ? g_dtypes[dt].size : 0; }
const char *proto_dtype_name(enum proto_dtype dt) { return (unsigned)dt < PROTO_DTYPE_COUNT ? g_dtypes[dt].name : "?"; }

int proto_dtype_parse(const char *s, size_t len, enum proto_dtype *out)
{
    for (int i = 0; i < PROTO_DTYPE_COUNT; i++)
        if (strlen(g_dtypes[i].name) == len && memcmp(g_dtypes[i].name, s, len) == 0) { *out = (enum proto_dtype)i; return PROTO_OK; }
    return PROTO_E_SCHEMA;
}

uint64_t proto_tensor_numel(const struct proto_tensor *t)
{
    uint64_t n = 1;
    for (int i = 0; i < t->ndim; i++) n *= t->shape[i];
    return n;
}
size_t proto_tensor_nbytes(const struct proto_tensor *t) { return (size_t)proto_tensor_numel(t) * proto_dtype_size(t->dtype); }

/* ---- half floats ---- */
float proto_bf16_to_f32(uint16_t h)
{
    uint32_t u = (uint32_t)h << 16; float f;
    memcpy(&f, &u, 4);
    return f;
}
uint16_t proto_f32_to_bf16(float f)
{
    uint32_t u; memcpy(&u, &f, 4);
    if ((u & 0x7fffffffu) > 0x7f800000u) return (uint16_t)((u >> 16) | 0x40); /* quiet NaN */
    u += 0x7fffu + ((u >> 16) & 1);                                          /* nearest even */
    return (uint16_t)(u >> 16);
}
float proto_f16_to_f32(uint16_t h)
{
    uint32_t sign = (uint32_t)(h & 0x8000) << 16, exp = (h >> 10) & 0x1f, man = h & 0x3ff, u;
    if (exp == 0) {
        if (man == 0) u = sign;
        else { /* subnormal: normalise */
            int e = -1;
            do { e++; man <<= 1; } while (!(man & 0x400));
            u = sign | (uint32_t)(127 - 15 - e) << 23 | (man & 0x3ff) << 13;
        }
    } else if (exp == 31) u = sign | 0x7f800000u | man << 13;
    else u = sign | (exp + 127 - 15) << 23 | man << 13;
    float f; memcpy(&f, &u, 4);
    return f;
}
uint16_t proto_f32_to_f16(float f)
{
    uint32_t u; memcpy(&u, &f, 4);
    uint32_t sign = (u >> 16) & 0x8000, a = u & 0x7fffffffu;
    if (a > 0x7f800000u) return (uint16_t)(sign | 0x7e00);        /* NaN */
    if (a >= 0x477ff000u) return (uint16_t)(sign | 0x7c00);       /* overflow -> inf (rounds up past 65504) */
    if (a < 0x38800000u) {                                        /* subnormal or zero in f16 */
        if (a < 0x33000000u) return (uint16_t)sign;               /* < half the smallest subnormal */
        uint32_t man = (a & 0x7fffffu) | 0x800000u;
        int shift = 126 - (int)(a >> 23);                         /* 14..24 */
        /* value = man * 2^(exp-150); f16 subnormal unit 2^-24: q = man >> (126 - exp) */
        uint32_t r = man >> shift;
        uint32_t rem = man & ((1u << shift) - 1), half = 1u << (shift - 1);
        if (rem > half || (rem == half && (r & 1))) r++;
        return (uint16_t)(sign | r);
    }
    uint32_t r = a + 0x0fffu + ((a >> 13) & 1);                   /* nearest even at bit 13 */
    return (uint16_t)(sign | ((r - 0x38000000u) >> 13));
}

void proto_convert_to_f32(float *dst, const void *src, enum proto_dtype dt, size_t n)
{
    const unsigned char *s = src;
    switch (dt) {
    case PROTO_F32: if (n) memcpy(dst, src, n * 4); break;
    case PROTO_BF16: for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, s + 2 * i, 2); dst[i] = proto_bf16_to_f32(h); } break;
    case PROTO_F16:  for (size_t i = 0; i < n; i++) { uint16_t h; memcpy(&h, s + 2 * i, 2); dst[i] = proto_f16_to_f32(h); } break;
    case PROTO_I32:  for (size_t i = 0; i < n; i++) { int32_t v; memcpy(&v, s + 4 * i, 4); dst[i] = (float)v; } break;
    case PROTO_U32:  for (size_t i = 0; i < n; i++) { uint32_t v; memcpy(&v, s + 4 * i, 4); dst[i] = (float)v; } break;
    case PROTO_U8:   for (size_t i = 0; i < n; i++) dst[i] = s[i]; break;
    default: break;
    }
}
void proto_convert_from_f32(void *dst, enum proto_dtype dt, const float *src, size_t n)
{
    unsigned char *d = dst;
    switch (dt) {
    case PROTO_F32: if (n) memcpy(dst, src, n * 4); break;
    case PROTO_BF16: for (size_t i = 0; i < n; i++) { uint16_t h = proto_f32_to_bf16(src[i]); memcpy(d + 2 * i, &h, 2); } break;
    case PROTO_F16:  for (size_t i = 0; i < n; i++) { uint16_t h = proto_f32_to_f16(src[i]); memcpy(d + 2 * i, &h, 2); } break;
    case PROTO_I32:  for (size_t i = 0; i < n; i++) { int32_t v = (int32_t)src[i]; memcpy(d + 4 * i, &v, 4); } break;
    case PROTO_U32:  for (size_t i = 0; i < n; i++) { uint32_t v = (uint32_t)src[i]; memcpy(d + 4 * i, &v, 4); } break;
    case PROTO_U8:   for (size_t i = 0; i < n; i++) d[i] = (unsigned char)src[i]; break;
    default: break;
    }
}

/* ---- aligned buffers ---- */
void *proto_aligned_alloc(size_t nbytes)
{
    size_t n = (nbytes + 63) & ~(size_t)63;
    return aligned_alloc(64, n ? n : 64);
}
int proto_buf_reserve(struct proto_buf *b, size_t nbytes)
{
    if (nbytes <= b->cap && b->p) return PROTO_OK;
    size_t cap = b->cap ? b->cap : 256;
    while (cap < nbytes) cap = cap < ((size_t)1 << 40) ? cap * 2 : nbytes;
    void *p = proto_aligned_alloc(cap);
    if (!p) return PROTO_E_NOMEM;
    free(b->p);
    b->p = p; b->cap = cap;
    return PROTO_OK;
}
void proto_buf_destroy(struct proto_buf *b) { if (b) { free(b->p); b->p = NULL; b->cap = 0; } }

const float *proto_tensor_f32(const struct proto_tensor *t, struct proto_buf *scratch, int *err)
{
    *err = PROTO_OK;
    if (t->dtype == PROTO_F32) return t->data;
    if (t->dtype != PROTO_BF16 && t->dtype != PROTO_F16) {
        proto_set_detail("tensor dtype %s is not a float type", proto_dtype_name(t->dtype));
        *err = PROTO_E_SCHEMA; return NULL;
    }
    size_t n = (size_t)proto_tensor_numel(t);
    if ((*err = proto_buf_reserve(scratch, n * 4)) != PROTO_OK) return NULL;
    proto_convert_to_f32(scratch->p, t->data, t->dtype, n);
    return scratch->p;
}

/* ---- errors ---- */
const char *proto_strerror(int err)
{
    switch (err) {
    case PROTO_OK: return "ok";
    case PROTO_END: return "end of stream";
    case PROTO_E_IO: return "i/o error";
    case PROTO_E_TRUNCATED: return "stream truncated (ended without an end frame)";
    case PROTO_E_PARSE: return "not a msgpack frame stream";
    case PROTO_E_SCHEMA: return "invalid frame";
    case PROTO_E_VERSION: return "unsupported protocol version";
    case PROTO_E_SEQ: return "frame sequence error";
    case PROTO_E_NOMEM: return "out of memory";
    case PROTO_E_ZSTD: return "zstd error";
    case PROTO_E_ZMQ: return "zeromq error";
    case PROTO_E_TIMEOUT: return "timed out";
    case PROTO_E_ENDPOINT: return "bad endpoint";
    case PROTO_E_FORMAT: return "malformed file";
    case PROTO_E_MISMATCH: return "mismatch";
    case PROTO_E_INVAL: return "invalid argument";
    default: return "unknown error";
    }
}

static _Thread_local char g_detail[1024];
const char *proto_detail(void) { return g_detail; }
void proto_clear_detail(void) { g_detail[0] = 0; }
void proto_set_detail(const char *fmt, ...)
{
    char tmp[1024];
    va_list ap; va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    memcpy(g_detail, tmp, sizeof tmp);
}

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

/* ---- random numbers ---- */
uint64_t proto_rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
double proto_rng_uniform(uint64_t *s) { return ((proto_rng_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
double proto_rng_normal(uint64_t *s)
{
    double u = proto_rng_uniform(s), v = proto_rng_uniform(s);
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}

/* ---- per-token similarity ---- */
void proto_sim_tokens(const float *a, const float *b, uint64_t n_tok, uint64_t d, float *cos, float *l2)
{
    const double floor = 1e-12;
    for (uint64_t t = 0; t < n_tok; t++) {
        const float *at = a + t * d, *bt = b + t * d;
        double aa4[4] = {0}, bb4[4] = {0}, ab4[4] = {0}, dd4[4] = {0};   /* 4 lanes */
        uint64_t k = 0;
        for (; k + 4 <= d; k += 4)
            for (int l = 0; l < 4; l++) {
                double x = at[k + l], y = bt[k + l], e = x - y;
                aa4[l] += x * x; bb4[l] += y * y; ab4[l] += x * y; dd4[l] += e * e;
            }
        for (; k < d; k++) {
            double x = at[k], y = bt[k], e = x - y;
            aa4[0] += x * x; bb4[0] += y * y; ab4[0] += x * y; dd4[0] += e * e;
        }
        double aa = (aa4[0] + aa4[1]) + (aa4[2] + aa4[3]), bb = (bb4[0] + bb4[1]) + (bb4[2] + bb4[3]);
        double ab = (ab4[0] + ab4[1]) + (ab4[2] + ab4[3]), dd = (dd4[0] + dd4[1]) + (dd4[2] + dd4[3]);
        cos[t] = (float)(ab / (fmax(sqrt(aa), floor) * fmax(sqrt(bb), floor)));
        l2[t] = (float)sqrt(dd);
    }
}
