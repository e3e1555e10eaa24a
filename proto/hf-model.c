/* hf-model.c - Hugging Face checkpoint reader (hf-model.h). */
#include <stdlib.h>
#include <string.h>
#include <math.h>
#include <sys/stat.h>

#include "proto.h"
#include "json.h"
#include "hf-model.h"

#define EMBED_NAME "model.embed_tokens.weight"
#define INDEX_NAME "model.safetensors.index.json"

static const char *const ARCH_NAME[] = {"LlamaForCausalLM", "MistralForCausalLM", "GemmaForCausalLM"};

const char *proto_hf_arch_name(enum proto_hf_arch a)
{
    return (unsigned)a < 3 ? ARCH_NAME[a] : "?";
}

/* ---------------------------------------------------------------------------------------- */
/* config.json */

/* A positive integer key (at most 1e9) into *out; dflt when absent unless required. */
static int cfg_int(const cJSON *cfg, const char *key, bool required, int dflt, int *out)
{
    long long v = dflt;
    int r = proto_json_int(cfg, key, 1, 1000000000, &v);
    if (required) r = proto_json_need(r, key);
    if (r < 0) return r;
    *out = (int)v;
    return PROTO_OK;
}

/* The first entry of "architectures" must be one we run. */
static int cfg_arch(const cJSON *cfg, enum proto_hf_arch *arch)
{
    const cJSON *archs = proto_json_get(cfg, "architectures");
    const cJSON *a0 = cJSON_IsArray(archs) ? cJSON_GetArrayItem(archs, 0) : NULL;
    if (!cJSON_IsString(a0)) { proto_set_detail("no \"architectures\" list"); return PROTO_E_FORMAT; }
    for (int i = 0; i < 3; i++)
        if (strcmp(a0->valuestring, ARCH_NAME[i]) == 0) { *arch = (enum proto_hf_arch)i; return PROTO_OK; }
    proto_set_detail("unknown architecture '%.100s' (known: LlamaForCausalLM, "
                     "MistralForCausalLM, GemmaForCausalLM)", a0->valuestring);
    return PROTO_E_FORMAT;
}

/* Each dimension within its bound (hf-model.h), which keeps every product of two far from
 * overflow. */
static int cfg_bounds(const struct proto_hf_config *c)
{
    const struct { const char *what; long long v, max; } b[] = {
        {"hidden_size", c->d_model, 1 << 20}, {"intermediate_size", c->d_ff, 1 << 22},
        {"num_attention_heads x head_dim", (long long)c->n_heads * c->head_dim, 1 << 20},
        {"vocab_size", c->vocab, 1 << 30}, {"num_hidden_layers", c->n_layers, PROTO_HF_MAX_LAYERS},
    };
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++)
        if (b[i].v > b[i].max) {
            proto_set_detail("%s %lld is over the bound of %lld", b[i].what, b[i].v, b[i].max);
            return PROTO_E_FORMAT;
        }
    return PROTO_OK;
}

/* The dimensions: present, positive, consistent and far from overflow. */
static int cfg_dims(const cJSON *cfg, struct proto_hf_config *c)
{
    int err;
    if ((err = cfg_int(cfg, "hidden_size", true, 0, &c->d_model)) ||
        (err = cfg_int(cfg, "num_hidden_layers", true, 0, &c->n_layers)) ||
        (err = cfg_int(cfg, "num_attention_heads", true, 0, &c->n_heads)) ||
        (err = cfg_int(cfg, "num_key_value_heads", false, c->n_heads, &c->n_kv_heads)) ||
        (err = cfg_int(cfg, "intermediate_size", true, 0, &c->d_ff)) ||
        (err = cfg_int(cfg, "vocab_size", true, 0, &c->vocab)))
        return err;
    if (c->arch != PROTO_HF_GEMMA && c->d_model % c->n_heads) {
        proto_set_detail("hidden_size %d is not a multiple of num_attention_heads %d", c->d_model, c->n_heads);
        return PROTO_E_FORMAT;
    }
    if ((err = cfg_int(cfg, "head_dim", false, c->d_model / c->n_heads, &c->head_dim))) return err;
    if (c->head_dim % 2 || c->head_dim < 2) {
        proto_set_detail("head_dim %d is not even", c->head_dim);
        return PROTO_E_FORMAT;
    }
    if ((err = cfg_bounds(c))) return err;
    if (c->n_heads % c->n_kv_heads) {
        proto_set_detail("num_attention_heads %d is not a multiple of num_key_value_heads %d", c->n_heads, c->n_kv_heads);
        return PROTO_E_FORMAT;
    }
    return PROTO_OK;
}

/* rms_norm_eps, rope_theta, Mistral's sliding_window. */
static int cfg_numbers(const cJSON *cfg, struct proto_hf_config *c)
{
    double eps = 1e-6, w;
    int r;
    c->theta = 10000.0;
    if ((r = proto_json_num(cfg, "rms_norm_eps", &eps)) < 0 || (r = proto_json_num(cfg, "rope_theta", &c->theta)) < 0)
        return r;
    c->eps = (float)eps;
    if (!(c->eps > 0) || !isfinite(c->eps) || eps >= 1) {   /* a bad eps only warned, then ran */
        proto_set_detail("rms_norm_eps %g is not a positive number below 1", eps);
        return PROTO_E_FORMAT;
    }
    if (!(c->theta > 0) || !isfinite(c->theta)) { proto_set_detail("rope_theta %g is not positive", c->theta); return PROTO_E_FORMAT; }
    long long mp = 0;
    if ((r = proto_json_int(cfg, "max_position_embeddings", 1, INT32_MAX, &mp)) < 0) return r;
    c->max_pos = (int)mp;
    if (c->arch != PROTO_HF_MISTRAL) return PROTO_OK;
    if ((r = proto_json_num(cfg, "sliding_window", &w)) < 0) return r;
    if (r && (w != floor(w) || w < 1)) {
        proto_set_detail("sliding_window %g is not a positive integer", w);
        return PROTO_E_FORMAT;
    }
    c->window = r ? (w > 1e9 ? 1000000000 : (int)w) : 0;
    return PROTO_OK;
}

/* What we do not run: rope_scaling, biases, an activation other than silu (Gemma v1 is tanh GELU). */
static int cfg_features(const cJSON *cfg, struct proto_hf_config *c)
{
    const cJSON *rs = proto_json_get(cfg, "rope_scaling");
    if (rs) {
        const char *t = NULL;
        if (proto_json_str(rs, "rope_type", &t) != 1 && proto_json_str(rs, "type", &t) != 1) t = "?";
        proto_set_detail("rope_scaling '%s' is not supported", t);
        return PROTO_E_FORMAT;
    }
    static const char *const bias_keys[] = {"attention_bias", "mlp_bias"};
    for (int i = 0; i < 2; i++) {
        bool bias = false;
        int r = proto_json_bool(cfg, bias_keys[i], &bias);
        if (r < 0) return r;
        if (bias) { proto_set_detail("%s true is not supported", bias_keys[i]); return PROTO_E_FORMAT; }
    }
    if (c->arch == PROTO_HF_GEMMA) {
        c->act = PROTO_HF_GELU_TANH;   /* HF Gemma v1 uses gelu_pytorch_tanh whatever hidden_act says */
        return PROTO_OK;
    }
    const char *act = NULL;
    int r = proto_json_str(cfg, "hidden_act", &act);
    if (r < 0) return r;
    if (act && strcmp(act, "silu") != 0) {
        proto_set_detail("hidden_act '%.60s' is not supported (silu)", act);
        return PROTO_E_FORMAT;
    }
    c->act = PROTO_HF_SILU;
    return PROTO_OK;
}

int proto_hf_config(const cJSON *cfg, struct proto_hf_config *c)
{
    int err;
    memset(c, 0, sizeof *c);
    if ((err = cfg_arch(cfg, &c->arch)) || (err = cfg_dims(cfg, c)) || (err = cfg_numbers(cfg, c))) return err;
    c->tied = c->arch == PROTO_HF_GEMMA;   /* HF defaults: Gemma true, else false */
    int r = proto_json_bool(cfg, "tie_word_embeddings", &c->tied);
    if (r < 0) return r;
    return cfg_features(cfg, c);
}

/* Gemma by model_type ("gemma...") or by any architecture name containing "Gemma". */
static bool cfg_is_gemma(const cJSON *cfg)
{
    const char *mt = NULL;
    if (proto_json_str(cfg, "model_type", &mt) == 1 && strncmp(mt, "gemma", 5) == 0) return true;
    const cJSON *e, *archs = proto_json_get(cfg, "architectures");
    cJSON_ArrayForEach(e, archs) if (cJSON_IsString(e) && strstr(e->valuestring, "Gemma")) return true;
    return false;
}

/* config.json into m: required and runnable, or (any_config) whatever it says, if anything. */
static int config_read(struct proto_hf_model *m, bool any_config)
{
    char path[2100];
    int err;
    snprintf(path, sizeof path, "%s/config.json", m->dir);
    cJSON *cfg = proto_json_load(path, &err);   /* the detail names the file */
    if (!cfg) return any_config ? PROTO_OK : err;
    m->gemma = cfg_is_gemma(cfg);
    err = proto_hf_config(cfg, &m->c);
    m->has_config = err == PROTO_OK;
    if (m->has_config) {
        m->tied = m->c.tied;
    } else {
        m->tied = m->gemma;
        proto_json_bool(cfg, "tie_word_embeddings", &m->tied);
        if (!any_config) proto_prefix_detail("%s", path);
        else err = PROTO_OK;
    }
    cJSON_Delete(cfg);
    return err;
}

/* ---------------------------------------------------------------------------------------- */
/* shards */

/* One weight_map entry: its shard file and where it stands. */
struct wm_entry { const char *file; int at; };
static int cmp_file_at(const void *a, const void *b)
{
    const struct wm_entry *x = a, *y = b;
    int c = strcmp(x->file, y->file);
    return c ? c : (x->at > y->at) - (x->at < y->at);
}
static int cmp_at(const void *a, const void *b)
{
    const struct wm_entry *x = a, *y = b;
    return (x->at > y->at) - (x->at < y->at);
}

/* The distinct files of weight_map in order of first appearance into m->shards: sorted by name
 * (n log n, however many entries), at most PROTO_HF_MAX_SHARDS of them before the list is made. */
static int shards_from_map(struct proto_hf_model *m, const char *path)
{
    int n = cJSON_GetArraySize(m->weight_map), k = 0, u = 0;
    struct wm_entry *e = malloc((n > 0 ? (size_t)n : 1) * sizeof *e);   /* (n) */
    if (!e) return PROTO_E_NOMEM;
    const cJSON *it;
    cJSON_ArrayForEach(it, m->weight_map)
        if (cJSON_IsString(it)) { e[k].file = it->valuestring; e[k].at = k; k++; }
    qsort(e, (size_t)k, sizeof *e, cmp_file_at);
    for (int i = 0; i < k; i++)   /* keep each file's first entry */
        if (i == 0 || strcmp(e[i].file, e[u - 1].file) != 0) e[u++] = e[i];
    if (u > PROTO_HF_MAX_SHARDS) {
        proto_set_detail("%s: weight_map names %d shard files (max %d)", path, u, PROTO_HF_MAX_SHARDS);
        free(e);
        return PROTO_E_FORMAT;
    }
    qsort(e, (size_t)u, sizeof *e, cmp_at);
    if (!(m->shards = calloc(u > 0 ? (size_t)u : 1, sizeof *m->shards))) { free(e); return PROTO_E_NOMEM; }
    for (int i = 0; i < u; i++) m->shards[i].file = e[i].file;
    m->n_shards = u;
    free(e);
    return PROTO_OK;
}

/* The shard list: the distinct files of weight_map in order of first appearance, or
 * model.safetensors alone. */
static int shards_list(struct proto_hf_model *m)
{
    char path[2100];
    struct stat sb;
    int err;
    snprintf(path, sizeof path, "%s/" INDEX_NAME, m->dir);
    if (stat(path, &sb) != 0) {
        snprintf(path, sizeof path, "%s/model.safetensors", m->dir);
        if (stat(path, &sb) != 0) {
            proto_set_detail("%s: neither model.safetensors nor " INDEX_NAME, m->dir);
            return PROTO_E_IO;
        }
        if (!(m->shards = calloc(1, sizeof *m->shards))) return PROTO_E_NOMEM;
        m->shards[0].file = "model.safetensors";
        m->n_shards = 1;
        return PROTO_OK;
    }
    if (!(m->index = proto_json_load(path, &err))) return err;
    m->weight_map = proto_json_get(m->index, "weight_map");
    if (!cJSON_IsObject(m->weight_map)) { proto_set_detail("%s: no weight_map object", path); return PROTO_E_FORMAT; }
    return shards_from_map(m, path);
}

int proto_hf_shard(struct proto_hf_model *m, int i, const struct proto_st **out)
{
    if (i < 0 || i >= m->n_shards) { proto_set_detail("shard %d of %d", i, m->n_shards); return PROTO_E_INVAL; }
    struct proto_hf_shard *s = &m->shards[i];
    if (!s->open) {
        if (strlen(s->file) >= 256 || strchr(s->file, '/')) {
            proto_set_detail("%s/" INDEX_NAME ": bad shard file name '%.80s'", m->dir, s->file);
            return PROTO_E_FORMAT;
        }
        char path[2400];
        snprintf(path, sizeof path, "%s/%s", m->dir, s->file);
        int err = proto_st_open(&s->st, path);   /* the detail names the file */
        if (err) return err;
        s->open = true;
    }
    *out = &s->st;
    return PROTO_OK;
}

int proto_hf_open(const char *dir, unsigned flags, struct proto_hf_model **out)
{
    *out = NULL;
    struct proto_hf_model *m = calloc(1, sizeof *m);
    if (!m) return PROTO_E_NOMEM;
    snprintf(m->dir, sizeof m->dir, "%s", dir);
    size_t dl = strlen(m->dir);
    while (dl > 1 && m->dir[dl - 1] == '/') m->dir[--dl] = 0;
    proto_dir_basename(m->dir, m->name, sizeof m->name);
    int err;
    if ((err = config_read(m, flags & PROTO_HF_ANY_CONFIG)) || (err = shards_list(m))) goto fail;
    const struct proto_st *st;
    if (flags & PROTO_HF_ALL_SHARDS)
        for (int i = 0; i < m->n_shards; i++)
            if ((err = proto_hf_shard(m, i, &st))) goto fail;
    *out = m;
    return PROTO_OK;
fail:
    proto_hf_close(m);
    return err;
}

void proto_hf_close(struct proto_hf_model *m)
{
    if (!m) return;
    for (int i = 0; i < m->n_shards; i++)
        if (m->shards[i].open) proto_st_close(&m->shards[i].st);
    free(m->shards);
    cJSON_Delete(m->index);
    free(m);
}

/* ---------------------------------------------------------------------------------------- */
/* tensors */

/* The tensor `name` and the shard that holds it; *t NULL (and PROTO_OK) when the checkpoint has
 * none. An index entry naming a shard without it is an error. */
static int locate(struct proto_hf_model *m, const char *name, const struct proto_st **st,
                  const struct proto_st_tensor **t)
{
    int i = 0, err;
    *t = NULL;
    if (m->weight_map) {
        const char *file = NULL;
        if (proto_json_str(m->weight_map, name, &file) != 1) return PROTO_OK;
        while (strcmp(m->shards[i].file, file) != 0) i++;   /* listed by shards_list */
    }
    if ((err = proto_hf_shard(m, i, st))) return err;
    *t = proto_st_find(*st, name);
    if (!*t && m->weight_map) {
        proto_set_detail("%s: tensor %s is missing", (*st)->path, name);
        return PROTO_E_FORMAT;
    }
    return PROTO_OK;
}

int proto_hf_find(struct proto_hf_model *m, const char *name, const struct proto_st_tensor **t)
{
    const struct proto_st *st;
    return locate(m, name, &st, t);
}

int proto_hf_tensor(struct proto_hf_model *m, const char *name, uint64_t d0, uint64_t d1, bool required,
                    const struct proto_st_tensor **out)
{
    const struct proto_st *st = NULL;
    const struct proto_st_tensor *t;
    *out = NULL;
    int err = locate(m, name, &st, &t);
    if (err) return err;
    if (!t) {
        if (!required) return PROTO_OK;
        if (m->weight_map) proto_set_detail("%s/" INDEX_NAME ": tensor %s is not in weight_map", m->dir, name);
        else proto_set_detail("%s: tensor %s is missing", st->path, name);
        return PROTO_E_FORMAT;
    }
    char what[200];
    const uint64_t want[2] = {d0, d1};
    snprintf(what, sizeof what, "tensor %s", name);
    if ((err = proto_st_check(t, what, d1 ? 2 : 1, want, "config.json implies"))) {
        proto_prefix_detail("%s", st->path);
        return err;
    }
    *out = t;
    return PROTO_OK;
}

int proto_hf_unembed(struct proto_hf_model *m, const struct proto_st_tensor **t)
{
    int err = proto_hf_find(m, m->tied ? EMBED_NAME : "lm_head.weight", t);
    if (!err && !*t && !m->tied) err = proto_hf_find(m, EMBED_NAME, t);
    if (err) return err;
    if (!*t || (*t)->ndim != 2) {
        *t = NULL;
        proto_set_detail("%s: no lm_head.weight or " EMBED_NAME, m->dir);
        return PROTO_E_FORMAT;
    }
    return PROTO_OK;
}
