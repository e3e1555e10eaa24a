/* features.c - sf-reduce's per-feature drill-down (issue 16; proto/PROTOCOL.md §5 "features"):
 * what Neuronpedia shows for one feature, for two models side by side.
 *
 *   topk_*          every feature's K largest activations in one model, each with its token
 *                   window (W tokens each side, clipped to the row) and the feature's activation
 *                   on every window token. Fixed memory, allocated once: topk_bytes() =
 *                   d_sae * (8 + K * (17 + 8 * (2W + 1))) bytes per model (d_sae 65,536, K 8,
 *                   W 8: 77 MiB per model); above DRILL_MAX_BYTES the run is refused.
 *   vocab_*         the token pieces of a tokenizer (SentencePiece tokenizer.model, read as the
 *                   protobuf it is, or HF tokenizer.json), for the report to decode ids
 *   features_block  doc["features"]: one card per shown feature, and --features-out FILE: one
 *                   JSON line per feature, through a temporary file renamed over FILE
 *   topk_partial/_from  a --shard run's contexts in its partial block, and --merge ranking the
 *                   parts' examples (rows of later parts after earlier ones: one pass's result)
 *
 * Hot path: one float compare per (token, feature) pair of the CSR; an insertion (rare once the
 * lists are full) copies 2W + 1 tokens and looks the feature up in each window token's CSR slice.
 */
#include <errno.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <sys/stat.h>
#include "reduce.h"
#include "json.h"

/* ======================== top-k contexts ======================== */
uint64_t topk_bytes(uint64_t d_sae, uint64_t K, uint64_t W)
{
    return d_sae * (8 + K * (17 + 8 * (2 * W + 1)));
}

int topk_init(struct topk *t, uint32_t d_sae, uint32_t K, uint32_t W)
{
    memset(t, 0, sizeof *t);
    uint64_t need = topk_bytes(d_sae, K, W);
    if (need > DRILL_MAX_BYTES) {
        proto_set_detail("the drill-down needs %.0f MiB per model for d_sae %u, --top-k %u, --context %u "
                         "(d_sae x (8 + K x (17 + 8 x (2W + 1))) bytes), over the limit of %.0f MiB: lower "
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
    t->slot = malloc(nk * sizeof *t->slot);
    t->tok = malloc(ns * sizeof *t->tok);
    t->wact = malloc(ns * sizeof *t->wact);
    if (!t->n || !t->thr || !t->val || !t->row || !t->pos || !t->slot || !t->tok || !t->wact) { topk_destroy(t); return PROTO_E_NOMEM; }
    return PROTO_OK;
}

void topk_destroy(struct topk *t)
{
    free(t->n); free(t->thr); free(t->val); free(t->row); free(t->pos); free(t->slot); free(t->tok); free(t->wact); free(t->pairs);
    memset(t, 0, sizeof *t);
}

/* feature j's value at token u of sp (0 when it did not fire there); sorted: every token's
 * indices ascend (sf-encode writes them so), a binary search, else a scan */
static float csr_at(const struct proto_sparse *sp, uint64_t u, uint32_t j, bool sorted)
{
    uint32_t lo = sp->indptr[u], hi = sp->indptr[u + 1];
    if (sorted) {
        while (lo < hi) { uint32_t mid = lo + (hi - lo) / 2; if (sp->index[mid] < j) lo = mid + 1; else hi = mid; }
        hi = lo < sp->indptr[u + 1] ? lo + 1 : lo;
    }
    for (uint32_t e = lo; e < hi; e++)
        if (sp->index[e] == j) return isfinite(sp->value[e]) ? sp->value[e] : 0.0f;
    return 0.0f;
}

/* true when every token's indices ascend */
static bool csr_sorted(const struct proto_sparse *sp)
{
    for (uint64_t u = 0; u < sp->n_tok; u++)
        for (uint32_t e = sp->indptr[u] + 1; e < sp->indptr[u + 1]; e++)
            if (sp->index[e] <= sp->index[e - 1]) return false;
    return true;
}

struct pair { uint32_t j; float v; };   /* one CSR entry */
static int cmp_pair(const void *a, const void *b)
{
    uint32_t x = ((const struct pair *)a)->j, y = ((const struct pair *)b)->j;
    return (x > y) - (x < y);
}

/* The window lookups of an unsorted frame use a copy of its CSR sorted per token (t->pairs). */
static const struct pair *sorted_copy(struct topk *t, const struct proto_sparse *sp)
{
    if (sp->nnz > t->cap) {
        void *g = realloc(t->pairs, sp->nnz * sizeof(struct pair));
        if (!g) return NULL;
        t->pairs = g; t->cap = sp->nnz;
    }
    struct pair *p = t->pairs;   /* (nnz) */
    for (uint64_t e = 0; e < sp->nnz; e++) { p[e].j = sp->index[e]; p[e].v = sp->value[e]; }
    for (uint64_t u = 0; u < sp->n_tok; u++) qsort(p + sp->indptr[u], sp->indptr[u + 1] - sp->indptr[u], sizeof *p, cmp_pair);
    return p;
}

/* one token's slice of feature j in the sorted pairs (0 when absent) */
static float pair_at(const struct proto_sparse *sp, const struct pair *p, uint64_t u, uint32_t j)
{
    uint32_t lo = sp->indptr[u], hi = sp->indptr[u + 1];
    while (lo < hi) { uint32_t mid = lo + (hi - lo) / 2; if (p[mid].j < j) lo = mid + 1; else hi = mid; }
    return lo < sp->indptr[u + 1] && p[lo].j == j && isfinite(p[lo].v) ? p[lo].v : 0.0f;
}

/* Inserts (v at token u = r * ctx + p of the frame) into feature j's list: after every kept
 * value >= v (the earlier token wins a tie), the last one dropped when the list is full. */
static void topk_insert(struct topk *t, uint32_t j, float v, const struct proto_sparse *sp, bool sorted,
                        const int32_t *tok, uint64_t ctx, uint64_t u, uint64_t row)
{
    const uint32_t K = t->K, S = t->span;
    size_t b = (size_t)j * K;
    uint32_t i;
    uint8_t sl;   /* the window slot: a fresh one while filling (slots 0..n-1 are taken), else the dropped one's */
    if (t->n[j] < K) { i = t->n[j]; sl = (uint8_t)i; t->n[j]++; }
    else { i = K - 1; sl = t->slot[b + K - 1]; }
    while (i > 0 && t->val[b + i - 1] < v) {   /* shift the smaller ones down one place (windows stay) */
        t->val[b + i] = t->val[b + i - 1]; t->row[b + i] = t->row[b + i - 1]; t->pos[b + i] = t->pos[b + i - 1];
        t->slot[b + i] = t->slot[b + i - 1];
        i--;
    }
    uint64_t p = u % ctx, r0 = u - p;
    t->val[b + i] = v; t->row[b + i] = row; t->pos[b + i] = (uint32_t)p; t->slot[b + i] = sl;
    int32_t *wt = t->tok + (b + sl) * S;   /* (S) */
    float *wa = t->wact + (b + sl) * S;    /* (S) */
    for (uint32_t q = 0; q < S; q++) {
        long long pp = (long long)p + (long long)q - (long long)t->W;
        if (pp < 0 || pp >= (long long)ctx) { wt[q] = -1; wa[q] = 0; continue; }
        wt[q] = tok[r0 + (uint64_t)pp];
        wa[q] = (uint64_t)pp == p ? v : t->sp_pairs ? pair_at(sp, t->sp_pairs, r0 + (uint64_t)pp, j)
                                                   : csr_at(sp, r0 + (uint64_t)pp, j, sorted);
    }
    if (t->n[j] == K) t->thr[j] = t->val[b + K - 1];
}

void topk_add(struct topk *t, const struct proto_sparse *sp, const int32_t *tok, uint64_t ctx, uint64_t row0)
{
    bool sorted = csr_sorted(sp);
    t->sp_pairs = sorted ? NULL : sorted_copy(t, sp);   /* NULL also when out of memory: scans then */
    for (uint64_t u = 0; u < sp->n_tok; u++) {
        for (uint32_t e = sp->indptr[u]; e < sp->indptr[u + 1]; e++) {
            uint32_t j = sp->index[e];
            float v = sp->value[e];
            if (!(v > t->thr[j]) || !isfinite(v)) continue;   /* thr >= 0: only f > 0 is kept */
            topk_insert(t, j, v, sp, sorted, tok, ctx, u, row0 + u / ctx);
        }
    }
}

/* ======================== token pieces ======================== */
struct vocab { char **piece; uint64_t n; };   /* piece: (n), display text, owned */
#define VOCAB_MAX (1u << 24)                     /* larger ids are not shown (none is that large) */

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
    if (id >= VOCAB_MAX) return PROTO_OK;   /* not a vocabulary of this world */
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
    /* ids are checked to be in [0, VOCAB_MAX) before the cast (a double out of range is UB to
     * convert; hf-bpe.c's loader fell into that once); others are skipped, as vocab_put does */
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(j, "model"), "vocab"))
        if (!err && cJSON_IsNumber(e) && e->valuedouble >= 0 && e->valuedouble < VOCAB_MAX)
            err = vocab_put(vb, (uint64_t)e->valuedouble, e->string, strlen(e->string));
    cJSON_ArrayForEach(e, cJSON_GetObjectItemCaseSensitive(j, "added_tokens")) {
        long long id;
        const cJSON *c = cJSON_GetObjectItemCaseSensitive(e, "content");
        if (!err && proto_json_int(e, "id", 0, VOCAB_MAX - 1, &id) == 1 && cJSON_IsString(c))
            err = vocab_put(vb, (uint64_t)id, c->valuestring, strlen(c->valuestring));
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
    int err = proto_read_file(used, &buf, &len);   /* the detail names the file */
    if (err) return err;
    size_t n = strlen(used);
    if (n >= 5 && strcmp(used + n - 5, ".json") == 0) err = vocab_hf(vb, buf);
    else err = vocab_spm(vb, (const unsigned char *)buf, (const unsigned char *)buf + len);
    if (err) proto_set_detail("%s: not a SentencePiece model or HF tokenizer.json", used);
    free(buf);
    return err;
}

/* ======================== the shown features ======================== */
enum { R_BEST = 1, R_WORST = 2, R_DEADB = 4, R_DEADF = 8, R_ASKED = 16 };
static const char *const ROLE_NAMES[] = {"best", "worst", "dead_only_base", "dead_only_finetune", "asked"};
struct shown { uint32_t id; unsigned roles; };
struct ranked { double v; uint32_t id; };

static void shown_add(struct shown *s, size_t *n, uint32_t id, unsigned role)
{
    for (size_t i = 0; i < *n; i++) if (s[i].id == id) { s[i].roles |= role; return; }
    s[*n].id = id; s[*n].roles = role; (*n)++;
}

/* descending value, ties to the lower id */
static int cmp_ranked(const void *a, const void *b)
{
    const struct ranked *x = a, *y = b;
    if (x->v != y->v) return x->v < y->v ? 1 : -1;
    return (x->id > y->id) - (x->id < y->id);
}

/* The set's features ranked by key (d_sae; NaN left out), into r (n): how many were ranked. */
static size_t rank_set(const uint32_t *set, size_t n, const double *key, struct ranked *r)
{
    size_t k = 0;
    for (size_t i = 0; i < n; i++) if (!isnan(key[set[i]])) { r[k].v = key[set[i]]; r[k].id = set[i]; k++; }
    qsort(r, k, sizeof *r, cmp_ranked);
    return k;
}

/* The features the report shows, in order: best and worst regular features by activation
 * similarity (o->cards each), the o->cards most active of each exclusively dead set (by their
 * largest activation in the live model), then --features. s: (4 * cards + MAX_ASKED). */
static int shown_pick(const struct acc *a, const struct opts *o, const struct fsel *fs, struct shown *s, size_t *n)
{
    const uint32_t D = a->m[0].d_sae;
    size_t C = (size_t)o->cards, cap = fs->nreg > fs->ndeadb ? fs->nreg : fs->ndeadb;
    if (fs->ndeadf > cap) cap = fs->ndeadf;
    struct ranked *r = malloc((cap ? cap : 1) * sizeof *r);   /* (cap) */
    double *key = malloc((size_t)D * sizeof *key);             /* (D) */
    if (!r || !key) { free(r); free(key); return PROTO_E_NOMEM; }
    *n = 0;
    if (fs->asim) {
        size_t k = rank_set(fs->reg, fs->nreg, fs->asim, r);
        for (size_t i = 0; i < C && i < k; i++) shown_add(s, n, r[i].id, R_BEST);
        for (size_t i = 0; i < C && i < k; i++) shown_add(s, n, r[k - 1 - i].id, R_WORST);
        for (int d = 0; d < 2; d++) {   /* dead in base: rank by the finetune's max, and vice versa */
            const struct modelacc *live = &a->m[d ? 0 : 1];
            for (uint32_t j = 0; j < D; j++) key[j] = live->amax[j] > 0 ? live->amax[j] : 0;
            k = rank_set(d ? fs->deadf : fs->deadb, d ? fs->ndeadf : fs->ndeadb, key, r);
            for (size_t i = 0; i < C && i < k; i++) shown_add(s, n, r[i].id, d ? R_DEADF : R_DEADB);
        }
    }
    for (int i = 0; i < o->n_asked; i++) {
        if (o->asked[i] >= D) {
            proto_set_detail("--features: feature %u, the streams' d_sae is %u", o->asked[i], D);
            free(r); free(key); return PROTO_E_INVAL;
        }
        shown_add(s, n, o->asked[i], R_ASKED);
    }
    free(r); free(key);
    return PROTO_OK;
}

/* ======================== JSON of one feature ======================== */
/* Logit figures of the features computed (n features; per model top/bottom (n, N) ids, values). */
struct logits {
    size_t n; uint32_t N;
    double *sim;                       /* (n) logit similarity */
    uint32_t *tid[2], *bid[2];         /* (n, N) per model */
    float *tv[2], *bv[2];              /* (n, N) per model */
};

static void logits_free(struct logits *l)
{
    free(l->sim);
    for (int m = 0; m < 2; m++) { free(l->tid[m]); free(l->bid[m]); free(l->tv[m]); free(l->bv[m]); }
    memset(l, 0, sizeof *l);
}

/* The logit figures of features idx (n) into l; nmod models (1 or 2; the similarity needs 2). */
static int logits_compute(const struct ckpts *ck, int nmod, const uint32_t *idx, size_t n, uint32_t D, uint32_t N, struct logits *l)
{
    int err = PROTO_OK;
    size_t nn = (n ? n : 1) * N;
    memset(l, 0, sizeof *l);
    if (N > ck->ub.V) N = (uint32_t)ck->ub.V;
    l->n = n; l->N = N;
    if (!(l->sim = malloc((n ? n : 1) * sizeof *l->sim))) return PROTO_E_NOMEM;
    if (nmod == 2 && (err = logit_similarity(ck, idx, n, D, l->sim))) return err;
    for (int m = 0; m < nmod && N; m++) {
        l->tid[m] = malloc(nn * 4); l->bid[m] = malloc(nn * 4); l->tv[m] = malloc(nn * 4); l->bv[m] = malloc(nn * 4);
        if (!l->tid[m] || !l->bid[m] || !l->tv[m] || !l->bv[m]) return PROTO_E_NOMEM;
        if ((err = logit_extremes(ck, m, idx, n, D, N, l->tid[m], l->tv[m], l->bid[m], l->bv[m]))) return err;
    }
    return PROTO_OK;
}

static cJSON *ids_values(const uint32_t *id, const float *v, uint32_t N)
{
    cJSON *o = cJSON_CreateObject(), *ia = cJSON_AddArrayToObject(o, "ids"), *va = cJSON_AddArrayToObject(o, "values");
    for (uint32_t k = 0; k < N; k++) { cJSON_AddItemToArray(ia, cJSON_CreateNumber(id[k])); cJSON_AddItemToArray(va, cJSON_CreateNumber(v[k])); }
    return o;
}

/* the contexts of feature j: [{row, pos, value, tokens, acts, at}], windows clipped to the row */
static cJSON *contexts_json(const struct topk *t, uint32_t j)
{
    cJSON *arr = cJSON_CreateArray();
    for (uint32_t k = 0; t->d_sae && k < t->n[j]; k++) {
        size_t e = (size_t)j * t->K + k;
        size_t w = (size_t)j * t->K + t->slot[e];   /* the example's window slot */
        const int32_t *wt = t->tok + w * t->span;   /* (span) */
        const float *wa = t->wact + w * t->span;    /* (span) */
        cJSON *c = cJSON_CreateObject(), *ta, *aa;
        cJSON_AddNumberToObject(c, "row", (double)t->row[e]);
        cJSON_AddNumberToObject(c, "pos", t->pos[e]);
        cJSON_AddNumberToObject(c, "value", t->val[e]);
        ta = cJSON_AddArrayToObject(c, "tokens"); aa = cJSON_AddArrayToObject(c, "acts");
        int at = 0, q0 = -1;
        for (uint32_t q = 0; q < t->span; q++) {
            if (wt[q] < 0) continue;
            if (q0 < 0) q0 = (int)q;
            if (q == t->W) at = (int)q - q0;
            cJSON_AddItemToArray(ta, cJSON_CreateNumber(wt[q]));
            cJSON_AddItemToArray(aa, cJSON_CreateNumber(wa[q]));
        }
        cJSON_AddNumberToObject(c, "at", at);
        cJSON_AddItemToArray(arr, c);
    }
    return arr;
}

/* {log_density, max_act, contexts[, top_logits, bottom_logits]} of feature j in model mi;
 * li: j's row in l (SIZE_MAX: none) */
static cJSON *model_json(const struct modelacc *m, uint32_t j, int mi, const struct logits *l, size_t li)
{
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "log_density", log10((double)m->fire[j] / (double)m->f_tok + DENS_EPS));
    cJSON_AddNumberToObject(o, "max_act", m->nz[j] ? m->amax[j] : 0.0);
    cJSON_AddItemToObject(o, "contexts", contexts_json(&m->tk, j));
    if (l && li != SIZE_MAX && l->tid[mi]) {
        size_t b = li * l->N;
        cJSON_AddItemToObject(o, "top_logits", ids_values(l->tid[mi] + b, l->tv[mi] + b, l->N));
        cJSON_AddItemToObject(o, "bottom_logits", ids_values(l->bid[mi] + b, l->bv[mi] + b, l->N));
    }
    return o;
}

/* The object of feature j (paired: both models, act-sim, logit-sim). */
static cJSON *feature_json(const struct acc *a, const struct fsel *fs, uint32_t j, const struct logits *l, size_t li)
{
    static const char *const names[2] = {"base", "finetune"};
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "id", j);
    if (!a->paired) { cJSON_AddItemToObject(o, "model", model_json(&a->m[0], j, 0, l, li)); return o; }
    cJSON_AddNumberToObject(o, "activation_similarity", fs->asim ? fs->asim[j] : NAN);
    cJSON_AddNumberToObject(o, "logit_similarity", l && li != SIZE_MAX && l->sim ? l->sim[li] : NAN);
    for (int m = 0; m < 2; m++) cJSON_AddItemToObject(o, names[m], model_json(&a->m[m], j, m, l, li));
    return o;
}

/* ======================== token pieces of the shown features ======================== */
/* marks in seen (V) every id of a "tokens" or "ids" array below j */
static void mark_ids(const cJSON *j, uint8_t *seen, uint64_t V)
{
    const cJSON *c;
    cJSON_ArrayForEach(c, j) {
        bool ids = c->string && (strcmp(c->string, "tokens") == 0 || strcmp(c->string, "ids") == 0) && cJSON_IsArray(c);
        if (!ids) { if (cJSON_IsObject(c) || cJSON_IsArray(c)) mark_ids(c, seen, V); continue; }
        const cJSON *e;
        cJSON_ArrayForEach(e, c) if (cJSON_IsNumber(e) && e->valuedouble >= 0 && e->valuedouble < (double)V) seen[(uint64_t)e->valuedouble] = 1;
    }
}

/* fb["pieces"] = {"ID": text} for every token id the cards use, fb["tokenizer"] the file; from
 * --tokenizer, else the base checkpoint's directory (no tokenizer there: no pieces). */
static int pieces_json(const struct opts *o, cJSON *fb)
{
    const char *path = o->tokenizer ? o->tokenizer : o->base_model;
    struct vocab vb = {0};
    char used[4096];
    if (!path) return PROTO_OK;
    int err = vocab_load(&vb, path, used, sizeof used);
    if (err || !vb.n) return err;
    uint8_t *seen = calloc(vb.n, 1);   /* (V) */
    if (!seen) { vocab_free(&vb); return PROTO_E_NOMEM; }
    mark_ids(cJSON_GetObjectItemCaseSensitive(fb, "cards"), seen, vb.n);
    cJSON_AddStringToObject(fb, "tokenizer", used);
    cJSON *p = cJSON_AddObjectToObject(fb, "pieces");
    for (uint64_t i = 0; i < vb.n; i++) {
        if (!seen[i] || !vb.piece[i]) continue;
        char k[24];
        snprintf(k, sizeof k, "%llu", (unsigned long long)i);
        cJSON_AddStringToObject(p, k, vb.piece[i]);
    }
    free(seen); vocab_free(&vb);
    return PROTO_OK;
}

/* ======================== features.jsonl ======================== */
#define JSONL_BLOCK 256   /* features whose logit figures are computed at once (--all-logits) */

static int put_line(FILE *fp, cJSON *o)
{
    char *txt = cJSON_PrintUnformatted(o);
    int err = txt && fputs(txt, fp) >= 0 && fputc('\n', fp) != EOF ? PROTO_OK : txt ? PROTO_E_IO : PROTO_E_NOMEM;
    cJSON_free(txt); cJSON_Delete(o);
    return err;
}

/* Every feature's line, in id order. Logit figures: --all-logits computes them block by block,
 * else the shown features' (l, map: (D) feature -> row of l, SIZE_MAX) are used. */
static int jsonl_lines(FILE *fp, const struct acc *a, const struct opts *o, const struct ckpts *ck, const struct fsel *fs,
                       const struct logits *l, const size_t *map, bool logit_on)
{
    const uint32_t D = a->m[0].d_sae;
    uint32_t idx[JSONL_BLOCK];
    int err = PROTO_OK;
    for (uint32_t j0 = 0; !err && j0 < D; j0 += JSONL_BLOCK) {
        uint32_t nb = D - j0 < JSONL_BLOCK ? D - j0 : JSONL_BLOCK;
        struct logits lb = {0};
        bool blk = logit_on && o->all_logits;
        for (uint32_t i = 0; i < nb; i++) idx[i] = j0 + i;
        if (blk && (err = logits_compute(ck, 2, idx, nb, D, (uint32_t)o->logit_n, &lb))) { logits_free(&lb); break; }
        for (uint32_t i = 0; !err && i < nb; i++) {
            uint32_t j = j0 + i;
            err = put_line(fp, blk ? feature_json(a, fs, j, &lb, i) : feature_json(a, fs, j, l, map[j]));
        }
        logits_free(&lb);
    }
    return err;
}

/* --features-out FILE: a temporary file in FILE's folder, renamed over FILE when whole. */
static int features_jsonl(const struct acc *a, const struct opts *o, const struct ckpts *ck, const struct fsel *fs,
                          const struct shown *s, size_t n, const struct logits *l, bool logit_on)
{
    const uint32_t D = a->m[0].d_sae;
    char tmp[4200];
    bool anon;
    size_t *map = malloc((size_t)D * sizeof *map);   /* (D) feature -> its row of l */
    if (!map) return PROTO_E_NOMEM;
    for (uint32_t j = 0; j < D; j++) map[j] = SIZE_MAX;
    for (size_t i = 0; logit_on && i < n; i++) map[s[i].id] = i;
    int fd = proto_tmp_open(o->features_out, tmp, sizeof tmp, &anon), err;
    if (fd < 0) { free(map); return fd; }
    FILE *fp = fdopen(fd, "w");
    if (!fp) { close(fd); proto_tmp_finish(-1, anon, tmp, sizeof tmp, o->features_out, false); free(map); return PROTO_E_IO; }
    err = jsonl_lines(fp, a, o, ck, fs, l, map, logit_on);
    if (fflush(fp) != 0 && !err) { err = PROTO_E_IO; proto_set_detail("%s: %s", o->features_out, strerror(errno)); }
    int e2 = proto_tmp_finish(fd, anon, tmp, sizeof tmp, o->features_out, !err);
    fclose(fp);
    free(map);
    return err ? err : e2;
}

/* ======================== the block ======================== */
static cJSON *cards_json(const struct acc *a, const struct opts *o, const struct fsel *fs, const struct shown *s, size_t n,
                         const struct logits *l)
{
    cJSON *fb = cJSON_CreateObject(), *cards;
    const struct topk *t = &a->m[0].tk;   /* contexts kept (not with --top-k 0, nor by a merge of unsharded parts) */
    cJSON_AddNumberToObject(fb, "top_k", t->d_sae ? t->K : 0);
    cJSON_AddNumberToObject(fb, "context", t->d_sae ? t->W : 0);
    cJSON_AddNumberToObject(fb, "logit_tokens", l && l->tid[0] ? l->N : 0);
    cJSON_AddNumberToObject(fb, "cards_per_set", (double)o->cards);
    cards = cJSON_AddArrayToObject(fb, "cards");
    for (size_t i = 0; i < n; i++) {
        cJSON *c = feature_json(a, fs, s[i].id, l, l && l->sim ? i : SIZE_MAX), *r = cJSON_CreateArray();
        for (int b = 0; b < 5; b++) if (s[i].roles & (1u << b)) cJSON_AddItemToArray(r, cJSON_CreateString(ROLE_NAMES[b]));
        cJSON_AddItemToObject(c, "roles", r);
        cJSON_AddItemToArray(cards, c);
    }
    return fb;
}

int features_block(const struct acc *a, const struct opts *o, const struct ckpts *ck, const struct fsel *fs, cJSON *doc)
{
    const struct modelacc *m0 = &a->m[0];
    if (!m0->has_feats || !m0->f_tok || (a->paired && (!a->m[1].has_feats || a->m[1].d_sae != m0->d_sae))) return PROTO_OK;
    struct shown *s = malloc((4 * (size_t)o->cards + MAX_ASKED) * sizeof *s);   /* (4 cards + MAX_ASKED) */
    uint32_t *ids = NULL;
    struct logits l = {0};
    size_t n = 0;
    bool logit_on = a->paired && ck && ck->on && ck->has_sae;
    int err = s ? shown_pick(a, o, fs, s, &n) : PROTO_E_NOMEM;
    if (!err && !(ids = malloc((n ? n : 1) * sizeof *ids))) err = PROTO_E_NOMEM;
    for (size_t i = 0; !err && i < n; i++) ids[i] = s[i].id;
    if (!err && logit_on) err = logits_compute(ck, 2, ids, n, m0->d_sae, (uint32_t)o->logit_n, &l);
    if (!err && n) {
        cJSON *fb = cards_json(a, o, fs, s, n, logit_on ? &l : NULL);
        cJSON_AddItemToObject(doc, "features", fb);
        err = pieces_json(o, fb);
    }
    if (!err && o->features_out) err = features_jsonl(a, o, ck, fs, s, n, logit_on ? &l : NULL, logit_on);
    logits_free(&l); free(ids); free(s);
    return err;
}

/* ======================== top-k contexts in the partial block (shards) ======================== */
/* partial.MODEL.topk = {"K", "W", "rows", "n": [d_sae], "value", "row", "pos": [E], "tokens",
 * "acts": [E x (2W + 1)]}, E = Σ n, the examples feature by feature in rank order. Written for
 * --shard runs only (d_sae 65,536, K 8, W 8: about 100 MB of JSON per model). */
cJSON *topk_partial(const struct modelacc *m)
{
    const struct topk *t = &m->tk;
    cJSON *o = cJSON_CreateObject();
    cJSON_AddNumberToObject(o, "K", t->K);
    cJSON_AddNumberToObject(o, "W", t->W);
    cJSON_AddNumberToObject(o, "rows", (double)m->tk_rows);
    cJSON *n = cJSON_AddArrayToObject(o, "n"), *va = cJSON_AddArrayToObject(o, "value"), *ro = cJSON_AddArrayToObject(o, "row");
    cJSON *po = cJSON_AddArrayToObject(o, "pos"), *tk = cJSON_AddArrayToObject(o, "tokens"), *ac = cJSON_AddArrayToObject(o, "acts");
    for (uint32_t j = 0; j < t->d_sae; j++) {
        cJSON_AddItemToArray(n, cJSON_CreateNumber(t->n[j]));
        for (uint32_t k = 0; k < t->n[j]; k++) {
            size_t e = (size_t)j * t->K + k, w = ((size_t)j * t->K + t->slot[e]) * t->span;
            cJSON_AddItemToArray(va, cJSON_CreateNumber(t->val[e]));
            cJSON_AddItemToArray(ro, cJSON_CreateNumber((double)t->row[e]));
            cJSON_AddItemToArray(po, cJSON_CreateNumber(t->pos[e]));
            for (uint32_t q = 0; q < t->span; q++) {
                cJSON_AddItemToArray(tk, cJSON_CreateNumber(t->tok[w + q]));
                cJSON_AddItemToArray(ac, cJSON_CreateNumber(t->wact[w + q]));
            }
        }
    }
    return o;
}

/* Adds one example kept by a part (its rows after every earlier part's: the rank rule of
 * topk_insert then gives what one pass gives). tok, act: (span). */
static void topk_put(struct topk *t, uint32_t j, float v, uint64_t row, uint32_t pos, const int32_t *tok, const float *act)
{
    const uint32_t K = t->K;
    size_t b = (size_t)j * K;
    if (t->n[j] == K && !(v > t->thr[j])) return;
    uint32_t i;
    uint8_t sl;
    if (t->n[j] < K) { i = t->n[j]; sl = (uint8_t)i; t->n[j]++; }
    else { i = K - 1; sl = t->slot[b + K - 1]; }
    for (; i > 0 && t->val[b + i - 1] < v; i--) {
        t->val[b + i] = t->val[b + i - 1]; t->row[b + i] = t->row[b + i - 1]; t->pos[b + i] = t->pos[b + i - 1];
        t->slot[b + i] = t->slot[b + i - 1];
    }
    t->val[b + i] = v; t->row[b + i] = row; t->pos[b + i] = pos; t->slot[b + i] = sl;
    memcpy(t->tok + (b + sl) * t->span, tok, t->span * sizeof *tok);
    memcpy(t->wact + (b + sl) * t->span, act, t->span * sizeof *act);
    if (t->n[j] == K) t->thr[j] = t->val[b + K - 1];
}

static int topk_bad(const char *what)
{
    proto_set_detail("partial: topk: %s", what);
    return PROTO_E_FORMAT;
}

/* --merge: one part's partial.MODEL.topk into m (after its feats: m->d_sae is known). */
int topk_from(struct modelacc *m, const cJSON *o)
{
    double K = -1, W = -1, rows = -1;
    proto_json_num(o, "K", &K); proto_json_num(o, "W", &W); proto_json_num(o, "rows", &rows);
    if (!(K >= 1 && K <= TOPK_MAX && W >= 0 && W <= CTXW_MAX && rows >= 0) || K != floor(K) || W != floor(W)) return topk_bad("K, W or rows");
    if (!m->has_feats) return topk_bad("no feats block before it");
    int err;
    if (!m->tk.d_sae && (err = topk_init(&m->tk, m->d_sae, (uint32_t)K, (uint32_t)W))) return err;
    struct topk *t = &m->tk;
    if (t->K != (uint32_t)K || t->W != (uint32_t)W) { proto_set_detail("partial: topk K %g W %g, earlier parts had %u %u", K, W, t->K, t->W); return PROTO_E_MISMATCH; }
    const cJSON *n = proto_json_get(o, "n"), *va = proto_json_get(o, "value"), *ro = proto_json_get(o, "row"), *po = proto_json_get(o, "pos");
    const cJSON *tk = proto_json_get(o, "tokens"), *ac = proto_json_get(o, "acts");
    if (cJSON_GetArraySize(n) != (int)t->d_sae) return topk_bad("n is not d_sae long");
    int32_t *wt = malloc(t->span * sizeof *wt);   /* (span) */
    float *wa = malloc(t->span * sizeof *wa);      /* (span) */
    if (!wt || !wa) { free(wt); free(wa); return PROTO_E_NOMEM; }
    const cJSON *cn = n->child, *cv = va ? va->child : NULL, *cr = ro ? ro->child : NULL, *cp = po ? po->child : NULL;
    const cJSON *ct = tk ? tk->child : NULL, *ca = ac ? ac->child : NULL;
    err = PROTO_OK;
    for (uint32_t j = 0; !err && j < t->d_sae; j++, cn = cn->next) {
        double c = cJSON_IsNumber(cn) ? cn->valuedouble : -1;
        if (!(c >= 0 && c <= t->K)) { err = topk_bad("n out of range"); break; }
        for (int k = 0; !err && k < (int)c; k++) {
            if (!cJSON_IsNumber(cv) || !cJSON_IsNumber(cr) || !cJSON_IsNumber(cp)) { err = topk_bad("value/row/pos too short"); break; }
            for (uint32_t q = 0; q < t->span; q++, ct = ct->next, ca = ca->next)
                if (!cJSON_IsNumber(ct) || !cJSON_IsNumber(ca)) { err = topk_bad("tokens/acts too short"); break; }
                else { wt[q] = (int32_t)ct->valuedouble; wa[q] = (float)ca->valuedouble; }
            if (!err) topk_put(t, j, (float)cv->valuedouble, (uint64_t)cr->valuedouble + m->tk_rows, (uint32_t)cp->valuedouble, wt, wa);
            cv = cv->next; cr = cr->next; cp = cp->next;
        }
    }
    free(wt); free(wa);
    if (!err) m->tk_rows += (uint64_t)rows;
    return err;
}
