/* partial.c - the "partial" block of sf-reduce's result (the raw running sums) and --merge, which
 * reads such blocks back and adds them up: Chan's update for the pooled-R² moments, max/min for
 * extremes, row arrays appended in file order; finalize then gives exactly what one pass over
 * all the shards gives. Doubles are printed so that they parse back bit for bit. */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include "reduce.h"
#include "json.h"

/* ======================== writing ======================== */
cJSON *jarr_d(const double *v, size_t n) { return n ? cJSON_CreateDoubleArray(v, (int)n) : cJSON_CreateArray(); }

cJSON *jarr_u(const uint64_t *v, size_t n)
{
    cJSON *a = cJSON_CreateArray();
    for (size_t i = 0; a && i < n; i++) cJSON_AddItemToArray(a, cJSON_CreateNumber((double)v[i]));
    return a;
}

cJSON *jarr_u_from32(const uint32_t *v, size_t n)
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

static void recon_partial(const struct reconacc *m, cJSON *o)
{
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
    if (m->has_recon) recon_partial(&m->rc, cJSON_AddObjectToObject(j, "recon"));
    if (m->has_rc_all) recon_partial(&m->rc_all, cJSON_AddObjectToObject(j, "recon_unfiltered"));
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

cJSON *acc_partial(const struct acc *a)
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
    for (int k = 0; a->tk_partial && k <= a->paired; k++)   /* shards: the drill-down's contexts (features.c) */
        if (a->m[k].tk.d_sae) cJSON_AddItemToObject(cJSON_GetObjectItemCaseSensitive(p, a->paired ? (k ? "finetune" : "base") : "model"), "topk", topk_partial(&a->m[k]));
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

/* ======================== reading back (--merge) ========================
 * Every getter adds what it reads to the running sums. Details name the key; "partial: " is put
 * before them here, and the file name by main. */
#define COUNT_MAX 9007199254740992LL   /* 2^53: counts are written as JSON numbers */

static int bad_partial(const char *what)
{
    proto_set_detail("partial: %s missing or malformed", what);
    return PROTO_E_FORMAT;
}

/* err, with "partial: " before the detail when it is an error (< 0) */
static int in_partial(int err)
{
    if (err < 0) proto_prefix_detail("partial");
    return err;
}

/* *out = the number at key (required) */
static int get_num(const cJSON *o, const char *key, double *out)
{
    return in_partial(proto_json_need(proto_json_num(o, key, out), key));
}

/* *acc += the count at key (required) */
static int add_count(const cJSON *o, const char *key, uint64_t *acc)
{
    long long v = 0;
    int err = proto_json_need(proto_json_int(o, key, 0, COUNT_MAX, &v), key);
    if (!err) *acc += (uint64_t)v;
    return in_partial(err);
}

/* *acc += the number at key (required) */
static int add_sum(const cJSON *o, const char *key, double *acc)
{
    double v = 0;
    int err = proto_json_need(proto_json_num(o, key, &v), key);
    if (!err) *acc += v;
    return in_partial(err);
}

/* dst (n) += the n counts at key (required) */
static int add_counts(const cJSON *o, const char *key, uint64_t *dst, size_t n)
{
    unsigned long long *v = malloc((n ? n : 1) * sizeof *v);   /* (n) */
    if (!v) return PROTO_E_NOMEM;
    int err = proto_json_need(proto_json_uints(o, key, v, n), key);
    for (size_t i = 0; !err && i < n; i++) dst[i] += v[i];
    free(v);
    return in_partial(err);
}

/* dst (n) += the n finite numbers at key (required) */
static int add_sums(const cJSON *o, const char *key, double *dst, size_t n)
{
    double *v = malloc((n ? n : 1) * sizeof *v);   /* (n) */
    if (!v) return PROTO_E_NOMEM;
    int err = proto_json_need(proto_json_doubles(o, key, v, n), key);
    for (size_t i = 0; !err && i < n; i++) dst[i] += v[i];
    free(v);
    return in_partial(err);
}

/* dst (n) = max (sign > 0) or min (sign < 0) of itself and the n entries at key (required). An
 * entry is null where the extreme is ±inf (a feature never nonzero): cJSON writes non-finite
 * numbers as null, and proto_json_doubles takes finite numbers only. */
static int fold_extremes(const cJSON *o, const char *key, double *dst, size_t n, int sign)
{
    const cJSON *arr = proto_json_get(o, key), *e;
    if (!cJSON_IsArray(arr) || (size_t)cJSON_GetArraySize(arr) != n) return bad_partial(key);
    size_t i = 0;
    cJSON_ArrayForEach(e, arr) {
        if (cJSON_IsNumber(e)) {
            double v = e->valuedouble;
            if (sign > 0 ? v > dst[i] : v < dst[i]) dst[i] = v;
        } else if (!cJSON_IsNull(e)) return bad_partial(key);
        i++;
    }
    return PROTO_OK;
}

static int hist_from(struct hist *h, const cJSON *o, const char *key)
{
    const cJSON *j = proto_json_get(o, key);
    int err;
    if (!cJSON_IsObject(j)) return bad_partial(key);
    if ((err = add_counts(j, "counts", h->c, (size_t)h->s.n)) || (err = add_count(j, "below", &h->below)) ||
        (err = add_count(j, "above", &h->above)) || (err = add_count(j, "nan", &h->nan))) return err;
    return PROTO_OK;
}

static int feats_from(struct modelacc *m, const cJSON *o)
{
    long long d_sae;
    int err;
    if ((err = in_partial(proto_json_need(proto_json_int(o, "d_sae", 1, MAX_D_SAE, &d_sae), "d_sae")))) return err;
    if (!m->has_feats && (err = model_init_feats(m, (uint32_t)d_sae))) return err;
    if (m->d_sae != (uint32_t)d_sae) {
        proto_set_detail("partial: d_sae %g, earlier parts had %u", (double)d_sae, m->d_sae);
        return PROTO_E_MISMATCH;
    }
    size_t n = m->d_sae;
    if ((err = add_count(o, "tokens", &m->f_tok)) || (err = add_count(o, "l0_count", &m->l0_count)) ||
        (err = add_sum(o, "l1_sum", &m->l1_sum)) || (err = add_count(o, "nonfinite", &m->feat_nonfinite)) ||
        (err = add_count(o, "positive", &m->act_pos)) || (err = add_counts(o, "fire", m->fire, n)) ||
        (err = add_counts(o, "nonzero", m->nz, n)) || (err = add_sums(o, "sum", m->sa, n)) ||
        (err = add_sums(o, "sum_sq", m->sa2, n)) || (err = fold_extremes(o, "max", m->amax, n, +1)) ||
        (err = fold_extremes(o, "min", m->amin, n, -1)) || (err = hist_from(&m->h_act, o, "act_log10_hist"))) return err;
    return PROTO_OK;
}

static int acts_from(struct modelacc *m, const cJSON *o)
{
    long long d;
    int err;
    if ((err = in_partial(proto_json_need(proto_json_int(o, "d_model", 0, COUNT_MAX, &d), "d_model")))) return err;
    if (m->d_model && d > 0 && m->d_model != (uint64_t)d) {
        proto_set_detail("partial: d_model %g, earlier parts had %llu", (double)d, (unsigned long long)m->d_model);
        return PROTO_E_MISMATCH;
    }
    if (d > 0) m->d_model = (uint64_t)d;
    m->has_acts = true;
    if ((err = add_count(o, "tokens", &m->a_tok)) || (err = add_count(o, "outliers", &m->outliers)) ||
        (err = hist_from(&m->h_norm, o, "norm_hist"))) return err;
    return PROTO_OK;
}

static int recon_from(struct reconacc *m, const cJSON *o)
{
    double n = 0, mean = 0, m2 = 0;
    int err;
    if ((err = add_count(o, "tokens", &m->r_tok)) || (err = add_count(o, "nonfinite", &m->r_nonfinite)) ||
        (err = get_num(o, "scalars", &n)) || (err = get_num(o, "mean", &mean)) || (err = get_num(o, "m2", &m2)) ||
        (err = add_sum(o, "ss_res", &m->ss_res)) || (err = add_sum(o, "ev_sum", &m->ev_sum)) ||
        (err = add_count(o, "ev_tokens", &m->ev_tok)) || (err = add_count(o, "ev_nonfinite", &m->ev_nonfinite)) ||
        (err = add_sum(o, "cos_sum", &m->cos_sum)) || (err = add_sum(o, "ratio_sum", &m->ratio_sum))) return err;
    chan_merge(&m->r_n, &m->r_mean, &m->r_m2, n, mean, m2);
    return PROTO_OK;
}

static int loss_from(struct modelacc *m, const cJSON *o)
{
    int err;
    m->has_loss = true;
    for (int k = 0; k < N_LOSS; k++) {
        const cJSON *l = proto_json_get(o, LOSS_KEYS[k]);
        if (!l) continue;
        m->loss[k].seen = true;
        if ((err = add_sum(l, "sum", &m->loss[k].sum)) || (err = add_count(l, "n", &m->loss[k].n)) ||
            (err = add_count(l, "nonfinite", &m->loss[k].nonfinite))) return err;
    }
    return PROTO_OK;
}

/* One model block ("model", "base" or "finetune") into m. */
static int model_from(struct modelacc *m, const cJSON *j)
{
    const cJSON *o;
    double th;
    int err;
    if (!cJSON_IsObject(j)) return bad_partial("model block");
    int r = in_partial(proto_json_num(j, "outlier_threshold", &th));   /* optional */
    if (r < 0) return r;
    if (r == 1 && isnan(m->outlier_threshold)) m->outlier_threshold = th;
    else if (r == 1 && th != m->outlier_threshold) {
        proto_set_detail("partial: outlier_threshold %.17g, earlier parts had %.17g", th, m->outlier_threshold);
        return PROTO_E_MISMATCH;
    }
    if ((o = proto_json_get(j, "feats")) && (err = feats_from(m, o))) return err;
    if ((o = proto_json_get(j, "topk")) && (err = topk_from(m, o))) return err;
    if ((o = proto_json_get(j, "acts")) && (err = acts_from(m, o))) return err;
    if ((o = proto_json_get(j, "recon"))) { m->has_recon = true; if ((err = recon_from(&m->rc, o))) return err; }
    if ((o = proto_json_get(j, "recon_unfiltered"))) { m->has_rc_all = true; if ((err = recon_from(&m->rc_all, o))) return err; }
    if ((o = proto_json_get(j, "loss")) && (err = loss_from(m, o))) return err;
    return PROTO_OK;
}

/* The similarity block: sums added, the row arrays appended after the rows already there. */
static int sim_from(struct simacc *sm, const cJSON *o)
{
    const cJSON *rn = proto_json_get(o, "row_n");
    int err;
    if (!cJSON_IsArray(rn)) return bad_partial("similarity.row_n");
    size_t R = (size_t)cJSON_GetArraySize(rn), R0 = sm->rows;
    if ((err = sim_grow_rows(sm, R0 + R))) return err;
    if ((err = add_count(o, "n", &sm->n)) || (err = add_count(o, "nonfinite", &sm->nonfinite)) ||
        (err = add_sum(o, "sum_cos", &sm->s_cos)) || (err = add_sum(o, "sum_l2", &sm->s_l2)) ||
        (err = add_sums(o, "pos_sum_cos", sm->pos_cos, sm->ctx)) ||
        (err = add_sums(o, "pos_sum_l2", sm->pos_l2, sm->ctx)) ||
        (err = add_counts(o, "pos_n", sm->pos_n, sm->ctx)) ||
        (err = add_sums(o, "row_sum_cos", sm->row_cos + R0, R)) ||
        (err = add_sums(o, "row_sum_l2", sm->row_l2 + R0, R)) ||
        (err = add_counts(o, "row_n", sm->row_n + R0, R)) ||
        (err = hist_from(&sm->h_cos, o, "cos_hist")) || (err = hist_from(&sm->h_l2, o, "l2_hist"))) return err;
    sm->rows = R0 + R;
    return PROTO_OK;
}

static int transfer_from(struct acc *a, const cJSON *o)
{
    long long d_sae;
    int err;
    if ((err = in_partial(proto_json_need(proto_json_int(o, "d_sae", 1, MAX_D_SAE, &d_sae), "d_sae")))) return err;
    if (!a->has_x) { if ((err = x_init(&a->x, (uint32_t)d_sae))) return err; a->has_x = true; }
    if (a->x.d_sae != (uint32_t)d_sae) {
        proto_set_detail("partial: transfer d_sae %g, earlier parts had %u", (double)d_sae, a->x.d_sae);
        return PROTO_E_MISMATCH;
    }
    if ((err = add_count(o, "tokens", &a->x.n_tok)) || (err = add_sums(o, "sum_ab", a->x.sab, a->x.d_sae)) ||
        (err = add_sums(o, "sum_abs_logdiff", a->x.sld, a->x.d_sae))) return err;
    return PROTO_OK;
}

/* hook or sae: the first part's, and every later part that has one must agree. dst: (cap) */
static int same_label(const cJSON *p, const char *key, char *dst, size_t cap)
{
    const char *v = NULL;
    int r = in_partial(proto_json_str(p, key, &v));
    if (r <= 0) return r;
    if (v[0] && dst[0] && strcmp(dst, v) != 0) {
        proto_set_detail("partial: %s %s, earlier parts had %s", key, v, dst);
        return PROTO_E_MISMATCH;
    }
    if (!dst[0]) snprintf(dst, cap, "%s", v);
    return PROTO_OK;
}

/* A partial's ctx sizes per-position accumulators (24 bytes a position) before anything else
 * is read, so it must be backed by the document (found by fuzz-partial: a 300-byte partial with
 * ctx 3749000370 asked for 90 GB): with a similarity block, its pos_n array has ctx entries;
 * without one, ctx is at most PARTIAL_MAX_CTX. */
#define PARTIAL_MAX_CTX (1LL << 20)
static int partial_ctx_bound(const cJSON *p, long long ctx)
{
    const cJSON *pn = proto_json_get(proto_json_get(p, "similarity"), "pos_n");
    if (pn && (!cJSON_IsArray(pn) || (long long)cJSON_GetArraySize(pn) != ctx)) {
        proto_set_detail("partial: ctx %lld, but similarity.pos_n has %d entries", ctx, cJSON_IsArray(pn) ? cJSON_GetArraySize(pn) : -1);
        return PROTO_E_FORMAT;
    }
    if (!pn && ctx > PARTIAL_MAX_CTX) {
        proto_set_detail("partial: ctx %lld is over the bound of %lld positions", ctx, PARTIAL_MAX_CTX);
        return PROTO_E_FORMAT;
    }
    return PROTO_OK;
}

/* Adds one partial object into a (initialised by acc_init with the same pairing). */
static int acc_add_partial(struct acc *a, const cJSON *p)
{
    double v = 0;
    long long ctx = 0;
    int err;
    const cJSON *o;
    if ((err = get_num(p, "version", &v))) return err;
    if (v != PARTIAL_VERSION) { proto_set_detail("partial version %g, this sf-reduce reads %d", v, PARTIAL_VERSION); return PROTO_E_FORMAT; }
    if ((err = get_num(p, "paired", &v))) return err;
    if (v != 0 && v != 1) { proto_set_detail("partial: paired is %g, not 0 or 1", v); return PROTO_E_FORMAT; }   /* (int)v was UB (fuzz-partial) */
    if ((int)v != a->paired) { proto_set_detail("cannot merge a one-model result with a base/finetune one"); return PROTO_E_MISMATCH; }
    if ((err = in_partial(proto_json_need(proto_json_int(p, "ctx", 0, COUNT_MAX, &ctx), "ctx")))) return err;
    if ((err = partial_ctx_bound(p, ctx))) return err;
    if (ctx > 0 && (err = set_ctx(a, (uint64_t)ctx, UINT64_MAX))) return err;
    if ((err = add_count(p, "tokens", &a->tokens)) || (err = add_count(p, "rows", &a->rows)) ||
        (err = add_sum(p, "seconds", &a->seconds)) || (err = add_count(p, "reduce_rows", &a->reduce_rows)) ||
        (err = add_count(p, "reduce_tokens", &a->reduce_tokens))) return err;
    if ((err = same_label(p, "hook", a->hook, sizeof a->hook)) || (err = same_label(p, "sae", a->sae, sizeof a->sae))) return err;
    if ((o = proto_json_get(p, "similarity"))) {
        a->has_sim = true;
        if ((err = sim_from(&a->sim, o))) return err;
    }
    if (a->paired) {
        if ((err = model_from(&a->m[0], proto_json_get(p, "base"))) ||
            (err = model_from(&a->m[1], proto_json_get(p, "finetune")))) return err;
    } else if ((err = model_from(&a->m[0], proto_json_get(p, "model")))) return err;
    if ((o = proto_json_get(p, "transfer")) && (err = transfer_from(a, o))) return err;
    return PROTO_OK;
}

/* The sf-reduce result in file, and its partial block in *p; NULL with err set otherwise. */
static cJSON *load_partial(const char *file, const cJSON **p, int *err)
{
    cJSON *doc = proto_json_load(file, err);
    if (!doc) {
        if (*err == PROTO_E_FORMAT) proto_set_detail("not a JSON document");
        return NULL;
    }
    *p = proto_json_get(doc, "partial");
    if (!cJSON_IsObject(*p)) {
        cJSON_Delete(doc);
        proto_set_detail("no \"partial\" object (written by sf-reduce without --no-partial?)");
        *err = PROTO_E_FORMAT;
        return NULL;
    }
    return doc;
}

/* Reads the --merge files in order into a: their partial blocks, and their provenance inputs. */
int run_merge(const struct opts *o, struct acc *a, const char **where)
{
    int err = PROTO_OK;
    for (int i = 0; i < o->n_merge && !err; i++) {
        *where = o->merge_files[i];
        const cJSON *p = NULL;
        cJSON *doc = load_partial(o->merge_files[i], &p, &err);
        if (!doc) return err;
        if (i == 0) {
            double paired = 0;
            a->paired = proto_json_num(p, "paired", &paired) == 1 && paired != 0;
        }
        err = acc_add_partial(a, p);
        const cJSON *e;
        cJSON_ArrayForEach(e, proto_json_get(proto_json_get(doc, "provenance"), "inputs"))
            cJSON_AddItemToArray(a->prov_inputs, cJSON_Duplicate(e, 1));
        cJSON_Delete(doc);
    }
    return err;
}

/* ======================== shards (issue 13) ========================
 * The plan file, the shard block of a partial, and the checks --merge makes on a set of shards
 * (reduce.h says what they are). */
#define MAX_SHARDS 1000000
#define MAX_FRAMES (1LL << 40)

void shard_parse_arg(const char *arg, struct shardopts *so)
{
    long long k, n;
    char c;
    if (sscanf(arg, "%lld/%lld%c", &k, &n, &c) != 2 || n < 1 || n > MAX_SHARDS || k < 0 || k >= n)
        proto_usage_error("--shard %s: expected K/N with 0 <= K < N <= %d", arg, MAX_SHARDS);
    so->k = k; so->n = n;
}

/* rows [*lo, *hi) of shard k of n under so's plan */
static void range_of(const struct shardopts *so, long long k, long long n, uint64_t *lo, uint64_t *hi)
{
    uint64_t f0 = so->frames * (uint64_t)k / (uint64_t)n, f1 = so->frames * (uint64_t)(k + 1) / (uint64_t)n;
    *lo = f0 * so->rows_per_frame;
    *hi = f1 * so->rows_per_frame < so->total_rows ? f1 * so->rows_per_frame : so->total_rows;
}

/* so->hash, so->settings (copies) and the numbers and paths of settings; the detail names the key */
static int settings_take(struct shardopts *so, const char *hash, const cJSON *st)
{
    long long rows, frames, total;
    const char *s;
    int err;
    if (!cJSON_IsObject(st)) { proto_set_detail("settings missing or not an object"); return PROTO_E_FORMAT; }
    if ((err = proto_json_need(proto_json_int(st, "rows", 1, 1 << 30, &rows), "settings.rows")) ||
        (err = proto_json_need(proto_json_int(st, "frames", 1, MAX_FRAMES, &frames), "settings.frames")) ||
        (err = proto_json_need(proto_json_int(st, "total_rows", 1, MAX_FRAMES << 20, &total), "settings.total_rows")))
        return err;
    if (total > frames * rows || total <= (frames - 1) * rows) {
        proto_set_detail("settings: total_rows %lld is not in %lld frames of %lld rows", total, frames, rows);
        return PROTO_E_FORMAT;
    }
    so->rows_per_frame = (uint64_t)rows; so->frames = (uint64_t)frames; so->total_rows = (uint64_t)total;
    if (!(so->hash = strdup(hash)) || !(so->settings = cJSON_Duplicate(st, 1))) return PROTO_E_NOMEM;
    if (proto_json_str(so->settings, "base", &s) == 1) so->base_model = s;
    if (proto_json_str(so->settings, "finetune", &s) == 1) so->ft_model = s;
    if (proto_json_str(so->settings, "sae", &s) == 1) so->sae_dir = s;
    return PROTO_OK;
}

int plan_load(struct shardopts *so, const char **where)
{
    int err;
    long long v = 0;
    const char *hash;
    *where = so->plan;
    cJSON *doc = proto_json_load(so->plan, &err);
    if (!doc) { if (err == PROTO_E_FORMAT) proto_set_detail("not a JSON document"); return err; }
    if ((err = proto_json_need(proto_json_int(doc, "saeflow_plan", 1, 1, &v), "saeflow_plan")) ||
        (err = proto_json_need(proto_json_str(doc, "plan_hash", &hash), "plan_hash")) ||
        (err = settings_take(so, hash, proto_json_get(doc, "settings")))) goto out;
    if (so->n && (uint64_t)so->n > so->frames) {
        proto_set_detail("--shard %lld/%lld: the plan has only %llu frames", so->k, so->n, (unsigned long long)so->frames);
        err = PROTO_E_INVAL; goto out;
    }
    if (so->n) range_of(so, so->k, so->n, &so->row_lo, &so->row_hi);
out:
    cJSON_Delete(doc);
    return err;
}

int shard_annotate(cJSON *doc, const struct acc *a, const struct shardopts *so)
{
    if (!so->n) return PROTO_OK;
    cJSON *p = cJSON_GetObjectItemCaseSensitive(doc, "partial");
    if (a->rows != so->row_hi - so->row_lo) {
        proto_set_detail("shard %lld/%lld: the streams had %llu rows, the plan's rows %llu:%llu are %llu", so->k, so->n,
                         (unsigned long long)a->rows, (unsigned long long)so->row_lo, (unsigned long long)so->row_hi,
                         (unsigned long long)(so->row_hi - so->row_lo));
        return PROTO_E_MISMATCH;
    }
    if (!p) return PROTO_OK;
    cJSON *s = cJSON_AddObjectToObject(p, "shard");
    cJSON_AddStringToObject(s, "plan_hash", so->hash);
    cJSON_AddNumberToObject(s, "k", (double)so->k);
    cJSON_AddNumberToObject(s, "n", (double)so->n);
    cJSON_AddNumberToObject(s, "row_start", (double)so->row_lo);
    cJSON_AddNumberToObject(s, "row_end", (double)so->row_hi);
    cJSON_AddItemToObject(s, "settings", cJSON_Duplicate(so->settings, 1));
    return PROTO_OK;
}

void shard_free(struct shardopts *so)
{
    free(so->hash);
    cJSON_Delete(so->settings);
    so->hash = NULL; so->settings = NULL;
}

/* ---- --merge over shards ---- */
struct part { const char *file; long long k, n; uint64_t lo, hi; bool sharded; };

/* a JSON value, short, for a message. dst: (cap) */
static const char *jshort(const cJSON *v, char *dst, size_t cap)
{
    char *t = v ? cJSON_PrintUnformatted(v) : NULL;
    snprintf(dst, cap, "%s", t ? t : "(absent)");
    if (t && strlen(t) >= cap && cap > 4) strcpy(dst + cap - 4, "...");
    cJSON_free(t);
    return dst;
}

/* the first settings key where b differs from ref, in *key; 0 when none */
static int settings_diff(const cJSON *ref, const cJSON *b, const char **key)
{
    const cJSON *e;
    cJSON_ArrayForEach(e, ref)
        if (!cJSON_Compare(e, cJSON_GetObjectItemCaseSensitive(b, e->string), true)) { *key = e->string; return 1; }
    cJSON_ArrayForEach(e, b)
        if (!cJSON_GetObjectItemCaseSensitive(ref, e->string)) { *key = e->string; return 1; }
    return 0;
}

/* a part's shard block against the reference (the plan, or the first sharded part) */
static int part_vs_ref(struct shardopts *so, struct part *pt, const char *hash, const cJSON *st, const char *ref)
{
    const char *key;
    char v1[80], v2[80];
    if (!so->settings) { so->n = pt->n; return settings_take(so, hash, st); }
    if (settings_diff(so->settings, st, &key)) {
        proto_set_detail("shard %lld/%lld has settings.%s = %s, %s has %s (mixed settings)", pt->k, pt->n, key,
                         jshort(cJSON_GetObjectItemCaseSensitive(st, key), v1, sizeof v1), ref,
                         jshort(cJSON_GetObjectItemCaseSensitive(so->settings, key), v2, sizeof v2));
        return PROTO_E_MISMATCH;
    }
    if (strcmp(hash, so->hash) != 0) {
        proto_set_detail("shard %lld/%lld is of plan %.12s, %s is of plan %.12s (mixed plans)", pt->k, pt->n, hash, ref, so->hash);
        return PROTO_E_MISMATCH;
    }
    if (!so->n) so->n = pt->n;
    if (pt->n != so->n) {
        proto_set_detail("shard %lld/%lld, %s has %lld shards (mixed shard counts)", pt->k, pt->n, ref, so->n);
        return PROTO_E_MISMATCH;
    }
    return PROTO_OK;
}

/* Reads one --merge file's shard block (if any) into pt and checks it against so. */
static int part_read(struct shardopts *so, struct part *pt, const char *ref)
{
    const cJSON *p = NULL, *sh;
    const char *hash = NULL;
    long long lo = 0, hi = 0;
    int err;
    cJSON *doc = load_partial(pt->file, &p, &err);
    if (!doc) return err;
    if (!(sh = proto_json_get(p, "shard"))) { cJSON_Delete(doc); return PROTO_OK; }
    pt->sharded = true;
    if ((err = proto_json_need(proto_json_int(sh, "n", 1, MAX_SHARDS, &pt->n), "shard.n")) ||
        (err = proto_json_need(proto_json_int(sh, "k", 0, pt->n - 1, &pt->k), "shard.k")) ||
        (err = proto_json_need(proto_json_int(sh, "row_start", 0, MAX_FRAMES << 20, &lo), "shard.row_start")) ||
        (err = proto_json_need(proto_json_int(sh, "row_end", lo, MAX_FRAMES << 20, &hi), "shard.row_end")) ||
        (err = proto_json_need(proto_json_str(sh, "plan_hash", &hash), "shard.plan_hash")))
        proto_prefix_detail("partial");
    else err = part_vs_ref(so, pt, hash, proto_json_get(sh, "settings"), ref);
    pt->lo = (uint64_t)lo; pt->hi = (uint64_t)hi;
    cJSON_Delete(doc);
    return err;
}

static int part_cmp(const void *x, const void *y)
{
    const struct part *a = x, *b = y;
    if (a->lo != b->lo) return a->lo < b->lo ? -1 : 1;
    return (a->k > b->k) - (a->k < b->k);
}

/* every shard 0..n-1 exactly once (pt sorted by row range) */
static int parts_complete(const struct part *pt, int np, const struct shardopts *so, const char **where)
{
    int *at = malloc((size_t)so->n * sizeof *at);   /* (n) the part holding shard k, -1 */
    if (!at) return PROTO_E_NOMEM;
    int err = PROTO_OK;
    for (long long k = 0; k < so->n; k++) at[k] = -1;
    for (int i = 0; i < np && !err; i++) {
        if (at[pt[i].k] >= 0) {
            proto_set_detail("shard %lld/%lld given twice (%s and %s)", pt[i].k, so->n, pt[at[pt[i].k]].file, pt[i].file);
            err = PROTO_E_MISMATCH;
        }
        at[pt[i].k] = i;
    }
    for (long long k = 0; k < so->n && !err; k++)
        if (at[k] < 0) { proto_set_detail("missing shard %lld/%lld", k, so->n); err = PROTO_E_MISMATCH; }
    free(at);
    *where = "--merge";
    return err;
}

/* the row ranges tile [0, total_rows) and are the plan's (pt sorted) */
static int parts_tile(const struct part *pt, int np, const struct shardopts *so)
{
    uint64_t end = 0, lo, hi;
    for (int i = 0; i < np; i++) {
        const struct part *q = &pt[i], *pr = i ? &pt[i - 1] : NULL;
        if (q->lo < end) {
            proto_set_detail("shard %lld/%lld (rows %llu:%llu) overlaps shard %lld/%lld (rows %llu:%llu)", q->k, q->n,
                             (unsigned long long)q->lo, (unsigned long long)q->hi, pr->k, pr->n,
                             (unsigned long long)pr->lo, (unsigned long long)pr->hi);
            return PROTO_E_MISMATCH;
        }
        if (q->lo > end) {
            proto_set_detail("gap: rows %llu:%llu are in no shard (before shard %lld/%lld)", (unsigned long long)end,
                             (unsigned long long)q->lo, q->k, q->n);
            return PROTO_E_MISMATCH;
        }
        end = q->hi;
    }
    if (end != so->total_rows) {
        proto_set_detail("gap: rows %llu:%llu are in no shard (the plan has %llu rows)", (unsigned long long)end,
                         (unsigned long long)so->total_rows, (unsigned long long)so->total_rows);
        return PROTO_E_MISMATCH;
    }
    for (int i = 0; i < np; i++) {
        range_of(so, pt[i].k, pt[i].n, &lo, &hi);
        if (lo != pt[i].lo || hi != pt[i].hi) {
            proto_set_detail("shard %lld/%lld has rows %llu:%llu, the plan gives it %llu:%llu", pt[i].k, pt[i].n,
                             (unsigned long long)pt[i].lo, (unsigned long long)pt[i].hi, (unsigned long long)lo, (unsigned long long)hi);
            return PROTO_E_MISMATCH;
        }
    }
    return PROTO_OK;
}

int merge_check(struct opts *o, struct shardopts *so, const char **where)
{
    int err = PROTO_OK, np = o->n_merge, n_sh = 0;
    const char *ref = so->plan ? so->plan : "the first shard";
    struct part *pt = calloc((size_t)np, sizeof *pt);   /* (np) */
    if (!pt) return PROTO_E_NOMEM;
    if (so->plan && (err = plan_load(so, where))) goto out;
    for (int i = 0; i < np && !err; i++) {
        *where = pt[i].file = o->merge_files[i];
        if (!(err = part_read(so, &pt[i], ref))) n_sh += pt[i].sharded;
    }
    if (err || (n_sh == 0 && !so->plan)) goto out;   /* no shards: merged in the order given */
    for (int i = 0; i < np; i++)
        if (!pt[i].sharded) {
            *where = pt[i].file;
            proto_set_detail("not a shard of a study plan (no partial.shard)%s", n_sh ? ", the other parts are" : "");
            err = PROTO_E_MISMATCH; goto out;
        }
    qsort(pt, (size_t)np, sizeof *pt, part_cmp);
    if ((err = parts_complete(pt, np, so, where)) || (err = parts_tile(pt, np, so))) goto out;
    for (int i = 0; i < np; i++) o->merge_files[i] = (char *)pt[i].file;
out:
    free(pt);
    return err;
}
