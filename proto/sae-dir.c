/* sae-dir.c - the SAELens directory loader (sae-dir.h): cfg.json with SAELens's defaults and
 * legacy names, sae_weights.safetensors as f32 (load) or mapped (open). */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "json.h"
#include "proto.h"
#include "sae-dir.h"

static const char *const ARCH_NAME[] = {"standard", "jumprelu", "gated"};
static const char *const ACT_NAME[] = {"relu", "tanh-relu", "topk"};
static const char *const NORM_NAME[] = {"none", "constant_norm_rescale", "expected_average_only_in", "layer_norm"};

const char *proto_sae_arch_name(enum proto_sae_arch a) { return (unsigned)a < 3 ? ARCH_NAME[a] : "?"; }
const char *proto_sae_act_name(enum proto_sae_act a) { return (unsigned)a < 3 ? ACT_NAME[a] : "?"; }
const char *proto_sae_norm_name(enum proto_sae_norm n) { return (unsigned)n < 4 ? NORM_NAME[n] : "?"; }

static int name_index(const char *s, const char *const *names, int n)
{
    for (int i = 0; i < n; i++) if (strcmp(s, names[i]) == 0) return i;
    return -1;
}

/* ---------------------------------------------------------------------------------------- */
/* cfg.json (details without the file name: the caller prefixes it) */

/* What cfg.json says beyond the struct's own fields. */
struct cfg_extra {
    long long d_in, d_sae;    /* -1: take them from W_enc */
    bool ft_flag;             /* finetuning_scaling_factor */
};

/* A string at key (else at legacy, else dflt) copied into dst. */
static int cfg_str(const cJSON *cfg, const char *key, const char *legacy, const char *dflt, char *dst, size_t cap)
{
    const char *s = dflt;
    int r = proto_json_str(cfg, key, &s);
    if (r == 0 && legacy) r = proto_json_str(cfg, legacy, &s);
    if (r < 0) return r;
    if (strlen(s) >= cap) { proto_set_detail("%s is too long", key); return PROTO_E_FORMAT; }
    strcpy(dst, s);
    return PROTO_OK;
}

/* A count: absent leaves *out alone. */
static int cfg_count(const cJSON *o, const char *key, long long *out)
{
    int r = proto_json_int(o, key, 0, 1000000000000LL, out);
    return r < 0 ? r : PROTO_OK;
}

/* architecture / activation_fn_str / normalize_activations -> the enums; topk's k. */
static int parse_kinds(struct proto_sae *s, const cJSON *cfg)
{
    char arch[64], act[64], norm[64];
    int err;
    if ((err = cfg_str(cfg, "architecture", NULL, "standard", arch, sizeof arch)) ||
        (err = cfg_str(cfg, "activation_fn_str", "activation_fn", "relu", act, sizeof act)))
        return err;
    /* normalize_activations: a string, or a legacy bool (true = expected_average_only_in) */
    const cJSON *nv = proto_json_get(cfg, "normalize_activations");
    if (nv && cJSON_IsBool(nv)) strcpy(norm, cJSON_IsTrue(nv) ? "expected_average_only_in" : "none");
    else if ((err = cfg_str(cfg, "normalize_activations", NULL, "none", norm, sizeof norm))) return err;

    /* SAELens >= 4 writes architecture "topk" with k in cfg (or activation_fn_kwargs) */
    bool topk_arch = strcmp(arch, "topk") == 0;
    int a = topk_arch ? PROTO_SAE_ARCH_STANDARD : name_index(arch, ARCH_NAME, 3);
    if (a < 0) {
        proto_set_detail("unknown architecture '%s' (known: standard, topk, jumprelu, gated)", arch);
        return PROTO_E_FORMAT;
    }
    int f = topk_arch ? PROTO_SAE_ACT_TOPK : name_index(act, ACT_NAME, 3);
    if (f < 0) {
        proto_set_detail("unknown activation_fn_str '%s' (known: relu, tanh-relu, topk)", act);
        return PROTO_E_FORMAT;
    }
    int nm = name_index(norm, NORM_NAME, 4);
    if (nm < 0) {
        proto_set_detail("unknown normalize_activations '%s' (known: none, constant_norm_rescale, "
                         "expected_average_only_in, layer_norm)", norm);
        return PROTO_E_FORMAT;
    }
    s->arch = (enum proto_sae_arch)a;
    s->act = (enum proto_sae_act)f;
    s->norm = (enum proto_sae_norm)nm;
    if (s->act == PROTO_SAE_ACT_TOPK) {
        long long k = -1;
        if ((err = cfg_count(proto_json_get(cfg, "activation_fn_kwargs"), "k", &k))) return err;
        if (k < 0 && (err = cfg_count(cfg, "k", &k))) return err;
        if (k < 1) { proto_set_detail("topk needs activation_fn_kwargs.k >= 1"); return PROTO_E_FORMAT; }
        s->k = (int)(k > 1 << 30 ? 1 << 30 : k);
    }
    return PROTO_OK;
}

/* Every field of cfg.json the SAE needs. */
static int parse_cfg(struct proto_sae *s, const cJSON *cfg, struct cfg_extra *x)
{
    int err;
    if ((err = parse_kinds(s, cfg))) return err;
    if ((err = cfg_str(cfg, "hook_name", "hook_point", "", s->hook, sizeof s->hook))) return err;
    const cJSON *md = proto_json_get(cfg, "metadata");   /* SAELens >= 6 keeps it there */
    if (!s->hook[0] && md && (err = cfg_str(md, "hook_name", NULL, "", s->hook, sizeof s->hook))) return err;
    s->apply_b_dec = true;
    x->ft_flag = false;
    x->d_in = x->d_sae = -1;
    int r;
    if ((r = proto_json_bool(cfg, "apply_b_dec_to_input", &s->apply_b_dec)) < 0 ||
        (r = proto_json_bool(cfg, "finetuning_scaling_factor", &x->ft_flag)) < 0)
        return r;
    if ((err = cfg_count(cfg, "d_in", &x->d_in)) || (err = cfg_count(cfg, "d_sae", &x->d_sae))) return err;
    return PROTO_OK;
}

/* expected_average_only_in's factor: the caller's, else cfg norm_scaling_factor, else 1. */
static int resolve_norm_scale(struct proto_sae *s, double norm_scale)
{
    s->norm_scale = 1.0f;
    if (s->norm != PROTO_SAE_NORM_EXPECTED_AVG) return PROTO_OK;
    if (isnan(norm_scale)) {
        int r = proto_json_num(s->cfg, "norm_scaling_factor", &norm_scale);
        if (r < 0) return r;
    }
    if (isnan(norm_scale)) return PROTO_OK;   /* unknown: 1, the caller may warn */
    if (!(norm_scale > 0 && isfinite(norm_scale))) {
        proto_set_detail("norm scaling factor %g is not a positive number", norm_scale);
        return PROTO_E_FORMAT;
    }
    s->norm_scale = (float)norm_scale;
    s->norm_scale_known = true;
    return PROTO_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* sae_weights.safetensors (details without the file name: the caller prefixes it) */

/* Checks a tensor's dtype (f32/f16/bf16) and shape [d0] or [d0 d1]. */
static int check_tensor(const struct proto_st_tensor *t, const char *name, int ndim, uint64_t d0, uint64_t d1)
{
    const uint64_t want[2] = {d0, d1};
    return proto_st_check(t, name, ndim, want, "expected");
}

/* Copies a tensor (unaligned in the mapping) into a new aligned f32 buffer after checking it.
 * required = false: NULL and PROTO_OK when absent. */
static int load_tensor(const struct proto_st *st, const char *name, int ndim, uint64_t d0, uint64_t d1,
                       bool required, float **out)
{
    const struct proto_st_tensor *t = proto_st_find(st, name);
    int err;
    *out = NULL;
    if (!t) {
        if (!required) return PROTO_OK;
        proto_set_detail("tensor %s is missing", name);
        return PROTO_E_FORMAT;
    }
    if ((err = check_tensor(t, name, ndim, d0, d1))) return err;
    size_t n = (size_t)d0 * (ndim == 2 ? (size_t)d1 : 1);
    if (!(*out = proto_aligned_alloc(n * sizeof(float) + 64))) return PROTO_E_NOMEM;
    proto_convert_to_f32(*out, t->data, t->dtype, n);
    for (size_t i = 0; i < n; i++) {   /* a NaN weight would silently encode to nothing */
        if (isfinite((*out)[i])) continue;
        if (ndim == 2) proto_set_detail("%s[%zu, %zu] is %g: the SAE has non-finite weights", name, i / (size_t)d1, i % (size_t)d1, (*out)[i]);
        else proto_set_detail("%s[%zu] is %g: the SAE has non-finite weights", name, i, (*out)[i]);
        return PROTO_E_FORMAT;
    }
    return PROTO_OK;
}

/* d_in / d_sae: cfg.json's when given (the tensors must then agree), else W_enc's shape. */
static int resolve_dims(struct proto_sae *s, const struct proto_st *st, const struct cfg_extra *x)
{
    const struct proto_st_tensor *we = proto_st_find(st, "W_enc");
    if (!we) { proto_set_detail("tensor W_enc is missing"); return PROTO_E_FORMAT; }
    if (we->ndim != 2) { proto_set_detail("W_enc is not 2-D"); return PROTO_E_MISMATCH; }
    long long d_in = x->d_in >= 0 ? x->d_in : (long long)we->shape[0];
    long long d_sae = x->d_sae >= 0 ? x->d_sae : (long long)we->shape[1];
    if (d_in < 1 || d_sae < 1 || d_in > INT32_MAX / 2 || d_sae > INT32_MAX / 2) {   /* before any allocation */
        proto_set_detail("d_in %lld (%s) / d_sae %lld (%s) out of range: each from 1 to %d", d_in,
                         x->d_in >= 0 ? "cfg.json" : "W_enc", d_sae, x->d_sae >= 0 ? "cfg.json" : "W_enc", INT32_MAX / 2);
        return PROTO_E_FORMAT;
    }
    s->d_in = (int)d_in;
    s->d_sae = (int)d_sae;
    if (s->act == PROTO_SAE_ACT_TOPK && s->k > s->d_sae) s->k = s->d_sae;
    return PROTO_OK;
}

/* The finetuning scaling factor (SAELens read_sae_from_disk): a tensor of all ones is ignored;
 * any other needs cfg finetuning_scaling_factor true, and true needs a tensor. */
static int load_ft_scale(struct proto_sae *s, const struct proto_st *st, bool ft_flag)
{
    const char *name = proto_st_find(st, "finetuning_scaling_factor") ? "finetuning_scaling_factor" : "scaling_factor";
    int err = load_tensor(st, name, 1, (uint64_t)s->d_sae, 0, false, &s->ft_scale);
    if (err) return err;
    bool ones = s->ft_scale != NULL;
    for (int j = 0; ones && j < s->d_sae; j++) ones = s->ft_scale[j] == 1.0f;
    if (ones) { free(s->ft_scale); s->ft_scale = NULL; }
    else if (s->ft_scale && !ft_flag) {
        proto_set_detail("%s is present but cfg.json finetuning_scaling_factor is false", name);
        return PROTO_E_FORMAT;
    } else if (!s->ft_scale && ft_flag) {
        proto_set_detail("cfg.json finetuning_scaling_factor is true but there is no scaling_factor tensor");
        return PROTO_E_FORMAT;
    }
    return PROTO_OK;
}

/* Every weight the architecture uses, as f32. */
static int load_weights(struct proto_sae *s, const struct proto_st *st, bool ft_flag)
{
    const uint64_t d_in = (uint64_t)s->d_in, d_sae = (uint64_t)s->d_sae;
    int err;
    if ((err = load_tensor(st, "W_enc", 2, d_in, d_sae, true, &s->W_enc)) ||
        (err = load_tensor(st, "W_dec", 2, d_sae, d_in, true, &s->W_dec)) ||
        (err = load_tensor(st, "b_dec", 1, d_in, 0, true, &s->b_dec)))
        return err;
    if (s->arch == PROTO_SAE_ARCH_GATED) {
        if ((err = load_tensor(st, "b_gate", 1, d_sae, 0, true, &s->b_enc)) ||
            (err = load_tensor(st, "r_mag", 1, d_sae, 0, true, &s->mag_scale)) ||
            (err = load_tensor(st, "b_mag", 1, d_sae, 0, true, &s->b_mag)))
            return err;
        for (int j = 0; j < s->d_sae; j++) s->mag_scale[j] = expf(s->mag_scale[j]);
    } else if ((err = load_tensor(st, "b_enc", 1, d_sae, 0, true, &s->b_enc))) {
        return err;
    }
    if (s->arch == PROTO_SAE_ARCH_JUMPRELU &&
        (err = load_tensor(st, "threshold", 1, d_sae, 0, true, &s->threshold)))
        return err;
    return load_ft_scale(s, st, ft_flag);
}

/* ---------------------------------------------------------------------------------------- */
/* load, open */

/* What load and open share: the cfg, the mapped weights, the sizes. */
static int sae_begin(const char *dir, struct proto_sae *s, struct cfg_extra *x)
{
    char path[4200];
    int err;
    memset(s, 0, sizeof *s);
    proto_dir_basename(dir, s->name, sizeof s->name);
    snprintf(path, sizeof path, "%s/cfg.json", dir);
    if (!(s->cfg = proto_json_load(path, &err))) return err;   /* the detail names the file */
    if ((err = parse_cfg(s, s->cfg, x))) { proto_prefix_detail("%s", path); return err; }

    snprintf(path, sizeof path, "%s/sae_weights.safetensors", dir);
    if (!(s->weights = calloc(1, sizeof *s->weights))) return PROTO_E_NOMEM;
    if ((err = proto_st_open(s->weights, path))) return err;   /* the detail names the file */
    if ((err = resolve_dims(s, s->weights, x))) { proto_prefix_detail("%s", path); return err; }
    return PROTO_OK;
}

static void close_weights(struct proto_sae *s)
{
    proto_st_close(s->weights);
    free(s->weights);
    s->weights = NULL;
}

int proto_sae_load(const char *dir, double norm_scale, struct proto_sae *s)
{
    struct cfg_extra x;
    int err = sae_begin(dir, s, &x);
    if (!err && (err = load_weights(s, s->weights, x.ft_flag))) proto_prefix_detail("%s", s->weights->path);
    if (!err && (err = resolve_norm_scale(s, norm_scale))) proto_prefix_detail("%s/cfg.json", dir);
    close_weights(s);   /* everything is copied */
    if (err) proto_sae_destroy(s);
    return err;
}

int proto_sae_open(const char *dir, struct proto_sae *s)
{
    struct cfg_extra x;
    int err = sae_begin(dir, s, &x);
    if (!err) {
        const struct proto_st_tensor *t = proto_st_find(s->weights, "W_dec");
        if (!t) { proto_set_detail("tensor W_dec is missing"); err = PROTO_E_FORMAT; }
        else err = check_tensor(t, "W_dec", 2, (uint64_t)s->d_sae, (uint64_t)s->d_in);
        if (err) proto_prefix_detail("%s", s->weights->path);
    }
    if (!err && (err = resolve_norm_scale(s, NAN))) proto_prefix_detail("%s/cfg.json", dir);
    if (err) proto_sae_destroy(s);
    return err;
}

int proto_sae_dec_rows(const struct proto_sae *s, const uint32_t *idx, size_t k, float *out)
{
    const size_t d = (size_t)s->d_in;
    const struct proto_st_tensor *t = s->W_dec || !s->weights ? NULL : proto_st_find(s->weights, "W_dec");
    if (!s->W_dec && !t) { proto_set_detail("%s: the SAE has no decoder loaded", s->name); return PROTO_E_INVAL; }
    for (size_t q = 0; q < k; q++) {
        if (idx[q] >= (uint32_t)s->d_sae) {
            proto_set_detail("%s: feature %u is not below d_sae %d", s->name, idx[q], s->d_sae);
            return PROTO_E_INVAL;
        }
        float *dst = out + q * d;   // (d_in)
        if (s->W_dec) memcpy(dst, s->W_dec + (size_t)idx[q] * d, d * sizeof *dst);
        else proto_convert_to_f32(dst, (const char *)t->data + (size_t)idx[q] * d * proto_dtype_size(t->dtype),
                                  t->dtype, d);
        for (size_t i = 0; i < d; i++)   /* the mapped rows were never scanned (proto_sae_load scans all) */
            if (!isfinite(dst[i])) {
                proto_set_detail("%s/sae_weights.safetensors: W_dec[%u, %zu] is %s: the SAE has non-finite weights",
                                 s->name, idx[q], i, isnan(dst[i]) ? "nan" : "inf");
                return PROTO_E_FORMAT;
            }
    }
    return PROTO_OK;
}

void proto_sae_destroy(struct proto_sae *s)
{
    if (!s) return;
    free(s->W_enc); free(s->b_enc); free(s->mag_scale); free(s->b_mag);
    free(s->threshold); free(s->W_dec); free(s->b_dec); free(s->ft_scale);
    cJSON_Delete(s->cfg);
    close_weights(s);
    memset(s, 0, sizeof *s);
}
