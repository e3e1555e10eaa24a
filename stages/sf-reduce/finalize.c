/* finalize.c - sf-reduce's result, the SPEC §4 document, from the running sums: the similarity
 * block, the per-model blocks, the transfer block (with the checkpoint figures ckpts_open made
 * and the logit similarity), throughput, nan_counts, provenance and the partial block. */
#include <errno.h>
#include <math.h>
#include <stdarg.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "reduce.h"

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

/* r2_pooled, explained_variance, mse, cos_recon, l2_ratio (+ sfx) of one token set into b */
static void recon_figures(const struct reconacc *r, const char *sfx, const char *name, cJSON *b, cJSON *nc)
{
    static const char *const key[5] = {"r2_pooled", "explained_variance", "mse", "cos_recon", "l2_ratio"};
    const double v[5] = {1.0 - ratio(r->ss_res, r->r_m2), ratio(r->ev_sum, (double)r->ev_tok),
                         ratio(r->ss_res, (double)r->r_tok), ratio(r->cos_sum, (double)r->r_tok),
                         ratio(r->ratio_sum, (double)r->r_tok)};
    char k[64], w[96];
    for (int i = 0; i < 5; i++) { snprintf(k, sizeof k, "%s%s", key[i], sfx); cJSON_AddNumberToObject(b, k, v[i]); }
    snprintf(w, sizeof w, "%s.recon%s", name, sfx);
    nan_note(nc, w, r->r_nonfinite, "token with non-finite activation or reconstruction, left out of r2/mse/cos/l2_ratio");
    snprintf(w, sizeof w, "%s.explained_variance%s", name, sfx);
    nan_note(nc, w, r->ev_nonfinite, "token whose activation equals its frame's per-dimension mean (0/0), left out");
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
    for (int u = 0; u < 2; u++) {   /* the seed's (outliers keep their activation), then unfiltered */
        int sp = u ? CE_SPLICED_ALL : CE_SPLICED;
        const char *sfx = u ? "_unfiltered" : "";
        char key[48];
        snprintf(key, sizeof key, "ce_delta%s", sfx);
        if (L[CE_CLEAN].seen && L[sp].seen) cJSON_AddNumberToObject(b, key, mean[sp] - mean[CE_CLEAN]);
        if (!u && L[CE_CLEAN].seen && L[sp].seen && L[CE_ABLATED].seen)   /* (the ablation keeps the outliers too) */
            cJSON_AddNumberToObject(b, "ce_recovered", (mean[CE_ABLATED] - mean[sp]) / (mean[CE_ABLATED] - mean[CE_CLEAN]));
    }
    if (m->has_recon) recon_figures(&m->rc, "", name, b, nc);
    if (m->has_rc_all) recon_figures(&m->rc_all, "_unfiltered", name, b, nc);
    if (m->has_acts) {
        cJSON_AddNumberToObject(b, "outliers", (double)m->outliers);
        cJSON_AddNumberToObject(b, "outlier_fraction", ratio((double)m->outliers, (double)m->a_tok));
        if (!isnan(m->outlier_threshold)) cJSON_AddNumberToObject(b, "outlier_threshold", m->outlier_threshold);
    }
    if (m->has_feats && m->f_tok) {
        double *Ld = malloc(m->d_sae * sizeof(double));   /* (d_sae) */
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
    double *tmp = malloc((s->ctx > s->rows ? s->ctx : s->rows ? s->rows : 1) * sizeof(double));   /* (max(ctx, rows)) */
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

static int cmp_u32(const void *a, const void *b) { uint32_t x = *(const uint32_t *)a, y = *(const uint32_t *)b; return (x > y) - (x < y); }

/* --sample N --seed S: keep N of the n indices (partial Fisher-Yates), ascending. */
static size_t subsample(uint32_t *idx, size_t n, long long N, uint64_t seed, uint64_t salt)
{
    if (N <= 0 || (size_t)N >= n) return n;
    uint64_t st = seed ^ (salt * 0xd1342543de82ef95ULL);
    for (size_t i = 0; i < (size_t)N; i++) {
        size_t j = i + (size_t)(proto_rng_next(&st) % (n - i));
        uint32_t t = idx[i]; idx[i] = idx[j]; idx[j] = t;
    }
    qsort(idx, (size_t)N, sizeof *idx, cmp_u32);
    return (size_t)N;
}

/* Pearson of one feature over N tokens from its running sums; NaN when either vector is constant
 * (all zero, or nonzero on every token with one value). */
double feat_pearson(const struct acc *a, uint32_t j)
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

/* transfer.density_pearson: Pearson of the two log-density vectors L (D) over all features,
 * two-pass in double. */
static void density_pearson(const double *Lb, const double *Lf, uint32_t D, cJSON *t, cJSON *nc)
{
    double mxb = 0, mxf = 0, sxy = 0, sxx = 0, syy = 0;
    for (uint32_t j = 0; j < D; j++) { mxb += Lb[j]; mxf += Lf[j]; }
    mxb /= D; mxf /= D;
    for (uint32_t j = 0; j < D; j++) { double x = Lb[j] - mxb, y = Lf[j] - mxf; sxy += x * y; sxx += x * x; syy += y * y; }
    double dp = (sxx > 0 && syy > 0) ? sxy / sqrt(sxx * syy) : NAN;
    cJSON_AddNumberToObject(t, "density_pearson", dp);
    nan_note(nc, "transfer.density_pearson", isnan(dp), "log densities constant over the features in one model");
}

/* activation_error_dead_base/_finetune: per feature of each exclusively dead set (sb: nb, sf: nf)
 * the mean over all tokens of |log10(a_b + eps) - log10(a_f + eps)|, and the largest activation
 * of the set's features in each model. v: (D) scratch. */
static void activation_error(const struct acc *a, const uint32_t *sb, size_t nb, const uint32_t *sf, size_t nf,
                             double *v, cJSON *t)
{
    static const char *names[2] = {"activation_error_dead_base", "activation_error_dead_finetune"};
    const struct modelacc *mb = &a->m[0], *mf = &a->m[1];
    const double N = (double)a->x.n_tok;
    uint64_t nan;
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
}

/* The checkpoint figures of the transfer block: logit_similarity of the regular features sr (nr,
 * after --sample) when there is an SAE, and the unembedding Frobenius figures ckpts_open made.
 * v: (D) scratch. */
static int checkpoint_figures(const struct ckpts *ck, const uint32_t *sr, size_t nr, uint32_t D, double *v,
                              cJSON *t, cJSON *nc)
{
    int err;
    uint64_t nan;
    if (ck->has_sae) {
        if ((err = logit_similarity(ck, sr, nr, D, v))) return err;
        cJSON_AddItemToObject(t, "logit_similarity", stats_block(sr, v, nr, false, &nan));
        nan_note(nc, "transfer.logit_similarity", nan, "constant logit vector (zero decoder row)");
    }
    cJSON_AddNumberToObject(t, "unembed_frobenius_ratio", ck->frob_ratio);
    cJSON_AddNumberToObject(t, "unembed_frobenius_error", ck->frob_error);
    return PROTO_OK;
}

/* The transfer block: exclusively dead sets, activation error, activation similarity, density
 * Pearson, and with the checkpoints the logit similarity and unembedding Frobenius figures. */
static int transfer_block(const struct acc *a, const struct opts *o, const struct ckpts *ck, cJSON *doc, cJSON *nc)
{
    const struct modelacc *mb = &a->m[0], *mf = &a->m[1];
    const uint32_t D = a->x.d_sae;
    int err = PROTO_OK;
    if (!mb->has_feats || !mf->has_feats || mb->d_sae != D || mf->d_sae != D || mb->f_tok != a->x.n_tok || mf->f_tok != a->x.n_tok) {
        proto_set_detail("transfer: both streams must carry feats on every acts frame");
        return PROTO_E_MISMATCH;
    }
    double *Lb = malloc(D * sizeof(double)), *Lf = malloc(D * sizeof(double)), *v = malloc(D * sizeof(double));   /* (D) */
    uint32_t *sb = malloc(D * 4), *sf = malloc(D * 4), *sr = malloc(D * 4);   /* (D) feature sets */
    if (!Lb || !Lf || !v || !sb || !sf || !sr) { err = PROTO_E_NOMEM; goto out; }
    log_density(mb, Lb); log_density(mf, Lf);
    cJSON *t = cJSON_AddObjectToObject(doc, "transfer");
    density_pearson(Lb, Lf, D, t, nc);
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
    activation_error(a, sb, nb, sf, nf, v, t);
    uint64_t nan;
    for (size_t i = 0; i < nr; i++) v[i] = feat_pearson(a, sr[i]);
    cJSON_AddItemToObject(t, "activation_similarity", stats_block(sr, v, nr, true, &nan));
    nan_note(nc, "transfer.activation_similarity", nan, "feature constant over the tokens in base or finetune (Pearson undefined)");
    for (uint32_t j = 0; j < D; j++) v[j] = feat_pearson(a, j);
    cJSON_AddItemToObject(t, "activation_similarity_all", stats_block(NULL, v, D, true, &nan));
    nan_note(nc, "transfer.activation_similarity_all", nan, "feature constant over the tokens in base or finetune (Pearson undefined), e.g. dead");
    struct fsel fs = {sr, sb, sf, nr, nb, nf, v};   /* v: activation_similarity_all */
    if ((err = features_block(a, o, ck, &fs, doc))) goto out;
    if (ck->on) err = checkpoint_figures(ck, sr, nr, D, v, t, nc);
out:
    free(Lb); free(Lf); free(v); free(sb); free(sf); free(sr);
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

/* ---- warnings (issue 16) ---- */
/* warnings[] += {code, message}; the caller adds the numbers. */
static cJSON *warn_add(cJSON *w, const char *code, const char *fmt, ...) __attribute__((format(printf, 3, 4)));
static cJSON *warn_add(cJSON *w, const char *code, const char *fmt, ...)
{
    char msg[512];
    va_list ap;
    va_start(ap, fmt); vsnprintf(msg, sizeof msg, fmt, ap); va_end(ap);
    cJSON *o = cJSON_CreateObject();
    cJSON_AddStringToObject(o, "code", code);
    cJSON_AddStringToObject(o, "message", msg);
    cJSON_AddItemToArray(w, o);
    return o;
}

/* outlier_fraction above WARN_OUTLIER_FRAC in one model */
static void warn_outliers(const struct modelacc *m, const char *name, cJSON *w)
{
    double f = ratio((double)m->outliers, (double)m->a_tok);
    if (!m->has_acts || !(f > WARN_OUTLIER_FRAC)) return;
    cJSON *o = warn_add(w, "outlier_fraction_high",
                        "%s: %.2f%% of the tokens are outliers (limit %.0f%%; the seed's method assumes under 1%%: "
                        "0.24%% Gemma-2b, 0.7%% Mistral-7B): outliers keep their activation in the spliced pass, so "
                        "CE spliced, R2, EV cover only the other %.2f%%", name, 100 * f, 100 * WARN_OUTLIER_FRAC, 100 * (1 - f));
    cJSON_AddStringToObject(o, "model", name);
    cJSON_AddNumberToObject(o, "outlier_fraction", f);
    cJSON_AddNumberToObject(o, "outliers", (double)m->outliers);
    cJSON_AddNumberToObject(o, "tokens", (double)m->a_tok);
    if (!isnan(m->outlier_threshold)) cJSON_AddNumberToObject(o, "outlier_threshold", m->outlier_threshold);
    cJSON_AddNumberToObject(o, "limit", WARN_OUTLIER_FRAC);
}

/* fewer than WARN_MIN_TOKENS tokens of feats: the regular set's lower density edge is below 1/N */
static void warn_tokens(const struct modelacc *m, cJSON *w)
{
    if (!m->has_feats || !m->f_tok || (double)m->f_tok >= WARN_MIN_TOKENS) return;
    double N = (double)m->f_tok;
    cJSON *o = warn_add(w, "few_tokens_for_density",
                        "%.0f tokens: the smallest density measurable is 1/N = 10^%.2f, and a feature at the regular set's "
                        "lower edge (10^%.0f) is expected to fire %.2f times; densities near that edge (and the regular "
                        "set) need at least %.0f tokens", N, -log10(N), REG_LO, N * pow(10, REG_LO), WARN_MIN_TOKENS);
    cJSON_AddNumberToObject(o, "tokens", N);
    cJSON_AddNumberToObject(o, "min_tokens", WARN_MIN_TOKENS);
    cJSON_AddNumberToObject(o, "min_log_density", -log10(N));
}

/* nan_counts, except transfer.activation_similarity_all (undefined for every dead feature by
 * construction: expected, not a data problem) */
static void warn_nan(const cJSON *nc, cJSON *w)
{
    const cJSON *e;
    double total = 0;
    cJSON *where = cJSON_CreateArray();
    cJSON_ArrayForEach(e, nc) {
        if (strcmp(e->string, "transfer.activation_similarity_all") == 0) continue;
        total += cJSON_GetNumberValue(cJSON_GetObjectItemCaseSensitive(e, "count"));
        cJSON_AddItemToArray(where, cJSON_CreateString(e->string));
    }
    if (cJSON_GetArraySize(where) == 0) { cJSON_Delete(where); return; }
    cJSON *o = warn_add(w, "nan_counted", "%.0f non-finite or undefined values left out of %d figure(s) (see nan_counts)",
                        total, cJSON_GetArraySize(where));
    cJSON_AddNumberToObject(o, "count", total);
    cJSON_AddItemToObject(o, "where", where);
}

/* the finetune's unembedding has more rows than the base's (known only with the checkpoints) */
static void warn_vocab(const struct ckpts *ck, cJSON *w)
{
    if (!ck || !ck->on || !ck->ub.E || !ck->uf.E || ck->uf.V <= ck->ub.V) return;
    cJSON *o = warn_add(w, "finetune_vocab_cut",
                        "the finetune's vocabulary (%llu) is cut to the base's (%llu): its %llu added row(s) never "
                        "appear in the loss or the logit similarity", (unsigned long long)ck->uf.V,
                        (unsigned long long)ck->ub.V, (unsigned long long)(ck->uf.V - ck->ub.V));
    cJSON_AddNumberToObject(o, "base_vocab", (double)ck->ub.V);
    cJSON_AddNumberToObject(o, "finetune_vocab", (double)ck->uf.V);
}

/* The "warnings" array of a (nc: its nan_counts). */
static cJSON *warnings(const struct acc *a, const struct ckpts *ck, const cJSON *nc)
{
    cJSON *w = cJSON_CreateArray();
    if (a->paired) { warn_outliers(&a->m[0], "base", w); warn_outliers(&a->m[1], "finetune", w); }
    else warn_outliers(&a->m[0], "model", w);
    warn_tokens(&a->m[0], w);
    warn_nan(nc, w);
    warn_vocab(ck, w);
    return w;
}

/* The result document of a (prov: provenance(), consumed) into *out. */
/* weight_deviation (from the checkpoints) and throughput (upstream stages, then sf-reduce) into doc */
static void wdev_throughput(const struct acc *a, const struct ckpts *ck, const cJSON *prov, cJSON *doc)
{
    if (ck && ck->wdev) cJSON_AddItemToObject(doc, "weight_deviation", cJSON_Duplicate(ck->wdev, true));
    cJSON *th = cJSON_AddObjectToObject(doc, "throughput");
    upstream_throughput(prov, a->ctx, th);
    cJSON *me = cJSON_AddObjectToObject(th, "sf-reduce");
    cJSON_AddNumberToObject(me, "rows", (double)a->reduce_rows);
    cJSON_AddNumberToObject(me, "seconds", a->seconds);
    cJSON_AddNumberToObject(me, "tokens_per_s", ratio((double)a->reduce_tokens, a->seconds));
}

int finalize(struct acc *a, const struct opts *o, const struct ckpts *ck, cJSON *prov, cJSON **out)
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
        if (a->has_x && (err = transfer_block(a, o, ck, doc, nc))) goto fail;
    } else {
        struct fsel none = {0};
        if ((err = model_block(&a->m[0], "model", doc, nc)) || (err = features_block(a, o, ck, &none, doc))) goto fail;
    }
    wdev_throughput(a, ck, prov, doc);
    cJSON_AddItemToObject(doc, "warnings", warnings(a, ck, nc));
    cJSON_AddItemToObject(doc, "nan_counts", nc); nc = NULL;
    cJSON_AddItemToObject(doc, "provenance", prov);
    if (!o->no_partial) cJSON_AddItemToObject(doc, "partial", acc_partial(a));
    *out = doc;
    return PROTO_OK;
fail:
    cJSON_Delete(doc); cJSON_Delete(nc); cJSON_Delete(prov);
    return err;
}

int finalize_hooks(struct acc *a, const struct opts *o, const struct ckpts *ck, cJSON *prov, cJSON **out)
{
    struct opts oh = *o;
    oh.no_partial = true;   /* a multi-hook run has no partial block: it is not merged */
    oh.features_out = NULL; /* nor a features.jsonl (one per hook would overwrite each other) */
    cJSON *doc = cJSON_CreateObject(), *hooks, *w;
    cJSON_AddStringToObject(doc, "saeflow", SAEFLOW_VERSION);
    cJSON_AddNumberToObject(doc, "tokens", (double)(a->n_sub ? a->sub[0]->tokens : 0));
    cJSON_AddNumberToObject(doc, "rows", (double)(a->n_sub ? a->sub[0]->rows : 0));
    cJSON_AddNumberToObject(doc, "ctx", (double)a->ctx);
    hooks = cJSON_AddArrayToObject(doc, "hooks");
    w = cJSON_CreateArray();
    for (int i = 0; i < a->n_sub; i++) {
        cJSON *hd, *hw;
        int err = finalize(a->sub[i], &oh, NULL, cJSON_CreateObject(), &hd);
        if (err) { cJSON_Delete(doc); cJSON_Delete(w); cJSON_Delete(prov); return err; }
        cJSON_DeleteItemFromObjectCaseSensitive(hd, "saeflow");
        cJSON_DeleteItemFromObjectCaseSensitive(hd, "provenance");
        cJSON_DeleteItemFromObjectCaseSensitive(hd, "throughput");
        cJSON_ArrayForEach(hw, cJSON_GetObjectItemCaseSensitive(hd, "warnings")) {   /* the run's, naming the hook */
            cJSON *c = cJSON_Duplicate(hw, true), *msg = cJSON_GetObjectItemCaseSensitive(hw, "message");
            size_t n = strlen(a->sub[i]->hook) + (cJSON_IsString(msg) ? strlen(msg->valuestring) : 0) + 3;
            char *txt = malloc(n);
            if (!c || !txt) { free(txt); cJSON_Delete(c); continue; }
            snprintf(txt, n, "%s: %s", a->sub[i]->hook, cJSON_IsString(msg) ? msg->valuestring : "");
            cJSON_ReplaceItemInObjectCaseSensitive(c, "message", cJSON_CreateString(txt));
            cJSON_AddStringToObject(c, "hook", a->sub[i]->hook);
            cJSON_AddItemToArray(w, c);
            free(txt);
        }
        cJSON_AddItemToArray(hooks, hd);
    }
    wdev_throughput(a, ck, prov, doc);
    cJSON_AddItemToObject(doc, "warnings", w);
    cJSON_AddItemToObject(doc, "provenance", prov);
    *out = doc;
    return PROTO_OK;
}

cJSON *provenance(struct acc *a, const struct opts *o)
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

int write_doc(const cJSON *doc, const struct opts *o)
{
    char *txt = o->pretty ? cJSON_Print(doc) : cJSON_PrintUnformatted(doc);
    if (!txt) return PROTO_E_NOMEM;
    bool std = strcmp(o->cli.out, "-") == 0;
    struct stat sb;
    int err = PROTO_OK;
    if (!std && (stat(o->cli.out, &sb) != 0 || S_ISREG(sb.st_mode))) {   /* a file: whole or not at all */
        size_t n = strlen(txt);
        txt[n] = '\n';   /* cJSON's buffer: room for the NUL we replace */
        err = proto_write_atomic(o->cli.out, txt, n + 1);
        cJSON_free(txt);
        return err;
    }
    FILE *fp = std ? stdout : fopen(o->cli.out, "w");
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

