/* features.c - sf-reduce's per-feature drill-down (issue 16; proto/PROTOCOL.md §5 "features"):
 * what Neuronpedia shows for one feature, for two models side by side.
 *
 *   topk_*          every feature's K largest activations in one model, each with its token
 *                   window (W tokens each side, clipped to the row) and the feature's activation
 *                   on every window token. Fixed memory, allocated once: topk_bytes() =
 *                   d_sae * (8 + K * (16 + 8 * (2W + 1))) bytes per model (d_sae 65,536, K 8,
 *                   W 8: 80 MB per model); above DRILL_MAX_BYTES the run is refused.
 *   vocab_*         the token pieces of a tokenizer (SentencePiece tokenizer.model, read as the
 *                   protobuf it is, or HF tokenizer.json), for the report to decode ids
 *   features_block  doc["features"]: one card per shown feature, and --features-out FILE: one
 *                   JSON line per feature, through a temporary file renamed over FILE
 *
 * Hot path: one float compare per (token, feature) pair of the CSR; an insertion (rare once the
 * lists are full) copies 2W + 1 tokens and looks the feature up in each window token's CSR slice.
 */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "reduce.h"

/* ======================== top-k contexts ======================== */
uint64_t topk_bytes(uint64_t d_sae, uint64_t K, uint64_t W)
{
    return d_sae * (8 + K * (16 + 8 * (2 * W + 1)));
}

int topk_init(struct topk *t, uint32_t d_sae, uint32_t K, uint32_t W)
{
    memset(t, 0, sizeof *t);
    uint64_t need = topk_bytes(d_sae, K, W);
    if (need > DRILL_MAX_BYTES) {
        proto_set_detail("the drill-down needs %.0f MiB per model for d_sae %u, --top-k %u, --context %u "
                         "(d_sae x (8 + K x (16 + 8 x (2W + 1))) bytes), over the limit of %.0f MiB: lower "
                         "--top-k/--context, or --top-k 0", need / 1048576.0, d_sae, K, W, DRILL_MAX_BYTES / 1048576.0);
        return PROTO_E_INVAL;
    }
    t->d_sae = d_sae; t->K = K; t->W = W; t->span = 2 * W + 1;
    size_t nk = (size_t)d_sae * K, ns = nk * t->span;
    t->n = calloc(d_sae, sizeof *t->n);
    t->thr = calloc(d_sae, sizeof *t->thr);
    t->val = malloc(nk * sizeof *t->val);
    t->row = malloc(nk * sizeof *t->row);
    t->pos = malloc(nk * sizeof *t->pos);
    t->tok = malloc(ns * sizeof *t->tok);
    t->wact = malloc(ns * sizeof *t->wact);
    if (!t->n || !t->thr || !t->val || !t->row || !t->pos || !t->tok || !t->wact) { topk_destroy(t); return PROTO_E_NOMEM; }
    return PROTO_OK;
}

void topk_destroy(struct topk *t)
{
    free(t->n); free(t->thr); free(t->val); free(t->row); free(t->pos); free(t->tok); free(t->wact);
    memset(t, 0, sizeof *t);
}

/* feature j's value at token u of sp (0 when it did not fire there) */
static float csr_at(const struct proto_sparse *sp, uint64_t u, uint32_t j)
{
    for (uint32_t e = sp->indptr[u]; e < sp->indptr[u + 1]; e++)
        if (sp->index[e] == j) return isfinite(sp->value[e]) ? sp->value[e] : 0.0f;
    return 0.0f;
}

/* Inserts (v at token u = r * ctx + p of the frame) into feature j's list: after every kept
 * value >= v (the earlier token wins a tie), the last one dropped when the list is full. */
static void topk_insert(struct topk *t, uint32_t j, float v, const struct proto_sparse *sp, const int32_t *tok,
                        uint64_t ctx, uint64_t u, uint64_t row)
{
    const uint32_t K = t->K, S = t->span;
    size_t b = (size_t)j * K;
    uint32_t i = t->n[j] < K ? t->n[j]++ : K - 1;
    while (i > 0 && t->val[b + i - 1] < v) {   /* shift the smaller ones down one place */
        t->val[b + i] = t->val[b + i - 1]; t->row[b + i] = t->row[b + i - 1]; t->pos[b + i] = t->pos[b + i - 1];
        memcpy(t->tok + (b + i) * S, t->tok + (b + i - 1) * S, S * sizeof *t->tok);
        memcpy(t->wact + (b + i) * S, t->wact + (b + i - 1) * S, S * sizeof *t->wact);
        i--;
    }
    uint64_t p = u % ctx, r0 = u - p;
    t->val[b + i] = v; t->row[b + i] = row; t->pos[b + i] = (uint32_t)p;
    int32_t *wt = t->tok + (b + i) * S;   /* (S) */
    float *wa = t->wact + (b + i) * S;    /* (S) */
    for (uint32_t q = 0; q < S; q++) {
        long long pp = (long long)p + (long long)q - (long long)t->W;
        if (pp < 0 || pp >= (long long)ctx) { wt[q] = -1; wa[q] = 0; continue; }
        wt[q] = tok[r0 + (uint64_t)pp];
        wa[q] = (uint64_t)pp == p ? v : csr_at(sp, r0 + (uint64_t)pp, j);
    }
    if (t->n[j] == K) t->thr[j] = t->val[b + K - 1];
}

void topk_add(struct topk *t, const struct proto_sparse *sp, const int32_t *tok, uint64_t ctx, uint64_t row0)
{
    for (uint64_t u = 0; u < sp->n_tok; u++) {
        for (uint32_t e = sp->indptr[u]; e < sp->indptr[u + 1]; e++) {
            uint32_t j = sp->index[e];
            float v = sp->value[e];
            if (!(v > t->thr[j]) || !isfinite(v)) continue;   /* thr >= 0: only f > 0 is kept */
            topk_insert(t, j, v, sp, tok, ctx, u, row0 + u / ctx);
        }
    }
}

/* ======================== token pieces ======================== */
struct vocab { char **piece; uint64_t n; };   /* piece: (n), display text, owned */

static void vocab_free(struct vocab *vb)
{
    for (uint64_t i = 0; i < vb->n; i++) free(vb->piece[i]);
    free(vb->piece);
    memset(vb, 0, sizeof *vb);
}

/* Display text of a piece: "▁" is a space, a byte piece <0xNN> its byte (printable ASCII, tab,
 * newline), anything else as it is. */
static char *piece_text(const char *s, size_t len)
{
    char *o = malloc(len + 1), *w = o;
    if (!o) return NULL;
    unsigned by;
    if (len == 6 && sscanf(s, "<0x%2X>", &by) == 1 && (by == '\n' || by == '\t' || (by >= 32 && by < 127))) {
        o[0] = (char)by; o[1] = 0; return o;
    }
    for (size_t i = 0; i < len; i++) {
        if (i + 2 < len && (unsigned char)s[i] == 0xE2 && (unsigned char)s[i + 1] == 0x96 && (unsigned char)s[i + 2] == 0x81) {
            *w++ = ' '; i += 2;
        } else *w++ = s[i];
    }
    *w = 0;
    return o;
}

static int vocab_put(struct vocab *vb, uint64_t id, const char *s, size_t len)
{
    if (id >= (1u << 24)) return PROTO_OK;   /* not a vocabulary of this world */
    if (id >= vb->n) {
        char **g = realloc(vb->piece, (id + 1) * sizeof *g);
        if (!g) return PROTO_E_NOMEM;
        for (uint64_t i = vb->n; i <= id; i++) g[i] = NULL;
        vb->piece = g; vb->n = id + 1;
    }
    free(vb->piece[id]);
    return (vb->piece[id] = piece_text(s, len)) ? PROTO_OK : PROTO_E_NOMEM;
}

/* protobuf: a varint at *p (< e); false when cut */
static bool pb_varint(const unsigned char **p, const unsigned char *e, uint64_t *v)
{
    *v = 0;
    for (int sh = 0; *p < e && sh < 64; sh += 7) {
        unsigned char c = *(*p)++;
        *v |= (uint64_t)(c & 0x7f) << sh;
        if (!(c & 0x80)) return true;
    }
    return false;
}

/* skips one field of wire type wt; false when malformed */
static bool pb_skip(const unsigned char **p, const unsigned char *e, unsigned wt)
{
    uint64_t v;
    if (wt == 0) return pb_varint(p, e, &v);
    if (wt == 1 || wt == 5) { size_t n = wt == 1 ? 8 : 4; if ((size_t)(e - *p) < n) return false; *p += n; return true; }
    if (wt == 2) { if (!pb_varint(p, e, &v) || v > (uint64_t)(e - *p)) return false; *p += v; return true; }
    return false;
}

/* SentencePiece ModelProto: field 1 (repeated SentencePiece {1: piece, 2: score, 3: type}); the
 * piece's index is its id. */
static int vocab_spm(struct vocab *vb, const unsigned char *p, const unsigned char *e)
{
    uint64_t key, len, id = 0;
    int err;
    while (p < e) {
        if (!pb_varint(&p, e, &key)) return PROTO_E_FORMAT;
        if ((key >> 3) != 1 || (key & 7) != 2) { if (!pb_skip(&p, e, key & 7)) return PROTO_E_FORMAT; continue; }
        if (!pb_varint(&p, e, &len) || len > (uint64_t)(e - p)) return PROTO_E_FORMAT;
        const unsigned char *q = p, *qe = p + len;
        p = qe;
        while (q < qe) {
            uint64_t k2, l2;
            if (!pb_varint(&q, qe, &k2)) return PROTO_E_FORMAT;
            if ((k2 >> 3) == 1 && (k2 & 7) == 2) {
                if (!pb_varint(&q, qe, &l2) || l2 > (uint64_t)(qe - q)) return PROTO_E_FORMAT;
                if ((err = vocab_put(vb, id, (const char *)q, l2))) return err;
                q += l2;
            } else if (!pb_skip(&q, qe, k2 & 7)) return PROTO_E_FORMAT;
        }
        id++;
    }
    return vb->n ? PROTO_OK : PROTO_E_FORMAT;
}

/* HF tokenizer.json: model.vocab {piece: id} and added_tokens [{id, content}] */
static int vocab_hf(struct vocab *vb, const char *txt)
{
    cJSON *j = cJSON_Parse(txt), *e;
    int err = j ? PROTO_OK : PROTO_E_FORMAT;
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "model"), "vocab"))
        if (!err && cJSON_IsNumber(e) && e->valuedouble >= 0) err = vocab_put(vb, (uint64_t)e->valuedouble, e->string, strlen(e->string));
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "added_tokens")) {
        const cJSON *id = cJSON_GetObjectItemCaseSensitive(e, "id"), *c = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!err && cJSON_IsNumber(id) && id->valuedouble >= 0 && cJSON_IsString(c))
            err = vocab_put(vb, (uint64_t)id->valuedouble, c->valuestring, strlen(c->valuestring));
    }
    cJSON_Delete(j);
    return err ? err : vb->n ? PROTO_OK : PROTO_E_FORMAT;
}

/* path: a tokenizer.model / tokenizer.json file, or a directory holding one (tokenizer.model
 * first). *used gets the file read ("" when a directory has neither: no pieces, not an error). */
static int vocab_load(struct vocab *vb, const char *path, char *used, size_t cap)
{
    struct stat st;
    char *buf = NULL;
    size_t len;
    used[0] = 0;
    if (stat(path, &st) == 0 && S_ISDIR(st.st_mode)) {
        snprintf(used, cap, "%s/tokenizer.model", path);
        if (access(used, R_OK) != 0) snprintf(used, cap, "%s/tokenizer.json", path);
        if (access(used, R_OK) != 0) { used[0] = 0; return PROTO_OK; }
    } else snprintf(used, cap, "%s", path);
    int err = proto_read_file(used, &buf, &len);
    if (err) { proto_set_detail("%s: cannot read the tokenizer", used); return err; }
    size_t n = strlen(used);
    if (n >= 5 && strcmp(used + n - 5, ".json") == 0) err = vocab_hf(vb, buf);
    else err = vocab_spm(vb, (const unsigned char *)buf, (const unsigned char *)buf + len);
    if (err) proto_set_detail("%s: not a SentencePiece model or HF tokenizer.json", used);
    free(buf);
    return err;
}
