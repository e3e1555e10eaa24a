/* tensor.c - dtypes, bf16/f16 conversion, aligned buffers, tensors as f32. */
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

const char *proto_shape_str(const uint64_t *shape, int ndim, char *buf, size_t cap)
{
    size_t n = 0;
    if (cap) buf[0] = 0;
    for (int i = 0; i < ndim && n < cap; i++) {   /* snprintf truncates; n >= cap then stops */
        int k = snprintf(buf + n, cap - n, i ? " %llu" : "%llu", (unsigned long long)shape[i]);
        if (k < 0) break;
        n += (size_t)k;
    }
    return buf;
}

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
