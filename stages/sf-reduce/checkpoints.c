/* checkpoints.c - what sf-reduce reads from the checkpoints (--base-model, --finetune-model,
 * through proto/hf-model.h) and the SAE (--sae, proto/sae-dir.h): the relative deviation of every
 * tensor (weight_deviation, with by_layer/by_kind summaries), the unembedding Frobenius figures
 * and the logit weight similarity of chosen features (transfer block). With the streams, the
 * checkpoints and the SAE are opened and checked, and the weight deviation and the Frobenius
 * figures computed, before the first frame is read (ckpts_open), so a bad path fails at once;
 * only the logit similarity waits for the streams, which choose the features. --weights-only
 * reads no stream. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include "reduce.h"
#include "json.h"

#define VOCAB_CHUNK 512   /* unembedding rows converted to f32 at a time */

/* ======================== the unembedding ======================== */
static int unembed_get(struct proto_hf_model *m, struct unembed *u)
{
    const struct proto_st_tensor *w;
    int err;
    if ((err = proto_hf_unembed(m, &u->E))) return err;   /* the detail names the directory */
    u->V = u->E->shape[0]; u->d = u->E->shape[1];
    if (!(u->g = malloc(u->d * sizeof(float)))) return PROTO_E_NOMEM;
    if ((err = proto_hf_tensor(m, "model.norm.weight", u->d, 0, false, &w))) return err;
    for (uint64_t k = 0; k < u->d; k++) u->g[k] = 1.0f;
    if (w) {
        proto_convert_to_f32(u->g, w->data, w->dtype, u->d);
        if (m->gemma) for (uint64_t k = 0; k < u->d; k++) u->g[k] += 1.0f;
    }
    return PROTO_OK;
}

/* Rows [v0, v0 + n) of u's E as f32, into dst (n, d). */
static void unembed_rows(const struct unembed *u, uint64_t v0, uint64_t n, float *dst)
{
    size_t es = proto_dtype_size(u->E->dtype);
    proto_convert_to_f32(dst, (const char *)u->E->data + v0 * u->d * es, u->E->dtype, n * u->d);
}

/* The unembedding Frobenius figures. W_U = diag(g)·Eᵀ (d, V), centred over the base vocabulary
 * V (TransformerLens fold_ln + center_unembed; a larger finetune vocabulary is cut to V):
 * ‖W_U‖² = Σ_d (Σ_v W² − (Σ_v W)²/V); ratio = ‖W_U,b‖/‖W_U,f‖, error = ‖W_U,b − W_U,f‖.
 * Sums in double, vocabulary in chunks. */
static int unembed_frobenius(const struct unembed *ub, const struct unembed *uf, double *ratio, double *ferr)
{
    const uint64_t V = ub->V, d = ub->d, C = VOCAB_CHUNK;
    int err = PROTO_OK;
    if (uf->d != d || uf->V < V) { proto_set_detail("unembedding [%llu, %llu] (base) vs [%llu, %llu] (finetune)", (unsigned long long)V, (unsigned long long)d, (unsigned long long)uf->V, (unsigned long long)uf->d); return PROTO_E_MISMATCH; }
    float *Eb = proto_aligned_alloc(C * d * 4), *Ef = proto_aligned_alloc(C * d * 4);   /* (C, d) */
    double *ds = calloc(6 * d, sizeof(double));   /* per dim: Σb Σb² Σf Σf² Σ(b-f) Σ(b-f)² */
    if (!Eb || !Ef || !ds) { err = PROTO_E_NOMEM; goto out; }
    for (uint64_t v0 = 0; v0 < V; v0 += C) {
        uint64_t n = V - v0 < C ? V - v0 : C;
        unembed_rows(ub, v0, n, Eb);
        unembed_rows(uf, v0, n, Ef);
        for (uint64_t v = 0; v < n; v++)
            for (uint64_t q = 0; q < d; q++) {
                double b = (double)ub->g[q] * Eb[v * d + q], f = (double)uf->g[q] * Ef[v * d + q], e = b - f;
                double *s = ds + 6 * q;
                s[0] += b; s[1] += b * b; s[2] += f; s[3] += f * f; s[4] += e; s[5] += e * e;
            }
    }
    double nb = 0, nf = 0, nd = 0;
    for (uint64_t q = 0; q < d; q++) {
        const double *s = ds + 6 * q;
        nb += s[1] - s[0] * s[0] / V; nf += s[3] - s[2] * s[2] / V; nd += s[5] - s[4] * s[4] / V;
    }
    *ratio = sqrt(nb) / sqrt(nf);
    *ferr = sqrt(fmax(nd, 0));
out:
    free(Eb); free(Ef); free(ds);
    return err;
}

/* Logit weight similarity of k decoder rows wdec (k, d): for feature j the logit vectors are
 * x = (W_dec[j]⊙g_b)·E_bᵀ and y = (W_dec[j]⊙g_f)·E_fᵀ over the base vocabulary V, r[j] their
 * Pearson (NaN when one is constant). Centring the unembedding subtracts one constant per
 * feature from x (and y), which Pearson ignores. Sums in double, vocabulary in chunks. */
static int unembed_logits(const struct unembed *ub, const struct unembed *uf, const float *wdec, size_t k, double *r)
{
    const uint64_t V = ub->V, d = ub->d, C = VOCAB_CHUNK;
    const size_t k1 = k ? k : 1;
    int err = PROTO_OK;
    float *Db = proto_aligned_alloc(k1 * d * 4), *Df = proto_aligned_alloc(k1 * d * 4);  /* (k, d) */
    float *Eb = proto_aligned_alloc(C * d * 4), *Ef = proto_aligned_alloc(C * d * 4);    /* (C, d) */
    float *Lb = proto_aligned_alloc(k1 * C * 4), *Lf = proto_aligned_alloc(k1 * C * 4);  /* (k, C) */
    double *fs = calloc(5 * k1, sizeof(double));   /* per feature: Σx Σy Σx² Σy² Σxy */
    if (!Db || !Df || !Eb || !Ef || !Lb || !Lf || !fs) { err = PROTO_E_NOMEM; goto out; }
    for (size_t j = 0; j < k; j++)
        for (uint64_t q = 0; q < d; q++) { Db[j * d + q] = wdec[j * d + q] * ub->g[q]; Df[j * d + q] = wdec[j * d + q] * uf->g[q]; }
    for (uint64_t v0 = 0; k && v0 < V; v0 += C) {
        uint64_t n = V - v0 < C ? V - v0 : C;
        unembed_rows(ub, v0, n, Eb);
        unembed_rows(uf, v0, n, Ef);
        /* L(k, n) = D(k, d) · E(n, d)ᵀ: RowMajor, NoTrans, Trans, M=k, N=n, K=d */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)k, (int)n, (int)d, 1.0f, Db, (int)d, Eb, (int)d, 0.0f, Lb, (int)n);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)k, (int)n, (int)d, 1.0f, Df, (int)d, Ef, (int)d, 0.0f, Lf, (int)n);
        for (size_t j = 0; j < k; j++) {
            double *s = fs + 5 * j;
            for (uint64_t v = 0; v < n; v++) {
                double x = Lb[j * n + v], y = Lf[j * n + v];
                s[0] += x; s[1] += y; s[2] += x * x; s[3] += y * y; s[4] += x * y;
            }
        }
    }
    for (size_t j = 0; j < k; j++) {
        const double *s = fs + 5 * j;
        double va = V * s[2] - s[0] * s[0], vb = V * s[3] - s[1] * s[1];
        r[j] = (va > 0 && vb > 0) ? fmax(-1.0, fmin(1.0, (V * s[4] - s[0] * s[1]) / sqrt(va * vb))) : NAN;
    }
out:
    free(Db); free(Df); free(Eb); free(Ef); free(Lb); free(Lf); free(fs);
    return err;
}

/* ======================== before the streams ======================== */
static int weight_deviation(struct proto_hf_model *cb, struct proto_hf_model *cf, cJSON **out);

int ckpts_open(const struct opts *o, struct ckpts *ck, const char **where)
{
    const unsigned flags = PROTO_HF_ANY_CONFIG | PROTO_HF_ALL_SHARDS;   /* read for tensors only */
    int err;
    memset(ck, 0, sizeof *ck);
    if (!o->base_model || !o->ft_model || o->weights_only) return PROTO_OK;
    ck->on = true;
    *where = o->base_model;
    if ((err = proto_hf_open(o->base_model, flags, &ck->cb)) || (err = unembed_get(ck->cb, &ck->ub))) return err;
    *where = o->ft_model;
    if ((err = proto_hf_open(o->ft_model, flags, &ck->cf)) || (err = unembed_get(ck->cf, &ck->uf))) return err;
    if (o->sae_dir) {
        *where = o->sae_dir;
        if ((err = proto_sae_open(o->sae_dir, &ck->sae))) return err;   /* the detail names the file */
        ck->has_sae = true;
        ck->sae_dir = o->sae_dir;
        if ((uint64_t)ck->sae.d_in != ck->ub.d) {
            proto_set_detail("SAE d_in %d, model d_model %llu", ck->sae.d_in, (unsigned long long)ck->ub.d);
            return PROTO_E_MISMATCH;
        }
    }
    *where = "weights";   /* the seed's cheap predictor, before any token */
    if ((err = weight_deviation(ck->cb, ck->cf, &ck->wdev))) return err;
    if (proto_cli_progress_on(&o->cli)) {
        double mean = NAN, mx = NAN;
        proto_json_num(ck->wdev, "mean", &mean); proto_json_num(ck->wdev, "max", &mx);
        fprintf(stderr, "sf-reduce: weight deviation (before any token): mean %.4g, max %.4g (%s)\n", mean, mx,
                cJSON_GetStringValue(cJSON_GetObjectItemCaseSensitive(ck->wdev, "max_tensor")));
    }
    *where = "checkpoints";
    return unembed_frobenius(&ck->ub, &ck->uf, &ck->frob_ratio, &ck->frob_error);
}

void ckpts_close(struct ckpts *ck)
{
    free(ck->ub.g); free(ck->uf.g);
    proto_hf_close(ck->cb); proto_hf_close(ck->cf);
    if (ck->has_sae) proto_sae_destroy(&ck->sae);
    cJSON_Delete(ck->wdev);
    memset(ck, 0, sizeof *ck);
}

/* ======================== after the streams ======================== */
int logit_similarity(const struct ckpts *ck, const uint32_t *idx, size_t n, uint32_t d_sae, double *r)
{
    if ((uint32_t)ck->sae.d_sae != d_sae) {
        proto_set_detail("%s: SAE d_sae %d, the streams' features %u", ck->sae_dir, ck->sae.d_sae, d_sae);
        return PROTO_E_MISMATCH;
    }
    float *wdec = malloc((n ? n : 1) * ck->ub.d * sizeof(float));   /* (n, d_in) */
    int err = wdec ? proto_sae_dec_rows(&ck->sae, idx, n, wdec) : PROTO_E_NOMEM;
    if (!err) err = unembed_logits(&ck->ub, &ck->uf, wdec, n, r);
    free(wdec);
    return err;
}

/* Keeps the N largest (sign +1) or smallest (sign -1) of a stream of (id, value) in ids/vals (N),
 * sorted best first; *k kept so far. Ties keep the earlier (lower) id. */
static void keep_extreme(uint32_t *ids, float *vals, uint32_t *k, uint32_t N, uint32_t id, float v, float sign)
{
    float sv = sign * v;
    if (*k == N && !(sv > sign * vals[N - 1])) return;
    uint32_t i = *k < N ? (*k)++ : N - 1;
    while (i > 0 && sign * vals[i - 1] < sv) { vals[i] = vals[i - 1]; ids[i] = ids[i - 1]; i--; }
    vals[i] = v; ids[i] = id;
}

int logit_extremes(const struct ckpts *ck, int mi, const uint32_t *idx, size_t n, uint32_t d_sae, uint32_t N,
                   uint32_t *top_id, float *top_v, uint32_t *bot_id, float *bot_v)
{
    const struct unembed *u = mi ? &ck->uf : &ck->ub;
    const uint64_t V = ck->ub.V, d = u->d, C = VOCAB_CHUNK;   /* the base vocabulary: a larger finetune one is cut */
    const size_t n1 = n ? n : 1;
    if ((uint32_t)ck->sae.d_sae != d_sae) {
        proto_set_detail("%s: SAE d_sae %d, the streams' features %u", ck->sae_dir, ck->sae.d_sae, d_sae);
        return PROTO_E_MISMATCH;
    }
    int err = PROTO_OK;
    float *D = proto_aligned_alloc(n1 * d * 4), *E = proto_aligned_alloc(C * d * 4), *L = proto_aligned_alloc(n1 * C * 4);   /* (n, d) (C, d) (n, C) */
    uint32_t *kt = calloc(n1, 4), *kb = calloc(n1, 4);   /* (n) kept so far */
    if (!D || !E || !L || !kt || !kb) { err = PROTO_E_NOMEM; goto out; }
    if ((err = proto_sae_dec_rows(&ck->sae, idx, n, D))) goto out;
    for (size_t j = 0; j < n; j++) for (uint64_t q = 0; q < d; q++) D[j * d + q] *= u->g[q];
    for (uint64_t v0 = 0; n && v0 < V; v0 += C) {
        uint64_t m = V - v0 < C ? V - v0 : C;
        unembed_rows(u, v0, m, E);
        /* L(n, m) = D(n, d) · E(m, d)ᵀ */
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n, (int)m, (int)d, 1.0f, D, (int)d, E, (int)d, 0.0f, L, (int)m);
        for (size_t j = 0; j < n; j++)
            for (uint64_t v = 0; v < m; v++) {
                float x = L[j * m + v];
                if (!isfinite(x)) continue;
                keep_extreme(top_id + j * N, top_v + j * N, &kt[j], N, (uint32_t)(v0 + v), x, 1.0f);
                keep_extreme(bot_id + j * N, bot_v + j * N, &kb[j], N, (uint32_t)(v0 + v), x, -1.0f);
            }
    }
    for (size_t j = 0; j < n; j++)   /* fewer finite logits than N: the rest NaN, id 0 */
        for (uint32_t k = kt[j]; k < N; k++) { top_id[j * N + k] = bot_id[j * N + k] = 0; top_v[j * N + k] = bot_v[j * N + k] = NAN; }
out:
    free(D); free(E); free(L); free(kt); free(kb);
    return err;
}

/* ======================== --weights-only ======================== */
/* ‖A − B‖/‖A‖ of tensors ta (base) and tb (finetune), over ta's elements; NaN when ‖A‖ = 0.
 * a, b: (ch) scratch. */
static double tensor_deviation(const struct proto_st_tensor *ta, const struct proto_st_tensor *tb, float *a, float *b, uint64_t ch)
{
    uint64_t n = 1;
    for (int q = 0; q < ta->ndim; q++) n *= ta->shape[q];
    size_t sa = proto_dtype_size(ta->dtype), sb = proto_dtype_size(tb->dtype);
    double dd = 0, aa = 0;
    for (uint64_t o = 0; o < n; o += ch) {
        uint64_t m = n - o < ch ? n - o : ch;
        proto_convert_to_f32(a, (const char *)ta->data + o * sa, ta->dtype, m);
        proto_convert_to_f32(b, (const char *)tb->data + o * sb, tb->dtype, m);
        for (uint64_t k = 0; k < m; k++) { double x = a[k], e = x - b[k]; aa += x * x; dd += e * e; }
    }
    return aa > 0 ? sqrt(dd) / sqrt(aa) : NAN;
}

/* ---- summaries of weight_deviation.tensors: by layer and by tensor kind ---- */
#define WD_MAX_KINDS 64      /* kinds beyond these are pooled as "other" */
struct wdsum { char name[48]; double sum, max; int n; };

/* The layer L of "model.layers.L.…" (-1 for other names). */
static long wd_layer(const char *name)
{
    static const char pre[] = "model.layers.";
    if (strncmp(name, pre, sizeof pre - 1) != 0) return -1;
    char *end;
    long l = strtol(name + sizeof pre - 1, &end, 10);
    return end != name + sizeof pre - 1 && *end == '.' && l >= 0 ? l : -1;
}

/* The kind of a tensor: its last name component before ".weight" (q_proj, input_layernorm,
 * embed_tokens, lm_head, norm, ...); a bias keeps its suffix (q_proj.bias). */
static void wd_kind(const char *name, char *k, size_t kn)
{
    size_t n = strlen(name);
    bool bias = n > 5 && strcmp(name + n - 5, ".bias") == 0;
    if (n > 7 && strcmp(name + n - 7, ".weight") == 0) n -= 7;
    else if (bias) n -= 5;
    size_t s = n;
    while (s > 0 && name[s - 1] != '.') s--;
    snprintf(k, kn, "%.*s%s", (int)(n - s), name + s, bias ? ".bias" : "");
}

static void wd_add(struct wdsum *w, double v) { w->sum += v; w->max = w->n ? fmax(w->max, v) : v; w->n++; }

static void wd_put(cJSON *o, const struct wdsum *w)
{
    cJSON_AddNumberToObject(o, "mean", w->sum / w->n);
    cJSON_AddNumberToObject(o, "max", w->max);
    cJSON_AddNumberToObject(o, "count", w->n);
}

/* by_layer: [{layer, mean, max, count}] over model.layers.L.*, by layer; by_kind: {KIND: {mean,
 * max, count}} in order of first appearance. Finite deviations only (‖A‖ = 0 gives none). */
static int wd_summaries(cJSON *j)
{
    const cJSON *tens = cJSON_GetObjectItemCaseSensitive(j, "tensors"), *t;
    long nl = 0;
    cJSON_ArrayForEach(t, tens) { long l = wd_layer(t->string); if (l >= nl) nl = l + 1; }
    struct wdsum *ly = calloc(nl ? (size_t)nl : 1, sizeof *ly), *kd = calloc(WD_MAX_KINDS + 1, sizeof *kd);
    int nk = 0;
    if (!ly || !kd) { free(ly); free(kd); return PROTO_E_NOMEM; }
    cJSON_ArrayForEach(t, tens) {
        if (!cJSON_IsNumber(t) || !isfinite(t->valuedouble)) continue;
        long l = wd_layer(t->string);
        if (l >= 0) wd_add(&ly[l], t->valuedouble);
        char k[48]; int i = 0;
        wd_kind(t->string, k, sizeof k);
        while (i < nk && strcmp(kd[i].name, k) != 0) i++;
        if (i == nk && nk == WD_MAX_KINDS) { i = WD_MAX_KINDS; snprintf(kd[i].name, sizeof kd[i].name, "other"); }
        else if (i == nk) snprintf(kd[nk++].name, sizeof kd[i].name, "%s", k);
        wd_add(&kd[i], t->valuedouble);
    }
    cJSON *bl = cJSON_AddArrayToObject(j, "by_layer"), *bk = cJSON_AddObjectToObject(j, "by_kind");
    for (long l = 0; l < nl; l++) {
        if (!ly[l].n) continue;
        cJSON *o = cJSON_CreateObject();
        cJSON_AddNumberToObject(o, "layer", (double)l);
        wd_put(o, &ly[l]);
        cJSON_AddItemToArray(bl, o);
    }
    for (int i = 0; i <= WD_MAX_KINDS; i++) if (kd[i].n) wd_put(cJSON_AddObjectToObject(bk, kd[i].name), &kd[i]);
    free(ly); free(kd);
    return PROTO_OK;
}

/* Relative Frobenius deviation ‖A − B‖/‖A‖ of every tensor the two checkpoints share. A tensor
 * whose first dimension is larger in the finetune (an added vocabulary row) is compared over the
 * base's rows. Others with different shapes, or missing from the finetune, are listed as skipped.
 * Cost: one pass over both checkpoints' mmapped data, CH elements converted to f32 at a time
 * (never a whole tensor), O(elements); the name lookups are O(tensors²) string compares (~300
 * tensors at 7B: nothing next to the data). Then the by_layer/by_kind summaries. */
static int weight_deviation(struct proto_hf_model *cb, struct proto_hf_model *cf, cJSON **out)
{
    cJSON *j = cJSON_CreateObject(), *tens = cJSON_AddObjectToObject(j, "tensors"), *skip = cJSON_AddArrayToObject(j, "skipped");
    const uint64_t CH = 1 << 16;
    float *a = malloc(CH * 4), *b = malloc(CH * 4);   /* (CH) */
    double sum = 0, mx = -1; int cnt = 0; const char *mxname = "";
    int err = a && b ? PROTO_OK : PROTO_E_NOMEM;
    for (int s = 0; !err && s < cb->n_shards; s++) {
        const struct proto_st *st;
        if ((err = proto_hf_shard(cb, s, &st))) break;
        for (int i = 0; i < st->n; i++) {
            const struct proto_st_tensor *ta = &st->t[i], *tb;
            if ((err = proto_hf_find(cf, ta->name, &tb))) break;
            bool same = tb && tb->ndim == ta->ndim && ta->ndim > 0 && tb->shape[0] >= ta->shape[0];
            for (int q = 1; same && q < ta->ndim; q++) same = tb->shape[q] == ta->shape[q];
            if (!same) { cJSON_AddItemToArray(skip, cJSON_CreateString(ta->name)); continue; }
            double rel = tensor_deviation(ta, tb, a, b, CH);
            cJSON_AddNumberToObject(tens, ta->name, rel);
            if (isfinite(rel)) { sum += rel; cnt++; if (rel > mx) { mx = rel; mxname = ta->name; } }
        }
    }
    free(a); free(b);
    if (!err) {
        cJSON_AddNumberToObject(j, "mean", cnt ? sum / cnt : NAN);
        cJSON_AddNumberToObject(j, "max", cnt ? mx : NAN);
        cJSON_AddStringToObject(j, "max_tensor", mxname);
        err = wd_summaries(j);
    }
    if (err) { cJSON_Delete(j); return err; }
    *out = j;
    return PROTO_OK;
}

/* The --weights-only document: weight_deviation, and the unembedding figures when both
 * checkpoints have an unembedding of matching shape (else a warning). */
int run_weights_only(const struct opts *o, cJSON **out, const char **where)
{
    const unsigned flags = PROTO_HF_ANY_CONFIG | PROTO_HF_ALL_SHARDS;
    struct proto_hf_model *cb = NULL, *cf = NULL;
    struct unembed ub = {0}, uf = {0};
    cJSON *doc = cJSON_CreateObject(), *wd = NULL;
    double fr, fe;
    int err;
    *where = o->base_model;
    if ((err = proto_hf_open(o->base_model, flags, &cb))) goto out;
    *where = o->ft_model;
    if ((err = proto_hf_open(o->ft_model, flags, &cf))) goto out;
    *where = "weights";
    if ((err = weight_deviation(cb, cf, &wd))) goto out;
    cJSON_AddStringToObject(doc, "saeflow", SAEFLOW_VERSION);
    cJSON_AddItemToObject(doc, "weight_deviation", wd);
    if (unembed_get(cb, &ub) != PROTO_OK || unembed_get(cf, &uf) != PROTO_OK ||
        unembed_frobenius(&ub, &uf, &fr, &fe) != PROTO_OK) {
        proto_warn("no unembedding figures: %s", proto_detail());
    } else {
        cJSON *t = cJSON_AddObjectToObject(doc, "transfer");
        cJSON_AddNumberToObject(t, "unembed_frobenius_ratio", fr);
        cJSON_AddNumberToObject(t, "unembed_frobenius_error", fe);
    }
    cJSON *p = cJSON_AddObjectToObject(doc, "provenance"), *c = cJSON_AddObjectToObject(p, "checkpoints");
    cJSON_AddStringToObject(c, "base_model", o->base_model);
    cJSON_AddStringToObject(c, "finetune_model", o->ft_model);
    *out = doc; doc = NULL;
out:
    cJSON_Delete(doc);
    free(ub.g); free(uf.g); proto_hf_close(cb); proto_hf_close(cf);
    return err;
}
