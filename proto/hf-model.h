/* hf-model.h - the one Hugging Face checkpoint reader: config.json, the safetensors shards, and
 * tensor lookup by HF name (sf-forward runs the model, sf-reduce compares two checkpoints).
 *
 * A checkpoint is a directory with config.json and either model.safetensors.index.json (its
 * "weight_map" names the shard file of every tensor; looked for first) or one model.safetensors.
 * proto_hf_open reads config.json and the index and lists the shards, but opens (mmaps and
 * validates) a shard LAZILY, the first time a tensor in it is asked for or proto_hf_shard names
 * it: a stage that needs a few layers of a large model touches only their shards. Pass
 * PROTO_HF_ALL_SHARDS to open every shard in proto_hf_open instead (errors come up front).
 * The shards are listed in the order of their first appearance in weight_map (model.safetensors
 * alone is shard 0); tensors within a shard in the order proto_st_open gives them.
 *
 * config.json: by default it must exist and describe a model we can run (LlamaForCausalLM,
 * MistralForCausalLM, GemmaForCausalLM v1; see proto_hf_config), and m->c holds it. With
 * PROTO_HF_ANY_CONFIG it may be missing, unreadable or of any architecture (a checkpoint read only
 * for its tensors): m->has_config says whether m->c was filled; m->gemma and m->tied are set
 * either way from what config.json says.
 *
 * Errors are returned with a detail that names the file (config.json, the index, the shard);
 * nothing is printed. Tensor pointers borrow from the shard mappings: valid until proto_hf_close.
 *
 * Usage:
 *     struct proto_hf_model *m = NULL;
 *     const struct proto_st_tensor *q, *E;
 *     int err;
 *     if ((err = proto_hf_open(dir, 0, &m))) goto out;                  // detail names the file
 *     int d = m->c.d_model, qd = m->c.n_heads * m->c.head_dim;
 *     if ((err = proto_hf_tensor(m, "model.layers.0.self_attn.q_proj.weight", qd, d, true, &q))) goto out;
 *     if ((err = proto_hf_unembed(m, &E))) goto out;                    // (vocab, d), no shape check
 *     for (int s = 0; s < m->n_shards; s++) {                           // every tensor of every shard
 *         const struct proto_st *st;
 *         if ((err = proto_hf_shard(m, s, &st))) goto out;
 *         for (int i = 0; i < st->n; i++) use(&st->t[i]);
 *     }
 * out:
 *     proto_hf_close(m);
 */
#ifndef SAEFLOW_HF_MODEL_H
#define SAEFLOW_HF_MODEL_H

#include <stdbool.h>
#include <stdint.h>
#include <cjson/cJSON.h>
#include "proto.h"

#define PROTO_HF_MAX_LAYERS 4096
#define PROTO_HF_MAX_SHARDS 4096   /* distinct shard files an index may name (Llama 3 405B: 191) */

enum proto_hf_arch { PROTO_HF_LLAMA, PROTO_HF_MISTRAL, PROTO_HF_GEMMA };
enum proto_hf_act { PROTO_HF_SILU, PROTO_HF_GELU_TANH };

/* "LlamaForCausalLM", "MistralForCausalLM", "GemmaForCausalLM". */
const char *proto_hf_arch_name(enum proto_hf_arch a);

/* config.json of a model we can run. Every dimension is checked positive and small enough that
 * the product of two never overflows (each in [1, 1e9]; hidden_size <= 2^20, intermediate_size
 * <= 2^22, heads x head_dim <= 2^20, layers <= PROTO_HF_MAX_LAYERS); head_dim is even; n_heads
 * is a multiple of n_kv_heads; rms_norm_eps is in (0, 1), rope_theta positive and finite. The
 * loader reserves memory only in proportion to the files it reads (tensors stay mapped, their
 * shapes checked against these); an index names at most PROTO_HF_MAX_SHARDS shard files. */
struct proto_hf_config {
    enum proto_hf_arch arch;
    int d_model;              /* hidden_size */
    int n_layers;             /* num_hidden_layers (at most PROTO_HF_MAX_LAYERS) */
    int n_heads;              /* num_attention_heads */
    int n_kv_heads;           /* num_key_value_heads (default n_heads) */
    int head_dim;             /* head_dim (default d_model / n_heads) */
    int d_ff;                 /* intermediate_size */
    int vocab;                /* vocab_size */
    float eps;                /* rms_norm_eps (default 1e-6) */
    double theta;             /* rope_theta (default 10000) */
    int max_pos;              /* max_position_embeddings; 0 when config.json does not say */
    int window;               /* Mistral sliding_window W (query i sees keys i-W < j <= i); 0 = none */
    bool tied;                /* logits use the embedding (tie_word_embeddings; default: Gemma) */
    enum proto_hf_act act;    /* silu; Gemma v1: tanh GELU whatever hidden_act says */
};

/* Parses a config.json object. PROTO_E_FORMAT with a detail (not naming the file) when a key is
 * missing or malformed, or the model is of a kind we cannot run (rope_scaling, biases, ...). */
int proto_hf_config(const cJSON *cfg, struct proto_hf_config *c);

struct proto_hf_shard {
    const char *file;         /* file name in the directory (borrows from the index) */
    bool open;                /* st is valid */
    struct proto_st st;
};

struct proto_hf_model {
    char dir[2048];           /* the directory, without trailing slashes */
    char name[256];           /* its basename */
    bool has_config;          /* c is filled (always, without PROTO_HF_ANY_CONFIG) */
    struct proto_hf_config c;
    bool gemma;               /* config.json says Gemma (model_type gemma*, or an architecture
                               * containing "Gemma"): RMSNorm weights are applied as (1 + w) */
    bool tied;                /* tie_word_embeddings when config.json has it, else gemma */
    cJSON *index;             /* model.safetensors.index.json, or NULL for one model.safetensors */
    const cJSON *weight_map;  /* index's "weight_map" object, or NULL */
    int n_shards;
    struct proto_hf_shard *shards;   /* (n_shards) */
};

/* proto_hf_open flags */
#define PROTO_HF_ANY_CONFIG 1u    /* config.json may be missing or of any architecture */
#define PROTO_HF_ALL_SHARDS 2u    /* open every shard now, not on first use */

/* Opens the checkpoint in dir. *out is NULL on failure. */
int proto_hf_open(const char *dir, unsigned flags, struct proto_hf_model **out);
/* NULL-safe. */
void proto_hf_close(struct proto_hf_model *m);

/* Shard i (0 <= i < m->n_shards), opened on first use. */
int proto_hf_shard(struct proto_hf_model *m, int i, const struct proto_st **out);

/* The tensor `name` in whatever shard holds it, without dtype or shape checks: PROTO_OK with *t
 * NULL when the checkpoint has no such tensor; an error only when its shard cannot be opened or
 * the index names a shard that lacks it. */
int proto_hf_find(struct proto_hf_model *m, const char *name, const struct proto_st_tensor **t);

/* The tensor `name` with dtype f32, f16 or bf16 and shape [d0] (d1 == 0) or [d0 d1]
 * (PROTO_E_FORMAT / PROTO_E_MISMATCH with a detail naming the shard, the tensor and the shapes).
 * Absent: PROTO_E_FORMAT when required, else PROTO_OK with *t NULL. */
int proto_hf_tensor(struct proto_hf_model *m, const char *name, uint64_t d0, uint64_t d1, bool required,
                    const struct proto_st_tensor **t);

/* The unembedding (vocab, d) as the checkpoint stores it, no shape check: model.embed_tokens.weight
 * when m->tied, else lm_head.weight, falling back to the embedding when there is no lm_head.
 * PROTO_E_FORMAT (detail naming the directory) when neither exists or it is not 2-D. */
int proto_hf_unembed(struct proto_hf_model *m, const struct proto_st_tensor **t);

#endif
