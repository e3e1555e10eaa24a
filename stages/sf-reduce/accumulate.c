/* accumulate.c - sf-reduce's running sums: histograms with fixed edges, the similarity block,
 * the per-model block (features, activation norms, reconstruction, loss) and the transfer cross
 * sums. Everything is accumulated in double (sums over many frames), counts in uint64; the
 * per-row arrays are the SPEC's [R] outputs, 16 bytes per row. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "reduce.h"

#define LANES(z)    ((z[0] + z[1]) + (z[2] + z[3]))   /* sum of 4 accumulation lanes */

const struct hspec HS_COS  = {H_LIN, -100, 1, 100, 200};   /* cos: -1 .. 1 step 0.01 */
const struct hspec HS_NORM = {H_LOGZ, -120, 1, 40, 321};   /* 0, 1e-3 .. 1e5, 40 bins a decade */
const struct hspec HS_ACT  = {H_LIN, -200, 1, 20, 300};    /* log10 f: -10 .. 5 step 0.05 */
const struct hspec HS_DENS = {H_LIN, -201, 2, 20, 102};    /* log10 density: -10.05 .. 0.15 step 0.1 */

const char *const LOSS_KEYS[N_LOSS] = {"ce_clean", "ce_spliced", "ce_ablated", "kl_spliced", "kl_ablated",
                                       "ce_spliced_unfiltered", "kl_spliced_unfiltered"};

/* ======================== histograms ======================== */
int hist_init(struct hist *h, struct hspec s)
{
    h->s = s; h->below = h->above = h->nan = 0;
    h->zlo = pow(10.0, (double)s.lo_num / s.den);
    h->c = calloc((size_t)s.n, sizeof *h->c);
    return h->c ? PROTO_OK : PROTO_E_NOMEM;
}

void hist_add(struct hist *h, double v)
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

double hist_edge(const struct hspec *s, int k)
{
    if (s->kind == H_LIN) return (double)(s->lo_num + k * s->step_num) / s->den;
    return k == 0 ? 0.0 : pow(10.0, (double)(s->lo_num + (k - 1) * s->step_num) / s->den);
}

/* ======================== accumulators ======================== */
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

int sim_grow_rows(struct simacc *s, size_t rows)
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
int sim_add(struct simacc *s, uint64_t rows, uint64_t ctx, const float *cos, const float *l2)
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

int model_init_feats(struct modelacc *m, uint32_t d_sae)
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
    topk_destroy(&m->tk);
}

int x_init(struct xacc *x, uint32_t d_sae)
{
    int err = PROTO_OK;
    x->d_sae = d_sae;
    x->sab = xcalloc(d_sae, sizeof(double), &err);
    x->sld = xcalloc(d_sae, sizeof(double), &err);
    return err;
}

void acc_destroy(struct acc *a)
{
    for (int i = 0; i < a->n_sub; i++) { acc_destroy(a->sub[i]); free(a->sub[i]); }
    free(a->sub);
    sim_destroy(&a->sim);
    model_destroy(&a->m[0]); model_destroy(&a->m[1]);
    free(a->x.sab); free(a->x.sld);
    cJSON_Delete(a->prov_inputs);
}

int acc_init(struct acc *a, int paired)
{
    memset(a, 0, sizeof *a);
    a->paired = paired;
    int err = model_init(&a->m[0]);
    if (!err) err = model_init(&a->m[1]);
    if (!err && !(a->prov_inputs = cJSON_CreateArray())) err = PROTO_E_NOMEM;
    return err;
}

int acc_route(struct acc *a, const struct opts *o, const struct proto_frame *f, struct acc **out)
{
    *out = a;
    if (o->hook && proto_frame_hook_is(f, o->hook) == 0) *out = NULL;
    if (!a->multi) return PROTO_OK;
    const struct proto_value *v = proto_frame_get((struct proto_frame *)f, "hook");
    *out = NULL;
    if (!v || v->type != PROTO_V_STR || v->len >= sizeof a->hook) return PROTO_OK;
    for (int i = 0; i < a->n_sub; i++)
        if (strlen(a->sub[i]->hook) == v->len && memcmp(a->sub[i]->hook, v->str, v->len) == 0) { *out = a->sub[i]; return PROTO_OK; }
    if (a->n_sub == PROTO_MAX_HOOKS) {
        proto_set_detail("frame %llu: more than %d hooks", (unsigned long long)f->seq, PROTO_MAX_HOOKS);
        return PROTO_E_INVAL;
    }
    struct acc **grown = realloc(a->sub, (a->n_sub + 1) * sizeof *grown), *h;
    if (!grown) return PROTO_E_NOMEM;
    a->sub = grown;
    if (!(h = malloc(sizeof *h))) return PROTO_E_NOMEM;
    int err = acc_init(h, a->paired);
    if (err) { acc_destroy(h); free(h); return err; }
    memcpy(h->hook, v->str, v->len); h->hook[v->len] = 0;
    memcpy(h->sae, a->sae, sizeof a->sae);
    for (int k = 0; k < 2; k++) h->m[k].hdr_d_sae = a->m[k].hdr_d_sae;
    a->sub[a->n_sub++] = h;
    *out = h;
    return PROTO_OK;
}

/* Chan et al.'s parallel update of (count, mean, M2). */
void chan_merge(double *n, double *mean, double *m2, double nb, double meanb, double m2b)
{
    if (nb == 0) return;
    double na = *n, N = na + nb, d = meanb - *mean;
    *mean += d * nb / N;
    *m2 += m2b + d * d * na * nb / N;
    *n = N;
}

/* ======================== kernels ======================== */
void scratch_destroy(struct scratch *s)
{
    proto_buf_destroy(&s->acts); proto_buf_destroy(&s->recon); proto_buf_destroy(&s->acts2);
    proto_buf_destroy(&s->cosb); proto_buf_destroy(&s->l2b); proto_buf_destroy(&s->mu);
    proto_buf_destroy(&s->flag);
    free(s->vb); free(s->vf);
}

/* Features of n_tok tokens (CSR): L0, L1, per-feature counts/sums/extremes, log10 histogram. */
void model_add_feats(struct modelacc *m, const struct proto_sparse *sp)
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
static int recon_add(struct reconacc *m, struct scratch *s, const float *x, const float *y,
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

int model_add_recon(struct modelacc *m, struct scratch *s, const float *x, const float *y,
                           const uint8_t *keep, uint64_t n_tok, uint64_t d)
{
    int err = recon_add(&m->rc, s, x, y, keep, n_tok, d);
    if (err || !keep) return err;
    m->has_rc_all = true;
    return recon_add(&m->rc_all, s, x, y, NULL, n_tok, d);
}

/* Activation norms of every token (outliers included). */
void model_add_acts(struct modelacc *m, const float *x, uint64_t n_tok, uint64_t d)
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

void model_add_loss(struct modelacc *m, int key, const float *v, uint64_t n)
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
void x_add(struct xacc *x, const struct proto_sparse *b, const struct proto_sparse *f, float *vb, float *vf)
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

/* ======================== per-frame checks ======================== */
int set_ctx(struct acc *a, uint64_t ctx, uint64_t seq)
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

int need_feats(struct modelacc *m, struct scratch *s, uint32_t d_sae, uint64_t seq)
{
    int err;
    if (d_sae > MAX_D_SAE) {   /* before any accumulator is sized from it */
        proto_set_detail("frame %llu: feats d_sae %u is over the bound of %u", (unsigned long long)seq, d_sae, MAX_D_SAE);
        return PROTO_E_SCHEMA;
    }
    if (m->hdr_d_sae && m->hdr_d_sae != d_sae) {
        proto_set_detail("frame %llu: feats d_sae %u, the stream header says %llu", (unsigned long long)seq, d_sae,
                         (unsigned long long)m->hdr_d_sae);
        return PROTO_E_MISMATCH;
    }
    if (!m->has_feats && (err = model_init_feats(m, d_sae))) return err;
    if (m->d_sae != d_sae) {
        proto_set_detail("frame %llu: feats d_sae %u, earlier frames had %u", (unsigned long long)seq, d_sae, m->d_sae);
        return PROTO_E_MISMATCH;
    }
    if (!s->vb) {
        if (!(s->vb = calloc(d_sae, sizeof(float))) || !(s->vf = calloc(d_sae, sizeof(float)))) return PROTO_E_NOMEM;
        s->d_sae = d_sae;
    }
    return PROTO_OK;
}
