/* sf-reduce - every metric of the study, streaming, in one pass: frames in, one JSON document out.
 *
 * Reads `sim` frames (similarity block), `acts` frames with `feats` (+ `recon`, `keep`) and
 * `loss` frames (per-model block) from one or more inputs (-i, repeatable), or two paired
 * streams (--base A --finetune B: both per-model blocks, the similarity block from the paired
 * activations and the transfer block). With --base-model/--finetune-model/--sae it adds the
 * logit weight similarity and the unembedding Frobenius figures; --weights-only compares two
 * checkpoints tensor by tensor without any stream. --merge a.json b.json ... combines the
 * "partial" blocks of shard results into the result one pass over all shards would give.
 * Keys: ../shared/SPEC.md §4; definitions: ../shared/STUDY.md; layout choices: usage().
 */
#include <errno.h>
#include <float.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <cblas.h>
#include <cjson/cJSON.h>
#include "proto.h"
#include "study.h"
#include "cli.h"

/* ======================== constants ======================== */
#define L0_EPS      1e-8     /* a feature counts towards L0 when f > L0_EPS */
#define DENS_EPS    1e-10    /* ... and towards its density when f > DENS_EPS */
#define LOG_EPS     1e-10    /* log10(density + LOG_EPS), log10(a + LOG_EPS) */
#define NORM_FLOOR  1e-12    /* norms are floored here before dividing */
#define DEAD_LOG    (-9.0)   /* dead: log_density <= -9 */
#define XDEAD_LOG   (-8.0)   /* exclusively dead sets: <= -8 in one model, > -8 in the other */
#define REG_LO      (-5.0)   /* regular: REG_LO <= log_density <= REG_HI in both models */
#define REG_HI      (-1.0)
#define SIM_HI      0.8      /* activation_similarity.frac_above_0.8 */
#define MAX_INPUTS  16
#define PARTIAL_VERSION 1
#define LANES(z)    ((z[0] + z[1]) + (z[2] + z[3]))   /* sum of 4 accumulation lanes */

/* Histograms. Two kinds, both with fixed edges so two runs can be compared and merged:
 * LIN : n bins [lo + k*step, lo + (k+1)*step); a value v goes to floor((v - lo)/step).
 * LOGZ: bin 0 is [0, 10^lo); bin k >= 1 is [10^(lo+(k-1)*step), 10^(lo+k*step)); a value v >= 10^lo
 *       goes to 1 + floor((log10(v) - lo)/step). Used for norms and l2 distances, whose scale
 *       differs by model (stories260k ~7, Gemma-2b ~100s).
 * The last bin also takes its right edge. Values outside go to "below"/"above", NaN to "nan". */
enum hkind { H_LIN, H_LOGZ };
/* lo = lo_num/den, step = step_num/den: edges are exact decimals, binning uses the same integers */
struct hspec { enum hkind kind; int lo_num, step_num, den, n; };
static const struct hspec HS_COS  = {H_LIN, -100, 1, 100, 200};   /* cos: -1 .. 1 step 0.01 */
static const struct hspec HS_NORM = {H_LOGZ, -120, 1, 40, 321};   /* 0, 1e-3 .. 1e5, 40 bins a decade */
static const struct hspec HS_ACT  = {H_LIN, -200, 1, 20, 300};    /* log10 f: -10 .. 5 step 0.05 */
static const struct hspec HS_DENS = {H_LIN, -201, 2, 20, 102};    /* log10 density: -10.05 .. 0.15 step 0.1 */

/* ======================== options ======================== */
struct opts {
    struct proto_cli cli;
    const char *in[MAX_INPUTS]; int n_in;
    const char *base[MAX_INPUTS]; int n_base;
    const char *ft[MAX_INPUTS]; int n_ft;
    const char *base_model, *ft_model, *sae_dir;
    bool weights_only, pretty, merge, no_partial;
    char **merge_files; int n_merge;
    long long sample; uint64_t seed;
    int argc; char **argv;
};

static struct opts opts_default(void)
{
    struct opts o;
    memset(&o, 0, sizeof o);
    o.seed = 0;
    return o;
}

/* ======================== histograms ======================== */
struct hist { struct hspec s; uint64_t *c; uint64_t below, above, nan; double zlo; /* LOGZ: 10^lo */ };

static int hist_init(struct hist *h, struct hspec s)
{
    h->s = s; h->below = h->above = h->nan = 0;
    h->zlo = pow(10.0, (double)s.lo_num / s.den);
    h->c = calloc((size_t)s.n, sizeof *h->c);
    return h->c ? PROTO_OK : PROTO_E_NOMEM;
}

static void hist_add(struct hist *h, double v)
{
    const struct hspec *s = &h->s;
    if (isnan(v)) { h->nan++; return; }
    double x = v;
    int off = 0;
    if (s->kind == H_LOGZ) {
        if (v < 0) { h->below++; return; }
        if (v < h->zlo) { h->c[0]++; return; }
        x = log10(v); off = 1;
    }
    double u = (x * s->den - s->lo_num) / s->step_num;   /* position in bins */
    if (u < 0) { h->below++; return; }
    if (u >= s->n - off) {
        if (u == s->n - off) h->c[s->n - 1]++;   /* the last bin is closed on the right */
        else h->above++;
        return;
    }
    h->c[(long long)u + off]++;
}

static double hist_edge(const struct hspec *s, int k)
{
    if (s->kind == H_LIN) return (double)(s->lo_num + k * s->step_num) / s->den;
    return k == 0 ? 0.0 : pow(10.0, (double)(s->lo_num + (k - 1) * s->step_num) / s->den);
}

/* ======================== accumulators ========================
 * Everything is accumulated in double (sums over many frames), counts in uint64. No stored
 * activations: memory is O(d_sae + d_model + ctx + rows) whatever the number of tokens (the
 * per-row arrays are the SPEC's [R] outputs, 16 bytes per row). */

/* similarity: per-token cos and l2 of base vs finetune */
struct simacc {
    uint64_t n, nonfinite;
    double s_cos, s_l2;
    uint64_t ctx;
    double *pos_cos, *pos_l2; uint64_t *pos_n;   /* (ctx) */
    double *row_cos, *row_l2; uint64_t *row_n;   /* (rows) */
    size_t rows, row_cap;
    struct hist h_cos, h_l2;
};

/* one mean-of-values key of loss frames */
struct lossacc { double sum; uint64_t n, nonfinite; bool seen; };
enum { CE_CLEAN, CE_SPLICED, CE_ABLATED, KL_SPLICED, KL_ABLATED, N_LOSS };
static const char *LOSS_KEYS[N_LOSS] = {"ce_clean", "ce_spliced", "ce_ablated", "kl_spliced", "kl_ablated"};

/* per-model: features, activations, reconstruction, loss */
struct modelacc {
    uint32_t d_sae; uint64_t d_model;
    /* feats (all tokens) */
    uint64_t f_tok, l0_count, feat_nonfinite, act_pos;
    double l1_sum;
    uint64_t *fire, *nz;                 /* (d_sae) #f > DENS_EPS, #f != 0 */
    double *sa, *sa2, *amax, *amin;      /* (d_sae) over f != 0 */
    struct hist h_act;                   /* log10 f, f > 0 */
    /* acts frames (all their tokens; outliers from keep, norms when acts is there) */
    uint64_t a_tok, outliers;
    struct hist h_norm;
    /* recon (non-outlier tokens) */
    uint64_t r_tok, r_nonfinite, ev_tok, ev_nonfinite;
    double r_n, r_mean, r_m2;            /* scalars: Chan's running count, mean, M2 */
    double ss_res, ev_sum, cos_sum, ratio_sum;
    struct lossacc loss[N_LOSS];
    double outlier_threshold;            /* from the header meta (sf-outliers), NaN when unknown */
    bool has_feats, has_acts, has_recon, has_loss;
};

/* transfer: per-feature cross sums of the paired streams */
struct xacc { uint64_t n_tok; uint32_t d_sae; double *sab, *sld; /* (d_sae) */ };

/* the whole state of one run (or of a merge) */
struct acc {
    int paired;                 /* 0: one model ("model"), 1: base/finetune */
    uint64_t tokens, rows, ctx; /* of the primary input (first input / first pair) */
    uint64_t ktok[PROTO_KIND_OTHER + 1], krows[PROTO_KIND_OTHER + 1];   /* ... by frame kind */
    char hook[256], sae[1024];
    struct simacc sim; bool has_sim;
    struct modelacc m[2];
    struct xacc x; bool has_x;
    double seconds; uint64_t reduce_rows, reduce_tokens;
    cJSON *prov_inputs;         /* array of {role, endpoint, header, end} */
    struct proto_progress prog;
    bool warned_sim, warned_hook;
};

static void *xcalloc(size_t n, size_t sz, int *err) { void *p = calloc(n ? n : 1, sz); if (!p) *err = PROTO_E_NOMEM; return p; }

static int sim_init(struct simacc *s, uint64_t ctx)
{
    int err = PROTO_OK;
    s->ctx = ctx;
    s->pos_cos = xcalloc(ctx, sizeof(double), &err);
    s->pos_l2 = xcalloc(ctx, sizeof(double), &err);
    s->pos_n = xcalloc(ctx, sizeof(uint64_t), &err);
    if (!err) err = hist_init(&s->h_cos, HS_COS);
    if (!err) err = hist_init(&s->h_l2, HS_NORM);
    return err;
}

static void sim_destroy(struct simacc *s)
{
    free(s->pos_cos); free(s->pos_l2); free(s->pos_n);
    free(s->row_cos); free(s->row_l2); free(s->row_n);
    free(s->h_cos.c); free(s->h_l2.c);
}

static int sim_grow_rows(struct simacc *s, size_t rows)
{
    if (rows <= s->row_cap) return PROTO_OK;
    size_t cap = s->row_cap ? s->row_cap : 64;
    while (cap < rows) cap *= 2;
    double *a = realloc(s->row_cos, cap * sizeof *a); if (!a) return PROTO_E_NOMEM; s->row_cos = a;
    double *b = realloc(s->row_l2, cap * sizeof *b); if (!b) return PROTO_E_NOMEM; s->row_l2 = b;
    uint64_t *c = realloc(s->row_n, cap * sizeof *c); if (!c) return PROTO_E_NOMEM; s->row_n = c;
    for (size_t i = s->row_cap; i < cap; i++) { s->row_cos[i] = s->row_l2[i] = 0; s->row_n[i] = 0; }
    s->row_cap = cap;
    return PROTO_OK;
}

/* Adds rows x ctx per-token values (cos, l2: (rows, ctx)). Non-finite tokens are counted and
 * left out of every mean and histogram. */
static int sim_add(struct simacc *s, uint64_t rows, uint64_t ctx, const float *cos, const float *l2)
{
    int err = sim_grow_rows(s, s->rows + rows);
    if (err) return err;
    for (uint64_t r = 0; r < rows; r++) {
        size_t R = s->rows + r;
        for (uint64_t p = 0; p < ctx; p++) {
            double c = cos[r * ctx + p], d = l2[r * ctx + p];
            if (!isfinite(c) || !isfinite(d)) { s->nonfinite++; continue; }
            s->n++; s->s_cos += c; s->s_l2 += d;
            s->pos_cos[p] += c; s->pos_l2[p] += d; s->pos_n[p]++;
            s->row_cos[R] += c; s->row_l2[R] += d; s->row_n[R]++;
            hist_add(&s->h_cos, c); hist_add(&s->h_l2, d);
        }
    }
    s->rows += rows;
    return PROTO_OK;
}

static int model_init_feats(struct modelacc *m, uint32_t d_sae)
{
    int err = PROTO_OK;
    m->d_sae = d_sae;
    m->fire = xcalloc(d_sae, sizeof(uint64_t), &err);
    m->nz = xcalloc(d_sae, sizeof(uint64_t), &err);
    m->sa = xcalloc(d_sae, sizeof(double), &err);
    m->sa2 = xcalloc(d_sae, sizeof(double), &err);
    m->amax = xcalloc(d_sae, sizeof(double), &err);
    m->amin = xcalloc(d_sae, sizeof(double), &err);
    if (err) return err;
    for (uint32_t j = 0; j < d_sae; j++) { m->amax[j] = -INFINITY; m->amin[j] = INFINITY; }
    m->has_feats = true;
    return PROTO_OK;
}

static int model_init(struct modelacc *m)
{
    memset(m, 0, sizeof *m);
    m->outlier_threshold = NAN;
    int err = hist_init(&m->h_act, HS_ACT);
    if (!err) err = hist_init(&m->h_norm, HS_NORM);
    return err;
}

static void model_destroy(struct modelacc *m)
{
    free(m->fire); free(m->nz); free(m->sa); free(m->sa2); free(m->amax); free(m->amin);
    free(m->h_act.c); free(m->h_norm.c);
}

static int x_init(struct xacc *x, uint32_t d_sae)
{
    int err = PROTO_OK;
    x->d_sae = d_sae;
    x->sab = xcalloc(d_sae, sizeof(double), &err);
    x->sld = xcalloc(d_sae, sizeof(double), &err);
    return err;
}

static void acc_destroy(struct acc *a)
{
    sim_destroy(&a->sim);
    model_destroy(&a->m[0]); model_destroy(&a->m[1]);
    free(a->x.sab); free(a->x.sld);
    cJSON_Delete(a->prov_inputs);
}

static int acc_init(struct acc *a, int paired)
{
    memset(a, 0, sizeof *a);
    a->paired = paired;
    int err = model_init(&a->m[0]);
    if (!err) err = model_init(&a->m[1]);
    if (!err && !(a->prov_inputs = cJSON_CreateArray())) err = PROTO_E_NOMEM;
    return err;
}

/* Chan et al.'s parallel update of (count, mean, M2). */
static void chan_merge(double *n, double *mean, double *m2, double nb, double meanb, double m2b)
{
    if (nb == 0) return;
    double na = *n, N = na + nb, d = meanb - *mean;
    *mean += d * nb / N;
    *m2 += m2b + d * d * na * nb / N;
    *n = N;
}

/* ======================== kernels ======================== */
/* frame-local scratch, grown only when needed */
struct scratch {
    struct proto_buf acts, recon, acts2, cosb, l2b, mu, flag;
    float *vb, *vf;     /* (d_sae) dense views of one token's features, zero between tokens */
    uint32_t d_sae;
};

static void scratch_destroy(struct scratch *s)
{
    proto_buf_destroy(&s->acts); proto_buf_destroy(&s->recon); proto_buf_destroy(&s->acts2);
    proto_buf_destroy(&s->cosb); proto_buf_destroy(&s->l2b); proto_buf_destroy(&s->mu);
    proto_buf_destroy(&s->flag);
    free(s->vb); free(s->vf);
}

/* Features of n_tok tokens (CSR): L0, L1, per-feature counts/sums/extremes, log10 histogram. */
static void model_add_feats(struct modelacc *m, const struct proto_sparse *sp)
{
    for (uint64_t t = 0; t < sp->n_tok; t++) {
        for (uint32_t e = sp->indptr[t]; e < sp->indptr[t + 1]; e++) {
            uint32_t j = sp->index[e];
            double v = sp->value[e];
            if (!isfinite(v)) { m->feat_nonfinite++; continue; }
            m->l1_sum += v;
            if (v > L0_EPS) m->l0_count++;
            if (v > DENS_EPS) m->fire[j]++;
            if (v != 0) {
                m->nz[j]++; m->sa[j] += v; m->sa2[j] += v * v;
                if (v > m->amax[j]) m->amax[j] = v;
                if (v < m->amin[j]) m->amin[j] = v;
            }
            if (v > 0) { m->act_pos++; hist_add(&m->h_act, log10(v)); }
        }
    }
    m->f_tok += sp->n_tok;
}

/* Reconstruction metrics over the kept tokens of one frame.
 * x, y: (n_tok, d) activations and reconstruction; keep: (n_tok) or NULL (all kept).
 * r2_pooled: the frame's scalars give (count, mean, M2) two-pass, merged with Chan's update.
 * explained_variance (SAELens): mu is the per-dimension mean over the frame's kept tokens, i.e.
 * one frame = one SAELens batch; the per-token values are summed over the stream. */
static int model_add_recon(struct modelacc *m, struct scratch *s, const float *x, const float *y,
                           const uint8_t *keep, uint64_t n_tok, uint64_t d)
{
    int err;
    if ((err = proto_buf_reserve(&s->mu, d * sizeof(double))) ||
        (err = proto_buf_reserve(&s->flag, n_tok ? n_tok : 1))) return err;
    double *mu = s->mu.p;     /* (d) */
    uint8_t *ok = s->flag.p;  /* (n_tok) 1 = kept and finite */
    memset(mu, 0, d * sizeof(double));
    uint64_t cnt = 0;
    /* pass 1: which tokens count, and the per-dimension sums */
    for (uint64_t t = 0; t < n_tok; t++) {
        ok[t] = 0;
        if (keep && !keep[t]) continue;
        const float *xt = x + t * d, *yt = y + t * d;
        double chk = 0;
        for (uint64_t k = 0; k < d; k++) chk += (double)xt[k] + yt[k];   /* NaN/inf anywhere -> not finite */
        if (!isfinite(chk)) { m->r_nonfinite++; continue; }
        ok[t] = 1; cnt++;
        for (uint64_t k = 0; k < d; k++) mu[k] += xt[k];
    }
    if (!cnt) return PROTO_OK;
    double tot = 0;
    for (uint64_t k = 0; k < d; k++) { tot += mu[k]; mu[k] /= (double)cnt; }
    double fmean = tot / ((double)cnt * (double)d);
    /* pass 2: per-token sums */
    double fm2 = 0;
    for (uint64_t t = 0; t < n_tok; t++) {
        if (!ok[t]) continue;
        const float *xt = x + t * d, *yt = y + t * d;
        double r4[4] = {0}, v4[4] = {0}, d4[4] = {0}, xx4[4] = {0}, yy4[4] = {0}, xy4[4] = {0};   /* 4 lanes */
        uint64_t k = 0;
        for (; k + 4 <= d; k += 4)
            for (int l = 0; l < 4; l++) {
                double a = xt[k + l], b = yt[k + l], e = a - b, v = a - mu[k + l], w = a - fmean;
                r4[l] += e * e; v4[l] += v * v; d4[l] += w * w; xx4[l] += a * a; yy4[l] += b * b; xy4[l] += a * b;
            }
        for (; k < d; k++) {
            double a = xt[k], b = yt[k], e = a - b, v = a - mu[k], w = a - fmean;
            r4[0] += e * e; v4[0] += v * v; d4[0] += w * w; xx4[0] += a * a; yy4[0] += b * b; xy4[0] += a * b;
        }
        double res = LANES(r4), var = LANES(v4), dev = LANES(d4), xx = LANES(xx4), yy = LANES(yy4), xy = LANES(xy4);
        fm2 += dev;
        m->ss_res += res;
        m->r_tok++;
        double nx = fmax(sqrt(xx), NORM_FLOOR), ny = fmax(sqrt(yy), NORM_FLOOR);
        m->cos_sum += xy / (nx * ny);
        m->ratio_sum += sqrt(yy) / nx;
        double ev = 1.0 - res / var;
        if (isfinite(ev)) { m->ev_sum += ev; m->ev_tok++; } else m->ev_nonfinite++;
    }
    chan_merge(&m->r_n, &m->r_mean, &m->r_m2, (double)cnt * (double)d, fmean, fm2);
    return PROTO_OK;
}

/* Activation norms of every token (outliers included). */
static void model_add_acts(struct modelacc *m, const float *x, uint64_t n_tok, uint64_t d)
{
    for (uint64_t t = 0; t < n_tok; t++) {
        const float *xt = x + t * d;
        double ss[4] = {0, 0, 0, 0};   /* 4 lanes: independent chains the compiler can vectorize */
        uint64_t k = 0;
        for (; k + 4 <= d; k += 4)
            for (int l = 0; l < 4; l++) ss[l] += (double)xt[k + l] * xt[k + l];
        for (; k < d; k++) ss[0] += (double)xt[k] * xt[k];
        hist_add(&m->h_norm, sqrt((ss[0] + ss[1]) + (ss[2] + ss[3])));
    }
}

static void model_add_loss(struct modelacc *m, int key, const float *v, uint64_t n)
{
    struct lossacc *l = &m->loss[key];
    l->seen = true;
    for (uint64_t i = 0; i < n; i++) {
        if (!isfinite(v[i])) { l->nonfinite++; continue; }
        l->sum += v[i]; l->n++;
    }
    m->has_loss = true;
}


/* Transfer cross sums of one paired frame: Σ a_b·a_f and Σ |log10(a_b+eps) - log10(a_f+eps)|
 * per feature (tokens where both are zero add 0 to both). vb, vf: (d_sae) zeroed scratch. */
static void x_add(struct xacc *x, const struct proto_sparse *b, const struct proto_sparse *f, float *vb, float *vf)
{
    const double lz = log10(LOG_EPS);
    for (uint64_t t = 0; t < b->n_tok; t++) {
        uint32_t b0 = b->indptr[t], b1 = b->indptr[t + 1], f0 = f->indptr[t], f1 = f->indptr[t + 1];
        for (uint32_t e = b0; e < b1; e++) if (isfinite(b->value[e])) vb[b->index[e]] = b->value[e];
        for (uint32_t e = f0; e < f1; e++) if (isfinite(f->value[e])) vf[f->index[e]] = f->value[e];
        for (uint32_t e = b0; e < b1; e++) {
            uint32_t j = b->index[e];
            double p = vb[j], q = vf[j];
            if (p == 0 && q == 0) continue;
            x->sab[j] += p * q;
            x->sld[j] += fabs(log10(p + LOG_EPS) - log10(q + LOG_EPS));
            vb[j] = 0; vf[j] = 0;   /* done with j: the finetune loop below skips it */
        }
        for (uint32_t e = f0; e < f1; e++) {
            uint32_t j = f->index[e];
            double q = vf[j];
            if (q == 0) continue;
            x->sld[j] += fabs(lz - log10(q + LOG_EPS));
            vf[j] = 0;
        }
        for (uint32_t e = b0; e < b1; e++) vb[b->index[e]] = 0;
    }
    x->n_tok += b->n_tok;
}

/* ======================== frames ======================== */
static int set_ctx(struct acc *a, uint64_t ctx, uint64_t seq)
{
    if (a->ctx == 0) { a->ctx = ctx; return sim_init(&a->sim, ctx); }
    if (a->ctx != ctx) {
        if (seq == UINT64_MAX) proto_set_detail("partial: ctx %llu, earlier parts had %llu", (unsigned long long)ctx, (unsigned long long)a->ctx);
        else proto_set_detail("frame %llu: ctx %llu, earlier frames had %llu", (unsigned long long)seq,
                              (unsigned long long)ctx, (unsigned long long)a->ctx);
        return PROTO_E_MISMATCH;
    }
    return PROTO_OK;
}

static int need_feats(struct acc *a, struct modelacc *m, struct scratch *s, uint32_t d_sae, uint64_t seq)
{
    int err;
    if (!m->has_feats && (err = model_init_feats(m, d_sae))) return err;
    if (m->d_sae != d_sae) {
        proto_set_detail("frame %llu: feats d_sae %u, earlier frames had %u", (unsigned long long)seq, d_sae, m->d_sae);
        return PROTO_E_MISMATCH;
    }
    if (!s->vb) {
        if (!(s->vb = calloc(d_sae, sizeof(float))) || !(s->vf = calloc(d_sae, sizeof(float)))) return PROTO_E_NOMEM;
        s->d_sae = d_sae;
    }
    (void)a;
    return PROTO_OK;
}

/* One data frame into model block mi. primary: this input defines tokens/rows. */
static int add_frame(struct acc *a, struct scratch *s, int mi, const struct proto_frame *f, bool primary)
{
    struct modelacc *m = &a->m[mi];
    const struct proto_tensor *tok = proto_frame_tensor(f, "tokens");
    int err;
    if (!tok) return PROTO_OK;   /* kinds we do not reduce */
    uint64_t rows = tok->shape[0], ctx = tok->shape[1], n_tok = rows * ctx;
    if ((err = set_ctx(a, ctx, f->seq))) return err;
    if (primary) {   /* one stream may carry several kinds over the same tokens: count each kind */
        a->krows[f->kind] += rows; a->ktok[f->kind] += n_tok;
        proto_progress_update(&a->prog, a->krows[f->kind], a->ktok[f->kind]);
    }
    a->reduce_rows += rows; a->reduce_tokens += n_tok;
    const struct proto_value *hv = proto_frame_get((struct proto_frame *)f, "hook");
    if (hv && hv->type == PROTO_V_STR && !a->hook[0] && hv->len < sizeof a->hook) {
        memcpy(a->hook, hv->str, hv->len); a->hook[hv->len] = 0;
    }
    if (f->kind == PROTO_KIND_SIM) {
        if (a->paired) {   /* paired runs compute similarity from the activations */
            if (!a->warned_sim) proto_warn("sim frames are ignored with --base/--finetune (similarity comes from the paired acts)");
            a->warned_sim = true;
            return PROTO_OK;
        }
        const struct proto_tensor *tc = proto_frame_tensor(f, "cos"), *tl = proto_frame_tensor(f, "l2");
        if (!tc || !tl) { proto_set_detail("frame %llu: sim frame needs cos and l2", (unsigned long long)f->seq); return PROTO_E_SCHEMA; }
        const float *c = proto_tensor_f32(tc, &s->cosb, &err); if (!c) return err;
        const float *l = proto_tensor_f32(tl, &s->l2b, &err); if (!l) return err;
        a->has_sim = true;
        return sim_add(&a->sim, rows, ctx, c, l);
    }
    if (f->kind == PROTO_KIND_LOSS) {
        for (int k = 0; k < N_LOSS; k++) {
            const struct proto_tensor *t = proto_frame_tensor(f, LOSS_KEYS[k]);
            if (!t) continue;
            const float *v = proto_tensor_f32(t, &s->cosb, &err); if (!v) return err;
            model_add_loss(m, k, v, proto_tensor_numel(t));
        }
        return PROTO_OK;
    }
    if (f->kind != PROTO_KIND_ACTS) return PROTO_OK;
    const struct proto_tensor *ta = proto_frame_tensor(f, "acts"), *tr = proto_frame_tensor(f, "recon"),
                              *tk = proto_frame_tensor(f, "keep");
    const struct proto_sparse *sp = proto_frame_sparse(f, "feats");
    if (tk && tk->dtype != PROTO_U8) { proto_set_detail("frame %llu: keep must be u8", (unsigned long long)f->seq); return PROTO_E_SCHEMA; }
    const uint8_t *keep = tk ? tk->data : NULL;   /* (n_tok) */
    /* outliers: from keep, also when the activations were dropped upstream */
    m->has_acts = true;
    m->a_tok += n_tok;
    for (uint64_t t = 0; keep && t < n_tok; t++) m->outliers += !keep[t];
    if (ta) {
        uint64_t d = ta->shape[2];
        if (m->d_model && m->d_model != d) { proto_set_detail("frame %llu: d_model %llu, earlier frames had %llu", (unsigned long long)f->seq, (unsigned long long)d, (unsigned long long)m->d_model); return PROTO_E_MISMATCH; }
        m->d_model = d;
        const float *x = proto_tensor_f32(ta, &s->acts, &err); if (!x) return err;   /* (n_tok, d) */
        model_add_acts(m, x, n_tok, d);
        if (tr) {
            const float *y = proto_tensor_f32(tr, &s->recon, &err); if (!y) return err;   /* (n_tok, d) */
            if ((err = model_add_recon(m, s, x, y, keep, n_tok, d))) return err;
            m->has_recon = true;
        }
    }
    if (sp) {
        if ((err = need_feats(a, m, s, sp->d_sae, f->seq))) return err;
        model_add_feats(m, sp);
    }
    return PROTO_OK;
}

/* tokens of two paired frames must be identical */
static int same_tokens(const struct proto_frame *b, const struct proto_frame *f)
{
    if (b->kind != f->kind) {
        proto_set_detail("seq %llu: base frame is '%s', finetune frame is '%s'", (unsigned long long)b->seq, b->kind_name, f->kind_name);
        return PROTO_E_MISMATCH;
    }
    return proto_frame_same_tokens(b, f);
}

static int add_pair(struct acc *a, struct scratch *s, const struct proto_frame *fb, const struct proto_frame *ff, bool primary)
{
    int err;
    if ((err = same_tokens(fb, ff))) return err;
    if ((err = add_frame(a, s, 0, fb, primary)) || (err = add_frame(a, s, 1, ff, false))) return err;
    if (fb->kind != PROTO_KIND_ACTS) return PROTO_OK;
    char hb[256], hf[256];
    if (!a->warned_hook && proto_frame_str(fb, "hook", hb, sizeof hb) == PROTO_OK &&
        proto_frame_str(ff, "hook", hf, sizeof hf) == PROTO_OK && strcmp(hb, hf) != 0) {
        proto_warn("base hook %s, finetune hook %s: comparing different hook points", hb, hf);
        a->warned_hook = true;
    }
    const struct proto_tensor *tok = proto_frame_tensor(fb, "tokens");
    uint64_t rows = tok->shape[0], ctx = tok->shape[1], n_tok = rows * ctx;
    const struct proto_tensor *ab = proto_frame_tensor(fb, "acts"), *af = proto_frame_tensor(ff, "acts");
    if (ab && af) {
        if (ab->shape[2] != af->shape[2]) { proto_set_detail("seq %llu: d_model %llu (base) vs %llu (finetune)", (unsigned long long)fb->seq, (unsigned long long)ab->shape[2], (unsigned long long)af->shape[2]); return PROTO_E_MISMATCH; }
        const float *x = proto_tensor_f32(ab, &s->acts, &err); if (!x) return err;    /* (n_tok, d) */
        const float *y = proto_tensor_f32(af, &s->acts2, &err); if (!y) return err;   /* (n_tok, d) */
        if ((err = proto_buf_reserve(&s->cosb, n_tok * 4)) || (err = proto_buf_reserve(&s->l2b, n_tok * 4))) return err;
        proto_sim_tokens(x, y, n_tok, ab->shape[2], s->cosb.p, s->l2b.p);
        a->has_sim = true;
        if ((err = sim_add(&a->sim, rows, ctx, s->cosb.p, s->l2b.p))) return err;
    }
    const struct proto_sparse *sb = proto_frame_sparse(fb, "feats"), *sf = proto_frame_sparse(ff, "feats");
    if (sb && sf) {
        if (sb->d_sae != sf->d_sae) { proto_set_detail("seq %llu: d_sae %u (base) vs %u (finetune)", (unsigned long long)fb->seq, sb->d_sae, sf->d_sae); return PROTO_E_MISMATCH; }
        if (!a->has_x) { if ((err = x_init(&a->x, sb->d_sae))) return err; a->has_x = true; }
        x_add(&a->x, sb, sf, s->vb, s->vf);
    }
    return PROTO_OK;
}

/* ---- msgpack -> cJSON (header meta into provenance) ---- */
static cJSON *mp_to_json(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return cJSON_CreateNull();
    case MSGPACK_OBJECT_BOOLEAN: return cJSON_CreateBool(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return cJSON_CreateNumber((double)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return cJSON_CreateNumber((double)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32: case MSGPACK_OBJECT_FLOAT64: return cJSON_CreateNumber(o->via.f64);
    case MSGPACK_OBJECT_STR: {
        char *t = malloc(o->via.str.size + 1);
        if (!t) return NULL;
        memcpy(t, o->via.str.ptr, o->via.str.size); t[o->via.str.size] = 0;
        cJSON *j = cJSON_CreateString(t); free(t); return j;
    }
    case MSGPACK_OBJECT_ARRAY: {
        cJSON *j = cJSON_CreateArray();
        for (uint32_t i = 0; j && i < o->via.array.size; i++) cJSON_AddItemToArray(j, mp_to_json(&o->via.array.ptr[i]));
        return j;
    }
    case MSGPACK_OBJECT_MAP: {
        cJSON *j = cJSON_CreateObject();
        for (uint32_t i = 0; j && i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            char key[256];
            if (k->type == MSGPACK_OBJECT_STR) snprintf(key, sizeof key, "%.*s", (int)k->via.str.size, k->via.str.ptr);
            else snprintf(key, sizeof key, "#%u", i);
            cJSON_AddItemToObject(j, key, mp_to_json(&o->via.map.ptr[i].val));
        }
        return j;
    }
    default: return cJSON_CreateNull();   /* bin, ext: not meta material */
    }
}

/* ---- reading inputs ---- */
struct input { struct proto_reader *r; const char *ep; cJSON *prov; };

static int input_open(struct acc *a, struct input *in, const char *ep, const char *role, int mi)
{
    int err;
    struct proto_frame f;
    in->ep = ep;
    if (!(in->r = proto_reader_open(ep, &err))) return err;
    if ((err = proto_reader_next(in->r, &f)) != PROTO_OK) return err < 0 ? err : PROTO_E_TRUNCATED;
    const struct proto_value *mv = proto_frame_get(&f, "meta");
    in->prov = cJSON_CreateObject();
    cJSON_AddStringToObject(in->prov, "role", role);
    cJSON_AddStringToObject(in->prov, "endpoint", ep);
    cJSON_AddItemToObject(in->prov, "header", mv && mv->type == PROTO_V_OBJ ? mp_to_json(&mv->obj) : cJSON_CreateObject());
    cJSON_AddItemToArray(a->prov_inputs, in->prov);
    if (mv && mv->type == PROTO_V_OBJ) {
        if (!a->hook[0]) proto_meta_str(&mv->obj, "hook", a->hook, sizeof a->hook);
        if (!a->sae[0]) proto_meta_str(&mv->obj, "sae", a->sae, sizeof a->sae);
        double th;
        if (isnan(a->m[mi].outlier_threshold) && proto_meta_double(&mv->obj, "outlier_threshold", &th) == PROTO_OK)
            a->m[mi].outlier_threshold = th;
    }
    return PROTO_OK;
}

/* Records the end frame (frames, rows, meta) of an input into its provenance. */
static void input_end(struct input *in, struct proto_frame *f)
{
    cJSON *e = cJSON_CreateObject();
    const struct proto_value *v;
    if ((v = proto_frame_get(f, "frames"))) cJSON_AddNumberToObject(e, "frames", (double)v->u);
    if ((v = proto_frame_get(f, "rows"))) cJSON_AddNumberToObject(e, "rows", (double)v->u);
    if ((v = proto_frame_get(f, "meta")) && v->type == PROTO_V_OBJ) cJSON_AddItemToObject(e, "meta", mp_to_json(&v->obj));
    cJSON_AddItemToObject(in->prov, "end", e);
}

/* Reduces one whole stream into model block mi. *where names the failing input. */
static int run_single(struct acc *a, struct scratch *s, const char *ep, const char *role, int mi, bool primary, const char **where)
{
    struct input in = {0};
    struct proto_frame f;
    int err;
    *where = ep;
    if ((err = input_open(a, &in, ep, role, mi))) goto out;
    while ((err = proto_reader_next(in.r, &f)) == PROTO_OK) {
        if ((err = proto_frame_validate(&f))) break;
        if ((err = add_frame(a, s, mi, &f, primary))) break;
    }
    if (err == PROTO_END) { input_end(&in, &f); err = PROTO_OK; }
out:
    proto_reader_close(in.r);
    return err;
}

/* Reduces two paired streams frame by frame (same tokens). */
static int run_pair(struct acc *a, struct scratch *s, const char *eb, const char *ef, bool primary, const char **where)
{
    struct input ib = {0}, iff = {0};
    struct proto_frame fb, ff;
    int err, eb_, ef_;
    *where = eb;
    if ((err = input_open(a, &ib, eb, "base", 0))) goto out;
    *where = ef;
    if ((err = input_open(a, &iff, ef, "finetune", 1))) goto out;
    for (;;) {
        *where = eb;
        if ((eb_ = proto_reader_next(ib.r, &fb)) < 0) { err = eb_; goto out; }
        *where = ef;
        if ((ef_ = proto_reader_next(iff.r, &ff)) < 0) { err = ef_; goto out; }
        if (eb_ == PROTO_END || ef_ == PROTO_END) {
            if (eb_ != ef_) {
                *where = "base vs finetune";
                proto_set_detail("the %s stream (%s) ended after %llu frames, the other one goes on",
                                 eb_ == PROTO_END ? "base" : "finetune", eb_ == PROTO_END ? eb : ef,
                                 (unsigned long long)proto_reader_frames(eb_ == PROTO_END ? ib.r : iff.r));
                err = PROTO_E_MISMATCH; goto out;
            }
            input_end(&ib, &fb); input_end(&iff, &ff);
            err = PROTO_OK; goto out;
        }
        *where = eb;
        if ((err = proto_frame_validate(&fb))) goto out;
        *where = ef;
        if ((err = proto_frame_validate(&ff))) goto out;
        *where = "base vs finetune";
        if ((err = add_pair(a, s, &fb, &ff, primary))) goto out;
    }
out:
    proto_reader_close(ib.r); proto_reader_close(iff.r);
    return err;
}

/* ======================== partial results (exact merge) ========================
 * The "partial" object holds the raw running sums; --merge adds them up (Chan's update for the
 * pooled-R² moments, max/min for extremes, row arrays appended in file order) and finalizes
 * exactly as a single pass would. Doubles are printed so that they parse back bit for bit. */
static cJSON *jarr_d(const double *v, size_t n) { return n ? cJSON_CreateDoubleArray(v, (int)n) : cJSON_CreateArray(); }

static cJSON *jarr_u(const uint64_t *v, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)v[i]));
    return a;
}

static cJSON *jarr_u_from32(const uint32_t *v, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)v[i]));
    return a;
}

static cJSON *hist_partial(const struct hist *h)
{
    cJSON *j = cJSON_CreateObject();
    cJSON_AddItemToObject(j, "counts", jarr_u(h->c, (size_t)h->s.n));
    cJSON_AddNumberToObject(j, "below", (double)h->below);
    cJSON_AddNumberToObject(j, "above", (double)h->above);
    cJSON_AddNumberToObject(j, "nan", (double)h->nan);
    return j;
}

static cJSON *model_partial(const struct modelacc *m)
{
    cJSON *j = cJSON_CreateObject(), *o;
    if (!isnan(m->outlier_threshold)) cJSON_AddNumberToObject(j, "outlier_threshold", m->outlier_threshold);
    if (m->has_feats) {
        o = cJSON_AddObjectToObject(j, "feats");
        cJSON_AddNumberToObject(o, "d_sae", m->d_sae);
        cJSON_AddNumberToObject(o, "tokens", (double)m->f_tok);
        cJSON_AddNumberToObject(o, "l0_count", (double)m->l0_count);
        cJSON_AddNumberToObject(o, "l1_sum", m->l1_sum);
        cJSON_AddNumberToObject(o, "nonfinite", (double)m->feat_nonfinite);
        cJSON_AddNumberToObject(o, "positive", (double)m->act_pos);
        cJSON_AddItemToObject(o, "fire", jarr_u(m->fire, m->d_sae));
        cJSON_AddItemToObject(o, "nonzero", jarr_u(m->nz, m->d_sae));
        cJSON_AddItemToObject(o, "sum", jarr_d(m->sa, m->d_sae));
        cJSON_AddItemToObject(o, "sum_sq", jarr_d(m->sa2, m->d_sae));
        cJSON_AddItemToObject(o, "max", jarr_d(m->amax, m->d_sae));   /* -inf (never nonzero) -> null */
        cJSON_AddItemToObject(o, "min", jarr_d(m->amin, m->d_sae));
        cJSON_AddItemToObject(o, "act_log10_hist", hist_partial(&m->h_act));
    }
    if (m->has_acts) {
        o = cJSON_AddObjectToObject(j, "acts");
        cJSON_AddNumberToObject(o, "d_model", (double)m->d_model);
        cJSON_AddNumberToObject(o, "tokens", (double)m->a_tok);
        cJSON_AddNumberToObject(o, "outliers", (double)m->outliers);
        cJSON_AddItemToObject(o, "norm_hist", hist_partial(&m->h_norm));
    }
    if (m->has_recon) {
        o = cJSON_AddObjectToObject(j, "recon");
        cJSON_AddNumberToObject(o, "tokens", (double)m->r_tok);
        cJSON_AddNumberToObject(o, "nonfinite", (double)m->r_nonfinite);
        cJSON_AddNumberToObject(o, "scalars", m->r_n);
        cJSON_AddNumberToObject(o, "mean", m->r_mean);
        cJSON_AddNumberToObject(o, "m2", m->r_m2);
        cJSON_AddNumberToObject(o, "ss_res", m->ss_res);
        cJSON_AddNumberToObject(o, "ev_sum", m->ev_sum);
        cJSON_AddNumberToObject(o, "ev_tokens", (double)m->ev_tok);
        cJSON_AddNumberToObject(o, "ev_nonfinite", (double)m->ev_nonfinite);
        cJSON_AddNumberToObject(o, "cos_sum", m->cos_sum);
        cJSON_AddNumberToObject(o, "ratio_sum", m->ratio_sum);
    }
    if (m->has_loss) {
        o = cJSON_AddObjectToObject(j, "loss");
        for (int k = 0; k < N_LOSS; k++) {
            if (!m->loss[k].seen) continue;
            cJSON *l = cJSON_AddObjectToObject(o, LOSS_KEYS[k]);
            cJSON_AddNumberToObject(l, "sum", m->loss[k].sum);
            cJSON_AddNumberToObject(l, "n", (double)m->loss[k].n);
            cJSON_AddNumberToObject(l, "nonfinite", (double)m->loss[k].nonfinite);
        }
    }
    return j;
}

static cJSON *acc_partial(const struct acc *a)
{
    cJSON *p = cJSON_CreateObject(), *o;
    cJSON_AddNumberToObject(p, "version", PARTIAL_VERSION);
    cJSON_AddNumberToObject(p, "paired", a->paired);
    cJSON_AddNumberToObject(p, "tokens", (double)a->tokens);
    cJSON_AddNumberToObject(p, "rows", (double)a->rows);
    cJSON_AddNumberToObject(p, "ctx", (double)a->ctx);
    cJSON_AddStringToObject(p, "hook", a->hook);
    cJSON_AddStringToObject(p, "sae", a->sae);
    cJSON_AddNumberToObject(p, "seconds", a->seconds);
    cJSON_AddNumberToObject(p, "reduce_rows", (double)a->reduce_rows);
    cJSON_AddNumberToObject(p, "reduce_tokens", (double)a->reduce_tokens);
    if (a->has_sim) {
        const struct simacc *s = &a->sim;
        o = cJSON_AddObjectToObject(p, "similarity");
        cJSON_AddNumberToObject(o, "n", (double)s->n);
        cJSON_AddNumberToObject(o, "nonfinite", (double)s->nonfinite);
        cJSON_AddNumberToObject(o, "sum_cos", s->s_cos);
        cJSON_AddNumberToObject(o, "sum_l2", s->s_l2);
        cJSON_AddItemToObject(o, "pos_sum_cos", jarr_d(s->pos_cos, s->ctx));
        cJSON_AddItemToObject(o, "pos_sum_l2", jarr_d(s->pos_l2, s->ctx));
        cJSON_AddItemToObject(o, "pos_n", jarr_u(s->pos_n, s->ctx));
        cJSON_AddItemToObject(o, "row_sum_cos", jarr_d(s->row_cos, s->rows));
        cJSON_AddItemToObject(o, "row_sum_l2", jarr_d(s->row_l2, s->rows));
        cJSON_AddItemToObject(o, "row_n", jarr_u(s->row_n, s->rows));
        cJSON_AddItemToObject(o, "cos_hist", hist_partial(&s->h_cos));
        cJSON_AddItemToObject(o, "l2_hist", hist_partial(&s->h_l2));
    }
    if (a->paired) {
        cJSON_AddItemToObject(p, "base", model_partial(&a->m[0]));
        cJSON_AddItemToObject(p, "finetune", model_partial(&a->m[1]));
    } else {
        cJSON_AddItemToObject(p, "model", model_partial(&a->m[0]));
    }
    if (a->has_x) {
        o = cJSON_AddObjectToObject(p, "transfer");
        cJSON_AddNumberToObject(o, "tokens", (double)a->x.n_tok);
        cJSON_AddNumberToObject(o, "d_sae", a->x.d_sae);
        cJSON_AddItemToObject(o, "sum_ab", jarr_d(a->x.sab, a->x.d_sae));
        cJSON_AddItemToObject(o, "sum_abs_logdiff", jarr_d(a->x.sld, a->x.d_sae));
    }
    return p;
}

/* ---- reading partials back ---- */
static int bad_partial(const char *what)
{
    proto_set_detail("partial: %s missing or malformed", what);
    return PROTO_E_FORMAT;
}

static int jnum(const cJSON *o, const char *key, double *out)
{
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    if (!cJSON_IsNumber(v)) return bad_partial(key);
    *out = v->valuedouble;
    return PROTO_OK;
}

/* Adds (op 0), maxes (op 1) or mins (op 2) a JSON array of n numbers into dst; null = skip. */
static int jarr_into_d(const cJSON *o, const char *key, double *dst, size_t n, int op)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key), *e;
    if (!cJSON_IsArray(a) || (size_t)cJSON_GetArraySize(a) != n) return bad_partial(key);
    size_t i = 0;
    cJSON_ArrayForEach(e, a) {
        if (cJSON_IsNumber(e)) {
            double v = e->valuedouble;
            if (op == 0) dst[i] += v; else if (op == 1) { if (v > dst[i]) dst[i] = v; } else if (v < dst[i]) dst[i] = v;
        } else if (!cJSON_IsNull(e)) return bad_partial(key);
        i++;
    }
    return PROTO_OK;
}

static int jarr_into_u(const cJSON *o, const char *key, uint64_t *dst, size_t n)
{
    const cJSON *a = cJSON_GetObjectItemCaseSensitive(o, key), *e;
    if (!cJSON_IsArray(a) || (size_t)cJSON_GetArraySize(a) != n) return bad_partial(key);
    size_t i = 0;
    cJSON_ArrayForEach(e, a) {
        if (!cJSON_IsNumber(e) || e->valuedouble < 0) return bad_partial(key);
        dst[i++] += (uint64_t)e->valuedouble;
    }
    return PROTO_OK;
}

static int ju(const cJSON *o, const char *key, uint64_t *acc)
{
    double v; int err = jnum(o, key, &v);
    if (!err) *acc += (uint64_t)v;
    return err;
}

static int jd(const cJSON *o, const char *key, double *acc)
{
    double v; int err = jnum(o, key, &v);
    if (!err) *acc += v;
    return err;
}

static int hist_from(struct hist *h, const cJSON *o, const char *key)
{
    const cJSON *j = cJSON_GetObjectItemCaseSensitive(o, key);
    int err;
    if (!cJSON_IsObject(j)) return bad_partial(key);
    if ((err = jarr_into_u(j, "counts", h->c, (size_t)h->s.n)) || (err = ju(j, "below", &h->below)) ||
        (err = ju(j, "above", &h->above)) || (err = ju(j, "nan", &h->nan))) return err;
    return PROTO_OK;
}

static int model_from(struct modelacc *m, const cJSON *j)
{
    const cJSON *o;
    int err = PROTO_OK;
    double v;
    if (!cJSON_IsObject(j)) return bad_partial("model block");
    const cJSON *th = cJSON_GetObjectItemCaseSensitive(j, "outlier_threshold");
    if (cJSON_IsNumber(th) && isnan(m->outlier_threshold)) m->outlier_threshold = th->valuedouble;
    if ((o = cJSON_GetObjectItemCaseSensitive(j, "feats"))) {
        if ((err = jnum(o, "d_sae", &v))) return err;
        if (v < 1 || v > UINT32_MAX) return bad_partial("feats.d_sae");
        if (!m->has_feats && (err = model_init_feats(m, (uint32_t)v))) return err;
        if (m->d_sae != (uint32_t)v) { proto_set_detail("partial: d_sae %g, earlier parts had %u", v, m->d_sae); return PROTO_E_MISMATCH; }
        size_t n = m->d_sae;
        if ((err = ju(o, "tokens", &m->f_tok)) || (err = ju(o, "l0_count", &m->l0_count)) ||
            (err = jd(o, "l1_sum", &m->l1_sum)) || (err = ju(o, "nonfinite", &m->feat_nonfinite)) ||
            (err = ju(o, "positive", &m->act_pos)) || (err = jarr_into_u(o, "fire", m->fire, n)) ||
            (err = jarr_into_u(o, "nonzero", m->nz, n)) || (err = jarr_into_d(o, "sum", m->sa, n, 0)) ||
            (err = jarr_into_d(o, "sum_sq", m->sa2, n, 0)) || (err = jarr_into_d(o, "max", m->amax, n, 1)) ||
            (err = jarr_into_d(o, "min", m->amin, n, 2)) || (err = hist_from(&m->h_act, o, "act_log10_hist"))) return err;
    }
    if ((o = cJSON_GetObjectItemCaseSensitive(j, "acts"))) {
        if ((err = jnum(o, "d_model", &v))) return err;
        if (m->d_model && v > 0 && m->d_model != (uint64_t)v) { proto_set_detail("partial: d_model %g, earlier parts had %llu", v, (unsigned long long)m->d_model); return PROTO_E_MISMATCH; }
        if (v > 0) m->d_model = (uint64_t)v;
        m->has_acts = true;
        if ((err = ju(o, "tokens", &m->a_tok)) || (err = ju(o, "outliers", &m->outliers)) ||
            (err = hist_from(&m->h_norm, o, "norm_hist"))) return err;
    }
    if ((o = cJSON_GetObjectItemCaseSensitive(j, "recon"))) {
        double n, mean, m2;
        m->has_recon = true;
        if ((err = ju(o, "tokens", &m->r_tok)) || (err = ju(o, "nonfinite", &m->r_nonfinite)) ||
            (err = jnum(o, "scalars", &n)) || (err = jnum(o, "mean", &mean)) || (err = jnum(o, "m2", &m2)) ||
            (err = jd(o, "ss_res", &m->ss_res)) || (err = jd(o, "ev_sum", &m->ev_sum)) ||
            (err = ju(o, "ev_tokens", &m->ev_tok)) || (err = ju(o, "ev_nonfinite", &m->ev_nonfinite)) ||
            (err = jd(o, "cos_sum", &m->cos_sum)) || (err = jd(o, "ratio_sum", &m->ratio_sum))) return err;
        chan_merge(&m->r_n, &m->r_mean, &m->r_m2, n, mean, m2);
    }
    if ((o = cJSON_GetObjectItemCaseSensitive(j, "loss"))) {
        m->has_loss = true;
        for (int k = 0; k < N_LOSS; k++) {
            const cJSON *l = cJSON_GetObjectItemCaseSensitive(o, LOSS_KEYS[k]);
            if (!l) continue;
            m->loss[k].seen = true;
            if ((err = jd(l, "sum", &m->loss[k].sum)) || (err = ju(l, "n", &m->loss[k].n)) ||
                (err = ju(l, "nonfinite", &m->loss[k].nonfinite))) return err;
        }
    }
    return PROTO_OK;
}

/* Adds one partial object into a (initialised by acc_init with the same pairing). */
static int acc_add_partial(struct acc *a, const cJSON *p)
{
    double v;
    int err;
    const cJSON *o;
    if ((err = jnum(p, "version", &v))) return err;
    if (v != PARTIAL_VERSION) { proto_set_detail("partial version %g, this sf-reduce reads %d", v, PARTIAL_VERSION); return PROTO_E_FORMAT; }
    if ((err = jnum(p, "paired", &v))) return err;
    if ((int)v != a->paired) { proto_set_detail("cannot merge a one-model result with a base/finetune one"); return PROTO_E_MISMATCH; }
    if ((err = jnum(p, "ctx", &v))) return err;
    if (v > 0 && (err = set_ctx(a, (uint64_t)v, UINT64_MAX))) return err;
    if ((err = ju(p, "tokens", &a->tokens)) || (err = ju(p, "rows", &a->rows)) || (err = jd(p, "seconds", &a->seconds)) ||
        (err = ju(p, "reduce_rows", &a->reduce_rows)) || (err = ju(p, "reduce_tokens", &a->reduce_tokens))) return err;
    const cJSON *h = cJSON_GetObjectItemCaseSensitive(p, "hook"), *s = cJSON_GetObjectItemCaseSensitive(p, "sae");
    if (cJSON_IsString(h) && h->valuestring[0] && a->hook[0] && strcmp(a->hook, h->valuestring) != 0) {
        proto_set_detail("partial: hook %s, earlier parts had %s", h->valuestring, a->hook); return PROTO_E_MISMATCH;
    }
    if (cJSON_IsString(s) && s->valuestring[0] && a->sae[0] && strcmp(a->sae, s->valuestring) != 0) {
        proto_set_detail("partial: sae %s, earlier parts had %s", s->valuestring, a->sae); return PROTO_E_MISMATCH;
    }
    if (cJSON_IsString(h) && !a->hook[0]) snprintf(a->hook, sizeof a->hook, "%s", h->valuestring);
    if (cJSON_IsString(s) && !a->sae[0]) snprintf(a->sae, sizeof a->sae, "%s", s->valuestring);
    if ((o = cJSON_GetObjectItemCaseSensitive(p, "similarity"))) {
        struct simacc *sm = &a->sim;
        const cJSON *rn = cJSON_GetObjectItemCaseSensitive(o, "row_n");
        if (!cJSON_IsArray(rn)) return bad_partial("similarity.row_n");
        size_t R = (size_t)cJSON_GetArraySize(rn), R0 = sm->rows;
        if ((err = sim_grow_rows(sm, R0 + R))) return err;
        a->has_sim = true;
        if ((err = ju(o, "n", &sm->n)) || (err = ju(o, "nonfinite", &sm->nonfinite)) ||
            (err = jd(o, "sum_cos", &sm->s_cos)) || (err = jd(o, "sum_l2", &sm->s_l2)) ||
            (err = jarr_into_d(o, "pos_sum_cos", sm->pos_cos, sm->ctx, 0)) ||
            (err = jarr_into_d(o, "pos_sum_l2", sm->pos_l2, sm->ctx, 0)) ||
            (err = jarr_into_u(o, "pos_n", sm->pos_n, sm->ctx)) ||
            (err = jarr_into_d(o, "row_sum_cos", sm->row_cos + R0, R, 0)) ||
            (err = jarr_into_d(o, "row_sum_l2", sm->row_l2 + R0, R, 0)) ||
            (err = jarr_into_u(o, "row_n", sm->row_n + R0, R)) ||
            (err = hist_from(&sm->h_cos, o, "cos_hist")) || (err = hist_from(&sm->h_l2, o, "l2_hist"))) return err;
        sm->rows = R0 + R;
    }
    if (a->paired) {
        if ((err = model_from(&a->m[0], cJSON_GetObjectItemCaseSensitive(p, "base"))) ||
            (err = model_from(&a->m[1], cJSON_GetObjectItemCaseSensitive(p, "finetune")))) return err;
    } else if ((err = model_from(&a->m[0], cJSON_GetObjectItemCaseSensitive(p, "model")))) return err;
    if ((o = cJSON_GetObjectItemCaseSensitive(p, "transfer"))) {
        if ((err = jnum(o, "d_sae", &v))) return err;
        if (v < 1 || v > UINT32_MAX) return bad_partial("transfer.d_sae");
        if (!a->has_x) { if ((err = x_init(&a->x, (uint32_t)v))) return err; a->has_x = true; }
        if (a->x.d_sae != (uint32_t)v) { proto_set_detail("partial: transfer d_sae %g, earlier parts had %u", v, a->x.d_sae); return PROTO_E_MISMATCH; }
        if ((err = ju(o, "tokens", &a->x.n_tok)) || (err = jarr_into_d(o, "sum_ab", a->x.sab, a->x.d_sae, 0)) ||
            (err = jarr_into_d(o, "sum_abs_logdiff", a->x.sld, a->x.d_sae, 0))) return err;
    }
    return PROTO_OK;
}

/* ======================== checkpoints (logit similarity, Frobenius, weight deviation) ======================== */
#define MAX_SHARDS 64
struct ckpt { int n; struct proto_st st[MAX_SHARDS]; cJSON *cfg; bool gemma; };

static void ckpt_close(struct ckpt *c)
{
    if (!c) return;
    for (int i = 0; i < c->n; i++) proto_st_close(&c->st[i]);
    cJSON_Delete(c->cfg);
    free(c);
}

/* config.json says whether the final norm is applied as (1 + w): Gemma. */
static bool cfg_is_gemma(const cJSON *cfg)
{
    const cJSON *mt = cJSON_GetObjectItemCaseSensitive(cfg, "model_type"), *ar = cJSON_GetObjectItemCaseSensitive(cfg, "architectures"), *e;
    if (cJSON_IsString(mt) && strncmp(mt->valuestring, "gemma", 5) == 0) return true;
    cJSON_ArrayForEach(e, ar) if (cJSON_IsString(e) && strstr(e->valuestring, "Gemma")) return true;
    return false;
}

/* Opens model.safetensors, or every shard named by model.safetensors.index.json. */
static int ckpt_open(const char *dir, struct ckpt **out)
{
    struct ckpt *c = calloc(1, sizeof *c);
    char path[4096], *txt = NULL;
    size_t len;
    int err;
    if (!c) return PROTO_E_NOMEM;
    snprintf(path, sizeof path, "%s/config.json", dir);
    if (proto_read_file(path, &txt, &len) == PROTO_OK) { c->cfg = cJSON_Parse(txt); free(txt); txt = NULL; }
    c->gemma = c->cfg && cfg_is_gemma(c->cfg);
    snprintf(path, sizeof path, "%s/model.safetensors", dir);
    FILE *fp = fopen(path, "rb");
    if (fp) {
        fclose(fp);
        if ((err = proto_st_open(&c->st[0], path))) goto fail;   /* the detail names the file */
        c->n = 1;
        *out = c; return PROTO_OK;
    }
    snprintf(path, sizeof path, "%s/model.safetensors.index.json", dir);
    if ((err = proto_read_file(path, &txt, &len))) { proto_set_detail("%s: no model.safetensors and no index", dir); goto fail; }
    cJSON *idx = cJSON_Parse(txt), *wm = cJSON_GetObjectItemCaseSensitive(idx, "weight_map"), *e;
    free(txt);
    if (!cJSON_IsObject(wm)) { cJSON_Delete(idx); proto_set_detail("%s: no weight_map", path); err = PROTO_E_FORMAT; goto fail; }
    char seen[MAX_SHARDS][256];
    cJSON_ArrayForEach(e, wm) {
        if (!cJSON_IsString(e)) continue;
        int k;
        for (k = 0; k < c->n && strcmp(seen[k], e->valuestring) != 0; k++) ;
        if (k < c->n) continue;
        if (c->n == MAX_SHARDS || strlen(e->valuestring) >= sizeof seen[0]) { cJSON_Delete(idx); proto_set_detail("%s: too many shards", path); err = PROTO_E_FORMAT; goto fail; }
        snprintf(seen[c->n], sizeof seen[0], "%s", e->valuestring);
        char sp[4096];
        snprintf(sp, sizeof sp, "%s/%s", dir, e->valuestring);
        if ((err = proto_st_open(&c->st[c->n], sp))) { cJSON_Delete(idx); goto fail; }
        c->n++;
    }
    cJSON_Delete(idx);
    *out = c; return PROTO_OK;
fail:
    ckpt_close(c);
    return err ? err : PROTO_E_FORMAT;
}

static const struct proto_st_tensor *ckpt_find(const struct ckpt *c, const char *name)
{
    for (int i = 0; i < c->n; i++) { const struct proto_st_tensor *t = proto_st_find(&c->st[i], name); if (t) return t; }
    return NULL;
}

/* The unembedding as HF stores it, E: (V, d) (lm_head, or embed_tokens when tied), and the final
 * norm weight folded into it, g: (d) = w, or 1 + w for Gemma. */
struct unembed { const struct proto_st_tensor *E; float *g; uint64_t V, d; };

static int unembed_get(const struct ckpt *c, const char *dir, struct unembed *u)
{
    u->E = ckpt_find(c, "lm_head.weight");
    if (!u->E) u->E = ckpt_find(c, "model.embed_tokens.weight");
    if (!u->E || u->E->ndim != 2) { proto_set_detail("%s: no lm_head.weight or model.embed_tokens.weight", dir); return PROTO_E_FORMAT; }
    u->V = u->E->shape[0]; u->d = u->E->shape[1];
    if (!(u->g = malloc(u->d * sizeof(float)))) return PROTO_E_NOMEM;
    const struct proto_st_tensor *w = ckpt_find(c, "model.norm.weight");
    if (w && (w->ndim != 1 || w->shape[0] != u->d)) { proto_set_detail("%s: model.norm.weight shape", dir); return PROTO_E_FORMAT; }
    for (uint64_t k = 0; k < u->d; k++) u->g[k] = 1.0f;
    if (w) {
        proto_convert_to_f32(u->g, w->data, w->dtype, u->d);
        if (c->gemma) for (uint64_t k = 0; k < u->d; k++) u->g[k] += 1.0f;
    }
    return PROTO_OK;
}

/* Logit weight similarity of k decoder rows and the unembedding Frobenius figures.
 * W_U = diag(g)·Eᵀ (d, V), centred over the vocabulary (TransformerLens fold_ln + center_unembed).
 * For feature j the logit vectors are x = (W_dec[j]⊙g_b)·E_bᵀ and y = (W_dec[j]⊙g_f)·E_fᵀ over the
 * base vocabulary V (a larger finetune vocabulary is cut to V). Centring subtracts one constant per
 * feature from x (and y), which Pearson ignores, so it only enters the Frobenius norms:
 * ‖W_U‖² = Σ_d (Σ_v W² − (Σ_v W)²/V). Sums in double, vocabulary in chunks. */
static int unembed_study(const struct unembed *ub, const struct unembed *uf, const float *wdec /* (k, d) */, size_t k,
                         double *r /* (k) */, double *ratio, double *ferr)
{
    const uint64_t V = ub->V, d = ub->d, C = 512;
    int err = PROTO_OK;
    if (uf->d != d || uf->V < V) { proto_set_detail("unembedding [%llu, %llu] (base) vs [%llu, %llu] (finetune)", (unsigned long long)V, (unsigned long long)d, (unsigned long long)uf->V, (unsigned long long)uf->d); return PROTO_E_MISMATCH; }
    float *Db = proto_aligned_alloc((k ? k : 1) * d * 4), *Df = proto_aligned_alloc((k ? k : 1) * d * 4);  /* (k, d) */
    float *Eb = proto_aligned_alloc(C * d * 4), *Ef = proto_aligned_alloc(C * d * 4);                      /* (C, d) */
    float *Lb = proto_aligned_alloc((k ? k : 1) * C * 4), *Lf = proto_aligned_alloc((k ? k : 1) * C * 4);  /* (k, C) */
    double *fs = calloc(5 * (k ? k : 1), sizeof(double));   /* per feature: Σx Σy Σx² Σy² Σxy */
    double *ds = calloc(6 * d, sizeof(double));             /* per dim: Σb Σb² Σf Σf² Σ(b-f) Σ(b-f)² */
    if (!Db || !Df || !Eb || !Ef || !Lb || !Lf || !fs || !ds) { err = PROTO_E_NOMEM; goto out; }
    for (size_t j = 0; j < k; j++)
        for (uint64_t q = 0; q < d; q++) { Db[j * d + q] = wdec[j * d + q] * ub->g[q]; Df[j * d + q] = wdec[j * d + q] * uf->g[q]; }
    size_t eb = proto_dtype_size(ub->E->dtype), ef = proto_dtype_size(uf->E->dtype);
    for (uint64_t v0 = 0; v0 < V; v0 += C) {
        uint64_t n = V - v0 < C ? V - v0 : C;
        proto_convert_to_f32(Eb, (const char *)ub->E->data + v0 * d * eb, ub->E->dtype, n * d);
        proto_convert_to_f32(Ef, (const char *)uf->E->data + v0 * d * ef, uf->E->dtype, n * d);
        for (uint64_t v = 0; v < n; v++)
            for (uint64_t q = 0; q < d; q++) {
                double b = (double)ub->g[q] * Eb[v * d + q], f = (double)uf->g[q] * Ef[v * d + q], e = b - f;
                double *s = ds + 6 * q;
                s[0] += b; s[1] += b * b; s[2] += f; s[3] += f * f; s[4] += e; s[5] += e * e;
            }
        if (!k) continue;
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
    double nb = 0, nf = 0, nd = 0;
    for (uint64_t q = 0; q < d; q++) {
        const double *s = ds + 6 * q;
        nb += s[1] - s[0] * s[0] / V; nf += s[3] - s[2] * s[2] / V; nd += s[5] - s[4] * s[4] / V;
    }
    *ratio = sqrt(nb) / sqrt(nf);
    *ferr = sqrt(fmax(nd, 0));
    for (size_t j = 0; j < k; j++) {
        const double *s = fs + 5 * j;
        double va = V * s[2] - s[0] * s[0], vb = V * s[3] - s[1] * s[1];
        r[j] = (va > 0 && vb > 0) ? fmax(-1.0, fmin(1.0, (V * s[4] - s[0] * s[1]) / sqrt(va * vb))) : NAN;
    }
out:
    free(Db); free(Df); free(Eb); free(Ef); free(Lb); free(Lf); free(fs); free(ds);
    return err;
}

/* Relative Frobenius deviation ‖A − B‖/‖A‖ of every tensor the two checkpoints share. A tensor
 * whose first dimension is larger in the finetune (an added vocabulary row) is compared over the
 * base's rows. Others with different shapes, or missing from the finetune, are listed as skipped. */
static int weight_deviation(const struct ckpt *cb, const struct ckpt *cf, cJSON **out)
{
    cJSON *j = cJSON_CreateObject(), *tens = cJSON_AddObjectToObject(j, "tensors"), *skip = cJSON_AddArrayToObject(j, "skipped");
    const uint64_t CH = 1 << 16;
    float *a = malloc(CH * 4), *b = malloc(CH * 4);
    double sum = 0, mx = -1; int cnt = 0; const char *mxname = "";
    if (!a || !b) { free(a); free(b); cJSON_Delete(j); return PROTO_E_NOMEM; }
    for (int s = 0; s < cb->n; s++)
        for (int i = 0; i < cb->st[s].n; i++) {
            const struct proto_st_tensor *ta = &cb->st[s].t[i], *tb = ckpt_find(cf, ta->name);
            bool same = tb && tb->ndim == ta->ndim && ta->ndim > 0 && tb->shape[0] >= ta->shape[0];
            for (int q = 1; same && q < ta->ndim; q++) same = tb->shape[q] == ta->shape[q];
            if (!same) { cJSON_AddItemToArray(skip, cJSON_CreateString(ta->name)); continue; }
            uint64_t n = 1;
            for (int q = 0; q < ta->ndim; q++) n *= ta->shape[q];
            size_t sa = proto_dtype_size(ta->dtype), sb = proto_dtype_size(tb->dtype);
            double dd = 0, aa = 0;
            for (uint64_t o = 0; o < n; o += CH) {
                uint64_t m = n - o < CH ? n - o : CH;
                proto_convert_to_f32(a, (const char *)ta->data + o * sa, ta->dtype, m);
                proto_convert_to_f32(b, (const char *)tb->data + o * sb, tb->dtype, m);
                for (uint64_t k = 0; k < m; k++) { double x = a[k], e = x - b[k]; aa += x * x; dd += e * e; }
            }
            double rel = aa > 0 ? sqrt(dd) / sqrt(aa) : NAN;
            cJSON_AddNumberToObject(tens, ta->name, rel);
            if (isfinite(rel)) { sum += rel; cnt++; if (rel > mx) { mx = rel; mxname = ta->name; } }
        }
    cJSON_AddNumberToObject(j, "mean", cnt ? sum / cnt : NAN);
    cJSON_AddNumberToObject(j, "max", cnt ? mx : NAN);
    cJSON_AddStringToObject(j, "max_tensor", mxname);
    free(a); free(b);
    *out = j;
    return PROTO_OK;
}

/* Decoder rows of the chosen features: (k, d_in) from sae_dir/sae_weights.safetensors. */
static int sae_rows(const char *dir, const uint32_t *idx, size_t k, uint32_t d_sae, float **out, uint64_t *d_in)
{
    char path[4096];
    struct proto_st st;
    int err;
    snprintf(path, sizeof path, "%s/sae_weights.safetensors", dir);
    if ((err = proto_st_open(&st, path))) return err;   /* the detail names the file */
    const struct proto_st_tensor *w = proto_st_find(&st, "W_dec");
    if (!w || w->ndim != 2 || w->shape[0] != d_sae) {
        proto_set_detail("%s: W_dec missing or not [%u, d_in]", path, d_sae); proto_st_close(&st); return PROTO_E_MISMATCH;
    }
    *d_in = w->shape[1];
    float *r = malloc((k ? k : 1) * *d_in * sizeof(float));   /* (k, d_in) */
    if (!r) { proto_st_close(&st); return PROTO_E_NOMEM; }
    size_t es = proto_dtype_size(w->dtype);
    for (size_t j = 0; j < k; j++) proto_convert_to_f32(r + j * *d_in, (const char *)w->data + (uint64_t)idx[j] * *d_in * es, w->dtype, *d_in);
    proto_st_close(&st);
    *out = r;
    return PROTO_OK;
}

/* ======================== finalize: the SPEC §4 document ======================== */
static double ratio(double a, double b) { return b != 0 ? a / b : NAN; }

/* nan_counts["where"] = {count, reason}, only when something was excluded */
static void nan_note(cJSON *nc, const char *where, uint64_t count, const char *reason)
{
    if (!count) return;
    cJSON *o = cJSON_AddObjectToObject(nc, where);
    cJSON_AddNumberToObject(o, "count", (double)count);
    cJSON_AddStringToObject(o, "reason", reason);
}

static cJSON *hist_json(const struct hist *h)
{
    cJSON *j = cJSON_CreateObject(), *e = cJSON_AddArrayToObject(j, "edges");
    for (int k = 0; k <= h->s.n; k++) cJSON_AddItemToArray(e, cJSON_CreateNumber(hist_edge(&h->s, k)));
    cJSON_AddItemToObject(j, "counts", jarr_u(h->c, (size_t)h->s.n));
    cJSON_AddNumberToObject(j, "below", (double)h->below);
    cJSON_AddNumberToObject(j, "above", (double)h->above);
    cJSON_AddNumberToObject(j, "nan", (double)h->nan);
    return j;
}

static void log_density(const struct modelacc *m, double *L /* (d_sae) */)
{
    for (uint32_t j = 0; j < m->d_sae; j++) L[j] = log10((double)m->fire[j] / (double)m->f_tok + DENS_EPS);
}

static int model_block(const struct modelacc *m, const char *name, cJSON *doc, cJSON *nc)
{
    if (!m->has_feats && !m->has_acts && !m->has_recon && !m->has_loss) return PROTO_OK;
    cJSON *b = cJSON_AddObjectToObject(doc, name);
    char w[64];
    if (m->has_feats && m->f_tok) {
        cJSON_AddNumberToObject(b, "l0", (double)m->l0_count / m->f_tok);
        cJSON_AddNumberToObject(b, "l1", m->l1_sum / m->f_tok);
    }
    const struct lossacc *L = m->loss;
    double mean[N_LOSS];
    for (int k = 0; k < N_LOSS; k++) {
        mean[k] = ratio(L[k].sum, (double)L[k].n);
        if (!L[k].seen) continue;
        cJSON_AddNumberToObject(b, LOSS_KEYS[k], mean[k]);
        snprintf(w, sizeof w, "%s.%s", name, LOSS_KEYS[k]);
        nan_note(nc, w, L[k].nonfinite, "non-finite per-token value, left out of the mean");
    }
    if (L[CE_CLEAN].seen && L[CE_SPLICED].seen) cJSON_AddNumberToObject(b, "ce_delta", mean[CE_SPLICED] - mean[CE_CLEAN]);
    if (L[CE_CLEAN].seen && L[CE_SPLICED].seen && L[CE_ABLATED].seen)
        cJSON_AddNumberToObject(b, "ce_recovered", (mean[CE_ABLATED] - mean[CE_SPLICED]) / (mean[CE_ABLATED] - mean[CE_CLEAN]));
    if (m->has_recon) {
        cJSON_AddNumberToObject(b, "r2_pooled", 1.0 - ratio(m->ss_res, m->r_m2));
        cJSON_AddNumberToObject(b, "explained_variance", ratio(m->ev_sum, (double)m->ev_tok));
        cJSON_AddNumberToObject(b, "mse", ratio(m->ss_res, (double)m->r_tok));
        cJSON_AddNumberToObject(b, "cos_recon", ratio(m->cos_sum, (double)m->r_tok));
        cJSON_AddNumberToObject(b, "l2_ratio", ratio(m->ratio_sum, (double)m->r_tok));
        snprintf(w, sizeof w, "%s.recon", name);
        nan_note(nc, w, m->r_nonfinite, "token with non-finite activation or reconstruction, left out of r2/mse/cos/l2_ratio");
        snprintf(w, sizeof w, "%s.explained_variance", name);
        nan_note(nc, w, m->ev_nonfinite, "token whose activation equals its frame's per-dimension mean (0/0), left out");
    }
    if (m->has_acts) {
        cJSON_AddNumberToObject(b, "outliers", (double)m->outliers);
        cJSON_AddNumberToObject(b, "outlier_fraction", ratio((double)m->outliers, (double)m->a_tok));
        if (!isnan(m->outlier_threshold)) cJSON_AddNumberToObject(b, "outlier_threshold", m->outlier_threshold);
    }
    if (m->has_feats && m->f_tok) {
        double *Ld = malloc(m->d_sae * sizeof(double));
        struct hist hd;
        if (!Ld || hist_init(&hd, HS_DENS)) { free(Ld); return PROTO_E_NOMEM; }
        log_density(m, Ld);
        uint64_t dead = 0;
        for (uint32_t j = 0; j < m->d_sae; j++) { dead += Ld[j] <= DEAD_LOG; hist_add(&hd, Ld[j]); }
        cJSON_AddNumberToObject(b, "dead_fraction", (double)dead / m->d_sae);
        cJSON_AddNumberToObject(b, "dead_count", (double)dead);
        cJSON_AddItemToObject(b, "log_density", jarr_d(Ld, m->d_sae));
        cJSON_AddItemToObject(b, "density_hist", hist_json(&hd));
        cJSON *ah = hist_json(&m->h_act);
        cJSON_AddNumberToObject(ah, "zeros", (double)m->f_tok * m->d_sae - (double)m->act_pos);
        cJSON_AddItemToObject(b, "act_log10_hist", ah);
        snprintf(w, sizeof w, "%s.feats", name);
        nan_note(nc, w, m->feat_nonfinite, "non-finite feature activation, left out");
        free(Ld); free(hd.c);
    }
    if (m->d_model) cJSON_AddItemToObject(b, "norm_hist", hist_json(&m->h_norm));
    if (m->has_feats) cJSON_AddNumberToObject(b, "d_sae", m->d_sae);
    if (m->has_feats) cJSON_AddNumberToObject(b, "tokens", (double)m->f_tok);
    return PROTO_OK;
}

static void sim_block(const struct simacc *s, cJSON *doc, cJSON *nc)
{
    cJSON *b = cJSON_AddObjectToObject(doc, "similarity");
    double *tmp = malloc((s->ctx > s->rows ? s->ctx : s->rows ? s->rows : 1) * sizeof(double));
    if (!tmp) return;
    cJSON_AddNumberToObject(b, "cos_mean", ratio(s->s_cos, (double)s->n));
    cJSON_AddNumberToObject(b, "l2_mean", ratio(s->s_l2, (double)s->n));
    for (uint64_t p = 0; p < s->ctx; p++) tmp[p] = ratio(s->pos_cos[p], (double)s->pos_n[p]);
    cJSON_AddItemToObject(b, "cos_by_position", jarr_d(tmp, s->ctx));
    for (uint64_t p = 0; p < s->ctx; p++) tmp[p] = ratio(s->pos_l2[p], (double)s->pos_n[p]);
    cJSON_AddItemToObject(b, "l2_by_position", jarr_d(tmp, s->ctx));
    for (size_t r = 0; r < s->rows; r++) tmp[r] = ratio(s->row_cos[r], (double)s->row_n[r]);
    cJSON_AddItemToObject(b, "cos_by_row", jarr_d(tmp, s->rows));
    for (size_t r = 0; r < s->rows; r++) tmp[r] = ratio(s->row_l2[r], (double)s->row_n[r]);
    cJSON_AddItemToObject(b, "l2_by_row", jarr_d(tmp, s->rows));
    cJSON_AddItemToObject(b, "cos_hist", hist_json(&s->h_cos));
    cJSON_AddItemToObject(b, "l2_hist", hist_json(&s->h_l2));
    cJSON_AddNumberToObject(b, "tokens", (double)s->n);
    nan_note(nc, "similarity", s->nonfinite, "token with non-finite cos or l2, left out");
    free(tmp);
}

static uint64_t splitmix64(uint64_t *x)
{
    uint64_t z = (*x += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
static int cmp_u32(const void *a, const void *b) { uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b; return (x > y) - (x < y); }

/* --sample N --seed S: keep N of the n indices (partial Fisher-Yates), ascending. */
static size_t subsample(uint32_t *idx, size_t n, long long N, uint64_t seed, uint64_t salt)
{
    if (N <= 0 || (size_t)N >= n) return n;
    uint64_t st = seed ^ (salt * 0xd1342543de82ef95ULL);
    for (size_t i = 0; i < (size_t)N; i++) {
        size_t j = i + (size_t)(splitmix64(&st) % (n - i));
        uint32_t t = idx[i]; idx[i] = idx[j]; idx[j] = t;
    }
    qsort(idx, (size_t)N, sizeof *idx, cmp_u32);
    return (size_t)N;
}

/* Pearson of one feature over N tokens from its running sums; NaN when either vector is constant
 * (all zero, or nonzero on every token with one value). */
static double feat_pearson(const struct acc *a, uint32_t j)
{
    const struct modelacc *b = &a->m[0], *f = &a->m[1];
    double N = (double)a->x.n_tok;
    bool cb = b->nz[j] == 0 || (b->nz[j] == a->x.n_tok && b->amin[j] == b->amax[j]);
    bool cf = f->nz[j] == 0 || (f->nz[j] == a->x.n_tok && f->amin[j] == f->amax[j]);
    if (cb || cf) return NAN;
    double va = N * b->sa2[j] - b->sa[j] * b->sa[j], vb = N * f->sa2[j] - f->sa[j] * f->sa[j];
    if (!(va > 0) || !(vb > 0)) return NAN;
    return fmax(-1.0, fmin(1.0, (N * a->x.sab[j] - b->sa[j] * f->sa[j]) / sqrt(va * vb)));
}

static cJSON *stats_block(const uint32_t *idx, const double *v, size_t n, bool frac, uint64_t *nan_out)
{
    cJSON *o = cJSON_CreateObject();
    double s = 0, *vals = malloc((n ? n : 1) * sizeof(double));
    uint64_t k = 0, hi = 0, nan = 0;
    for (size_t i = 0; i < n; i++) {
        vals[i] = v[i];
        if (isnan(v[i])) { nan++; continue; }
        s += v[i]; k++; hi += v[i] > SIM_HI;
    }
    cJSON_AddNumberToObject(o, "mean", k ? s / k : NAN);
    if (frac) cJSON_AddNumberToObject(o, "frac_above_0.8", k ? (double)hi / k : NAN);
    cJSON_AddNumberToObject(o, "count", (double)n);
    cJSON_AddNumberToObject(o, "nan_count", (double)nan);
    if (idx) cJSON_AddItemToObject(o, "features", jarr_u_from32(idx, n));
    cJSON_AddItemToObject(o, "values", jarr_d(vals, n));
    free(vals);
    *nan_out = nan;
    return o;
}

/* The transfer block: exclusively dead sets, activation error, activation similarity, density
 * Pearson, and with the checkpoints the logit similarity and unembedding Frobenius figures. */
static int transfer_block(const struct acc *a, const struct opts *o, cJSON *doc, cJSON *nc)
{
    const struct modelacc *mb = &a->m[0], *mf = &a->m[1];
    const uint32_t D = a->x.d_sae;
    const double N = (double)a->x.n_tok;
    int err = PROTO_OK;
    if (!mb->has_feats || !mf->has_feats || mb->d_sae != D || mf->d_sae != D || mb->f_tok != a->x.n_tok || mf->f_tok != a->x.n_tok) {
        proto_set_detail("transfer: both streams must carry feats on every acts frame");
        return PROTO_E_MISMATCH;
    }
    double *Lb = malloc(D * sizeof(double)), *Lf = malloc(D * sizeof(double)), *v = malloc(D * sizeof(double));
    uint32_t *sb = malloc(D * 4), *sf = malloc(D * 4), *sr = malloc(D * 4);
    float *wdec = NULL;
    struct ckpt *cb = NULL, *cf = NULL;
    struct unembed ub = {0}, uf = {0};
    if (!Lb || !Lf || !v || !sb || !sf || !sr) { err = PROTO_E_NOMEM; goto out; }
    log_density(mb, Lb); log_density(mf, Lf);
    cJSON *t = cJSON_AddObjectToObject(doc, "transfer");
    /* density Pearson over all features, two-pass in double */
    double mxb = 0, mxf = 0, sxy = 0, sxx = 0, syy = 0;
    for (uint32_t j = 0; j < D; j++) { mxb += Lb[j]; mxf += Lf[j]; }
    mxb /= D; mxf /= D;
    for (uint32_t j = 0; j < D; j++) { double x = Lb[j] - mxb, y = Lf[j] - mxf; sxy += x * y; sxx += x * x; syy += y * y; }
    double dp = (sxx > 0 && syy > 0) ? sxy / sqrt(sxx * syy) : NAN;
    cJSON_AddNumberToObject(t, "density_pearson", dp);
    nan_note(nc, "transfer.density_pearson", isnan(dp), "log densities constant over the features in one model");
    /* the sets */
    size_t nb = 0, nf = 0, nr = 0;
    for (uint32_t j = 0; j < D; j++) {
        if (Lb[j] <= XDEAD_LOG && Lf[j] > XDEAD_LOG) sb[nb++] = j;
        if (Lf[j] <= XDEAD_LOG && Lb[j] > XDEAD_LOG) sf[nf++] = j;
        if (Lb[j] >= REG_LO && Lb[j] <= REG_HI && Lf[j] >= REG_LO && Lf[j] <= REG_HI) sr[nr++] = j;
    }
    cJSON_AddNumberToObject(t, "dead_only_base", (double)nb);
    cJSON_AddNumberToObject(t, "dead_only_finetune", (double)nf);
    cJSON_AddNumberToObject(t, "regular_count", (double)nr);
    nb = subsample(sb, nb, o->sample, o->seed, 1);
    nf = subsample(sf, nf, o->sample, o->seed, 2);
    nr = subsample(sr, nr, o->sample, o->seed, 3);
    uint64_t nan;
    static const char *names[2] = {"activation_error_dead_base", "activation_error_dead_finetune"};
    for (int s = 0; s < 2; s++) {
        const uint32_t *set = s ? sf : sb;
        size_t n = s ? nf : nb;
        double mb_ = 0, mf_ = 0;
        for (size_t i = 0; i < n; i++) {
            uint32_t j = set[i];
            v[i] = a->x.sld[j] / N;
            mb_ = fmax(mb_, fmax(0.0, mb->amax[j]));   /* max over tokens: zeros count, -inf = never nonzero */
            mf_ = fmax(mf_, fmax(0.0, mf->amax[j]));
        }
        cJSON *e = stats_block(set, v, n, false, &nan);
        cJSON_AddNumberToObject(e, "max_finetune_act", mf_);
        cJSON_AddNumberToObject(e, "max_base_act", mb_);
        cJSON_AddItemToObject(t, names[s], e);
    }
    for (size_t i = 0; i < nr; i++) v[i] = feat_pearson(a, sr[i]);
    cJSON_AddItemToObject(t, "activation_similarity", stats_block(sr, v, nr, true, &nan));
    nan_note(nc, "transfer.activation_similarity", nan, "feature constant over the tokens in base or finetune (Pearson undefined)");
    for (uint32_t j = 0; j < D; j++) v[j] = feat_pearson(a, j);
    cJSON_AddItemToObject(t, "activation_similarity_all", stats_block(NULL, v, D, true, &nan));
    nan_note(nc, "transfer.activation_similarity_all", nan, "feature constant over the tokens in base or finetune (Pearson undefined), e.g. dead");
    if (o->base_model && o->ft_model) {
        double fr = NAN, fe = NAN;
        uint64_t d_in = 0;
        const char *where = o->base_model;
        if ((err = ckpt_open(o->base_model, &cb)) || (err = unembed_get(cb, o->base_model, &ub))) goto wfail;
        where = o->ft_model;
        if ((err = ckpt_open(o->ft_model, &cf)) || (err = unembed_get(cf, o->ft_model, &uf))) goto wfail;
        size_t k = 0;
        if (o->sae_dir) {
            where = o->sae_dir;
            if ((err = sae_rows(o->sae_dir, sr, nr, D, &wdec, &d_in))) goto wfail;
            if (d_in != ub.d) { proto_set_detail("%s: SAE d_in %llu, model d_model %llu", o->sae_dir, (unsigned long long)d_in, (unsigned long long)ub.d); err = PROTO_E_MISMATCH; goto wfail; }
            k = nr;
        }
        where = "unembedding";
        if ((err = unembed_study(&ub, &uf, wdec, k, v, &fr, &fe))) goto wfail;
        if (o->sae_dir) {
            cJSON_AddItemToObject(t, "logit_similarity", stats_block(sr, v, k, false, &nan));
            nan_note(nc, "transfer.logit_similarity", nan, "constant logit vector (zero decoder row)");
        }
        cJSON_AddNumberToObject(t, "unembed_frobenius_ratio", fr);
        cJSON_AddNumberToObject(t, "unembed_frobenius_error", fe);
        goto out;
wfail:
        if (!strstr(proto_detail(), where)) proto_set_detail("%s: %s", where, proto_detail());
    }
out:
    free(Lb); free(Lf); free(v); free(sb); free(sf); free(sr); free(wdec);
    free(ub.g); free(uf.g); ckpt_close(cb); ckpt_close(cf);
    return err;
}

/* Upstream stages may time themselves: an end-frame meta key "seconds.STAGE" (seconds that
 * stage spent on the stream) becomes throughput[STAGE] (or "STAGE (base)" / "(finetune)"), with
 * the stream's rows; several inputs (or merged shards) with the same label add up. */
static void upstream_throughput(const cJSON *prov, uint64_t ctx, cJSON *th)
{
    const cJSON *in, *kv;
    cJSON_ArrayForEach(in, cJSON_GetObjectItemCaseSensitive(prov, "inputs")) {
        const cJSON *end = cJSON_GetObjectItemCaseSensitive(in, "end"), *role = cJSON_GetObjectItemCaseSensitive(in, "role");
        const cJSON *rows = cJSON_GetObjectItemCaseSensitive(end, "rows");
        cJSON_ArrayForEach(kv, cJSON_GetObjectItemCaseSensitive(end, "meta")) {
            if (!kv->string || strncmp(kv->string, "seconds.", 8) != 0 || !cJSON_IsNumber(kv) || !cJSON_IsNumber(rows)) continue;
            char label[160];
            bool plain = !cJSON_IsString(role) || strcmp(role->valuestring, "model") == 0;
            snprintf(label, sizeof label, plain ? "%s" : "%s (%s)", kv->string + 8, plain ? "" : role->valuestring);
            cJSON *e = cJSON_GetObjectItemCaseSensitive(th, label);
            if (!e) {
                e = cJSON_AddObjectToObject(th, label);
                cJSON_AddNumberToObject(e, "rows", 0); cJSON_AddNumberToObject(e, "seconds", 0); cJSON_AddNumberToObject(e, "tokens_per_s", 0);
            }
            cJSON *r = cJSON_GetObjectItemCaseSensitive(e, "rows"), *sec = cJSON_GetObjectItemCaseSensitive(e, "seconds");
            cJSON_SetNumberValue(r, r->valuedouble + rows->valuedouble);
            cJSON_SetNumberValue(sec, sec->valuedouble + kv->valuedouble);
            cJSON_SetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "tokens_per_s"), ratio(r->valuedouble * (double)ctx, sec->valuedouble));
        }
    }
}

static int finalize(struct acc *a, const struct opts *o, cJSON *prov, cJSON **out)
{
    int err = PROTO_OK;
    cJSON *doc = cJSON_CreateObject(), *nc = cJSON_CreateObject();
    cJSON_AddStringToObject(doc, "saeflow", SAEFLOW_VERSION);
    cJSON_AddNumberToObject(doc, "tokens", (double)a->tokens);
    cJSON_AddNumberToObject(doc, "rows", (double)a->rows);
    cJSON_AddNumberToObject(doc, "ctx", (double)a->ctx);
    cJSON_AddStringToObject(doc, "hook", a->hook);
    cJSON_AddStringToObject(doc, "sae", a->sae[0] ? a->sae : o->sae_dir ? o->sae_dir : "");
    if (a->has_sim) sim_block(&a->sim, doc, nc);
    if (a->paired) {
        if ((err = model_block(&a->m[0], "base", doc, nc)) || (err = model_block(&a->m[1], "finetune", doc, nc))) goto fail;
        if (a->has_x && (err = transfer_block(a, o, doc, nc))) goto fail;
    } else if ((err = model_block(&a->m[0], "model", doc, nc))) goto fail;
    cJSON *th = cJSON_AddObjectToObject(doc, "throughput");
    upstream_throughput(prov, a->ctx, th);
    cJSON *me = cJSON_AddObjectToObject(th, "sf-reduce");
    cJSON_AddNumberToObject(me, "rows", (double)a->reduce_rows);
    cJSON_AddNumberToObject(me, "seconds", a->seconds);
    cJSON_AddNumberToObject(me, "tokens_per_s", ratio((double)a->reduce_tokens, a->seconds));
    cJSON_AddItemToObject(doc, "nan_counts", nc); nc = NULL;
    cJSON_AddItemToObject(doc, "provenance", prov);
    if (!o->no_partial) cJSON_AddItemToObject(doc, "partial", acc_partial(a));
    *out = doc;
    return PROTO_OK;
fail:
    cJSON_Delete(doc); cJSON_Delete(nc); cJSON_Delete(prov);
    return err;
}

static cJSON *provenance(struct acc *a, const struct opts *o)
{
    cJSON *p = cJSON_CreateObject(), *r;
    cJSON_AddItemToObject(p, "inputs", a->prov_inputs);
    a->prov_inputs = NULL;
    r = cJSON_AddObjectToObject(p, "reduce");
    cJSON_AddStringToObject(r, "version", SAEFLOW_VERSION);
    cJSON *args = cJSON_AddArrayToObject(r, "args");
    for (int i = 0; i < o->argc; i++) cJSON_AddItemToArray(args, cJSON_CreateString(o->argv[i]));
    if (o->base_model || o->ft_model || o->sae_dir) {
        r = cJSON_AddObjectToObject(p, "checkpoints");
        if (o->base_model) cJSON_AddStringToObject(r, "base_model", o->base_model);
        if (o->ft_model) cJSON_AddStringToObject(r, "finetune_model", o->ft_model);
        if (o->sae_dir) cJSON_AddStringToObject(r, "sae", o->sae_dir);
    }
    if (o->sample > 0) { cJSON_AddNumberToObject(p, "sample", (double)o->sample); cJSON_AddNumberToObject(p, "seed", (double)o->seed); }
    if (o->merge) {
        cJSON *m = cJSON_AddArrayToObject(p, "merged_from");
        for (int i = 0; i < o->n_merge; i++) cJSON_AddItemToArray(m, cJSON_CreateString(o->merge_files[i]));
    }
    return p;
}

/* ======================== modes ======================== */
static int run_streams(const struct opts *o, struct acc *a, const char **where)
{
    struct scratch s;
    int err = PROTO_OK;
    memset(&s, 0, sizeof s);
    double t0 = proto_now();
    proto_progress_init(&a->prog, proto_cli_progress_on(&o->cli), "sf-reduce", 0);
    if (o->n_base) {
        for (int i = 0; i < o->n_base && !err; i++) err = run_pair(a, &s, o->base[i], o->ft[i], i == 0, where);
    } else {
        for (int i = 0; i < o->n_in && !err; i++) err = run_single(a, &s, o->in[i], "model", 0, i == 0, where);
    }
    a->seconds = proto_now() - t0;
    for (int k = 0; k <= PROTO_KIND_OTHER; k++)   /* tokens/rows: the kind that covers the most */
        if (a->ktok[k] > a->tokens) { a->tokens = a->ktok[k]; a->rows = a->krows[k]; }
    if (!err) proto_progress_done(&a->prog, a->rows, a->tokens);
    scratch_destroy(&s);
    return err;
}

static int run_merge(const struct opts *o, struct acc *a, const char **where)
{
    int err = PROTO_OK;
    for (int i = 0; i < o->n_merge && !err; i++) {
        char *txt = NULL; size_t len;
        *where = o->merge_files[i];
        if ((err = proto_read_file(o->merge_files[i], &txt, &len))) return err;
        cJSON *doc = cJSON_Parse(txt);
        free(txt);
        if (!doc) { proto_set_detail("not a JSON document"); return PROTO_E_FORMAT; }
        const cJSON *p = cJSON_GetObjectItemCaseSensitive(doc, "partial");
        if (!cJSON_IsObject(p)) { cJSON_Delete(doc); proto_set_detail("no \"partial\" object (written by sf-reduce without --no-partial?)"); return PROTO_E_FORMAT; }
        if (i == 0) {
            const cJSON *pp = cJSON_GetObjectItemCaseSensitive(p, "paired");
            a->paired = cJSON_IsNumber(pp) && pp->valuedouble != 0;
        }
        err = acc_add_partial(a, p);
        const cJSON *in = cJSON_GetObjectItemCaseSensitive(cJSON_GetObjectItemCaseSensitive(doc, "provenance"), "inputs"), *e;
        cJSON_ArrayForEach(e, in) cJSON_AddItemToArray(a->prov_inputs, cJSON_Duplicate(e, 1));
        cJSON_Delete(doc);
    }
    return err;
}

static int run_weights_only(const struct opts *o, cJSON **out, const char **where)
{
    struct ckpt *cb = NULL, *cf = NULL;
    struct unembed ub = {0}, uf = {0};
    cJSON *doc = cJSON_CreateObject(), *wd = NULL;
    double fr, fe;
    int err;
    *where = o->base_model;
    if ((err = ckpt_open(o->base_model, &cb))) goto out;
    *where = o->ft_model;
    if ((err = ckpt_open(o->ft_model, &cf))) goto out;
    *where = "weights";
    if ((err = weight_deviation(cb, cf, &wd))) goto out;
    cJSON_AddStringToObject(doc, "saeflow", SAEFLOW_VERSION);
    cJSON_AddItemToObject(doc, "weight_deviation", wd);
    if (unembed_get(cb, o->base_model, &ub) != PROTO_OK || unembed_get(cf, o->ft_model, &uf) != PROTO_OK ||
        unembed_study(&ub, &uf, NULL, 0, NULL, &fr, &fe) != PROTO_OK) {
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
    free(ub.g); free(uf.g); ckpt_close(cb); ckpt_close(cf);
    return err;
}

static int write_doc(const cJSON *doc, const struct opts *o)
{
    char *txt = o->pretty ? cJSON_Print(doc) : cJSON_PrintUnformatted(doc);
    if (!txt) return PROTO_E_NOMEM;
    bool std = strcmp(o->cli.out, "-") == 0;
    FILE *fp = std ? stdout : fopen(o->cli.out, "w");
    int err = PROTO_OK;
    if (!fp) err = PROTO_E_IO;
    else {
        size_t n = strlen(txt);
        if (fwrite(txt, 1, n, fp) != n || fputc('\n', fp) == EOF) err = PROTO_E_IO;
        if (std ? fflush(fp) != 0 : fclose(fp) != 0) err = PROTO_E_IO;
    }
    if (err) proto_set_detail("writing output failed: %s", strerror(errno));
    cJSON_free(txt);
    return err;
}

/* ======================== usage ======================== */
static void usage(FILE *fp)
{
    fprintf(fp,
"usage: sf-reduce [options] [-i ENDPOINT]...\n"
"       sf-reduce [options] --base ENDPOINT --finetune ENDPOINT [--base-model DIR --finetune-model DIR --sae DIR]\n"
"       sf-reduce --weights-only --base-model DIR --finetune-model DIR\n"
"       sf-reduce --merge A.json B.json ...\n"
"\n"
"Reduces saeflow streams to one JSON document (../shared/SPEC.md section 4) in one pass, with\n"
"memory independent of the number of tokens. What each frame kind gives:\n"
"  sim frames                      -> \"similarity\" (cos/l2 means, by position, by row, histograms)\n"
"  acts + feats (+ recon, keep)    -> \"model\": l0, l1, log_density, dead_*, r2_pooled,\n"
"                                     explained_variance, mse, cos_recon, l2_ratio, outliers, histograms\n"
"  loss frames                     -> \"model\": ce_clean/spliced/ablated, ce_delta, ce_recovered, kl_*\n"
"Several -i inputs are reduced one after the other into the same blocks (e.g. an acts+feats stream\n"
"and a loss stream of the same model); top-level tokens/rows count the first input (the frame\n"
"kind that covers the most tokens, when one stream carries several kinds over the same tokens).\n"
"\n"
"Options:\n"
"  -i, --in ENDPOINT        input stream (repeatable; default -)\n"
"  --base ENDPOINT          base-model stream; --finetune ENDPOINT the finetune's over the same tokens\n"
"                           (repeatable in pairs). Gives \"base\", \"finetune\", \"similarity\" (from the\n"
"                           paired acts) and \"transfer\" (when both carry feats). Different tokens: exit 1.\n"
"  --base-model DIR, --finetune-model DIR\n"
"                           HF checkpoints: transfer.unembed_frobenius_ratio/error; with --sae DIR also\n"
"                           transfer.logit_similarity over the regular features\n"
"  --sae DIR                SAELens SAE directory (W_dec of sae_weights.safetensors)\n"
"  --weights-only           only compare the checkpoints: weight_deviation (relative Frobenius\n"
"                           distance per tensor) and the unembedding figures; reads no stream\n"
"  --sample N               use N random features of each transfer set (default: all)\n"
"  --seed S                 seed of --sample (default 0)\n"
"  --merge                  the positional arguments are sf-reduce JSON files of shards of one study\n"
"                           (in stream order); prints the result one pass over all of them gives\n"
"  --pretty                 indent the JSON\n"
"  --no-partial             leave out the \"partial\" block (the result can then not be merged)\n"
"\n"
"Definitions (../shared/STUDY.md), and the choices this stage makes:\n"
"  l0: mean #features with f > 1e-8; density: #tokens with f > 1e-10 / N;\n"
"  log_density = log10(density + 1e-10); dead <=> log_density <= -9. Exclusively dead in base:\n"
"  L_b <= -8 < L_f (and vice versa); regular: -5 <= L <= -1 in both models.\n"
"  r2_pooled = 1 - SS_res/SS_tot over every scalar of the non-outlier tokens (one scalar mean).\n"
"  explained_variance (SAELens): per token 1 - sum_d(x-xhat)^2 / sum_d(x-mu)^2, mu the per-dimension\n"
"  mean over the non-outlier tokens of the same frame (one frame = one SAELens batch), averaged\n"
"  over tokens. mse = mean sum_d (x-xhat)^2; cos_recon, l2_ratio = mean ||xhat||/||x|| (norms\n"
"  floored at 1e-12), all over non-outlier tokens. ce_recovered = (abl - spl)/(abl - clean) of the means.\n"
"  transfer: dead_only_base/dead_only_finetune/regular_count are set sizes; each set's block has\n"
"  \"features\" (indices, after --sample) and \"values\" in the same order, \"mean\", \"count\", \"nan_count\".\n"
"  activation error of a feature: mean over all tokens of |log10(a_b + 1e-10) - log10(a_f + 1e-10)|;\n"
"  max_finetune_act/max_base_act: the largest activation of the set's features in each model.\n"
"  activation_similarity: per-feature Pearson over all tokens from running sums in double (NaN for\n"
"  a constant vector); activation_similarity_all has it for every feature.\n"
"  logit_similarity: Pearson over the base vocabulary of W_dec[j] (diag(g) E^T), g the final norm\n"
"  weight (1 + w for Gemma, from config.json),\n"
"  E lm_head.weight or, tied, model.embed_tokens.weight; the unembedding is centred over the\n"
"  vocabulary (Pearson does not change; the Frobenius figures use the centred, folded W_U).\n"
"  weight_deviation (--weights-only): {\"tensors\": {NAME: ||A - B||/||A||}, mean, max, max_tensor,\n"
"  skipped: [names missing or shaped differently]}; a larger finetune vocabulary is cut to the base's.\n"
"  NaN/inf are written as null; every exclusion is counted in \"nan_counts\": {WHERE: {count, reason}}.\n"
"Histograms {edges [n+1], counts [n], below, above, nan} have fixed edges: cos_hist -1..1 step 0.01;\n"
"  l2_hist, norm_hist: [0, 1e-3) then 10^(-3 + 0.025 k) up to 1e5; act_log10_hist: log10 f of f > 0,\n"
"  -10..5 step 0.05 (+ \"zeros\": token-feature pairs with f = 0); density_hist: log_density,\n"
"  -10.05..0.15 step 0.1. Bins are [left, right), the last one closed.\n"
"Extra keys: \"provenance\" (each input's header meta and end frame, the flags), \"partial\" (raw\n"
"  running sums; what --merge adds up), per block \"tokens\", \"d_sae\" and \"outlier_threshold\" (the\n"
"  input header's, set by sf-outliers; for the norm_hist plot). \"throughput\" has this stage\n"
"  and every upstream stage that put \"seconds.STAGE\" (a number) into its stream's end-frame meta.\n"
"\n");
    proto_cli_help_common(fp);
    fprintf(fp,
"\nExamples:\n"
"  sf-encode --sae SAE < acts.sf | sf-reduce --pretty > model.json\n"
"  sf-reduce --base base.sf --finetune ft.sf --base-model M --finetune-model F --sae SAE -o study.json\n"
"  sf-reduce -i part1.sf -o p1.json; ...; sf-reduce --merge p1.json p2.json p3.json > all.json\n"
"  sf-reduce --weights-only --base-model gemma-2b --finetune-model gemma-2b-python\n");
}

enum { OPT_BASE = PROTO_OPT_FIRST_FREE, OPT_FT, OPT_BASE_MODEL, OPT_FT_MODEL, OPT_SAE, OPT_WEIGHTS_ONLY,
       OPT_SAMPLE, OPT_SEED, OPT_MERGE, OPT_PRETTY, OPT_NO_PARTIAL };

static void parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {
        PROTO_CLI_LONGOPTS,
        {"base", required_argument, 0, OPT_BASE}, {"finetune", required_argument, 0, OPT_FT},
        {"base-model", required_argument, 0, OPT_BASE_MODEL}, {"finetune-model", required_argument, 0, OPT_FT_MODEL},
        {"sae", required_argument, 0, OPT_SAE}, {"weights-only", no_argument, 0, OPT_WEIGHTS_ONLY},
        {"sample", required_argument, 0, OPT_SAMPLE}, {"seed", required_argument, 0, OPT_SEED},
        {"merge", no_argument, 0, OPT_MERGE}, {"pretty", no_argument, 0, OPT_PRETTY},
        {"no-partial", no_argument, 0, OPT_NO_PARTIAL}, {0, 0, 0, 0}};
    int c;
    o->argc = argc; o->argv = argv;
    proto_cli_init(&o->cli, argv[0]);
    while ((c = getopt_long(argc, argv, PROTO_CLI_SHORTOPTS, lo, NULL)) != -1) {
        switch (c) {
        case 'i': if (o->n_in == MAX_INPUTS) proto_usage_error("at most %d -i inputs", MAX_INPUTS); o->in[o->n_in++] = optarg; break;
        case OPT_BASE: if (o->n_base == MAX_INPUTS) proto_usage_error("at most %d --base inputs", MAX_INPUTS); o->base[o->n_base++] = optarg; break;
        case OPT_FT: if (o->n_ft == MAX_INPUTS) proto_usage_error("at most %d --finetune inputs", MAX_INPUTS); o->ft[o->n_ft++] = optarg; break;
        case OPT_BASE_MODEL: o->base_model = optarg; break;
        case OPT_FT_MODEL: o->ft_model = optarg; break;
        case OPT_SAE: o->sae_dir = optarg; break;
        case OPT_WEIGHTS_ONLY: o->weights_only = true; break;
        case OPT_SAMPLE: o->sample = proto_parse_ll("--sample", optarg, 1, 1LL << 32); break;
        case OPT_SEED: o->seed = (uint64_t)proto_parse_ll("--seed", optarg, 0, INT64_MAX); break;
        case OPT_MERGE: o->merge = true; break;
        case OPT_PRETTY: o->pretty = true; break;
        case OPT_NO_PARTIAL: o->no_partial = true; break;
        default: if (!proto_cli_common(&o->cli, c, optarg, usage)) proto_usage_error("unknown option"); break;
        }
    }
    int npos = argc - optind;
    if (o->merge) {
        if (npos < 1) proto_usage_error("--merge needs at least one JSON file");
        if (o->n_in || o->n_base || o->n_ft || o->weights_only) proto_usage_error("--merge takes JSON files, not streams");
        o->merge_files = argv + optind; o->n_merge = npos;
    } else if (npos) proto_usage_error("unexpected argument '%s' (inputs are given with -i)", argv[optind]);
    if (o->n_base != o->n_ft) proto_usage_error("--base and --finetune come in pairs (%d vs %d)", o->n_base, o->n_ft);
    if (o->n_base && o->n_in) proto_usage_error("-i cannot be combined with --base/--finetune");
    if (!o->n_base && !o->merge && !o->weights_only && !o->n_in) o->in[o->n_in++] = "-";
    int n_stdin = 0;
    for (int i = 0; i < o->n_in; i++) n_stdin += strcmp(o->in[i], "-") == 0;
    for (int i = 0; i < o->n_base; i++) n_stdin += (strcmp(o->base[i], "-") == 0) + (strcmp(o->ft[i], "-") == 0);
    if (n_stdin > 1) proto_usage_error("only one input can be stdin (-)");
    if (!o->base_model != !o->ft_model) proto_usage_error("--base-model and --finetune-model go together");
    if (o->weights_only && (!o->base_model || o->n_base || o->n_in)) proto_usage_error("--weights-only needs --base-model and --finetune-model and no stream");
    if ((o->base_model || o->sae_dir) && !o->n_base && !o->merge && !o->weights_only) proto_usage_error("--base-model/--sae need --base/--finetune streams (or --weights-only)");
    proto_cli_finish(&o->cli, false);
}

/* ======================== main ======================== */
int main(int argc, char **argv)
{
    struct opts o = opts_default();
    struct acc a;
    cJSON *doc = NULL;
    const char *where = "init";
    int err, rc = PROTO_EXIT_OK;
    parse_args(argc, argv, &o);
    if ((err = acc_init(&a, o.n_base > 0))) goto fail;
    if (o.weights_only) err = run_weights_only(&o, &doc, &where);
    else if (o.merge) err = run_merge(&o, &a, &where);
    else err = run_streams(&o, &a, &where);
    if (err) goto fail;
    where = "finish";
    if (!doc && (err = finalize(&a, &o, provenance(&a, &o), &doc))) goto fail;
    where = o.cli.out;
    if ((err = write_doc(doc, &o))) goto fail;
    goto out;
fail:
    rc = proto_fail(err, where);
out:
    cJSON_Delete(doc);
    acc_destroy(&a);
    return rc;
}
