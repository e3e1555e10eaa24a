/* test-loaders.c - proto/hf-model.h and proto/sae-dir.h on the real fixtures: configs of the
 * three architectures, lazy shards of a sharded checkpoint, checked tensor lookup, the
 * unembedding, and an SAE loaded in full vs opened with rows read from the mapping.
 * Skips (77) when ../shared/fixtures is not there (SF_FIXTURES). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "proto.h"
#include "hf-model.h"
#include "sae-dir.h"
#include "check.h"

static char g_fx[2048];

static struct proto_hf_model *open_model(const char *name, unsigned flags)
{
    char dir[2300];
    snprintf(dir, sizeof dir, "%s/models/%s", g_fx, name);
    struct proto_hf_model *m = NULL;
    int err = proto_hf_open(dir, flags, &m);
    CHECK(err == PROTO_OK && m, "open %s: %s: %s", name, proto_strerror(err), proto_detail());
    return err ? NULL : m;
}

static void test_configs(void)
{
    struct proto_hf_model *m = open_model("tiny-gemma", 0);
    if (m) {
        const struct proto_hf_config *c = &m->c;
        CHECK(c->arch == PROTO_HF_GEMMA && m->gemma && m->tied && c->tied, "gemma: arch, tied");
        CHECK(c->d_model == 96 && c->n_heads == 4 && c->n_kv_heads == 1 && c->head_dim == 32 && c->d_ff == 256,
              "gemma dims %d %d %d %d %d", c->d_model, c->n_heads, c->n_kv_heads, c->head_dim, c->d_ff);
        CHECK(c->act == PROTO_HF_GELU_TANH && c->window == 0, "gemma: tanh GELU, no window");
        const struct proto_st_tensor *E = NULL;
        CHECK(proto_hf_unembed(m, &E) == PROTO_OK && E && strcmp(E->name, "model.embed_tokens.weight") == 0,
              "gemma unembeds with the embedding");
    }
    proto_hf_close(m);
    m = open_model("tiny-mistral", 0);
    if (m) {
        CHECK(m->c.arch == PROTO_HF_MISTRAL && m->c.window == 16 && m->c.head_dim == 16 && !m->tied,
              "mistral: window %d head_dim %d", m->c.window, m->c.head_dim);
        CHECK(fabsf(m->c.eps - 1e-5f) < 1e-12f && m->c.act == PROTO_HF_SILU, "mistral eps, silu");
        const struct proto_st_tensor *E = NULL;
        CHECK(proto_hf_unembed(m, &E) == PROTO_OK && E && strcmp(E->name, "lm_head.weight") == 0, "mistral lm_head");
    }
    proto_hf_close(m);
}

static void test_sharded(void)
{
    struct proto_hf_model *m = open_model("tiny-llama-sharded", 0);
    if (!m) return;
    CHECK(m->n_shards == 2 && !m->shards[0].open && !m->shards[1].open, "2 shards, none opened yet");
    const struct proto_st_tensor *t = NULL;
    int err = proto_hf_tensor(m, "lm_head.weight", 300, 64, true, &t);
    CHECK(err == PROTO_OK && t && t->shape[0] == 300, "lm_head in shard 2: %s", proto_detail());
    int n_open = m->shards[0].open + m->shards[1].open;
    CHECK(n_open == 1, "only the shard asked for is open (%d open)", n_open);
    err = proto_hf_tensor(m, "lm_head.weight", 300, 65, true, &t);
    CHECK(err == PROTO_E_MISMATCH && strstr(proto_detail(), "has shape [300 64], config.json implies [300 65]"),
          "shape check: %s", proto_detail());
    err = proto_hf_tensor(m, "model.layers.9.mlp.up_proj.weight", 160, 64, true, &t);
    CHECK(err == PROTO_E_FORMAT && strstr(proto_detail(), "not in weight_map"), "absent, required: %s", proto_detail());
    CHECK(proto_hf_tensor(m, "model.layers.9.mlp.up_proj.weight", 160, 64, false, &t) == PROTO_OK && !t,
          "absent, optional");
    CHECK(proto_hf_find(m, "nope", &t) == PROTO_OK && !t, "find: absent");
    /* every tensor of every shard: as many as weight_map names */
    int n = 0;
    for (int s = 0; s < m->n_shards; s++) {
        const struct proto_st *st = NULL;
        if (proto_hf_shard(m, s, &st) == PROTO_OK) n += st->n;
    }
    CHECK(n == cJSON_GetArraySize(m->weight_map), "%d tensors in shards, %d in weight_map", n,
          cJSON_GetArraySize(m->weight_map));
    proto_hf_close(m);
    proto_hf_close(NULL);
    char dir[2300];
    snprintf(dir, sizeof dir, "%s/saes/stories260k-L2-relu", g_fx);   /* no config.json */
    m = NULL;
    err = proto_hf_open(dir, 0, &m);
    CHECK(err != PROTO_OK && !m && strstr(proto_detail(), "config.json"), "no config.json: %s", proto_detail());
}

static void test_sae(const char *name, enum proto_sae_act act, int k)
{
    char dir[2300];
    snprintf(dir, sizeof dir, "%s/saes/%s", g_fx, name);
    struct proto_sae a, b;
    int err = proto_sae_load(dir, NAN, &a);
    CHECK(err == PROTO_OK, "%s load: %s", name, proto_detail());
    if (err) return;
    err = proto_sae_open(dir, &b);
    CHECK(err == PROTO_OK, "%s open: %s", name, proto_detail());
    if (err) { proto_sae_destroy(&a); return; }
    CHECK(a.d_in == 64 && a.d_sae == 512 && a.act == act && a.k == k && strcmp(a.hook, "blocks.2.hook_resid_post") == 0,
          "%s cfg: d_in %d d_sae %d act %d k %d hook %s", name, a.d_in, a.d_sae, a.act, a.k, a.hook);
    CHECK(b.d_in == a.d_in && b.d_sae == a.d_sae && b.act == a.act && !b.W_enc && b.weights, "%s open: cfg only", name);
    uint32_t idx[3] = {0, 511, 7};
    float r[3 * 64];
    CHECK(proto_sae_dec_rows(&b, idx, 3, r) == PROTO_OK, "dec_rows");
    int same = 1;
    for (int i = 0; i < 3; i++) same &= memcmp(r + i * 64, a.W_dec + (size_t)idx[i] * 64, 64 * sizeof(float)) == 0;
    CHECK(same, "%s: rows read from the mapping equal the loaded W_dec", name);
    uint32_t bad = 512;
    CHECK(proto_sae_dec_rows(&b, &bad, 1, r) == PROTO_E_INVAL, "index d_sae is refused");
    proto_sae_destroy(&a);
    proto_sae_destroy(&b);
    proto_sae_destroy(NULL);
}

/* An SAE whose W_dec holds a NaN: proto_sae_load refuses it; after proto_sae_open the clean rows
 * read, the bad one is refused naming the entry. */
static void test_sae_nan(void)
{
    enum { D_IN = 4, D_SAE = 6 };
    char dir[] = "/tmp/sf-nan-sae-XXXXXX", path[64];
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    static float we[D_IN * D_SAE], wd[D_SAE * D_IN], be[D_SAE], bd[D_IN];
    for (int i = 0; i < D_IN * D_SAE; i++) we[i] = wd[i] = 0.25f * (float)(i % 5);
    wd[3 * D_IN + 2] = NAN;
    struct proto_st_entry e[] = {{"W_enc", we, 2, {D_IN, D_SAE}}, {"W_dec", wd, 2, {D_SAE, D_IN}},
                                 {"b_enc", be, 1, {D_SAE}}, {"b_dec", bd, 1, {D_IN}}};
    snprintf(path, sizeof path, "%s/sae_weights.safetensors", dir);
    CHECK(proto_st_write(path, e, 4, PROTO_F32) == PROTO_OK, "write weights");
    snprintf(path, sizeof path, "%s/cfg.json", dir);
    FILE *f = fopen(path, "w");
    fputs("{\"d_in\": 4, \"d_sae\": 6, \"hook_name\": \"blocks.0.hook_resid_post\"}", f);
    fclose(f);
    struct proto_sae s;
    CHECK(proto_sae_load(dir, NAN, &s) != PROTO_OK && strstr(proto_detail(), "W_dec[3, 2] is nan"), "load: %s", proto_detail());
    proto_sae_destroy(&s);
    if (proto_sae_open(dir, &s) == PROTO_OK) {
        float r[D_IN];
        uint32_t good = 1, bad = 3;
        CHECK(proto_sae_dec_rows(&s, &good, 1, r) == PROTO_OK && r[0] == wd[D_IN], "a clean row reads");
        CHECK(proto_sae_dec_rows(&s, &bad, 1, r) == PROTO_E_FORMAT && strstr(proto_detail(), "W_dec[3, 2] is nan"),
              "the NaN row is refused: %s", proto_detail());
    } else CHECK(0, "open: %s", proto_detail());
    proto_sae_destroy(&s);
    unlink(path);
    snprintf(path, sizeof path, "%s/sae_weights.safetensors", dir);
    unlink(path);
    rmdir(dir);
}

int main(void)
{
    const char *fx = getenv("SF_FIXTURES");
    if (!fx || !*fx) { printf("SF_FIXTURES not set: ../shared/fixtures is not there\n"); return 77; }
    snprintf(g_fx, sizeof g_fx, "%s", fx);
    test_configs();
    test_sharded();
    test_sae("stories260k-L2-relu", PROTO_SAE_ACT_RELU, 0);
    test_sae("stories260k-L2-topk", PROTO_SAE_ACT_TOPK, 8);
    test_sae_nan();
    if (g_failed) fprintf(stderr, "%d checks failed\n", g_failed);
    return g_failed ? 1 : 0;
}
