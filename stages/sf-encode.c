/* sf-encode - apply a SAELens-format sparse autoencoder to `acts` frames.
 *
 * Reads a stream of frames; every `acts` frame gets `feats` (the SAE feature activations f,
 * sparse CSR, entries with f > 0), and with --splice also `recon` f32 [rows, ctx, d_model] (the
 * reconstruction x̂ in the model's units). --drop-acts removes `acts` from the output. Other
 * frame kinds pass through untouched. The SAE is a SAELens directory (cfg.json,
 * sae_weights.safetensors, read by proto/sae-dir.h): architectures standard / topk / jumprelu / gated, activation fns
 * relu / tanh-relu / topk, apply_b_dec_to_input, normalize_activations none /
 * constant_norm_rescale / expected_average_only_in / layer_norm, finetuning_scaling_factor
 * (exact semantics: proto/PROTOCOL.md §6 and SAELens 3.22 `SAE.encode_*` / `decode`).
 * Batched: the encoder is one sgemm per frame (split only when the pre-activations of a frame
 * would pass ENC_MAX_BYTES); the decoder walks the non-zero features (cost ∝ L0·d_in); the
 * activation and decode run on --threads workers (proto_parallel_run) over contiguous token
 * ranges.
 * Choices where SAELens leaves room: jumprelu is relu(z)·[z > threshold] (SAELens 3.22; equal to
 * STUDY's z·[z > θ] for θ >= 0); topk ties go to the lower feature index; gated computes
 * u·(W_enc·exp(r_mag)) as (u·W_enc)·exp(r_mag), sharing the one sgemm; a token whose input is
 * not finite (or has zero norm under constant_norm_rescale) gets no features and a NaN recon,
 * is counted (end meta nonfinite_tokens) and the first one is named on stderr.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "cli.h"
#include "hook.h"
#include "parallel.h"
#include "proto.h"
#include "sae-dir.h"

/* ---------------------------------------------------------------------------------------- */
/* constants */

#define ENC_MAX_BYTES ((size_t)1 << 30)   /* cap on the pre-activation buffer (tokens x d_sae) */
#define MAX_THREADS 64                     /* activation/decode workers at most */

/* ---------------------------------------------------------------------------------------- */
/* options */

struct opts {
    struct proto_cli cli;
    const char *sae_dir;
    bool splice;
    bool drop_acts;
    bool force_hook;
    double norm_scale;        /* --norm-scaling-factor; NAN = not given */
};

static struct opts opts_default(const char *argv0)
{
    struct opts o = {0};
    proto_cli_init_blas(&o.cli, argv0);
    o.norm_scale = NAN;
    return o;
}

/* ---------------------------------------------------------------------------------------- */
/* stage state */

/* One worker's share of a chunk of tokens: its features (CSR pieces) and scratch. */
struct part {
    const struct proto_sae *sae;   /* the stage's SAE, shared read-only */
    const float *pre;         /* (n_chunk, d_sae) u·W_enc of the chunk */
    const float *scale;       /* (n_tok) per-token c (rescale), or LN std */
    const float *shift;       /* (n_tok) LN mean */
    const uint8_t *bad;       /* (n_tok) 1 = non-finite input token */
    float *recon;             /* (n_tok, d_in) or NULL */
    uint32_t *cnt;            /* (n_tok) features per token */
    int64_t t0, t1;           /* tokens [t0, t1) of the frame; chunk starts at chunk0 */
    int64_t chunk0;
    uint32_t *index; float *value; size_t nnz, cap;   /* this part's features, token order */
    float *zrow;              /* (d_sae) topk scratch */
    int *heap_idx; float *heap_val;   /* (k) topk heap */
    int err;
};

struct state {
    struct opts *o;
    struct proto_sae sae;
    int n_threads;
    struct part part[MAX_THREADS];
    struct proto_buf xs;      /* acts converted to f32 when not f32 */
    float *u; size_t u_cap;   /* (n_chunk, d_in) encoder input */
    float *pre; size_t pre_cap;   /* (n_chunk, d_sae) */
    float *scale, *shift; uint8_t *bad; uint32_t *cnt; uint32_t *indptr; size_t tok_cap;
    float *recon; size_t recon_cap;   /* (n_tok, d_in) */
    uint32_t *index; float *value; size_t nnz_cap;   /* the frame's CSR */
    uint64_t n_tokens, n_nonfinite, nnz_total, nnz_all;
    double t_prep, t_sgemm, t_post;   /* seconds spent per phase (-v, bench) */
    bool warned_nonfinite;
    uint64_t total_rows;      /* header meta total_rows (progress ETA), 0 = unknown */
    bool multi;               /* the stream carries several hooks: frames at others pass through */
};

static void state_destroy(struct state *st)
{
    for (int i = 0; i < MAX_THREADS; i++) {
        struct part *p = &st->part[i];
        free(p->index); free(p->value); free(p->zrow); free(p->heap_idx); free(p->heap_val);
    }
    proto_buf_destroy(&st->xs);
    free(st->u); free(st->pre); free(st->scale); free(st->shift); free(st->bad); free(st->cnt);
    free(st->indptr); free(st->recon); free(st->index); free(st->value);
    proto_sae_destroy(&st->sae);
}

/* Grows *p (aligned, contents lost) to hold n elements of size sz. */
static int grow(void **p, size_t *cap, size_t n, size_t sz)
{
    if (n <= *cap && *p) return PROTO_OK;   /* never NULL, also for n = 0 */
    free(*p);
    if (!(*p = proto_aligned_alloc(n * sz + 64))) { *cap = 0; return PROTO_E_NOMEM; }
    *cap = n;
    return PROTO_OK;
}

/* Grows a CSR index/value pair to hold `need` entries, keeping its contents (doubling from 4096). */
static int csr_reserve(uint32_t **index, float **value, size_t *cap, size_t need)
{
    if (need <= *cap) return PROTO_OK;
    size_t c = *cap ? *cap : 4096;
    while (c < need) c *= 2;
    uint32_t *ix = realloc(*index, c * sizeof *ix);
    if (!ix) return PROTO_E_NOMEM;
    *index = ix;
    float *v = realloc(*value, c * sizeof *v);
    if (!v) return PROTO_E_NOMEM;
    *value = v;
    *cap = c;
    return PROTO_OK;
}

static int state_init(struct state *st, struct opts *o)
{
    memset(st, 0, sizeof *st);
    st->o = o;
    int err = proto_sae_load(o->sae_dir, o->norm_scale, &st->sae);
    if (err) return err;
    if (!st->sae.hook[0] && !o->force_hook) {   /* nothing could tell a wrong hook from the right one */
        proto_set_detail("%s/cfg.json has no hook_name: the hook of the frames cannot be checked "
                         "(use --force-hook to apply the SAE to any hook)", o->sae_dir);
        return PROTO_E_FORMAT;
    }
    if (st->sae.norm == PROTO_SAE_NORM_EXPECTED_AVG && !st->sae.norm_scale_known)   /* SAELens runs unscaled */
        proto_warn("%s: normalize_activations is expected_average_only_in but no scaling factor "
                   "is known (cfg norm_scaling_factor or --norm-scaling-factor): using 1", o->sae_dir);
    st->n_threads = proto_cli_threads(&o->cli, MAX_THREADS);
    for (int i = 0; i < st->n_threads; i++) {
        struct part *p = &st->part[i];
        p->sae = &st->sae;
        if (st->sae.act == PROTO_SAE_ACT_TOPK) {
            p->zrow = malloc((size_t)st->sae.d_sae * sizeof *p->zrow);
            p->heap_idx = malloc((size_t)st->sae.k * sizeof *p->heap_idx);
            p->heap_val = malloc((size_t)st->sae.k * sizeof *p->heap_val);
            if (!p->zrow || !p->heap_idx || !p->heap_val) return PROTO_E_NOMEM;
        }
    }
    return PROTO_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* kernels */

/* Encoder input of token t: u = x' − b_dec·apply, x' = norm_in(x). Records the token's
 * normalisation (scale, shift) for decode and flags non-finite tokens (bad = 1, u = 0). */
static void prepare_token(const struct proto_sae *s, const float *x, float *u, float *scale,
                          float *shift, uint8_t *bad)
{
    const int d = s->d_in;   // x, u: (d_in)
    double sum = 0, sq = 0;
    for (int i = 0; i < d; i++) { sum += x[i]; sq += (double)x[i] * x[i]; }
    float c = 1.0f, mu = 0.0f;
    bool ok = isfinite(sum) && isfinite(sq);
    switch (s->norm) {
    case PROTO_SAE_NORM_NONE: break;
    case PROTO_SAE_NORM_EXPECTED_AVG: c = s->norm_scale; break;
    case PROTO_SAE_NORM_CONSTANT_RESCALE:   /* c = sqrt(d_in)/‖x‖; ‖x‖ = 0 gives inf: the token is bad */
        c = (float)(sqrt((double)d) / sqrt(sq));
        ok = ok && isfinite(c);
        break;
    case PROTO_SAE_NORM_LAYER: {            /* (x − μ)/(σ + 1e-5), σ the unbiased std (torch.std) */
        double m = sum / d, v = 0;
        for (int i = 0; i < d; i++) v += ((double)x[i] - m) * ((double)x[i] - m);
        mu = (float)m;
        c = (float)(d > 1 ? sqrt(v / (d - 1)) : 0.0);   /* stored as σ */
        break;
    }
    }
    *scale = c; *shift = mu; *bad = !ok;
    if (!ok) { memset(u, 0, (size_t)d * sizeof *u); return; }
    const float *b = s->apply_b_dec ? s->b_dec : NULL;
    for (int i = 0; i < d; i++) {
        float xi = s->norm == PROTO_SAE_NORM_LAYER ? (x[i] - mu) / (c + 1e-5f) : x[i] * c;
        u[i] = b ? xi - b[i] : xi;
    }
}

/* Pre-activation z_j of the (magnitude) path from p = u·W_enc. */
static inline float z_of(const struct proto_sae *s, const float *p, int j)
{
    return s->arch == PROTO_SAE_ARCH_GATED ? p[j] * s->mag_scale[j] + s->b_mag[j] : p[j] + s->b_enc[j];
}

/* The architecture's mask on an activation: jumprelu z > θ; gated: gate pre-act > 0. */
static inline bool mask_of(const struct proto_sae *s, const float *p, int j, float z)
{
    if (s->arch == PROTO_SAE_ARCH_JUMPRELU) return z > s->threshold[j];
    if (s->arch == PROTO_SAE_ARCH_GATED) return p[j] + s->b_enc[j] > 0;
    return true;
}

static int cmp_int(const void *a, const void *b)
{
    int x = *(const int *)a, y = *(const int *)b;
    return (x > y) - (x < y);
}

/* Indices of the k largest z (ties: lower index first), ascending by index. A min-heap of k. */
static void topk_select(const float *z, int n, int k, int *hi, float *hv)
{
    int m = 0;
    for (int j = 0; j < n; j++) {
        float v = z[j];
        if (m == k && (j & 15) == 0 && j + 16 <= n) {   /* skip blocks with nothing above the root */
            int any = 0;
            for (int q = 0; q < 16; q++) any |= z[j + q] > hv[0];
            if (!any) { j += 15; continue; }
        }
        if (m < k) {                       /* push, sift up */
            int c = m++;
            while (c > 0) {
                int par = (c - 1) / 2;
                if (hv[par] < v || (hv[par] == v && hi[par] > j)) break;
                hv[c] = hv[par]; hi[c] = hi[par]; c = par;
            }
            hv[c] = v; hi[c] = j;
        } else if (v > hv[0]) {            /* replace the root, sift down */
            int c = 0;
            for (;;) {
                int l = 2 * c + 1, r = l + 1, sm = c;
                float sv = v; int si = j;
                if (l < k && (hv[l] < sv || (hv[l] == sv && hi[l] > si))) { sm = l; sv = hv[l]; si = hi[l]; }
                if (r < k && (hv[r] < sv || (hv[r] == sv && hi[r] > si))) { sm = r; }
                if (sm == c) break;
                hv[c] = hv[sm]; hi[c] = hi[sm]; c = sm;
            }
            hv[c] = v; hi[c] = j;
        }
    }
    qsort(hi, (size_t)k, sizeof *hi, cmp_int);
}

static inline int emit(struct part *p, uint32_t j, float f)
{
    if (p->nnz == p->cap && csr_reserve(&p->index, &p->value, &p->cap, p->nnz + 1) != 0) return PROTO_E_NOMEM;
    p->index[p->nnz] = j;
    p->value[p->nnz++] = f;
    return PROTO_OK;
}

/* Activations of one token into the part's CSR: f_j = act(z)_j·mask_j, kept when f_j > 0. */
static int encode_token(struct part *p, const float *pre_t, uint32_t *cnt)
{
    const struct proto_sae *s = p->sae;
    size_t nnz0 = p->nnz;
    if (s->act == PROTO_SAE_ACT_TOPK) {
        float *z = p->zrow;   // (d_sae)
        if (s->arch == PROTO_SAE_ARCH_GATED) for (int j = 0; j < s->d_sae; j++) z[j] = pre_t[j] * s->mag_scale[j] + s->b_mag[j];
        else for (int j = 0; j < s->d_sae; j++) z[j] = pre_t[j] + s->b_enc[j];
        topk_select(z, s->d_sae, s->k, p->heap_idx, p->heap_val);
        for (int q = 0; q < s->k; q++) {
            int j = p->heap_idx[q];
            if (z[j] > 0 && mask_of(s, pre_t, j, z[j]) && emit(p, (uint32_t)j, z[j])) return PROTO_E_NOMEM;
        }
    } else if (s->arch == PROTO_SAE_ARCH_STANDARD && s->act == PROTO_SAE_ACT_RELU) {   /* the common case, tight */
        const float *b = s->b_enc;   // (d_sae)
        int j0 = 0;
        for (; j0 + 16 <= s->d_sae; j0 += 16) {   /* most blocks have no active feature */
            int any = 0;
            for (int q = 0; q < 16; q++) any |= pre_t[j0 + q] + b[j0 + q] > 0;
            if (!any) continue;
            if (p->nnz + 16 > p->cap && csr_reserve(&p->index, &p->value, &p->cap, p->nnz + 16)) return PROTO_E_NOMEM;
            for (int j = j0; j < j0 + 16; j++) {   /* branchless: write always, count if active */
                float z = pre_t[j] + b[j];
                p->index[p->nnz] = (uint32_t)j;
                p->value[p->nnz] = z;
                p->nnz += z > 0;
            }
        }
        for (int j = j0; j < s->d_sae; j++) {
            float z = pre_t[j] + b[j];
            if (z > 0 && emit(p, (uint32_t)j, z)) return PROTO_E_NOMEM;
        }
    } else {
        for (int j = 0; j < s->d_sae; j++) {
            float z = z_of(s, pre_t, j);
            if (!(z > 0) || !mask_of(s, pre_t, j, z)) continue;
            float f = s->act == PROTO_SAE_ACT_TANH_RELU ? tanhf(z) : z;
            if (f > 0 && emit(p, (uint32_t)j, f)) return PROTO_E_NOMEM;
        }
    }
    *cnt = (uint32_t)(p->nnz - nnz0);
    return PROTO_OK;
}

/* y += a·x in 8-wide vectors (GCC/clang vector extension; -O2 alone does not vectorise the
 * plain loop), then a tail. Faster than a BLAS call for the short rows of small SAEs. */
typedef float v8sf __attribute__((vector_size(32)));
static inline void axpy(int n, float a, const float *restrict x, float *restrict y)
{
    int i = 0;
    for (; i + 8 <= n; i += 8) {
        v8sf xv, yv;
        memcpy(&xv, x + i, sizeof xv);
        memcpy(&yv, y + i, sizeof yv);
        yv += a * xv;
        memcpy(y + i, &yv, sizeof yv);
    }
    for (; i < n; i++) y[i] += a * x[i];
}

/* x̂ = norm_out(Σ_j f_j·ft_j·W_dec[j] + b_dec) over the token's non-zero features only. */
PROTO_SIMD_CLONES
static void decode_token(const struct proto_sae *s, const uint32_t *idx, const float *val, uint32_t n,
                         float scale, float shift, float *r)
{
    const int d = s->d_in;   // r: (d_in)
    memcpy(r, s->b_dec, (size_t)d * sizeof *r);
    for (uint32_t q = 0; q < n; q++) {
        const float *w = s->W_dec + (size_t)idx[q] * d;   // (d_in) row of W_dec
        float a = s->ft_scale ? val[q] * s->ft_scale[idx[q]] : val[q];
        axpy(d, a, w, r);
    }
    if (s->norm == PROTO_SAE_NORM_CONSTANT_RESCALE || s->norm == PROTO_SAE_NORM_EXPECTED_AVG)
        for (int i = 0; i < d; i++) r[i] /= scale;
    else if (s->norm == PROTO_SAE_NORM_LAYER)
        for (int i = 0; i < d; i++) r[i] = r[i] * scale + shift;
}

/* Worker ith of proto_parallel_run over st->part: encode (and decode) the tokens [t0, t1) of a
 * chunk. */
static void part_run(void *arg, int ith, int nth)
{
    struct part *p = (struct part *)arg + ith;
    const struct proto_sae *s = p->sae;
    p->nnz = 0;
    p->err = PROTO_OK;
    for (int64_t t = p->t0; t < p->t1; t++) {
        size_t nnz0 = p->nnz;
        if (p->bad[t]) p->cnt[t] = 0;
        else if ((p->err = encode_token(p, p->pre + (size_t)(t - p->chunk0) * s->d_sae, &p->cnt[t])) != 0)
            return;
        if (!p->recon) continue;
        float *r = p->recon + (size_t)t * s->d_in;   // (d_in)
        if (p->bad[t]) for (int i = 0; i < s->d_in; i++) r[i] = NAN;
        else decode_token(s, p->index + nnz0, p->value + nnz0, p->cnt[t], p->scale[t], p->shift[t], r);
    }
}

/* pre(n, d_sae) = u(n, d_in) · W_enc(d_in, d_sae): RowMajor, NoTrans both, lda = d_in,
 * ldb = ldc = d_sae. */
static void matmul_enc(const struct proto_sae *s, const float *u, int64_t n, float *pre)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, (int)n, s->d_sae, s->d_in, 1.0f,
                u, s->d_in, s->W_enc, s->d_sae, 0.0f, pre, s->d_sae);
}

/* Encodes n_tok tokens x (n_tok, d_in): fills st->indptr/index/value (CSR) and, when
 * recon != NULL, recon (n_tok, d_in). */
static int encode_tokens(struct state *st, const float *x, int64_t n_tok, float *recon)
{
    const struct proto_sae *s = &st->sae;
    const size_t d_in = (size_t)s->d_in, d_sae = (size_t)s->d_sae;
    int64_t chunk = (int64_t)(ENC_MAX_BYTES / (d_sae * sizeof(float)));
    if (chunk > n_tok) chunk = n_tok;
    if (chunk < 1) chunk = 1;
    int err;
    if ((err = grow((void **)&st->u, &st->u_cap, (size_t)chunk * d_in, sizeof(float))) ||
        (err = grow((void **)&st->pre, &st->pre_cap, (size_t)chunk * d_sae, sizeof(float))))
        return err;
    if ((size_t)n_tok + 1 > st->tok_cap) {
        free(st->scale); free(st->shift); free(st->bad); free(st->cnt); free(st->indptr);
        st->scale = malloc((n_tok + 1) * sizeof(float)); st->shift = malloc((n_tok + 1) * sizeof(float));
        st->bad = malloc((size_t)n_tok + 1); st->cnt = malloc((n_tok + 1) * sizeof(uint32_t));
        st->indptr = malloc((n_tok + 1) * sizeof(uint32_t));
        st->tok_cap = st->scale && st->shift && st->bad && st->cnt && st->indptr ? (size_t)n_tok + 1 : 0;
        if (!st->tok_cap) return PROTO_E_NOMEM;
    }
    size_t nnz = 0;
    st->indptr[0] = 0;
    for (int64_t c0 = 0; c0 < n_tok; c0 += chunk) {
        int64_t n = n_tok - c0 < chunk ? n_tok - c0 : chunk;
        double t_a = proto_now();
        for (int64_t t = 0; t < n; t++)
            prepare_token(s, x + (size_t)(c0 + t) * d_in, st->u + (size_t)t * d_in,
                          &st->scale[c0 + t], &st->shift[c0 + t], &st->bad[c0 + t]);
        double t_b = proto_now();
        matmul_enc(s, st->u, n, st->pre);
        double t_c = proto_now();

        /* threads over contiguous token ranges; their CSR pieces concatenate in order */
        int np = st->n_threads < n ? st->n_threads : (int)n;
        for (int i = 0; i < np; i++) {
            struct part *p = &st->part[i];
            size_t lo, hi;
            proto_par_range((size_t)n, i, np, &lo, &hi);
            p->pre = st->pre; p->scale = st->scale; p->shift = st->shift; p->bad = st->bad;
            p->cnt = st->cnt; p->recon = recon; p->chunk0 = c0;
            p->t0 = c0 + (int64_t)lo; p->t1 = c0 + (int64_t)hi;
        }
        proto_parallel_run(np, part_run, st->part);

        for (int i = 0; i < np; i++) {
            struct part *p = &st->part[i];
            if (p->err) return p->err;
            if (nnz + p->nnz > UINT32_MAX) { proto_set_detail("more than 2^32 features in one frame"); return PROTO_E_INVAL; }
            if ((err = csr_reserve(&st->index, &st->value, &st->nnz_cap, nnz + p->nnz))) return err;
            if (p->nnz == 0) continue;   /* p->index may be NULL: no memcpy from it */
            memcpy(st->index + nnz, p->index, p->nnz * sizeof *st->index);
            memcpy(st->value + nnz, p->value, p->nnz * sizeof *st->value);
            nnz += p->nnz;
        }
        for (int64_t t = c0; t < c0 + n; t++) st->indptr[t + 1] = st->indptr[t] + st->cnt[t];
        st->t_prep += t_b - t_a; st->t_sgemm += t_c - t_b; st->t_post += proto_now() - t_c;
    }
    st->nnz_total = nnz;
    return PROTO_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* frames */

static int check_hook(const struct state *st, const char *hook, const char *where)
{
    if (!st->sae.hook[0] || !hook[0] || strcmp(hook, st->sae.hook) == 0) return PROTO_OK;
    if (st->o->force_hook) return PROTO_OK;
    proto_set_detail("%shook %s does not match SAE hook %s (use --force-hook to apply it anyway)",
                     where, hook, st->sae.hook);
    return PROTO_E_MISMATCH;
}

static int process_frame(struct state *st, struct proto_frame *fr, struct proto_writer *w)
{
    if (fr->kind != PROTO_KIND_ACTS || (st->multi && proto_frame_hook_is(fr, st->sae.hook) == 0))
        return proto_writer_put(w, fr);
    const struct proto_sae *s = &st->sae;
    char where[64], hook[256] = "";
    snprintf(where, sizeof where, "frame %llu: ", (unsigned long long)fr->seq);
    int err = proto_frame_validate(fr);
    if (err) return err;
    const struct proto_tensor *a = proto_frame_tensor(fr, "acts");
    if (!a) { proto_set_detail("frame %llu: acts frame has no acts tensor", (unsigned long long)fr->seq); return PROTO_E_SCHEMA; }
    if (a->ndim != 3) { proto_set_detail("frame %llu: acts is not [rows, ctx, d_model]", (unsigned long long)fr->seq); return PROTO_E_SCHEMA; }
    if (a->shape[2] != (uint64_t)s->d_in) {
        proto_set_detail("frame %llu: acts d_model %llu does not match SAE d_in %d",
                         (unsigned long long)fr->seq, (unsigned long long)a->shape[2], s->d_in);
        return PROTO_E_MISMATCH;
    }
    if (proto_frame_get(fr, "hook")) proto_frame_str(fr, "hook", hook, sizeof hook);
    if ((err = check_hook(st, hook, where)) != 0) return err;

    const float *x = proto_tensor_f32(a, &st->xs, &err);   // (n_tok, d_in)
    if (!x) return err;
    const int64_t n_tok = (int64_t)(a->shape[0] * a->shape[1]);
    float *recon = NULL;
    if (st->o->splice) {
        if ((err = grow((void **)&st->recon, &st->recon_cap, (size_t)n_tok * s->d_in, sizeof(float)))) return err;
        recon = st->recon;
    }
    if ((err = encode_tokens(st, x, n_tok, recon)) != 0) return err;

    /* non-finite inputs: counted, first one named on stderr */
    for (int64_t t = 0; t < n_tok; t++) {
        if (!st->bad[t]) continue;
        st->n_nonfinite++;
        if (!st->warned_nonfinite) {
            st->warned_nonfinite = true;
            proto_warn("frame %llu row %lld position %lld: non-finite activation (or zero norm): the "
                       "token gets no features and a NaN reconstruction",
                       (unsigned long long)fr->seq, (long long)(t / (int64_t)a->shape[1]),
                       (long long)(t % (int64_t)a->shape[1]));
        }
    }
    st->n_tokens += (uint64_t)n_tok;
    st->nnz_all += st->nnz_total;

    struct proto_sparse sp = { .d_sae = (uint32_t)s->d_sae, .n_tok = (uint64_t)n_tok,
                               .nnz = st->nnz_total, .indptr = st->indptr, .index = st->index,
                               .value = st->value };
    static const uint32_t zero_u32 = 0; static const float zero_f32 = 0;
    if (!sp.index) { sp.index = &zero_u32; sp.value = &zero_f32; }   /* nnz 0: any valid pointer */
    if ((err = proto_frame_set_sparse(fr, "feats", &sp)) != 0) return err;
    if (recon && (err = proto_frame_set_tensor(fr, "recon", PROTO_F32, 3, a->shape, recon)) != 0) return err;
    if (st->o->drop_acts) proto_frame_del(fr, "acts");
    return proto_writer_put(w, fr);
}


/* Header: check hook / d_model against the SAE; add sae, d_sae. */
static int write_header(struct state *st, const struct proto_frame *hdr, struct proto_writer *w,
                        int argc, char **argv)
{
    const struct proto_sae *s = &st->sae;
    const struct proto_value *mv = proto_frame_get((struct proto_frame *)hdr, "meta");
    const msgpack_object *meta = mv && mv->type == PROTO_V_OBJ ? &mv->obj : NULL;
    char hook[256];
    uint64_t d_model;
    int err;
    if (st->sae.hook[0] && (err = proto_hook_select(meta, st->sae.hook, &st->multi))) return err;
    if (!st->multi && meta && proto_meta_str(meta, "hook", hook, sizeof hook) == PROTO_OK &&
        (err = check_hook(st, hook, "header: ")) != 0)
        return err;
    if (meta) proto_meta_uint(meta, "total_rows", &st->total_rows);
    if (meta && proto_meta_uint(meta, "d_model", &d_model) == PROTO_OK && d_model != (uint64_t)s->d_in) {
        proto_set_detail("header: d_model %llu does not match SAE d_in %d", (unsigned long long)d_model, s->d_in);
        return PROTO_E_MISMATCH;
    }
    struct proto_meta m;
    proto_meta_init(&m, meta, argc, argv);
    if (!(err = proto_meta_set_str(&m, "sae", s->name)) &&
        !(err = proto_meta_set_str(&m, "sae_path", st->o->sae_dir)) &&
        !(err = proto_meta_set_uint(&m, "d_sae", (uint64_t)s->d_sae)) &&
        !(err = proto_meta_set_str(&m, "sae_architecture", proto_sae_arch_name(s->arch))) &&
        !(err = proto_meta_set_str(&m, "sae_activation", proto_sae_act_name(s->act))))
        err = proto_writer_header(w, &m);
    proto_meta_destroy(&m);
    return err;
}

/* ---------------------------------------------------------------------------------------- */
/* command line */

static void usage(FILE *fp)
{
    fprintf(fp,
        "usage: sf-encode --sae DIR [options]\n"
        "Applies a SAELens-format SAE (DIR/cfg.json, DIR/sae_weights.safetensors) to every\n"
        "acts frame: adds feats (sparse CSR of the feature activations f > 0) and, with --splice,\n"
        "recon f32 [rows, ctx, d_model] (the reconstruction in the model's units). Other frames\n"
        "pass through, and so do acts frames at other hooks of a multi-hook stream (sf-forward\n"
        "--hook A,B,...: the SAE works on its cfg hook_name's frames). Architectures: standard (relu, tanh-relu), topk, jumprelu, gated;\n"
        "apply_b_dec_to_input; normalize_activations none, constant_norm_rescale,\n"
        "expected_average_only_in, layer_norm; finetuning_scaling_factor; f32/f16/bf16 weights.\n"
        "A token whose activation is not finite gets no features and a NaN recon; the count is\n"
        "in the end frame's meta (nonfinite_tokens) and the first one is named on stderr.\n"
        "\n"
        "options:\n"
        "  --sae DIR                 the SAE directory (required; may also be given as the operand)\n"
        "  --splice                  add recon\n"
        "  --drop-acts               drop acts from the output (downstream does not need it)\n"
        "  --force-hook              apply the SAE even when the frames' hook differs from cfg hook_name,\n"
        "                            or when cfg.json has no hook_name (without it: exit 1)\n"
        "                            (a d_model other than the SAE's d_in is always an error)\n"
        "  --norm-scaling-factor S   the factor s of normalize_activations expected_average_only_in\n"
        "                            (x' = s*x, recon = recon'/s); default: cfg.json norm_scaling_factor\n"
        "--threads N also sets the activation/decode workers (default: all cores).\n\n");
    proto_cli_help_common(fp);
    fprintf(fp,
        "\nexamples:\n"
        "  sf-forward --model M --hook blocks.2.hook_resid_post < tok.sf | sf-encode --sae SAE --splice > enc.sf\n"
        "  sf-encode --sae SAE --drop-acts -i acts.sf.zst -o feats.sf.zst\n"
        "  sf-encode --sae SAE < acts.sf | sf-cat --summary\n");
}

enum { OPT_SAE = PROTO_OPT_FIRST_FREE, OPT_SPLICE, OPT_DROP_ACTS, OPT_FORCE_HOOK, OPT_NORM_SCALE };

static void parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        PROTO_CLI_LONGOPTS,
        {"sae", required_argument, 0, OPT_SAE},
        {"splice", no_argument, 0, OPT_SPLICE},
        {"drop-acts", no_argument, 0, OPT_DROP_ACTS},
        {"force-hook", no_argument, 0, OPT_FORCE_HOOK},
        {"norm-scaling-factor", required_argument, 0, OPT_NORM_SCALE},
        {0, 0, 0, 0},
    };
    int c;
    while ((c = getopt_long(argc, argv, PROTO_CLI_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case OPT_SAE: o->sae_dir = optarg; break;
        case OPT_SPLICE: o->splice = true; break;
        case OPT_DROP_ACTS: o->drop_acts = true; break;
        case OPT_FORCE_HOOK: o->force_hook = true; break;
        case OPT_NORM_SCALE: o->norm_scale = proto_parse_double("--norm-scaling-factor", optarg, 1e-30, 1e30); break;
        default: proto_cli_common(&o->cli, c, optarg, usage);
        }
    }
    if (optind < argc && !o->sae_dir) o->sae_dir = argv[optind++];
    if (optind < argc) proto_usage_error("unexpected operand '%s'", argv[optind]);
    if (!o->sae_dir) proto_usage_error("--sae DIR is required");
    proto_cli_finish(&o->cli, true);
}

/* ---------------------------------------------------------------------------------------- */

#ifndef SF_ENCODE_NO_MAIN
int main(int argc, char **argv)
{
    struct opts o = opts_default(argv[0]);
    parse_args(argc, argv, &o);

    struct proto_reader *in = NULL;
    struct proto_writer *out = NULL;
    struct proto_writer_opts wo = { .zstd_tensors = o.cli.zstd, .zstd_level = 3 };
    struct state st;
    struct proto_frame fr;
    struct proto_progress prog;
    int rc = PROTO_EXIT_OK, err;
    if ((err = state_init(&st, &o)) != 0) { rc = proto_fail(err, o.sae_dir); goto out; }
    proto_info("%s: %s/%s d_in %d d_sae %d k %d, apply_b_dec %d, norm %s, threads %d", st.sae.name,
               proto_sae_arch_name(st.sae.arch), proto_sae_act_name(st.sae.act), st.sae.d_in, st.sae.d_sae, st.sae.k,
               st.sae.apply_b_dec, proto_sae_norm_name(st.sae.norm), st.n_threads);
    if (!(in = proto_reader_open(o.cli.in, &err))) { rc = proto_fail(err, o.cli.in); goto out; }
    if (!(out = proto_writer_open(o.cli.out, &wo, &err))) { rc = proto_fail(err, o.cli.out); goto out; }
    if ((err = proto_reader_next(in, &fr)) != PROTO_OK) { rc = proto_fail(err == PROTO_END ? PROTO_E_SEQ : err, o.cli.in); goto out; }
    if ((err = write_header(&st, &fr, out, argc, argv)) != 0) {
        rc = proto_fail(err, proto_writer_error(out) ? o.cli.out : o.cli.in);
        goto out;
    }
    proto_progress_init(&prog, proto_cli_progress_on(&o.cli), "encode", st.total_rows);
    while ((err = proto_reader_next(in, &fr)) == PROTO_OK) {
        if ((err = process_frame(&st, &fr, out)) != 0) break;
        proto_progress_update(&prog, proto_writer_rows(out), st.n_tokens);
    }
    if (err != PROTO_END) { rc = proto_fail(err, proto_writer_error(out) ? o.cli.out : o.cli.in); goto out; }
    proto_progress_done(&prog, proto_writer_rows(out), st.n_tokens);
    proto_info("%llu tokens, mean L0 %.2f; seconds: prepare %.3f, encoder sgemm %.3f (%.1f GFLOP/s), activation + "
               "decode %.3f", (unsigned long long)st.n_tokens,
               st.n_tokens ? (double)st.nnz_all / (double)st.n_tokens : 0.0, st.t_prep, st.t_sgemm,
               2.0 * (double)st.n_tokens * st.sae.d_in * st.sae.d_sae / (st.t_sgemm > 0 ? st.t_sgemm : 1) / 1e9,
               st.t_post);
    if (st.n_nonfinite)
        proto_warn("%llu of %llu tokens had non-finite activations", (unsigned long long)st.n_nonfinite,
                   (unsigned long long)st.n_tokens);
    if ((err = proto_writer_carry_end_meta(out, &fr)) != 0 ||
        (err = proto_writer_end_meta(out, "nonfinite_tokens", (double)st.n_nonfinite)) != 0) {
        rc = proto_fail(err, o.cli.out);
        goto out;
    }
out:
    if (out && (err = proto_writer_close(out, rc == PROTO_EXIT_OK)) != 0 && rc == PROTO_EXIT_OK)
        rc = proto_fail(err, o.cli.out);
    proto_reader_close(in);
    state_destroy(&st);
    return rc;
}
#endif
