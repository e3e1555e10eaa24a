/* frame.c - frames as key/value lists: msgpack packing and parsing, validation, header meta.
 * Parsing copies every tensor into 64-byte-aligned slots (never read a bin in place). */
#include <pthread.h>
#include <stdlib.h>
#include <string.h>
#include <zstd.h>
#include "proto.h"
#include "blas.h"

static const char *g_kind_names[] = {"header", "tokens", "acts", "loss", "sim", "end", "other"};
const char *proto_kind_name(enum proto_kind k) { return (unsigned)k <= PROTO_KIND_OTHER ? g_kind_names[k] : "?"; }

static bool is_data_kind(enum proto_kind k) { return k != PROTO_KIND_HEADER && k != PROTO_KIND_END; }

/* ---- frame building ---- */
void proto_frame_init(struct proto_frame *f, enum proto_kind kind)
{
    memset(f, 0, sizeof *f);
    f->kind = kind;
    snprintf(f->kind_name, sizeof f->kind_name, "%s", proto_kind_name(kind));
}

struct proto_value *proto_frame_get(struct proto_frame *f, const char *key)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->v[i].key, key) == 0) return &f->v[i];
    return NULL;
}
const struct proto_tensor *proto_frame_tensor(const struct proto_frame *f, const char *key)
{
    const struct proto_value *v = proto_frame_get((struct proto_frame *)f, key);
    return v && v->type == PROTO_V_TENSOR ? &v->t : NULL;
}
const struct proto_sparse *proto_frame_sparse(const struct proto_frame *f, const char *key)
{
    const struct proto_value *v = proto_frame_get((struct proto_frame *)f, key);
    return v && v->type == PROTO_V_SPARSE ? &v->sp : NULL;
}
int proto_frame_str(const struct proto_frame *f, const char *key, char *dst, size_t cap)
{
    const struct proto_value *v = proto_frame_get((struct proto_frame *)f, key);
    if (!v || v->type != PROTO_V_STR) { proto_set_detail("frame has no string '%s'", key); return PROTO_E_SCHEMA; }
    if (v->len >= cap) { proto_set_detail("string '%s' too long (%zu bytes)", key, v->len); return PROTO_E_SCHEMA; }
    if (v->len) memcpy(dst, v->str, v->len);
    dst[v->len] = 0;
    return PROTO_OK;
}

static struct proto_value *slot_for(struct proto_frame *f, const char *key)
{
    struct proto_value *v = proto_frame_get(f, key);
    if (!v) {
        if (f->n >= PROTO_MAX_KEYS) { proto_set_detail("frame has more than %d keys", PROTO_MAX_KEYS); return NULL; }
        v = &f->v[f->n++];
    }
    memset(v, 0, sizeof *v);
    v->key = key;
    return v;
}
int proto_frame_set_tensor(struct proto_frame *f, const char *key, enum proto_dtype dt, int ndim,
                           const uint64_t *shape, const void *data)
{
    if (ndim < 0 || ndim > PROTO_MAX_DIMS) return PROTO_E_INVAL;
    struct proto_value *v = slot_for(f, key);
    if (!v) return PROTO_E_INVAL;
    v->type = PROTO_V_TENSOR;
    v->t.dtype = dt; v->t.ndim = ndim; v->t.data = data;
    for (int i = 0; i < ndim; i++) v->t.shape[i] = shape[i];
    return PROTO_OK;
}
int proto_frame_set_sparse(struct proto_frame *f, const char *key, const struct proto_sparse *sp)
{
    struct proto_value *v = slot_for(f, key);
    if (!v) return PROTO_E_INVAL;
    v->type = PROTO_V_SPARSE; v->sp = *sp;
    return PROTO_OK;
}
int proto_frame_set_str(struct proto_frame *f, const char *key, const char *s)
{
    struct proto_value *v = slot_for(f, key);
    if (!v) return PROTO_E_INVAL;
    v->type = PROTO_V_STR; v->str = s; v->len = strlen(s);
    return PROTO_OK;
}
int proto_frame_set_uint(struct proto_frame *f, const char *key, uint64_t u)
{
    struct proto_value *v = slot_for(f, key);
    if (!v) return PROTO_E_INVAL;
    v->type = PROTO_V_UINT; v->u = u;
    return PROTO_OK;
}
int proto_frame_set_obj(struct proto_frame *f, const char *key, const msgpack_object *o)
{
    struct proto_value *v = slot_for(f, key);
    if (!v) return PROTO_E_INVAL;
    v->type = PROTO_V_OBJ; v->obj = *o;
    return PROTO_OK;
}
void proto_frame_del(struct proto_frame *f, const char *key)
{
    for (int i = 0; i < f->n; i++)
        if (strcmp(f->v[i].key, key) == 0) {
            memmove(&f->v[i], &f->v[i + 1], (size_t)(f->n - i - 1) * sizeof f->v[0]);
            f->n--;
            return;
        }
}

/* ---- validation ---- */
static int want_shape(const struct proto_frame *f, const char *key, int ndim, const uint64_t *shape, int check_dims)
{
    const struct proto_tensor *t = proto_frame_tensor(f, key);
    if (!t) return PROTO_OK;
    if (t->ndim != ndim) goto bad;
    for (int i = 0; i < check_dims; i++) if (t->shape[i] != shape[i]) goto bad;
    return PROTO_OK;
bad:;
    char got[96], exp[96];
    proto_set_detail("frame %llu: %s has shape [%s], expected [%s%s] (%d dims)", (unsigned long long)f->seq, key,
                     proto_shape_str(t->shape, t->ndim, got, sizeof got), proto_shape_str(shape, check_dims, exp, sizeof exp),
                     check_dims < ndim ? " ..." : "", ndim);
    return PROTO_E_SCHEMA;
}

int proto_frame_validate(const struct proto_frame *f)
{
    unsigned long long seq = f->seq;
    if (!is_data_kind(f->kind)) return PROTO_OK;
    const struct proto_tensor *tok = proto_frame_tensor(f, "tokens");
    if (f->kind != PROTO_KIND_OTHER && !tok) { proto_set_detail("frame %llu: %s frame has no tokens tensor", seq, f->kind_name); return PROTO_E_SCHEMA; }
    if (!tok) return PROTO_OK;
    if (tok->ndim != 2 || (tok->dtype != PROTO_I32 && tok->dtype != PROTO_U32)) {
        proto_set_detail("frame %llu: tokens must be i32 [rows, ctx], got %s with %d dims", seq, proto_dtype_name(tok->dtype), tok->ndim);
        return PROTO_E_SCHEMA;
    }
    uint64_t rows = tok->shape[0], ctx = tok->shape[1], n_tok = rows * ctx;
    uint64_t rc[3] = {rows, ctx, 0}, rc1[2] = {rows, ctx ? ctx - 1 : 0};
    int err;
    if (f->kind == PROTO_KIND_ACTS) {
        const struct proto_tensor *a = proto_frame_tensor(f, "acts");
        if (a && (err = want_shape(f, "acts", 3, rc, 2))) return err;
        if (a) { rc[2] = a->shape[2]; if ((err = want_shape(f, "recon", 3, rc, 3))) return err; }
        else if ((err = want_shape(f, "recon", 3, rc, 2))) return err;
        const struct proto_value *h = proto_frame_get((struct proto_frame *)f, "hook");
        if (h && h->type != PROTO_V_STR) { proto_set_detail("frame %llu: hook is not a string", seq); return PROTO_E_SCHEMA; }
    }
    if ((err = want_shape(f, "keep", 2, rc, 2))) return err;
    if ((err = want_shape(f, "cos", 2, rc, 2)) || (err = want_shape(f, "l2", 2, rc, 2))) return err;
    static const char *loss_keys[] = {"ce_clean", "ce_spliced", "ce_ablated", "kl_spliced", "kl_ablated"};
    for (size_t i = 0; i < 5; i++) if ((err = want_shape(f, loss_keys[i], 2, rc1, 2))) return err;
    const struct proto_sparse *sp = proto_frame_sparse(f, "feats");
    if (sp && sp->n_tok != n_tok) {
        proto_set_detail("frame %llu: feats covers %llu tokens, tokens has %llu", seq, (unsigned long long)sp->n_tok, (unsigned long long)n_tok);
        return PROTO_E_SCHEMA;
    }
    return PROTO_OK;
}

int proto_frame_same_tokens(const struct proto_frame *b, const struct proto_frame *f)
{
    const struct proto_tensor *tb = proto_frame_tensor(b, "tokens"), *tf = proto_frame_tensor(f, "tokens");
    unsigned long long seq = b->seq;
    if (!tb || !tf) {
        if (!tb && !tf) return PROTO_OK;
        proto_set_detail("seq %llu: only one frame has tokens", seq);
        return PROTO_E_MISMATCH;
    }
    if (tb->shape[0] != tf->shape[0] || tb->shape[1] != tf->shape[1]) {
        proto_set_detail("seq %llu: tokens shape [%llu, %llu] (base) vs [%llu, %llu] (finetune)", seq,
                         (unsigned long long)tb->shape[0], (unsigned long long)tb->shape[1],
                         (unsigned long long)tf->shape[0], (unsigned long long)tf->shape[1]);
        return PROTO_E_MISMATCH;
    }
    const int32_t *vb = tb->data, *vf = tf->data;   /* (rows, ctx) */
    uint64_t n = tb->shape[0] * tb->shape[1], ctx = tb->shape[1];
    for (uint64_t i = 0; i < n; i++)
        if (vb[i] != vf[i]) {
            proto_set_detail("seq %llu row %llu position %llu: base token %d, finetune token %d", seq,
                             (unsigned long long)(i / ctx), (unsigned long long)(i % ctx), vb[i], vf[i]);
            return PROTO_E_MISMATCH;
        }
    return PROTO_OK;
}

const struct proto_tensor *proto_frame_acts(const struct proto_frame *f, int *err)
{
    if ((*err = proto_frame_validate(f)) != PROTO_OK) return NULL;
    const struct proto_tensor *a = proto_frame_tensor(f, "acts");
    if (!a || a->ndim != 3) {
        proto_set_detail("frame %llu: acts frame has no acts tensor [rows, ctx, d_model]", (unsigned long long)f->seq);
        *err = PROTO_E_SCHEMA;
        return NULL;
    }
    return a;
}

/* ---- CRC32C (Castagnoli, reflected 0x82F63B78; the iSCSI/ext4 one): SSE4.2 where the CPU
 * has it, else slice-by-8 tables ---- */
static uint32_t g_crc_tab[8][256];
static pthread_once_t g_crc_once = PTHREAD_ONCE_INIT;
static bool g_crc_hw;
static void crc_init(void)
{
    for (uint32_t i = 0; i < 256; i++) {
        uint32_t c = i;
        for (int k = 0; k < 8; k++) c = c & 1 ? (c >> 1) ^ 0x82F63B78u : c >> 1;
        g_crc_tab[0][i] = c;
    }
    for (int t = 1; t < 8; t++)
        for (int i = 0; i < 256; i++) g_crc_tab[t][i] = (g_crc_tab[t - 1][i] >> 8) ^ g_crc_tab[0][g_crc_tab[t - 1][i] & 0xff];
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    g_crc_hw = __builtin_cpu_supports("sse4.2");
#endif
}
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
__attribute__((target("sse4.2"))) static uint32_t crc_hw(uint32_t c, const unsigned char *p, size_t n)
{
    uint64_t c64 = c;
    for (; n >= 8; p += 8, n -= 8) { uint64_t v; memcpy(&v, p, 8); c64 = __builtin_ia32_crc32di(c64, v); }
    c = (uint32_t)c64;
    for (; n; p++, n--) c = __builtin_ia32_crc32qi(c, *p);
    return c;
}
#endif
uint32_t proto_crc32c(uint32_t crc, const void *data, size_t n)
{
    pthread_once(&g_crc_once, crc_init);
    const unsigned char *p = data;
    uint32_t c = ~crc;
#if defined(__x86_64__) && (defined(__GNUC__) || defined(__clang__))
    if (g_crc_hw) return ~crc_hw(c, p, n);
#endif
    for (; n >= 8; p += 8, n -= 8) {   /* little-endian hosts (the wire format is too) */
        uint32_t lo, hi;
        memcpy(&lo, p, 4); memcpy(&hi, p + 4, 4);
        lo ^= c;
        c = g_crc_tab[7][lo & 0xff] ^ g_crc_tab[6][(lo >> 8) & 0xff] ^ g_crc_tab[5][(lo >> 16) & 0xff] ^ g_crc_tab[4][lo >> 24]
            ^ g_crc_tab[3][hi & 0xff] ^ g_crc_tab[2][(hi >> 8) & 0xff] ^ g_crc_tab[1][(hi >> 16) & 0xff] ^ g_crc_tab[0][hi >> 24];
    }
    for (; n; p++, n--) c = (c >> 8) ^ g_crc_tab[0][(c ^ *p) & 0xff];
    return ~c;
}

/* ---- packing ---- */
static void pack_str(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n); msgpack_pack_str_body(pk, s, n);
}

static _Thread_local struct proto_buf g_zbuf;

/* crc (NULL: none) takes in the data bin's bytes as written (compressed ones when zstd) */
static int pack_tensor(msgpack_packer *pk, const struct proto_tensor *t, bool zstd, int level, uint32_t *crc)
{
    size_t nbytes = proto_tensor_nbytes(t);
    if (nbytes > UINT32_MAX) {   /* msgpack bins hold at most 2^32 - 1 bytes; readers refuse more (§2) */
        proto_set_detail("a %s tensor of %zu bytes is over the bound of %u bytes (the largest bin)",
                         proto_dtype_name(t->dtype), nbytes, UINT32_MAX);
        return PROTO_E_INVAL;
    }
    zstd = zstd && nbytes >= 256;   /* small tensors are not worth a zstd frame */
    msgpack_pack_map(pk, zstd ? 4 : 3);
    pack_str(pk, "dtype"); pack_str(pk, proto_dtype_name(t->dtype));
    pack_str(pk, "shape"); msgpack_pack_array(pk, (size_t)t->ndim);
    for (int i = 0; i < t->ndim; i++) msgpack_pack_uint64(pk, t->shape[i]);
    pack_str(pk, "data");
    if (zstd) {
        size_t bound = ZSTD_compressBound(nbytes);
        if (proto_buf_reserve(&g_zbuf, bound) != PROTO_OK) return PROTO_E_NOMEM;
        size_t z = ZSTD_compress(g_zbuf.p, bound, t->data, nbytes, level);
        if (ZSTD_isError(z)) { proto_set_detail("zstd: %s", ZSTD_getErrorName(z)); return PROTO_E_ZSTD; }
        if (crc) *crc = proto_crc32c(*crc, g_zbuf.p, z);
        msgpack_pack_bin(pk, z);
        if (msgpack_pack_bin_body(pk, g_zbuf.p, z)) return PROTO_E_IO;
        pack_str(pk, "zstd"); msgpack_pack_true(pk);
        return PROTO_OK;
    }
    if (crc && nbytes) *crc = proto_crc32c(*crc, t->data, nbytes);
    msgpack_pack_bin(pk, nbytes);
    return msgpack_pack_bin_body(pk, t->data, nbytes) ? PROTO_E_IO : PROTO_OK;
}

static int pack_sparse(msgpack_packer *pk, const struct proto_sparse *sp, bool zstd, int level, uint32_t *crc)
{
    struct proto_tensor ip = {PROTO_U32, 1, {sp->n_tok + 1}, sp->indptr};
    struct proto_tensor ix = {PROTO_U32, 1, {sp->nnz}, sp->index};
    struct proto_tensor va = {PROTO_F32, 1, {sp->nnz}, sp->value};
    int err;
    msgpack_pack_map(pk, 4);
    pack_str(pk, "d_sae"); msgpack_pack_uint32(pk, sp->d_sae);
    pack_str(pk, "indptr"); if ((err = pack_tensor(pk, &ip, zstd, level, crc))) return err;
    pack_str(pk, "index"); if ((err = pack_tensor(pk, &ix, zstd, level, crc))) return err;
    pack_str(pk, "value"); return pack_tensor(pk, &va, zstd, level, crc);
}

int proto_frame_pack(msgpack_packer *pk, const struct proto_frame *f, bool zstd, int level)
{
    return proto_frame_pack_crc(pk, f, zstd, level, false);
}

int proto_frame_pack_crc(msgpack_packer *pk, const struct proto_frame *f, bool zstd, int level, bool with_crc)
{
    bool data = is_data_kind(f->kind), crc_on = with_crc && data;
    int err = PROTO_OK;
    uint32_t crc = 0, *cp = crc_on ? &crc : NULL;
    int n = 0;
    for (int i = 0; i < f->n; i++) n += !(crc_on && strcmp(f->v[i].key, PROTO_CRC_KEY) == 0);
    msgpack_pack_map(pk, (size_t)(2 + data + n + crc_on));
    pack_str(pk, "sf"); msgpack_pack_uint32(pk, PROTO_VERSION);
    pack_str(pk, "kind"); pack_str(pk, f->kind_name[0] ? f->kind_name : proto_kind_name(f->kind));
    if (data) { pack_str(pk, "seq"); msgpack_pack_uint64(pk, f->seq); }
    for (int i = 0; i < f->n && !err; i++) {
        const struct proto_value *v = &f->v[i];
        if (crc_on && strcmp(v->key, PROTO_CRC_KEY) == 0) continue;   /* ours replaces a stale one */
        pack_str(pk, v->key);
        switch (v->type) {
        case PROTO_V_TENSOR: err = pack_tensor(pk, &v->t, zstd || v->zstd, level, cp); break;
        case PROTO_V_SPARSE: err = pack_sparse(pk, &v->sp, zstd || v->zstd, level, cp); break;
        case PROTO_V_STR: msgpack_pack_str(pk, v->len); msgpack_pack_str_body(pk, v->str, v->len); break;
        case PROTO_V_UINT: msgpack_pack_uint64(pk, v->u); break;
        case PROTO_V_OBJ: if (msgpack_pack_object(pk, v->obj)) err = PROTO_E_IO; break;
        }
    }
    if (!err && crc_on) { pack_str(pk, PROTO_CRC_KEY); msgpack_pack_uint32(pk, crc); }   /* last: known only now */
    return err;
}

/* ---- parsing ---- */
static bool key_is(const msgpack_object *k, const char *s)
{
    size_t n = strlen(s);
    return k->type == MSGPACK_OBJECT_STR && k->via.str.size == n && memcmp(k->via.str.ptr, s, n) == 0;
}
static const msgpack_object *map_get(const msgpack_object *m, const char *key)
{
    if (m->type != MSGPACK_OBJECT_MAP) return NULL;
    for (uint32_t i = 0; i < m->via.map.size; i++)
        if (key_is(&m->via.map.ptr[i].key, key)) return &m->via.map.ptr[i].val;
    return NULL;
}

static bool looks_like_tensor(const msgpack_object *o)
{
    return o->type == MSGPACK_OBJECT_MAP && map_get(o, "dtype") && map_get(o, "shape") && map_get(o, "data");
}

/* A zstd payload's declared size against what its bytes can hold, before memory is reserved for
 * it (PROTOCOL.md §2): zstd cannot beat ZSTD_MAX_RATIO (every block of at most 128 KiB costs at
 * least 4 bytes: a 3-byte header and one RLE byte), and no tensor is larger than a bin can be. */
#define ZSTD_MAX_RATIO 32768u
static int zstd_claim(const char *key, uint64_t have, uint32_t zbytes)
{
    if (have <= (uint64_t)zbytes * ZSTD_MAX_RATIO && have <= UINT32_MAX) return PROTO_OK;
    if (have > UINT32_MAX)
        proto_set_detail("%s: zstd data says %llu bytes decompressed, over the bound of %u (the largest bin)", key,
                         (unsigned long long)have, UINT32_MAX);
    else
        proto_set_detail("%s: zstd data of %u bytes says %llu bytes decompressed, more than zstd can hold in it "
                         "(at most %u times its size)", key, zbytes, (unsigned long long)have, ZSTD_MAX_RATIO);
    return PROTO_E_SCHEMA;
}

/* parse a tensor map, copying (and decompressing) its data into slot */
static int parse_tensor(const msgpack_object *o, const char *key, struct proto_tensor *t, struct proto_buf *slot)
{
    int err;
    const msgpack_object *dt = map_get(o, "dtype"), *sh = map_get(o, "shape"), *da = map_get(o, "data"), *z = map_get(o, "zstd");
    if (!dt || dt->type != MSGPACK_OBJECT_STR || proto_dtype_parse(dt->via.str.ptr, dt->via.str.size, &t->dtype) != PROTO_OK) {
        proto_set_detail("%s: unknown dtype%s%.*s", key, dt && dt->type == MSGPACK_OBJECT_STR ? " " : "",
                         dt && dt->type == MSGPACK_OBJECT_STR ? (int)dt->via.str.size : 0, dt && dt->type == MSGPACK_OBJECT_STR ? dt->via.str.ptr : "");
        return PROTO_E_SCHEMA;
    }
    if (!sh || sh->type != MSGPACK_OBJECT_ARRAY || sh->via.array.size > PROTO_MAX_DIMS) {
        proto_set_detail("%s: shape must be an array of at most %d uints", key, PROTO_MAX_DIMS); return PROTO_E_SCHEMA;
    }
    t->ndim = (int)sh->via.array.size;
    uint64_t numel = 1;
    for (int i = 0; i < t->ndim; i++) {
        const msgpack_object *d = &sh->via.array.ptr[i];
        if (d->type != MSGPACK_OBJECT_POSITIVE_INTEGER) { proto_set_detail("%s: shape must be uints", key); return PROTO_E_SCHEMA; }
        t->shape[i] = d->via.u64;
        if (t->shape[i] && numel > ((uint64_t)1 << 40) / t->shape[i]) { proto_set_detail("%s: shape too large", key); return PROTO_E_SCHEMA; }
        numel *= t->shape[i];
    }
    if (!da || da->type != MSGPACK_OBJECT_BIN) { proto_set_detail("%s: data must be a bin", key); return PROTO_E_SCHEMA; }
    size_t nbytes = (size_t)numel * proto_dtype_size(t->dtype);   /* numel <= 2^40: no overflow */
    bool zstd = z && z->type == MSGPACK_OBJECT_BOOLEAN && z->via.boolean;
    /* the data length is checked against the shape BEFORE any memory is reserved for it */
    uint64_t have = zstd ? ZSTD_getFrameContentSize(da->via.bin.ptr, da->via.bin.size) : da->via.bin.size;
    if (zstd && (have == ZSTD_CONTENTSIZE_ERROR || have == ZSTD_CONTENTSIZE_UNKNOWN)) {
        proto_set_detail("%s: zstd data of %u bytes does not state its decompressed size (shape needs %zu)", key, da->via.bin.size, nbytes);
        return PROTO_E_SCHEMA;
    }
    if (have != nbytes) {
        char shp[96];
        proto_set_detail("%s: data is %llu bytes%s, shape [%s] %s needs %zu", key, (unsigned long long)have,
                         zstd ? " decompressed" : "", proto_shape_str(t->shape, t->ndim, shp, sizeof shp),
                         proto_dtype_name(t->dtype), nbytes);
        return PROTO_E_SCHEMA;
    }
    if (zstd && (err = zstd_claim(key, have, da->via.bin.size))) return err;
    if (!zstd && ((uintptr_t)da->via.bin.ptr & 63) == 0) {
        t->data = da->via.bin.ptr;   /* already 64-byte aligned (the reader arranges it for large bins): use in place */
        return PROTO_OK;
    }
    if (proto_buf_reserve(slot, nbytes ? nbytes : 1) != PROTO_OK) {
        proto_set_detail("%s: no memory for %zu bytes of data", key, nbytes);
        return PROTO_E_NOMEM;
    }
    if (zstd) {
        size_t r = ZSTD_decompress(slot->p, nbytes, da->via.bin.ptr, da->via.bin.size);
        if (ZSTD_isError(r) || r != nbytes) {
            proto_set_detail("%s: zstd data does not decompress to %zu bytes (%s)", key, nbytes,
                             ZSTD_isError(r) ? ZSTD_getErrorName(r) : "wrong size");
            return PROTO_E_SCHEMA;
        }
    } else if (nbytes) memcpy(slot->p, da->via.bin.ptr, nbytes);
    t->data = slot->p;
    return PROTO_OK;
}

static int parse_sparse(const msgpack_object *o, const char *key, struct proto_sparse *sp, struct proto_buf *slots)
{
    const msgpack_object *d = map_get(o, "d_sae"), *ip = map_get(o, "indptr"), *ix = map_get(o, "index"), *va = map_get(o, "value");
    if (!d || d->type != MSGPACK_OBJECT_POSITIVE_INTEGER || d->via.u64 > UINT32_MAX || !ip || !ix || !va) {
        proto_set_detail("%s: sparse map needs d_sae, indptr, index, value", key); return PROTO_E_SCHEMA;
    }
    struct proto_tensor t[3];
    const msgpack_object *parts[3] = {ip, ix, va};
    static const char *names[3] = {"feats.indptr", "feats.index", "feats.value"};
    static const enum proto_dtype want[3] = {PROTO_U32, PROTO_U32, PROTO_F32};
    for (int i = 0; i < 3; i++) {
        int err = parse_tensor(parts[i], names[i], &t[i], &slots[i]);
        if (err) return err;
        if (t[i].dtype != want[i] || t[i].ndim != 1) {
            proto_set_detail("%s must be a 1-d %s tensor", names[i], proto_dtype_name(want[i])); return PROTO_E_SCHEMA;
        }
    }
    if (t[0].shape[0] < 1 || t[1].shape[0] != t[2].shape[0]) { proto_set_detail("%s: indptr/index/value lengths disagree", key); return PROTO_E_SCHEMA; }
    sp->d_sae = (uint32_t)d->via.u64;
    sp->n_tok = t[0].shape[0] - 1; sp->nnz = t[1].shape[0];
    sp->indptr = t[0].data; sp->index = t[1].data; sp->value = t[2].data;
    if (sp->indptr[0] != 0 || sp->indptr[sp->n_tok] != sp->nnz) { proto_set_detail("%s: indptr must run from 0 to nnz", key); return PROTO_E_SCHEMA; }
    for (uint64_t i = 0; i < sp->n_tok; i++)
        if (sp->indptr[i + 1] < sp->indptr[i]) { proto_set_detail("%s: indptr decreases at token %llu", key, (unsigned long long)i); return PROTO_E_SCHEMA; }
    for (uint64_t i = 0; i < sp->nnz; i++)
        if (sp->index[i] >= sp->d_sae) { proto_set_detail("%s: feature index %u >= d_sae %u", key, sp->index[i], sp->d_sae); return PROTO_E_SCHEMA; }
    return PROTO_OK;
}

void proto_slots_destroy(struct proto_slots *s)
{
    if (!s) return;
    for (size_t i = 0; i < sizeof s->b / sizeof s->b[0]; i++) proto_buf_destroy(&s->b[i]);
}

/* sf, kind, seq */
static int parse_head(const msgpack_object *obj, struct proto_frame *out)
{
    if (obj->type != MSGPACK_OBJECT_MAP) { proto_set_detail("frame is not a msgpack map"); return PROTO_E_SCHEMA; }
    const msgpack_object *sf = map_get(obj, "sf"), *kind = map_get(obj, "kind"), *seq = map_get(obj, "seq");
    if (!sf || sf->type != MSGPACK_OBJECT_POSITIVE_INTEGER) { proto_set_detail("frame has no protocol version key 'sf'"); return PROTO_E_SCHEMA; }
    if (sf->via.u64 != PROTO_VERSION) { proto_set_detail("frame has protocol version %llu, this is version %d", (unsigned long long)sf->via.u64, PROTO_VERSION); return PROTO_E_VERSION; }
    if (!kind || kind->type != MSGPACK_OBJECT_STR || kind->via.str.size == 0 || kind->via.str.size >= sizeof out->kind_name) {
        proto_set_detail("frame has no valid 'kind'"); return PROTO_E_SCHEMA;
    }
    memcpy(out->kind_name, kind->via.str.ptr, kind->via.str.size);
    out->kind_name[kind->via.str.size] = 0;
    out->kind = PROTO_KIND_OTHER;
    for (int k = 0; k < PROTO_KIND_OTHER; k++) if (strcmp(out->kind_name, g_kind_names[k]) == 0) out->kind = (enum proto_kind)k;
    if (is_data_kind(out->kind)) {
        if (!seq || seq->type != MSGPACK_OBJECT_POSITIVE_INTEGER) { proto_set_detail("%s frame has no 'seq'", out->kind_name); return PROTO_E_SCHEMA; }
        out->seq = seq->via.u64;
    }
    return PROTO_OK;
}

/* One value into pv: a tensor, a sparse map, a string, a uint or any other object. */
static int parse_value(const msgpack_object *v, const char *key, struct proto_value *pv, struct proto_slots *slots, int *slot)
{
    int nslots = (int)(sizeof slots->b / sizeof slots->b[0]);
    memset(pv, 0, sizeof *pv);
    pv->key = key;
    if (looks_like_tensor(v)) {
        pv->type = PROTO_V_TENSOR;
        if (*slot + 1 > nslots) { proto_set_detail("too many tensors in frame"); return PROTO_E_SCHEMA; }
        return parse_tensor(v, key, &pv->t, &slots->b[(*slot)++]);
    }
    if (v->type == MSGPACK_OBJECT_MAP && map_get(v, "indptr")) {
        pv->type = PROTO_V_SPARSE;
        if (*slot + 3 > nslots) { proto_set_detail("too many tensors in frame"); return PROTO_E_SCHEMA; }
        *slot += 3;
        return parse_sparse(v, key, &pv->sp, &slots->b[*slot - 3]);
    }
    if (v->type == MSGPACK_OBJECT_STR) { pv->type = PROTO_V_STR; pv->str = v->via.str.ptr; pv->len = v->via.str.size; }
    else if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) { pv->type = PROTO_V_UINT; pv->u = v->via.u64; }
    else { pv->type = PROTO_V_OBJ; pv->obj = *v; }
    return PROTO_OK;
}

/* The CRC32C of a frame's tensor data bins as they stand (PROTOCOL.md §2): top-level tensors in
 * key order, a sparse map's indptr, index, value. */
static uint32_t bin_crc(uint32_t crc, const msgpack_object *t)
{
    const msgpack_object *d = t ? map_get(t, "data") : NULL;
    return d && d->type == MSGPACK_OBJECT_BIN && d->via.bin.size ? proto_crc32c(crc, d->via.bin.ptr, d->via.bin.size) : crc;
}
static uint32_t frame_crc(const msgpack_object *obj)
{
    uint32_t crc = 0;
    for (uint32_t i = 0; i < obj->via.map.size; i++) {
        const msgpack_object *v = &obj->via.map.ptr[i].val;
        if (looks_like_tensor(v)) crc = bin_crc(crc, v);
        else if (v->type == MSGPACK_OBJECT_MAP && map_get(v, "indptr")) {
            crc = bin_crc(crc, map_get(v, "indptr"));
            crc = bin_crc(crc, map_get(v, "index"));
            crc = bin_crc(crc, map_get(v, "value"));
        }
    }
    return crc;
}
/* A data frame's "crc", checked before anything is decoded; *have: it has one. */
static int crc_check(const msgpack_object *obj, const struct proto_frame *out, bool *have)
{
    const msgpack_object *c = is_data_kind(out->kind) ? map_get(obj, PROTO_CRC_KEY) : NULL;
    unsigned long long seq = out->seq;
    *have = c != NULL;
    if (!c) return PROTO_OK;
    if (c->type != MSGPACK_OBJECT_POSITIVE_INTEGER || c->via.u64 > UINT32_MAX) {
        proto_set_detail("frame %llu: '%s' is not a uint32 checksum", seq, PROTO_CRC_KEY);
        return PROTO_E_SCHEMA;
    }
    uint32_t got = frame_crc(obj);
    if (got != c->via.u64) {
        proto_set_detail("frame %llu: checksum mismatch (crc32c of its tensor data is %08x, the frame says %08llx)", seq, got,
                         (unsigned long long)c->via.u64);
        return PROTO_E_SCHEMA;
    }
    return PROTO_OK;
}

int proto_frame_from_obj(const msgpack_object *obj, struct proto_frame *out, struct proto_slots *slots)
{
    memset(out, 0, offsetof(struct proto_frame, v));
    out->n = 0;
    bool check;
    int err = parse_head(obj, out), slot = 0;
    if (err || (err = crc_check(obj, out, &check))) return err;
    for (uint32_t i = 0; i < obj->via.map.size; i++) {
        const msgpack_object *k = &obj->via.map.ptr[i].key, *v = &obj->via.map.ptr[i].val;
        if (k->type != MSGPACK_OBJECT_STR) { proto_set_detail("frame key is not a string"); return PROTO_E_SCHEMA; }
        if (key_is(k, "sf") || key_is(k, "kind") || key_is(k, "seq")) continue;
        if (check && key_is(k, PROTO_CRC_KEY)) continue;   /* checked below, then dropped: each writer makes its own */
        if (out->n >= PROTO_MAX_KEYS) { proto_set_detail("frame has more than %d keys", PROTO_MAX_KEYS); return PROTO_E_SCHEMA; }
        if (k->via.str.size >= sizeof slots->keys[0]) { proto_set_detail("frame key too long"); return PROTO_E_SCHEMA; }
        char *key = slots->keys[out->n];
        if (k->via.str.size) memcpy(key, k->via.str.ptr, k->via.str.size);   /* "" may have a NULL ptr */
        key[k->via.str.size] = 0;
        for (int j = 0; j < out->n; j++)
            if (strcmp(out->v[j].key, key) == 0) { proto_set_detail("frame key '%s' appears twice", key); return PROTO_E_SCHEMA; }
        if ((err = parse_value(v, key, &out->v[out->n], slots, &slot))) {
            char d[512]; snprintf(d, sizeof d, "%s", proto_detail());
            if (is_data_kind(out->kind)) proto_set_detail("frame %llu: %s", (unsigned long long)out->seq, d);
            return err;
        }
        out->n++;
    }
    if (out->kind == PROTO_KIND_END) {
        const struct proto_value *fr = proto_frame_get(out, "frames");
        if (!fr || fr->type != PROTO_V_UINT) { proto_set_detail("end frame has no 'frames' count"); return PROTO_E_SCHEMA; }
    }
    return is_data_kind(out->kind) ? proto_frame_validate(out) : PROTO_OK;
}

/* ---- header meta ---- */
const msgpack_object *proto_meta_get(const msgpack_object *meta, const char *key)
{
    return meta ? map_get(meta, key) : NULL;
}
int proto_meta_str(const msgpack_object *meta, const char *key, char *dst, size_t cap)
{
    const msgpack_object *o = proto_meta_get(meta, key);
    if (!o || o->type != MSGPACK_OBJECT_STR || o->via.str.size >= cap) return PROTO_E_SCHEMA;
    if (o->via.str.size) memcpy(dst, o->via.str.ptr, o->via.str.size);
    dst[o->via.str.size] = 0;
    return PROTO_OK;
}
int proto_meta_uint(const msgpack_object *meta, const char *key, uint64_t *out)
{
    const msgpack_object *o = proto_meta_get(meta, key);
    if (!o || o->type != MSGPACK_OBJECT_POSITIVE_INTEGER) return PROTO_E_SCHEMA;
    *out = o->via.u64;
    return PROTO_OK;
}
int proto_meta_double(const msgpack_object *meta, const char *key, double *out)
{
    const msgpack_object *o = proto_meta_get(meta, key);
    if (!o) return PROTO_E_SCHEMA;
    switch (o->type) {
    case MSGPACK_OBJECT_POSITIVE_INTEGER: *out = (double)o->via.u64; return PROTO_OK;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: *out = (double)o->via.i64; return PROTO_OK;
    case MSGPACK_OBJECT_FLOAT32: case MSGPACK_OBJECT_FLOAT64: *out = o->via.f64; return PROTO_OK;
    default: return PROTO_E_SCHEMA;
    }
}
int proto_meta_bool(const msgpack_object *meta, const char *key, bool *out)
{
    const msgpack_object *o = proto_meta_get(meta, key);
    if (!o || o->type != MSGPACK_OBJECT_BOOLEAN) return PROTO_E_SCHEMA;
    *out = o->via.boolean;
    return PROTO_OK;
}

void proto_meta_init(struct proto_meta *m, const msgpack_object *base, int argc, char **argv)
{
    memset(m, 0, sizeof *m);
    m->base = base && base->type == MSGPACK_OBJECT_MAP ? base : NULL;
    if (argc > 0 && argv && argv[0]) {
        const char *b = strrchr(argv[0], '/');
        snprintf(m->stage_name, sizeof m->stage_name, "%s", b ? b + 1 : argv[0]);
        size_t len = 1;
        for (int i = 1; i < argc; i++) len += strlen(argv[i]) + 1;
        m->stage_args = calloc(1, len);
        if (m->stage_args)
            for (int i = 1; i < argc; i++) { if (i > 1) strcat(m->stage_args, " "); strcat(m->stage_args, argv[i]); }
    }
}
void proto_meta_destroy(struct proto_meta *m)
{
    if (!m) return;
    for (int i = 0; i < m->n; i++) free(m->item[i].s);
    free(m->stage_args);
    m->stage_args = NULL; m->n = 0;
}
static struct proto_meta_item *meta_item(struct proto_meta *m, const char *key)
{
    if (strlen(key) >= sizeof m->item[0].key) return NULL;
    for (int i = 0; i < m->n; i++)
        if (strcmp(m->item[i].key, key) == 0) { free(m->item[i].s); m->item[i].s = NULL; return &m->item[i]; }
    if (m->n >= (int)(sizeof m->item / sizeof m->item[0])) return NULL;
    struct proto_meta_item *it = &m->item[m->n++];
    memset(it, 0, sizeof *it);
    strcpy(it->key, key);
    return it;
}
int proto_meta_set_str(struct proto_meta *m, const char *key, const char *s)
{
    struct proto_meta_item *it = meta_item(m, key);
    if (!it) return PROTO_E_INVAL;
    it->type = PROTO_M_STR;
    return (it->s = strdup(s)) ? PROTO_OK : PROTO_E_NOMEM;
}
int proto_meta_set_uint(struct proto_meta *m, const char *key, uint64_t u)
{ struct proto_meta_item *it = meta_item(m, key); if (!it) return PROTO_E_INVAL; it->type = PROTO_M_UINT; it->u = u; return PROTO_OK; }
int proto_meta_set_int(struct proto_meta *m, const char *key, int64_t i)
{ struct proto_meta_item *it = meta_item(m, key); if (!it) return PROTO_E_INVAL; it->type = PROTO_M_INT; it->i = i; return PROTO_OK; }
int proto_meta_set_double(struct proto_meta *m, const char *key, double d)
{ struct proto_meta_item *it = meta_item(m, key); if (!it) return PROTO_E_INVAL; it->type = PROTO_M_DOUBLE; it->d = d; return PROTO_OK; }
int proto_meta_set_bool(struct proto_meta *m, const char *key, bool b)
{ struct proto_meta_item *it = meta_item(m, key); if (!it) return PROTO_E_INVAL; it->type = PROTO_M_BOOL; it->b = b; return PROTO_OK; }
int proto_meta_set_obj(struct proto_meta *m, const char *key, const msgpack_object *o)
{ struct proto_meta_item *it = meta_item(m, key); if (!it) return PROTO_E_INVAL; it->type = PROTO_M_OBJ; it->obj = *o; return PROTO_OK; }

static bool meta_overridden(const struct proto_meta *m, const msgpack_object *k)
{
    for (int i = 0; i < m->n; i++) if (key_is(k, m->item[i].key)) return true;
    return false;
}

int proto_meta_pack(const struct proto_meta *m, msgpack_packer *pk)
{
    const msgpack_object *stages = m->base ? map_get(m->base, "stages") : NULL;
    if (stages && stages->type != MSGPACK_OBJECT_ARRAY) stages = NULL;
    bool add_stage = m->stage_name[0] != 0;
    size_t n = (size_t)m->n;
    if (m->base)
        for (uint32_t i = 0; i < m->base->via.map.size; i++) {
            const msgpack_object *k = &m->base->via.map.ptr[i].key;
            if (!key_is(k, "stages") && !meta_overridden(m, k)) n++;
        }
    bool has_stages = add_stage || stages;
    msgpack_pack_map(pk, n + has_stages);
    if (m->base)
        for (uint32_t i = 0; i < m->base->via.map.size; i++) {
            const msgpack_object *k = &m->base->via.map.ptr[i].key;
            if (key_is(k, "stages") || meta_overridden(m, k)) continue;
            msgpack_pack_object(pk, *k);
            msgpack_pack_object(pk, m->base->via.map.ptr[i].val);
        }
    for (int i = 0; i < m->n; i++) {
        const struct proto_meta_item *it = &m->item[i];
        pack_str(pk, it->key);
        switch (it->type) {
        case PROTO_M_STR: pack_str(pk, it->s); break;
        case PROTO_M_UINT: msgpack_pack_uint64(pk, it->u); break;
        case PROTO_M_INT: msgpack_pack_int64(pk, it->i); break;
        case PROTO_M_DOUBLE: msgpack_pack_double(pk, it->d); break;
        case PROTO_M_BOOL: if (it->b) msgpack_pack_true(pk); else msgpack_pack_false(pk); break;
        case PROTO_M_NIL: msgpack_pack_nil(pk); break;
        case PROTO_M_OBJ: msgpack_pack_object(pk, it->obj); break;
        }
    }
    if (has_stages) {
        uint32_t ns = stages ? stages->via.array.size : 0;
        pack_str(pk, "stages");
        msgpack_pack_array(pk, ns + add_stage);
        for (uint32_t i = 0; i < ns; i++) msgpack_pack_object(pk, stages->via.array.ptr[i]);
        if (add_stage) {
            bool blas = proto_blas_settled();   /* a stage that computes with BLAS */
            msgpack_pack_map(pk, 3 + blas);
            pack_str(pk, "name"); pack_str(pk, m->stage_name);
            pack_str(pk, "version"); pack_str(pk, SAEFLOW_VERSION);
            pack_str(pk, "args"); pack_str(pk, m->stage_args ? m->stage_args : "");
            if (blas) { pack_str(pk, "blas"); pack_str(pk, proto_blas_kernel()); }   /* the kernel it computed with */
        }
    }
    return PROTO_OK;
}
