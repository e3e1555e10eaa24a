/* sf-forward - run a Hugging Face checkpoint to a hook point, or from a hook point to the loss.
 *
 * Mode --hook blocks.L.hook_resid_pre|hook_resid_post: reads `tokens` frames and writes `acts`
 * frames: the frame's keys are carried, `hook` (string) and `acts` [rows, ctx, d_model] (f32, or
 * --out-dtype bf16|f16) are added. Only blocks 0..L (0..L-1 for resid_pre) run, and only their
 * weights (and the embedding) are read.
 * Mode --from blocks.L.hook_resid_pre|post --loss [--ablate]: reads `acts` frames (with `recon`
 * and `keep` when sf-encode/sf-outliers added them), runs the remaining blocks, the final norm and
 * the unembedding, and writes `loss` frames: `tokens`, per-token f32 [rows, ctx-1] `ce_clean`,
 * with `recon` also `ce_spliced` and `kl_spliced` (recon where keep == 1, or everywhere without
 * keep; with keep also `ce_spliced_unfiltered`/`kl_spliced_unfiltered`: recon at every token, the
 * figures without outlier filtering, computed only for frames that have an outlier), with --ablate
 * also `ce_ablated` and `kl_ablated` (zeros where keep == 1; a row with no outlier is all zeros
 * and stays exactly zero to the logits in these bias-free models, so only rows with an outlier
 * are run for it: --ablate costs nothing on frames without outliers). KL is
 * KL(clean || patched) in nats. The consumed `acts`, `recon` and `feats` are dropped; other keys
 * are carried.
 *
 * Models (config.json + model.safetensors, or shards listed by model.safetensors.index.json;
 * f32/f16/bf16): LlamaForCausalLM, MistralForCausalLM (GQA, sliding window: query i sees keys
 * i-W < j <= i), GemmaForCausalLM v1 (embedding x float32(sqrt(d_model)), RMSNorm x(1 + w),
 * tanh-GELU GeGLU whatever hidden_act says, head_dim from config, MQA, tied embeddings).
 * RoPE is HF's half-split rotate_half with inv_freq[i] = theta^(-2i/head_dim).
 *
 * Compute: float32. Every linear layer is one sgemm over all rows*ctx tokens of a frame (the MLP
 * in token blocks), on OpenBLAS' threads. Attention runs (row, head) pairs on our threads with
 * OpenBLAS at one thread, in causal query blocks of ATT_BLOCK (scores only against the keys a
 * block sees, softmax in place, then · V: two sgemms per block). The weights are mmapped; f32
 * tensors that are 4-byte aligned are used in place, bf16/f16 ones are converted to f32 once while
 * they fit in --cache-mb (layer by layer, then the unembedding) and the rest per layer and per
 * frame into one layer's scratch, so a model is never copied to f32 whole unless it fits the
 * budget; the mapping's pages of converted weights are released. Element-wise work (norms, RoPE,
 * GLU, loss statistics) is split over --threads threads between the sgemms.
 * The loss walks the vocabulary in chunks (at most LOGIT_CHUNK_BYTES of logits for all tokens of a
 * frame) with an online log-sum-exp in double, so the logits of a whole frame over a large
 * vocabulary are never stored; KL(clean || patched) is accumulated in the same pass.
 */
#include <cblas.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
#include <unistd.h>

#include "cli.h"
#include "hf-model.h"
#include "hook.h"
#include "parallel.h"
#include "proto.h"

/* ---------------------------------------------------------------------------------------- */
/* constants */

#define MAX_THREADS 64                          /* element-wise kernels: at most this many threads */
#define PAR_MIN_WORK 65536                      /* values per thread of an element-wise kernel */
#define MLP_BLOCK_BYTES ((size_t)128 << 20)     /* gate + up buffers of one MLP token block */
#define LOGIT_CHUNK_BYTES ((size_t)128 << 20)   /* logits of one vocabulary chunk, all tokens */
#define ATT_BLOCK 128                           /* query rows per causal attention block */
#define N_LOSS_OUT 7                            /* per-token outputs of --loss (LOSS_KEY) */

/* ---------------------------------------------------------------------------------------- */
/* options */

struct opts {
    struct proto_cli cli;
    const char *model_dir;
    const char *hook_name;      /* --hook (the first one; NULL in mode 2) */
    const char *hook_args[PROTO_MAX_HOOKS];   /* every --hook argument: names, lists, "all" */
    int n_hook_args;
    const char *from_name;      /* --from */
    struct proto_hook hook;     /* parsed --from */
    bool loss, ablate;
    enum proto_dtype out_dtype;
    long long vocab_limit;      /* 0 = the model's vocab_size */
    long long cache_mb;         /* -1 = cache_budget_default() */
};

/* The hooks mode 1 emits, in network order (by depth; equal depths in the order given). */
struct hooklist {
    int n;
    struct { char name[PROTO_HOOK_NAME]; int depth; } h[PROTO_MAX_HOOKS];
    char joined[PROTO_MAX_HOOKS * PROTO_HOOK_NAME];   /* the header's "hook": names joined by commas */
};

static struct opts opts_default(const char *argv0)
{
    struct opts o = {0};
    proto_cli_init_blas(&o.cli, argv0);
    o.out_dtype = PROTO_F32;
    o.cache_mb = -1;
    return o;
}

static int hooks_add(struct hooklist *hl, const char *name, int n_layers)
{
    struct proto_hook h;
    if (!proto_hook_parse(name, &h) || strlen(name) >= PROTO_HOOK_NAME)
    {
        proto_set_detail("--hook: '%s' is not blocks.L.hook_resid_pre or blocks.L.hook_resid_post", name);
        return PROTO_E_INVAL;
    }
    if (n_layers && h.layer >= n_layers) {
        proto_set_detail("hook %s is out of range: the model has %d layers (blocks.0 .. blocks.%d)", name, n_layers, n_layers - 1);
        return PROTO_E_MISMATCH;
    }
    for (int i = 0; i < hl->n; i++) if (strcmp(hl->h[i].name, name) == 0) return PROTO_OK;   /* given twice */
    if (hl->n == PROTO_MAX_HOOKS) { proto_set_detail("--hook: more than %d hooks", PROTO_MAX_HOOKS); return PROTO_E_INVAL; }
    int i = hl->n++, d = proto_hook_depth(h);
    for (; i > 0 && hl->h[i - 1].depth > d; i--) hl->h[i] = hl->h[i - 1];   /* insertion: stable by depth */
    snprintf(hl->h[i].name, sizeof hl->h[i].name, "%s", name);
    hl->h[i].depth = d;
    return PROTO_OK;
}

/* Expands the --hook arguments (comma lists; "all" = blocks.0.hook_resid_pre and every block's
 * hook_resid_post, the residual stream at every depth) into hl, checked against n_layers (0: the
 * names only, "all" left out). */
static int hooks_resolve(struct hooklist *hl, const struct opts *o, int n_layers)
{
    char name[PROTO_HOOK_NAME + 1];
    int err;
    hl->n = 0;
    for (int a = 0; a < o->n_hook_args; a++)
        for (const char *p = o->hook_args[a]; *p;) {
            const char *e = strchr(p, ',');
            size_t len = e ? (size_t)(e - p) : strlen(p);
            snprintf(name, sizeof name, "%.*s", (int)(len < PROTO_HOOK_NAME ? len : PROTO_HOOK_NAME), p);
            if (strcmp(name, "all") == 0) {
                if (!n_layers) { p = e ? e + 1 : p + len; continue; }
                if ((err = hooks_add(hl, "blocks.0.hook_resid_pre", n_layers))) return err;
                for (int l = 0; l < n_layers; l++) {
                    snprintf(name, sizeof name, "blocks.%d.hook_resid_post", l);
                    if ((err = hooks_add(hl, name, n_layers))) return err;
                }
            } else if ((err = hooks_add(hl, name, n_layers))) return err;
            p = e ? e + 1 : p + len;
        }
    size_t off = 0;
    for (int i = 0; i < hl->n; i++)
        off += (size_t)snprintf(hl->joined + off, sizeof hl->joined - off, "%s%s", i ? "," : "", hl->h[i].name);
    return PROTO_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* the model: weights (config.json, shards and tensor lookup are proto/hf-model.h's) */

/* One weight tensor: a view into a mapping, plus an f32 copy when it is cached. */
struct wt {
    const struct proto_st_tensor *t;   /* in the mapping (not aligned in general) */
    size_t n;                          /* elements */
    float *f32;                        /* (n) cached copy, or NULL */
};

/* f32 that is 4-byte aligned is used in place */
static bool wt_direct(const struct wt *w)
{
    return w->t->dtype == PROTO_F32 && ((uintptr_t)w->t->data & 3) == 0;
}

/* The f32 values of rows [r0, r0+nr) of a tensor with `cols` columns: the mapping, the cache,
 * or converted into scratch. */
static const float *wt_rows(const struct wt *w, size_t r0, size_t nr, size_t cols, float *scratch)
{
    if (w->f32) return w->f32 + r0 * cols;
    const char *src = (const char *)w->t->data + r0 * cols * proto_dtype_size(w->t->dtype);
    if (wt_direct(w)) return (const float *)(const void *)src;
    proto_convert_to_f32(scratch, src, w->t->dtype, nr * cols);
    return scratch;
}

/* Drops the mapping's pages of rows [r0, r0+nr) (`cols` columns) from this process once their
 * values have been copied to f32 (cache or scratch): the file stays in the page cache, a later
 * read faults them back, and the resident size holds each weight once, not bf16 and f32. */
static void wt_release(const struct wt *w, size_t r0, size_t nr, size_t cols)
{
    if (wt_direct(w)) return;
    size_t es = proto_dtype_size(w->t->dtype), pg = (size_t)sysconf(_SC_PAGESIZE);
    uintptr_t a = (uintptr_t)w->t->data + r0 * cols * es, b = a + nr * cols * es;
    a = (a + pg - 1) / pg * pg;
    b = b / pg * pg;
    if (b > a) madvise((void *)a, b - a, MADV_DONTNEED);   /* advice only: a failure changes nothing */
}

/* The tensor `name`, f32/f16/bf16 of shape [d0] (d1 == 0) or [d0 d1]; it must exist. */
static int wt_get(struct proto_hf_model *hf, const char *name, uint64_t d0, uint64_t d1, struct wt *w)
{
    memset(w, 0, sizeof *w);
    int err = proto_hf_tensor(hf, name, d0, d1, true, &w->t);
    if (!err) w->n = (size_t)d0 * (d1 ? (size_t)d1 : 1);
    return err;
}

/* An f32 copy of the first n elements (aligned, +1 for the Gemma norm when plus1). */
static int wt_cache(struct wt *w, size_t n, bool plus1)
{
    if (w->f32) return PROTO_OK;
    if (!(w->f32 = proto_aligned_alloc(n * sizeof(float) + 64))) return PROTO_E_NOMEM;
    proto_convert_to_f32(w->f32, w->t->data, w->t->dtype, n);
    if (plus1) for (size_t i = 0; i < n; i++) w->f32[i] += 1.0f;
    return PROTO_OK;
}

struct layer {
    struct wt ln_in, ln_post;          /* (d_model) */
    struct wt q, k, v;                 /* (n_heads*head_dim, d), (n_kv*head_dim, d) x2 */
    struct wt o;                       /* (d, n_heads*head_dim) */
    struct wt gate, up;                /* (d_ff, d) */
    struct wt down;                    /* (d, d_ff) */
};
#define LAYER_N_WT 9
/* HF names of a layer's tensors after "model.layers.L.", in layer_wt order. */
static const char *const LAYER_WT_NAME[LAYER_N_WT] = {
    "input_layernorm.weight", "post_attention_layernorm.weight", "self_attn.q_proj.weight",
    "self_attn.k_proj.weight", "self_attn.v_proj.weight", "self_attn.o_proj.weight",
    "mlp.gate_proj.weight", "mlp.up_proj.weight", "mlp.down_proj.weight",
};
static struct wt *layer_wt(struct layer *l, int i)
{
    struct wt *w[LAYER_N_WT] = {&l->ln_in, &l->ln_post, &l->q, &l->k, &l->v, &l->o, &l->gate, &l->up, &l->down};
    return w[i];
}

struct model {
    struct proto_hf_model *hf;         /* the checkpoint: dir, name, shards */
    struct proto_hf_config c;          /* its config.json */
    int vocab;                         /* vocab_size, or --vocab-limit */
    int lo, hi;                        /* layers [lo, hi) are loaded */
    struct layer *layers;              /* (n_layers), only [lo, hi) filled */
    struct wt embed;                   /* (vocab_size, d) */
    struct wt norm;                    /* (d) final norm (f32 copy; Gemma: 1 + w) */
    struct wt head;                    /* (vocab_size, d): lm_head or the embedding */
    size_t layer_scratch_n;            /* floats a layer needs when it is not cached */
    bool cached;                       /* every needed bf16/f16 matrix has an f32 copy */
};

static void model_destroy(struct model *m)
{
    if (m->layers)
        for (int l = m->lo; l < m->hi; l++)
            for (int i = 0; i < LAYER_N_WT; i++) free(layer_wt(&m->layers[l], i)->f32);
    free(m->layers);
    free(m->embed.f32);
    if (m->head.f32 != m->embed.f32) free(m->head.f32);
    free(m->norm.f32);
    proto_hf_close(m->hf);
    memset(m, 0, sizeof *m);
}

/* The tensors of blocks [m->lo, m->hi), with f32 copies of their norms (Gemma: 1 + w). */
static int layers_load(struct model *m)
{
    const struct proto_hf_config *c = &m->c;
    uint64_t d = c->d_model, qd = (uint64_t)c->n_heads * c->head_dim, kvd = (uint64_t)c->n_kv_heads * c->head_dim;
    uint64_t ff = c->d_ff;
    const uint64_t shape[LAYER_N_WT][2] = {{d, 0}, {d, 0}, {qd, d}, {kvd, d}, {kvd, d}, {d, qd}, {ff, d}, {ff, d}, {d, ff}};
    bool gemma = c->arch == PROTO_HF_GEMMA;
    int err;
    if (!(m->layers = calloc((size_t)c->n_layers, sizeof *m->layers))) return PROTO_E_NOMEM;
    for (int l = m->lo; l < m->hi; l++) {
        struct layer *L = &m->layers[l];
        for (int i = 0; i < LAYER_N_WT; i++) {
            char nm[160];
            snprintf(nm, sizeof nm, "model.layers.%d.%s", l, LAYER_WT_NAME[i]);
            if ((err = wt_get(m->hf, nm, shape[i][0], shape[i][1], layer_wt(L, i)))) return err;
        }
        if ((err = wt_cache(&L->ln_in, d, gemma)) || (err = wt_cache(&L->ln_post, d, gemma))) return err;
    }
    return PROTO_OK;
}

/* The embedding (--hook, or a tied unembedding) and the final norm and unembedding (--from). */
static int ends_load(struct model *m, bool need_embed, bool need_head)
{
    const struct proto_hf_config *c = &m->c;
    int d = c->d_model, err;
    if (need_embed || (need_head && c->tied))
        if ((err = wt_get(m->hf, "model.embed_tokens.weight", c->vocab, d, &m->embed))) return err;
    if (!need_head) return PROTO_OK;
    if ((err = wt_get(m->hf, "model.norm.weight", d, 0, &m->norm)) ||
        (err = wt_cache(&m->norm, d, c->arch == PROTO_HF_GEMMA)))
        return err;
    if (c->tied) m->head = m->embed;
    else if ((err = wt_get(m->hf, "lm_head.weight", c->vocab, d, &m->head))) return err;
    return PROTO_OK;
}

static size_t phys_bytes(void)
{
    long pages = sysconf(_SC_PHYS_PAGES), psz = sysconf(_SC_PAGESIZE);
    return pages > 0 && psz > 0 ? (size_t)pages * (size_t)psz : (size_t)8 << 30;
}

/* MemAvailable of /proc/meminfo in bytes, or 0 when it cannot be read. */
static size_t avail_bytes(void)
{
    FILE *f = fopen("/proc/meminfo", "r");
    char line[256];
    unsigned long long kb = 0;
    while (f && fgets(line, sizeof line, f))
        if (sscanf(line, "MemAvailable: %llu kB", &kb) == 1) break;
    if (f) fclose(f);
    return (size_t)kb << 10;
}

/* The default cache budget: an eighth of the physical memory (a study runs up to four
 * sf-forward processes at once), and at most a quarter of what is available now, so the cache
 * never pushes the machine into reclaiming the mapped weights (then it would be slower than
 * converting per frame). */
static size_t cache_budget_default(void)
{
    size_t b = phys_bytes() / 8, av = avail_bytes();
    return av && av / 4 < b ? av / 4 : b;
}

/* Cache policy: the bf16/f16 matrices of each layer (in order), then the unembedding, get an f32
 * copy while they fit the budget (--cache-mb, default cache_budget_default); the rest is
 * converted per frame (a layer into scratch, the unembedding chunk by chunk). Either way the
 * mapping's pages of a converted tensor are released (wt_release), so the resident size is the
 * cache plus one layer, not the cache plus the whole bf16 model. */
static int cache_plan(struct model *m, long long cache_mb, bool need_head)
{
    size_t budget = cache_mb >= 0 ? (size_t)cache_mb << 20 : cache_budget_default();
    size_t d = (size_t)m->c.d_model;
    int err;
    m->cached = true;
    for (int l = m->lo; l < m->hi; l++) {
        size_t n = 0;
        for (int i = 2; i < LAYER_N_WT; i++) {
            const struct wt *w = layer_wt(&m->layers[l], i);
            if (!wt_direct(w)) n += w->n;
        }
        if (n * sizeof(float) > budget) {
            m->cached = false;
            if (n > m->layer_scratch_n) m->layer_scratch_n = n;
            continue;
        }
        budget -= n * sizeof(float);
        for (int i = 2; i < LAYER_N_WT; i++) {
            struct wt *w = layer_wt(&m->layers[l], i);
            if (!wt_direct(w) && (err = wt_cache(w, w->n, false))) return err;
            wt_release(w, 0, 1, w->n);
        }
    }
    if (need_head && !wt_direct(&m->head)) {
        if ((size_t)m->vocab * d * sizeof(float) <= budget) {
            if ((err = wt_cache(&m->head, (size_t)m->vocab * d, false))) return err;
            wt_release(&m->head, 0, (size_t)m->vocab, d);
            if (m->c.tied) m->embed.f32 = m->head.f32;   /* shared; freed once */
        } else {
            m->cached = false;
        }
    }
    return PROTO_OK;
}

/* Opens the checkpoint and loads the tensors the mode needs: --hook: the embedding and the blocks
 * up to the deepest hook (resolved into hl); --from blocks.L: the blocks after the hook, the final
 * norm and the unembedding. */
static int model_load(struct model *m, const struct opts *o, struct hooklist *hl)
{
    int err;
    memset(m, 0, sizeof *m);
    if ((err = proto_hf_open(o->model_dir, 0, &m->hf))) return err;   /* the detail names the file */
    const struct proto_hf_config *c = &m->c;
    m->c = m->hf->c;
    m->vocab = c->vocab;
    if (o->vocab_limit > c->vocab) {
        proto_set_detail("--vocab-limit %lld is larger than the model's vocab_size %d", o->vocab_limit, c->vocab);
        return PROTO_E_MISMATCH;
    }
    if (o->vocab_limit) m->vocab = (int)o->vocab_limit;
    bool need_embed = o->hook_name != NULL, need_head = !need_embed;
    if (need_embed) {
        if ((err = hooks_resolve(hl, o, c->n_layers))) { proto_prefix_detail("%s/config.json", m->hf->dir); return err; }
        m->lo = 0;
        m->hi = hl->h[hl->n - 1].depth;
    } else {
        if (o->hook.layer >= c->n_layers) {
            proto_set_detail("%s/config.json: hook %s is out of range: the model has %d layers (blocks.0 .. blocks.%d)",
                             m->hf->dir, o->from_name, c->n_layers, c->n_layers - 1);
            return PROTO_E_MISMATCH;
        }
        m->lo = proto_hook_depth(o->hook);
        m->hi = c->n_layers;
    }
    if ((err = layers_load(m)) || (err = ends_load(m, need_embed, need_head)) ||
        (err = cache_plan(m, o->cache_mb, need_head)))
        return err;
    return PROTO_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* kernels */

/* Y(n_tok, n_out) = X(n_tok, n_in) · W(n_out, n_in)ᵀ + beta·Y.
 * Row-major sgemm with A = X (lda n_in), B = W stored (n_out, n_in) read transposed (ldb n_in),
 * C = Y (ldc n_out): M = n_tok, N = n_out, K = n_in. */
static void matmul(float *y, const float *x, const float *w, size_t n_tok, int n_in, int n_out, float beta)
{
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, (int)n_tok, n_out, n_in, 1.0f, x, n_in, w, n_in,
                beta, y, n_out);
}

/* The element-wise kernels below run through proto_parallel_for over ranges of [0, n) (tokens,
 * score-row pairs or elements), each with its own argument struct. Every item is computed the
 * same way whatever the split, so the results do not depend on --threads. */

/* Items per thread so that a thread gets at least PAR_MIN_WORK values to touch (thread start-up
 * costs tens of microseconds). */
static size_t grain(size_t work_per_item)
{
    return work_per_item >= PAR_MIN_WORK ? 1 : PAR_MIN_WORK / work_per_item;
}

/* Vector helpers for the element-wise exp work (softmax, SiLU/GELU, the loss's log-sum-exp):
 * GCC vector types, lowered to AVX-512, AVX2 or SSE2 by the clone that inlines them. Only IEEE
 * basic operations (no FMA contraction under -std=c11) and integer ones: every clone gives the
 * same bits. */
#pragma GCC diagnostic ignored "-Wpsabi"   /* v8d by value: always-inlined static helpers, no ABI crossed */
typedef double v8d __attribute__((vector_size(64)));
typedef int64_t v8l __attribute__((vector_size(64)));
typedef float v8f __attribute__((vector_size(32)));
#define SF_INLINE __attribute__((always_inline)) static inline

/* e^x in double, 8 lanes: k = round(x / ln 2), r = x − k·ln 2 (Cody–Waite, |r| <= ln2/2), e^r by
 * its Taylor series to degree 13 (truncation below 1e-17; Estrin's scheme for short dependency
 * chains), scaled by 2^k through the exponent bits; within 2 ulp of exp. Below −708 (e^x <
 * 2^-1021, where 2^k would leave the normal range) 0, above 709 +inf; NaN stays NaN. */
SF_INLINE v8d exp8(v8d x)
{
    const v8d lo = (v8d){0} - 708.0, hi = (v8d){0} + 709.0, shift = (v8d){0} + 0x1.8p52;
    v8l tiny = x < lo, huge = x > hi;                   /* -1 where flushed to 0 / +inf */
    x = (v8d)(((v8l)x & ~(tiny | huge)) | ((v8l)lo & tiny) | ((v8l)hi & huge));   /* k in range */
    v8d t = x * 0x1.71547652b82fep0 + shift;            /* 1.5·2^52 + k */
    v8d k = t - shift;
    v8d r = (x - k * 0x1.62e42fee00000p-1) - k * 0x1.a39ef35793c76p-33;
    v8d r2 = r * r, r4 = r2 * r2, r8 = r4 * r4;
    v8d p01 = 1.0 + r, p23 = 1.0 / 2 + r * (1.0 / 6), p45 = 1.0 / 24 + r * (1.0 / 120),
        p67 = 1.0 / 720 + r * (1.0 / 5040), p89 = 1.0 / 40320 + r * (1.0 / 362880),
        pab = 1.0 / 3628800 + r * (1.0 / 39916800), pcd = 1.0 / 479001600 + r * (1.0 / 6227020800);
    v8d p = (p01 + r2 * p23) + r4 * (p45 + r2 * p67) + r8 * ((p89 + r2 * pab) + r4 * pcd);
    v8l ki = (v8l)t - (v8l)shift;                        /* k as an integer */
    v8d e = p * (v8d)((ki + 1023) << 52);
    return (v8d)(((v8l)e & ~(tiny | huge)) | ((v8l)((v8d){0} + INFINITY) & huge));
}

/* m <= 8 floats as doubles, the lanes past m set to pad. */
SF_INLINE v8d load8(const float *z, size_t m, float pad)
{
    v8f f;
    if (m == 8) memcpy(&f, z, sizeof f);
    else for (int l = 0; l < 8; l++) f[l] = l < (int)m ? z[l] : pad;
    return __builtin_convertvector(f, v8d);
}

SF_INLINE double lanes_sum(v8d v) { return ((v[0] + v[1]) + (v[2] + v[3])) + ((v[4] + v[5]) + (v[6] + v[7])); }

typedef float v16f __attribute__((vector_size(64)));
typedef int32_t v16i __attribute__((vector_size(64)));

/* e^x in f32, 16 lanes, for the softmax and the SiLU/GELU gates: the same scheme as exp8 in f32
 * with a degree-7 polynomial; within 2 ulp of glibc's expf. Below −87 0 (e^x < 2^-125: a
 * softmax term next to the max's own 1, a gate's e^−z next to 1), above 88 +inf (2^127 would
 * overflow the scale); NaN stays NaN. */
SF_INLINE v16f exp16f(v16f x)
{
    const v16f lo = (v16f){0} - 87.0f, hi = (v16f){0} + 88.0f, shift = (v16f){0} + 0x1.8p23f;
    v16i tiny = x < lo, huge = x > hi;
    x = (v16f)(((v16i)x & ~(tiny | huge)) | ((v16i)lo & tiny) | ((v16i)hi & huge));
    v16f t = x * 0x1.715476p0f + shift;                 /* 1.5·2^23 + k */
    v16f k = t - shift;
    v16f r = (x - k * 0x1.62e400p-1f) - k * 0x1.7f7d1cp-20f;
    v16f r2 = r * r, r4 = r2 * r2;
    v16f p = ((1.0f + r) + r2 * (0.5f + r * (1.0f / 6))) + r4 * ((1.0f / 24 + r * (1.0f / 120)) + r2 * (1.0f / 720 + r * (1.0f / 5040)));
    v16i ki = (v16i)t - (v16i)shift;
    v16f e = p * (v16f)((ki + 127) << 23);
    return (v16f)(((v16i)e & ~(tiny | huge)) | ((v16i)((v16f){0} + INFINITY) & huge));
}

/* m <= 16 floats, the lanes past m set to pad. */
SF_INLINE v16f load16(const float *z, size_t m, float pad)
{
    v16f f;
    if (m == 16) memcpy(&f, z, sizeof f);
    else for (int l = 0; l < 16; l++) f[l] = l < (int)m ? z[l] : pad;
    return f;
}

/* The largest of m and z[0..n) (NaNs skipped), 16 lanes: a max is exact in any order. */
PROTO_SIMD_CLONES
static float max_f32(const float *z, size_t n, float m)
{
    float lane[16];
    for (int l = 0; l < 16; l++) lane[l] = m;
    size_t j = 0;
    for (; j + 16 <= n; j += 16)
        for (int l = 0; l < 16; l++) lane[l] = z[j + l] > lane[l] ? z[j + l] : lane[l];
    for (; j < n; j++) if (z[j] > m) m = z[j];
    for (int l = 0; l < 16; l++) if (lane[l] > m) m = lane[l];
    return m;
}

/* s[j] = e^(s[j] − mx) for j < m <= 16, added to 16 double lane sums acc. */
SF_INLINE void exp_row16(float *s, size_t m, float mx, v8d acc[2])
{
    v16f e = exp16f(load16(s, m, -INFINITY) - mx);   /* lanes past m: e^-inf = 0 */
    memcpy(s, &e, m * sizeof(float));
    acc[0] += __builtin_convertvector(__builtin_shufflevector(e, e, 0, 1, 2, 3, 4, 5, 6, 7), v8d);
    acc[1] += __builtin_convertvector(__builtin_shufflevector(e, e, 8, 9, 10, 11, 12, 13, 14, 15), v8d);
}

/* s[j] = e^(s[j] − mx) for j < n; returns their sum (16 lane sums in double, added in a fixed order). */
PROTO_SIMD_CLONES
static double exp_row(float *s, size_t n, float mx)
{
    v8d acc[2] = {{0}, {0}};
    size_t j = 0;
    for (; j + 16 <= n; j += 16) exp_row16(s + j, 16, mx, acc);
    if (j < n) exp_row16(s + j, n - j, mx, acc);
    return lanes_sum(acc[0]) + lanes_sum(acc[1]);
}

/* g = act(g)·u over m <= 16 elements, act(x) = x / (1 + e^−z): z = x for SiLU, z = 2·sqrt(2/π)·
 * (x + 0.044715x³) for the tanh GELU (0.5x(1 + tanh(y)) = x / (1 + e^−2y)). */
SF_INLINE void glu16(float *g, const float *u, size_t m, bool gelu)
{
    v16f x = load16(g, m, 0), z = x;
    if (gelu) z = (2 * 0.7978845608028654f) * (x + 0.044715f * (x * x * x));
    v16f r = x / (1.0f + exp16f(-z)) * load16(u, m, 0);
    memcpy(g, &r, m * sizeof(float));
}

PROTO_SIMD_CLONES
static void glu_lanes(float *g, const float *u, size_t n, bool gelu)
{
    size_t i = 0;
    for (; i + 16 <= n; i += 16) glu16(g + i, u + i, 16, gelu);
    if (i < n) glu16(g + i, u + i, n - i, gelu);
}

struct rmsnorm_args {
    float *out;            /* (n_tok, d) */
    const float *x;        /* (n_tok, d) */
    const float *w;        /* (d) */
    int d;
    float eps;
};

/* o(d) = (x(d) · r) · w(d); restrict so the compiler vectorises it without alias checks. */
PROTO_SIMD_CLONES
static void rms_scale(float *restrict o, const float *restrict x, const float *restrict w, float r, int d)
{
    for (int i = 0; i < d; i++) o[i] = (x[i] * r) * w[i];
}

/* out = x / sqrt(mean(x²) + eps) * w per token (w already 1 + w for Gemma); mean in double. */
static void rmsnorm_range(void *arg, size_t lo, size_t hi)
{
    const struct rmsnorm_args *a = arg;
    int d = a->d;
    for (size_t t = lo; t < hi; t++) {
        const float *xt = a->x + t * d;
        float *ot = a->out + t * d;
        double ss = 0;
        for (int i = 0; i < d; i++) ss += (double)xt[i] * xt[i];
        float r = (float)(1.0 / sqrt(ss / d + a->eps));
        rms_scale(ot, xt, a->w, r, d);
    }
}

static void rmsnorm(int nt, float *out, const float *x, const float *w, size_t n_tok, int d, float eps)
{
    struct rmsnorm_args a = {.out = out, .x = x, .w = w, .d = d, .eps = eps};
    proto_parallel_for(nt, n_tok, grain(d), rmsnorm_range, &a);
}

/* cos/sin tables (ctx, head_dim/2): angle = p · theta^(-2i/head_dim), in double. */
static void rope_table(float *cs, float *sn, int ctx, int head_dim, double theta)
{
    int half = head_dim / 2;
    for (int i = 0; i < half; i++) {
        double inv_freq = pow(theta, -2.0 * i / head_dim);
        for (int p = 0; p < ctx; p++) {
            cs[(size_t)p * half + i] = (float)cos(p * inv_freq);
            sn[(size_t)p * half + i] = (float)sin(p * inv_freq);
        }
    }
}

struct rope_args {
    float *x;              /* (n_tok, n_head*head_dim), rotated in place */
    int n_head, head_dim, ctx;
    const float *cs, *sn;  /* (ctx, head_dim/2) */
};

/* HF rotate_half RoPE in place on x (n_tok, n_head*head_dim); token t is at position t % ctx:
 * x1' = x1·cos − x2·sin, x2' = x2·cos + x1·sin with x1 = x[:half], x2 = x[half:]. */
PROTO_SIMD_CLONES
static void rope_range(void *arg, size_t lo, size_t hi)
{
    const struct rope_args *a = arg;
    int half = a->head_dim / 2;
    for (size_t t = lo; t < hi; t++) {
        const float *c = a->cs + (t % (size_t)a->ctx) * half, *s = a->sn + (t % (size_t)a->ctx) * half;
        for (int h = 0; h < a->n_head; h++) {
            float *x1 = a->x + (t * a->n_head + h) * a->head_dim, *x2 = x1 + half;
            for (int i = 0; i < half; i++) {
                float p = x1[i], q = x2[i];
                x1[i] = p * c[i] - q * s[i];
                x2[i] = q * c[i] + p * s[i];
            }
        }
    }
}

static void rope(int nt, float *x, size_t n_tok, int n_head, int head_dim, int ctx, const float *cs, const float *sn)
{
    struct rope_args a = {.x = x, .n_head = n_head, .head_dim = head_dim, .ctx = ctx, .cs = cs, .sn = sn};
    proto_parallel_for(nt, n_tok, grain((size_t)n_head * head_dim), rope_range, &a);
}

struct softmax_args {
    float *s;              /* (rows, ctx) scores of one query block against its keys, probabilities after */
    int ctx;
    int window;            /* sliding window W, 0 = none */
};

/* Row r of the scores s (nr, ctx) (query at key index i, keys 0..ctx-1 of the block) becomes
 * softmax over keys lo(i) <= j <= i, 0 elsewhere. */
static void softmax_row_at(const struct softmax_args *a, int r, int i)
{
    int ctx = a->ctx, W = a->window;
    float *si = a->s + (size_t)r * ctx;
    int lo = W && i - W + 1 > 0 ? i - W + 1 : 0;
    float mx = max_f32(si + lo, (size_t)(i - lo + 1), -INFINITY);
    double sum = exp_row(si + lo, (size_t)(i - lo + 1), mx);
    float inv = (float)(1.0 / sum);
    for (int j = 0; j < lo; j++) si[j] = 0;
    for (int j = lo; j <= i; j++) si[j] *= inv;
    for (int j = i + 1; j < ctx; j++) si[j] = 0;
}

/* Causal (and sliding-window) attention of every row and query head of a frame, in query blocks
 * of ATT_BLOCK: a block's scores are computed only against the keys it can see (the causal
 * blocks to its right are skipped), softmaxed in place and multiplied by those keys' values.
 * Work items are (row, head) pairs split over our threads with OpenBLAS at one thread (the two
 * never compete for the cores); every item is computed the same way whatever the split, so the
 * result does not depend on --threads. Query head h reads kv head h / (n_heads / n_kv); query
 * i sees keys lo(i) <= j <= i with lo(i) = max(0, i − W + 1) under a window W. */
struct attn_args {
    float *out;                        /* (n_rows*ctx, n_heads*hd) */
    const float *q;                    /* (n_rows*ctx, n_heads*hd) */
    const float *k, *v;                /* (n_rows*ctx, n_kv*hd) */
    float *s;                          /* (nth, ATT_BLOCK, ctx) scores, one slab per thread */
    size_t n_rows;
    int ctx;
    const struct proto_hf_config *c;
};

/* One query block [i0, i0+nq) of one row and head: keys [klo, i0+nq). */
static void attn_block(const struct attn_args *a, float *s, const float *q, const float *k, const float *v,
                       float *out, int i0, int nq)
{
    const struct proto_hf_config *c = a->c;
    int hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd, W = c->window;
    int klo = W && i0 - W + 1 > 0 ? i0 - W + 1 : 0, nk = i0 + nq - klo;
    float scale = (float)(1.0 / sqrt((double)hd));
    /* S(nq, nk) = scale · Q(nq, hd) · K(nk, hd)ᵀ: A = the block's query rows (lda qd: the row
     * holds every head), B = key rows [klo, i0+nq) read transposed (ldb kvd), C = S (ldc nk) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, nq, nk, hd, scale, q + (size_t)i0 * qd, qd,
                k + (size_t)klo * kvd, kvd, 0.0f, s, nk);
    struct softmax_args sa = {.s = s, .ctx = nk, .window = W};
    for (int r = 0; r < nq; r++) softmax_row_at(&sa, r, i0 + r - klo);
    /* O(nq, hd) = P(nq, nk) · V(nk, hd): A = P (lda nk), B = value rows (ldb kvd), C = the
     * head's columns of the block's output rows (ldc qd) */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, nq, hd, nk, 1.0f, s, nk, v + (size_t)klo * kvd, kvd,
                0.0f, out + (size_t)i0 * qd, qd);
}

static void attn_worker(void *arg, int ith, int nth)
{
    const struct attn_args *a = arg;
    const struct proto_hf_config *c = a->c;
    int ctx = a->ctx, hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd, rep = c->n_heads / c->n_kv_heads;
    float *s = a->s + (size_t)ith * ATT_BLOCK * ctx;   /* (ATT_BLOCK, ctx) */
    size_t lo, hi;
    proto_par_range(a->n_rows * c->n_heads, ith, nth, &lo, &hi);
    for (size_t it = lo; it < hi; it++) {
        size_t r = it / c->n_heads;
        int h = (int)(it % c->n_heads), g = h / rep;
        const float *q = a->q + r * ctx * qd + h * hd, *k = a->k + r * ctx * kvd + g * hd, *v = a->v + r * ctx * kvd + g * hd;
        float *o = a->out + r * ctx * qd + h * hd;
        for (int i0 = 0; i0 < ctx; i0 += ATT_BLOCK)
            attn_block(a, s, q, k, v, o, i0, ctx - i0 < ATT_BLOCK ? ctx - i0 : ATT_BLOCK);
    }
}

/* Attention of all n_rows rows of ctx tokens: out = softmax(q·kᵀ/sqrt(hd))·v per row and head. */
static void attention(int nt, float *out, const float *q, const float *k, const float *v, float *s, size_t n_rows,
                      int ctx, const struct proto_hf_config *c)
{
    struct attn_args a = {.out = out, .q = q, .k = k, .v = v, .s = s, .n_rows = n_rows, .ctx = ctx, .c = c};
    size_t items = n_rows * c->n_heads;
    int nth = items < (size_t)nt ? (int)items : nt;
    int blas_threads = openblas_get_num_threads();
    openblas_set_num_threads(1);
    proto_parallel_run(nth, attn_worker, &a);
    openblas_set_num_threads(blas_threads);
}

struct glu_args {
    float *g;              /* (n) gate, act(g) · u after */
    const float *u;        /* (n) */
    enum proto_hf_act act;
};

/* g = act(g) · u elementwise: silu(x) = x/(1+e^−x); gelu tanh = 0.5x(1 + tanh(sqrt(2/π)(x + 0.044715x³))) (glu_lanes). */
static void glu_range(void *arg, size_t lo, size_t hi)
{
    const struct glu_args *a = arg;
    float *g = a->g;
    const float *u = a->u;
    glu_lanes(g + lo, u + lo, hi - lo, a->act != PROTO_HF_SILU);
}

static void glu(int nt, float *g, const float *u, size_t n, enum proto_hf_act act)
{
    struct glu_args a = {.g = g, .u = u, .act = act};
    proto_parallel_for(nt, n, grain(1), glu_range, &a);
}

/* ---------------------------------------------------------------------------------------- */
/* the forward pass */

struct work {
    struct proto_buf x;        /* (n_tok, d) residual stream */
    struct proto_buf h;        /* (n_tok, d) normed */
    struct proto_buf q;        /* (n_tok, n_heads*hd) */
    struct proto_buf k, v;     /* (n_tok, n_kv*hd) */
    struct proto_buf att;      /* (n_tok, n_heads*hd) */
    struct proto_buf s;        /* (n_threads, ATT_BLOCK, ctx) attention scores, one slab per thread */
    struct proto_buf g, u;     /* (tok_block, d_ff) MLP */
    struct proto_buf cs, sn;   /* (ctx, hd/2) RoPE */
    struct proto_buf wscratch; /* one layer's converted weights, when not cached */
    struct proto_buf out;      /* output tensor (acts in the out dtype) */
    int rope_ctx;              /* ctx the RoPE tables hold */
    size_t mlp_blk;            /* tokens per MLP block */
    int n_threads;             /* element-wise kernels (the sgemms use OpenBLAS' threads) */
    double flops;              /* useful flops done (for -v and the bench) */
};

static void work_destroy(struct work *w)
{
    struct proto_buf *b[] = {&w->x, &w->h, &w->q, &w->k, &w->v, &w->att, &w->s, &w->g, &w->u,
                             &w->cs, &w->sn, &w->wscratch, &w->out};
    for (size_t i = 0; i < sizeof b / sizeof b[0]; i++) proto_buf_destroy(b[i]);
}

/* Sizes the buffers for n_tok tokens in rows of ctx (contents are lost). */
static int work_reserve(struct work *w, const struct model *m, size_t n_tok, int ctx)
{
    const struct proto_hf_config *c = &m->c;
    size_t d = c->d_model, qd = (size_t)c->n_heads * c->head_dim, kvd = (size_t)c->n_kv_heads * c->head_dim;
    size_t blk = MLP_BLOCK_BYTES / (2 * sizeof(float) * c->d_ff);
    if (blk < 1) blk = 1;
    if (blk > n_tok) blk = n_tok;
    if (proto_buf_reserve(&w->x, n_tok * d * 4) || proto_buf_reserve(&w->h, n_tok * d * 4) ||
        proto_buf_reserve(&w->q, n_tok * qd * 4) || proto_buf_reserve(&w->k, n_tok * kvd * 4) ||
        proto_buf_reserve(&w->v, n_tok * kvd * 4) || proto_buf_reserve(&w->att, n_tok * qd * 4) ||
        proto_buf_reserve(&w->s, (size_t)w->n_threads * ATT_BLOCK * ctx * 4) || proto_buf_reserve(&w->g, blk * c->d_ff * 4) ||
        proto_buf_reserve(&w->u, blk * c->d_ff * 4) || proto_buf_reserve(&w->wscratch, m->layer_scratch_n * 4))
        return PROTO_E_NOMEM;
    w->mlp_blk = blk;
    if (w->rope_ctx != ctx) {
        size_t n = (size_t)ctx * (c->head_dim / 2) * 4;
        if (proto_buf_reserve(&w->cs, n) || proto_buf_reserve(&w->sn, n)) return PROTO_E_NOMEM;
        rope_table(w->cs.p, w->sn.p, ctx, c->head_dim, c->theta);
        w->rope_ctx = ctx;
    }
    return PROTO_OK;
}

/* Runs block l on the residual x (n_rows*ctx, d) in w->x. */
static void block_forward(struct model *m, struct work *w, int l, size_t n_rows, int ctx)
{
    const struct proto_hf_config *c = &m->c;
    struct layer *L = &m->layers[l];
    size_t n_tok = n_rows * ctx;
    int d = c->d_model, hd = c->head_dim, qd = c->n_heads * hd, kvd = c->n_kv_heads * hd, ff = c->d_ff;
    float *x = w->x.p;          /* (n_tok, d) */
    float *h = w->h.p;          /* (n_tok, d) */
    float *q = w->q.p;          /* (n_tok, qd) */
    float *k = w->k.p, *v = w->v.p;  /* (n_tok, kvd) */
    float *att = w->att.p;      /* (n_tok, qd) */
    float *ws = w->wscratch.p;  /* one layer's weights when not cached */

    /* the layer's weights as f32 (mapping, cache or scratch) */
    const float *W[LAYER_N_WT];
    for (int i = 2; i < LAYER_N_WT; i++) {
        struct wt *t = layer_wt(L, i);
        W[i] = wt_rows(t, 0, 1, t->n, ws);
        if (!t->f32 && !wt_direct(t)) { ws += t->n; wt_release(t, 0, 1, t->n); }
    }
    const float *Wq = W[2], *Wk = W[3], *Wv = W[4], *Wo = W[5], *Wg = W[6], *Wu = W[7], *Wd = W[8];

    /* attention: h = norm(x); q, k, v = h·Wᵀ; RoPE; per row softmax(q·kᵀ/sqrt(hd))·v; x += att·Woᵀ */
    rmsnorm(w->n_threads, h, x, L->ln_in.f32, n_tok, d, c->eps);
    matmul(q, h, Wq, n_tok, d, qd, 0.0f);
    matmul(k, h, Wk, n_tok, d, kvd, 0.0f);
    matmul(v, h, Wv, n_tok, d, kvd, 0.0f);
    rope(w->n_threads, q, n_tok, c->n_heads, hd, ctx, w->cs.p, w->sn.p);
    rope(w->n_threads, k, n_tok, c->n_kv_heads, hd, ctx, w->cs.p, w->sn.p);
    attention(w->n_threads, att, q, k, v, w->s.p, n_rows, ctx, c);
    matmul(x, att, Wo, n_tok, qd, d, 1.0f);

    /* MLP in token blocks: h = norm(x); x += (act(h·Wgᵀ) ⊙ h·Wuᵀ)·Wdᵀ */
    rmsnorm(w->n_threads, h, x, L->ln_post.f32, n_tok, d, c->eps);
    size_t blk = w->mlp_blk;
    for (size_t t0 = 0; t0 < n_tok; t0 += blk) {
        size_t nb = n_tok - t0 < blk ? n_tok - t0 : blk;
        float *g = w->g.p, *u = w->u.p;   /* (nb, ff) */
        matmul(g, h + t0 * d, Wg, nb, d, ff, 0.0f);
        matmul(u, h + t0 * d, Wu, nb, d, ff, 0.0f);
        glu(w->n_threads, g, u, nb * ff, c->act);
        matmul(x + t0 * d, g, Wd, nb, ff, d, 1.0f);
    }
    double win = c->window && c->window < ctx ? c->window : ctx;   /* keys per query, roughly */
    w->flops += 2.0 * n_tok * ((double)d * (2 * qd + 2 * kvd) + 3.0 * d * ff) +
                4.0 * n_rows * c->n_heads * hd * (win * (win + 1) / 2 + (ctx - win) * win);
}

/* x (n_tok, d) = embedding rows of the tokens (Gemma: × float32(sqrt(d))). */
static void embed(const struct model *m, float *x, const int32_t *tok, size_t n_tok)
{
    const struct proto_hf_config *c = &m->c;
    int d = c->d_model;
    size_t es = proto_dtype_size(m->embed.t->dtype);
    float normalizer = (float)sqrt((double)d);
    for (size_t t = 0; t < n_tok; t++) {
        if (m->embed.f32) memcpy(x + t * d, m->embed.f32 + (size_t)tok[t] * d, (size_t)d * sizeof(float));
        else proto_convert_to_f32(x + t * d, (const char *)m->embed.t->data + (size_t)tok[t] * d * es, m->embed.t->dtype, d);
        if (c->arch == PROTO_HF_GEMMA)
            for (int i = 0; i < d; i++) x[t * d + i] *= normalizer;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* the loss: final norm, unembedding in vocabulary chunks, online log-sum-exp */

/* Per-token statistics of one variant, over the vocabulary seen so far (double). */
struct lse { double *mx, *se, *zt, *kl; };

struct loss_work {
    struct proto_buf z;        /* (n_all, chunk) logits of one vocabulary chunk */
    struct proto_buf wchunk;   /* (chunk, d) converted unembedding rows */
    struct proto_buf st;       /* 4 · n_all doubles */
    struct proto_buf ce;       /* (n_var, rows, ctx-1) f32 per-token outputs: ce then kl */
    struct proto_buf xin;      /* acts as f32, recon as f32 (when converted) */
    struct proto_buf rin;
    struct proto_buf arow;     /* (rows) i32: the ablated variant's computed row, -1 when all zeros */
    struct proto_buf zero;     /* (chunk) f32 zeros: the logits of an all-zero ablated row */
};

static void loss_work_destroy(struct loss_work *lw)
{
    proto_buf_destroy(&lw->z); proto_buf_destroy(&lw->wchunk); proto_buf_destroy(&lw->st);
    proto_buf_destroy(&lw->ce); proto_buf_destroy(&lw->xin); proto_buf_destroy(&lw->rin);
    proto_buf_destroy(&lw->arow); proto_buf_destroy(&lw->zero);
}

/* Folds one vocabulary chunk of logits (n_var·n_tok rows of nv, see lse_logits), ids [v0, v0+nv),
 * into the online statistics of tokens [lo, hi) of every variant: running max mx, Σ e^(z − mx) se, the target's
 * logit zt (token t predicts tok[t+1] within its row), and for patched variants p >= 1
 * kl[p] = Σ e^(z_c − mx_c)(z_c − z_p) over the clean variant's terms (double). */
struct lse_args {
    const float *z;              /* (computed rows·ctx, nv) logits of the chunk */
    size_t nv, v0, n_tok;        /* chunk ids [v0, v0+nv); tokens per variant */
    const int32_t *tok;          /* (n_tok) */
    int n_var, ctx;
    double *mx, *se, *zt, *kl;   /* (n_var·n_tok) each: struct lse */
    const int32_t *arow;         /* the last variant's rows (struct ablated), NULL: all computed */
    const float *zero;           /* (nv) zeros */
};

/* The chunk's logits (nv) of token t of variant var: its row of z, or for a row of the ablated
 * variant whose input is all zeros the zero vector (see struct ablated). */
static const float *lse_logits(const struct lse_args *a, int var, size_t t)
{
    size_t row = var * a->n_tok + t;
    if (a->arow && var == a->n_var - 1) {
        int32_t r = a->arow[t / a->ctx];
        if (r < 0) return a->zero;
        row = var * a->n_tok + (size_t)r * a->ctx + t % a->ctx;
    }
    return a->z + row * a->nv;
}

#define MAX_VAR 4   /* clean, spliced, spliced at every token, ablated */


struct exp_acc { v8d s, kl[MAX_VAR - 1]; };

/* Adds m <= 8 logits z of the clean or only variant (and of n_p patched ones, zp) to the lanes. */
SF_INLINE void exp_step(struct exp_acc *A, const float *z, size_t m, double mx, const float *const *zp, int n_p, size_t j)
{
    const float pad = -0x1p127f;               /* lanes past m: e = 0 and z − zp = 0 */
    v8d zc = load8(z + j, m, pad);
    v8d e = exp8(zc - mx);
    A->s += e;
    for (int q = 0; q < n_p; q++) A->kl[q] += e * (zc - load8(zp[q] + j, m, pad));
}

/* Σ_j e^(z[j] − mx) over the n logits z of one token, in double; with n_p patched variants of
 * it (zp[q] (n), the same ids) also kl[q] += Σ_j e^(z[j] − mx)(z[j] − zp[q][j]). Eight lane sums,
 * added in a fixed order at the end: the same bits for any --threads and any clone. */
PROTO_SIMD_CLONES
static double exp_sum(const float *z, size_t n, double mx, const float *const *zp, int n_p, double *kl)
{
    struct exp_acc A;
    memset(&A, 0, sizeof A);
    size_t j = 0;
    for (; j + 8 <= n; j += 8) exp_step(&A, z, 8, mx, zp, n_p, j);
    if (j < n) exp_step(&A, z, n - j, mx, zp, n_p, j);
    for (int q = 0; q < n_p; q++) kl[q] += lanes_sum(A.kl[q]);
    return lanes_sum(A.s);
}

static void lse_range(void *arg, size_t lo, size_t hi)
{
    const struct lse_args *a = arg;
    size_t n_tok = a->n_tok, nv = a->nv, v0 = a->v0;
    int n_var = a->n_var, ctx = a->ctx;
    for (size_t t = lo; t < hi; t++) {
        bool has_target = (int)(t % ctx) < ctx - 1;
        size_t tgt = has_target ? (size_t)a->tok[t + 1] : 0;
        bool in_chunk = has_target && tgt >= v0 && tgt < v0 + nv;
        for (int var = 0; var < n_var; var++) {
            size_t i = var * n_tok + t;
            const float *zi = lse_logits(a, var, t);
            if (in_chunk) a->zt[i] = zi[tgt - v0];
            double mx = max_f32(zi, nv, (float)a->mx[i]);   /* mx holds a float's value */
            if (mx > a->mx[i]) {   /* rescale what was summed under the old max */
                double r = exp(a->mx[i] - mx);
                a->se[i] *= r;
                if (var == 0) for (int p = 1; p < n_var; p++) a->kl[p * n_tok + t] *= r;
                a->mx[i] = mx;
            }
            const float *zp[MAX_VAR - 1];
            double klp[MAX_VAR - 1] = {0};
            int n_p = var == 0 ? n_var - 1 : 0;
            for (int p = 0; p < n_p; p++) zp[p] = lse_logits(a, p + 1, t);
            a->se[i] += exp_sum(zi, nv, mx, zp, n_p, klp);
            for (int p = 0; p < n_p; p++) a->kl[(p + 1) * n_tok + t] += klp[p];
        }
    }
}

/* The zero-ablated variant (--ablate, always the last): a row whose tokens are all kept (no
 * outlier) has all-zero input, and in these architectures (no biases; RMSNorm, attention, the
 * GLU MLP and the unembedding all map zeros to zeros) its residual stays exactly zero to the
 * logits. Such rows are not run: their logits are the zero vector, bit for bit what running them
 * gives. Only rows with an outlier (kept as they are there) are computed, packed after the other
 * variants' rows. row[r] = the packed index of row r, or -1; n = the rows computed. */
struct ablated { const int32_t *row; size_t n; };

/* From the final residual of n_var variants of the same n_rows·ctx tokens (x in w->x: (n_var·n_tok,
 * d), variant 0 clean; with ab.row the last variant has only its ab.n computed rows), per-token CE
 * of every variant and KL(clean ‖ variant) for v >= 1: ce (n_var, n_rows, ctx−1), kl (n_var,
 * n_rows, ctx−1) (kl of variant 0 unused). */
static int loss_compute(struct model *m, struct work *w, struct loss_work *lw, const int32_t *tok,
                        size_t n_rows, int ctx, int n_var, struct ablated ab, float *ce, float *kl)
{
    const struct proto_hf_config *c = &m->c;
    int d = c->d_model, V = m->vocab;
    size_t n_tok = n_rows * ctx, n_all = n_tok * n_var;
    size_t n_run = ab.row ? n_tok * (n_var - 1) + ab.n * ctx : n_all;   /* rows of x computed */
    float *h = w->h.p;          /* (n_run, d) normed final residual */
    rmsnorm(w->n_threads, h, w->x.p, m->norm.f32, n_run, d, c->eps);

    size_t chunk = LOGIT_CHUNK_BYTES / (n_all * sizeof(float));
    if (chunk < 16) chunk = 16;
    if (chunk > (size_t)V) chunk = V;
    if (proto_buf_reserve(&lw->z, n_run * chunk * 4) || proto_buf_reserve(&lw->st, 4 * n_all * sizeof(double)) ||
        proto_buf_reserve(&lw->zero, chunk * 4) ||
        (!m->head.f32 && !wt_direct(&m->head) && proto_buf_reserve(&lw->wchunk, chunk * d * 4)))
        return PROTO_E_NOMEM;
    memset(lw->zero.p, 0, chunk * 4);
    struct lse S = {lw->st.p, (double *)lw->st.p + n_all, (double *)lw->st.p + 2 * n_all, (double *)lw->st.p + 3 * n_all};
    for (size_t i = 0; i < n_all; i++) { S.mx[i] = -INFINITY; S.se[i] = 0; S.zt[i] = NAN; S.kl[i] = 0; }

    for (size_t v0 = 0; v0 < (size_t)V; v0 += chunk) {
        size_t nv = V - v0 < chunk ? V - v0 : chunk;
        const float *Wc = wt_rows(&m->head, v0, nv, d, lw->wchunk.p);   /* (nv, d) */
        if (!m->head.f32) wt_release(&m->head, v0, nv, d);
        float *z = lw->z.p;                                            /* (n_run, nv) */
        matmul(z, h, Wc, n_run, d, (int)nv, 0.0f);
        w->flops += 2.0 * n_run * d * nv;
        struct lse_args a = {.z = z, .nv = nv, .v0 = v0, .n_tok = n_tok, .tok = tok, .n_var = n_var, .ctx = ctx,
                             .mx = S.mx, .se = S.se, .zt = S.zt, .kl = S.kl, .arow = ab.row, .zero = lw->zero.p};
        proto_parallel_for(w->n_threads, n_tok, grain(nv * n_var), lse_range, &a);
    }
    /* CE = lse − z_target; KL(clean ‖ p) = Σ p_c (z_c − z_p) − (lse_c − lse_p) */
    size_t nc = (size_t)ctx - 1;
    for (int var = 0; var < n_var; var++)
        for (size_t r = 0; r < n_rows; r++)
            for (size_t p = 0; p < nc; p++) {
                size_t t = r * ctx + p, i = var * n_tok + t, o = (var * n_rows + r) * nc + p;
                double lse = S.mx[i] + log(S.se[i]);
                ce[o] = (float)(lse - S.zt[i]);
                if (var > 0) {
                    double lse_c = S.mx[t] + log(S.se[t]);
                    kl[o] = (float)(S.kl[i] / S.se[t] - (lse_c - lse));
                }
            }
    return PROTO_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* the stage */

struct state {
    const struct opts *o;
    struct model m;
    struct work w;
    struct loss_work lw;
    struct hooklist hl;         /* mode 1: the hooks emitted */
    bool multi;                 /* mode 2: the stream carries several hooks; others pass through */
    int start, stop;            /* blocks [start, stop) run */
    uint64_t total_rows, n_rows, n_tokens, n_nonfinite;
    uint64_t nonfinite_loss[N_LOSS_OUT];
    double seconds;
};

static const char *const LOSS_KEY[N_LOSS_OUT] = {"ce_clean", "ce_spliced", "kl_spliced", "ce_ablated", "kl_ablated",
                                                "ce_spliced_unfiltered", "kl_spliced_unfiltered"};

/* The ablated variant's rows (struct ablated) of n_rows rows of ctx tokens: row[r] = -1 where
 * keep is 1 at every token (keep NULL: everywhere), else the next packed index. */
static struct ablated ablated_rows(int32_t *row, const uint8_t *keep, size_t n_rows, size_t ctx)
{
    struct ablated ab = {row, 0};
    for (size_t r = 0; r < n_rows; r++)
        row[r] = keep && memchr(keep + r * ctx, 0, ctx) ? (int32_t)ab.n++ : -1;
    return ab;
}

/* The input rows of the variants into x (n_var, n_tok, d), in the order process_acts reads them:
 * clean, spliced (recon where keep is 1), unfiltered (recon everywhere; with unf), ablated (zeros
 * where keep is 1, only the ab.n rows with an outlier; with --ablate). acts, recon: (n_tok, d);
 * keep: (n_tok) or NULL. */
static void variants_fill(struct state *st, float *x, const float *acts, const float *recon, const uint8_t *keep,
                          bool unf, struct ablated ab, size_t n_rows, size_t ctx, int d)
{
    size_t n_tok = n_rows * ctx;
    memcpy(x, acts, n_tok * d * sizeof(float));
    for (size_t t = 0; t < n_tok; t++)
        for (int i = 0; i < d; i++)
            if (!isfinite(acts[t * d + i])) { st->n_nonfinite++; break; }
    int var = 1;
    if (recon) {
        float *xs = x + var++ * n_tok * d;
        for (size_t t = 0; t < n_tok; t++)
            memcpy(xs + t * d, (!keep || keep[t]) ? recon + t * d : acts + t * d, d * sizeof(float));
    }
    if (unf) memcpy(x + var++ * n_tok * d, recon, n_tok * d * sizeof(float));
    if (st->o->ablate) {
        float *xa = x + var++ * n_tok * d;
        for (size_t r = 0; r < n_rows; r++) {
            if (ab.row[r] < 0) continue;
            float *xr = xa + (size_t)ab.row[r] * ctx * d;
            for (size_t p = 0, t = r * ctx; p < ctx; p++, t++)
                if (keep[t]) memset(xr + p * d, 0, d * sizeof(float));
                else memcpy(xr + p * d, acts + t * d, d * sizeof(float));
        }
    }
}

static int state_init(struct state *st, const struct opts *o)
{
    memset(st, 0, sizeof *st);
    st->o = o;
    int err = model_load(&st->m, o, &st->hl);
    st->w.n_threads = proto_cli_threads(&o->cli, MAX_THREADS);
    st->start = st->m.lo;
    st->stop = st->m.hi;
    return err;
}

static void state_destroy(struct state *st)
{
    model_destroy(&st->m);
    work_destroy(&st->w);
    loss_work_destroy(&st->lw);
}

/* tokens i32 [rows, ctx] with every id in [0, vocab). */
static int check_tokens(const struct state *st, const struct proto_frame *fr, const struct proto_tensor **out)
{
    const struct proto_tensor *t = proto_frame_tensor(fr, "tokens");
    if (!t || t->dtype != PROTO_I32 || t->ndim != 2 || t->shape[0] == 0 || t->shape[1] == 0 || t->shape[1] > (1u << 20)) {
        proto_set_detail("frame %llu: no tokens i32 [rows, ctx] tensor", (unsigned long long)fr->seq);
        return PROTO_E_SCHEMA;
    }
    if (st->m.c.max_pos && t->shape[1] > (uint64_t)st->m.c.max_pos) {
        proto_set_detail("frame %llu: ctx %llu is longer than the model's max_position_embeddings %d (config.json)",
                         (unsigned long long)fr->seq, (unsigned long long)t->shape[1], st->m.c.max_pos);
        return PROTO_E_MISMATCH;
    }
    const int32_t *tok = t->data;
    uint64_t n = t->shape[0] * t->shape[1];
    for (uint64_t i = 0; i < n; i++)
        if (tok[i] < 0 || tok[i] >= st->m.vocab) {
            proto_set_detail("frame %llu: token id %d at row %llu position %llu is out of range: the model's vocabulary "
                             "has %d ids%s", (unsigned long long)fr->seq, tok[i], (unsigned long long)(i / t->shape[1]),
                             (unsigned long long)(i % t->shape[1]), st->m.vocab, st->o->vocab_limit ? " (--vocab-limit)" : "");
            return PROTO_E_MISMATCH;
        }
    *out = t;
    return PROTO_OK;
}

/* The residual stream now in the work buffer, as the acts at hook into w (fr keeps its keys). */
static int emit_acts(struct state *st, struct proto_frame *fr, const char *hook, size_t n_rows, size_t ctx,
                     struct proto_writer *w)
{
    size_t n_tok = n_rows * ctx;
    int d = st->m.c.d_model, err;
    const float *x = st->w.x.p;   /* (n_tok, d) */
    for (size_t t = 0; t < n_tok; t++)
        for (int i = 0; i < d; i++)
            if (!isfinite(x[t * d + i])) { st->n_nonfinite++; break; }
    const void *data = x;
    if (st->o->out_dtype != PROTO_F32) {
        if (proto_buf_reserve(&st->w.out, n_tok * d * proto_dtype_size(st->o->out_dtype))) return PROTO_E_NOMEM;
        proto_convert_from_f32(st->w.out.p, st->o->out_dtype, x, n_tok * d);
        data = st->w.out.p;
    }
    uint64_t shape[3] = {n_rows, ctx, (uint64_t)d};
    if ((err = proto_frame_set_str(fr, "hook", hook)) ||
        (err = proto_frame_set_tensor(fr, "acts", st->o->out_dtype, 3, shape, data)))
        return err;
    return proto_writer_put(w, fr);
}

/* tokens frame -> one acts frame per hook */
static int process_tokens(struct state *st, struct proto_frame *fr, struct proto_writer *w)
{
    const struct proto_tensor *tt;
    int err = check_tokens(st, fr, &tt);
    if (err) return err;
    size_t n_rows = tt->shape[0], ctx = tt->shape[1], n_tok = n_rows * ctx;
    if ((err = work_reserve(&st->w, &st->m, n_tok, (int)ctx))) return err;
    embed(&st->m, st->w.x.p, tt->data, n_tok);
    fr->kind = PROTO_KIND_ACTS;
    snprintf(fr->kind_name, sizeof fr->kind_name, "acts");
    int l = st->start;
    for (int i = 0; i < st->hl.n; i++) {   /* one acts frame per hook, blocks run as deep as it needs */
        for (; l < st->hl.h[i].depth; l++) block_forward(&st->m, &st->w, l, n_rows, (int)ctx);
        if ((err = emit_acts(st, fr, st->hl.h[i].name, n_rows, ctx, w))) return err;
    }
    st->n_rows += n_rows;
    st->n_tokens += n_tok;
    return PROTO_OK;
}

/* A float tensor [rows, ctx, d] of the frame as f32 (converted into buf unless it is f32). */
static int frame_acts(const struct proto_frame *fr, const char *key, const struct proto_tensor *tt, int d,
                      struct proto_buf *buf, const float **out)
{
    const struct proto_tensor *a = proto_frame_tensor(fr, key);
    *out = NULL;
    if (!a) return PROTO_OK;
    if (a->ndim != 3 || a->shape[0] != tt->shape[0] || a->shape[1] != tt->shape[1] || a->shape[2] != (uint64_t)d) {
        char got[96];
        proto_set_detail("frame %llu: %s has shape [%s], expected [%llu %llu %d] (tokens, model d_model)",
                         (unsigned long long)fr->seq, key, proto_shape_str(a->shape, a->ndim, got, sizeof got),
                         (unsigned long long)tt->shape[0], (unsigned long long)tt->shape[1], d);
        return PROTO_E_MISMATCH;
    }
    int err = PROTO_OK;
    *out = proto_tensor_f32(a, buf, &err);
    if (!*out) {
        proto_set_detail("frame %llu: %s has dtype %s (f32, f16 or bf16 expected)", (unsigned long long)fr->seq, key,
                         proto_dtype_name(a->dtype));
        return err ? err : PROTO_E_SCHEMA;
    }
    return PROTO_OK;
}

/* acts frame -> loss frame */
static int process_acts(struct state *st, struct proto_frame *fr, struct proto_writer *w)
{
    const struct proto_tensor *tt;
    int err = check_tokens(st, fr, &tt);
    if (err) return err;
    char hook[256];
    if (proto_frame_str(fr, "hook", hook, sizeof hook) == PROTO_OK && strcmp(hook, st->o->from_name) != 0) {
        if (st->multi) return proto_writer_put(w, fr);
        proto_set_detail("frame %llu: acts are at hook %s, --from is %s", (unsigned long long)fr->seq, hook, st->o->from_name);
        return PROTO_E_MISMATCH;
    }
    size_t n_rows = tt->shape[0], ctx = tt->shape[1], n_tok = n_rows * ctx;
    int d = st->m.c.d_model;
    const float *acts, *recon;   /* (n_tok, d) */
    if ((err = frame_acts(fr, "acts", tt, d, &st->lw.xin, &acts))) return err;
    if (!acts) { proto_set_detail("frame %llu: no acts tensor", (unsigned long long)fr->seq); return PROTO_E_SCHEMA; }
    if ((err = frame_acts(fr, "recon", tt, d, &st->lw.rin, &recon))) return err;
    const struct proto_tensor *kt = proto_frame_tensor(fr, "keep");
    if (kt && (kt->dtype != PROTO_U8 || kt->ndim != 2 || kt->shape[0] != n_rows || kt->shape[1] != ctx)) {
        proto_set_detail("frame %llu: keep is not u8 [%zu, %zu]", (unsigned long long)fr->seq, n_rows, ctx);
        return PROTO_E_SCHEMA;
    }
    const uint8_t *keep = kt ? kt->data : NULL;   /* (n_tok) */

    /* the variants, stacked as rows: clean, spliced (recon where keep), spliced everywhere (recon
     * at every token: the figures without outlier filtering; only when keep marks an outlier,
     * else it equals spliced), ablated (zeros where keep) */
    bool unf = recon && keep && memchr(keep, 0, n_tok) != NULL;
    int n_var = 1 + (recon != NULL) + unf + st->o->ablate;
    struct ablated ab = {NULL, 0};
    if (st->o->ablate) {
        if (proto_buf_reserve(&st->lw.arow, n_rows * sizeof(int32_t))) return PROTO_E_NOMEM;
        ab = ablated_rows(st->lw.arow.p, keep, n_rows, ctx);
    }
    size_t run_rows = n_rows * (n_var - st->o->ablate) + ab.n;   /* rows through the blocks */
    if ((err = work_reserve(&st->w, &st->m, run_rows * ctx, (int)ctx))) return err;
    variants_fill(st, st->w.x.p, acts, recon, keep, unf, ab, n_rows, ctx, d);
    for (int l = st->start; l < st->stop; l++) block_forward(&st->m, &st->w, l, run_rows, (int)ctx);

    size_t nc = ctx - 1, n_out = n_rows * nc;
    if (proto_buf_reserve(&st->lw.ce, 2 * n_var * n_out * sizeof(float))) return PROTO_E_NOMEM;
    float *ce = st->lw.ce.p, *kl = ce + n_var * n_out;   /* (n_var, n_rows, ctx-1) each */
    if ((err = loss_compute(&st->m, &st->w, &st->lw, tt->data, n_rows, (int)ctx, n_var, ab, ce, kl))) return err;

    /* the loss frame: tokens, the loss tensors, other keys carried; acts/recon/feats dropped */
    fr->kind = PROTO_KIND_LOSS;
    snprintf(fr->kind_name, sizeof fr->kind_name, "loss");
    proto_frame_del(fr, "acts");
    proto_frame_del(fr, "recon");
    proto_frame_del(fr, "feats");
    uint64_t shape[2] = {n_rows, nc};
    const float *outs[N_LOSS_OUT] = {ce};   /* in LOSS_KEY order */
    int var = 1;
    if (recon) { outs[1] = ce + var * n_out; outs[2] = kl + var * n_out; var++; }
    if (unf) { outs[5] = ce + var * n_out; outs[6] = kl + var * n_out; var++; }
    else if (recon && keep) { outs[5] = outs[1]; outs[6] = outs[2]; }   /* no outlier in this frame */
    if (st->o->ablate) { outs[3] = ce + var * n_out; outs[4] = kl + var * n_out; }
    for (int k = 0; k < N_LOSS_OUT; k++) {
        if (!outs[k]) continue;
        for (size_t i = 0; i < n_out; i++) if (!isfinite(outs[k][i])) st->nonfinite_loss[k]++;
        if ((err = proto_frame_set_tensor(fr, LOSS_KEY[k], PROTO_F32, 2, shape, outs[k]))) return err;
    }
    st->n_rows += n_rows;
    st->n_tokens += n_tok;
    return proto_writer_put(w, fr);
}

static int process_frame(struct state *st, struct proto_frame *fr, struct proto_writer *w)
{
    double t0 = proto_now();
    int err;
    if (fr->kind == PROTO_KIND_OTHER) return proto_writer_put(w, fr);   /* unknown kinds pass through */
    if (st->o->hook_name) {
        if (fr->kind != PROTO_KIND_TOKENS) {
            proto_set_detail("frame %llu: a %s frame; --hook reads tokens frames", (unsigned long long)fr->seq, fr->kind_name);
            return PROTO_E_SCHEMA;
        }
        err = process_tokens(st, fr, w);
    } else {
        if (fr->kind != PROTO_KIND_ACTS) {
            proto_set_detail("frame %llu: a %s frame; --from reads acts frames", (unsigned long long)fr->seq, fr->kind_name);
            return PROTO_E_SCHEMA;
        }
        err = process_acts(st, fr, w);
    }
    st->seconds += proto_now() - t0;
    return err;
}


/* End meta: upstream counts, this stage's time and non-finite counts (also on stderr). */
static int write_end_meta(struct state *st, struct proto_frame *end, struct proto_writer *w)
{
    int err;
    /* the time under its own key per mode, so the --hook stage's time survives the --from one */
    const char *sec_key = st->o->hook_name ? "seconds.sf-forward" : "seconds.sf-forward --loss";
    if ((err = proto_writer_carry_end_meta(w, end)) || (err = proto_writer_end_meta(w, sec_key, st->seconds)) ||
        (err = proto_writer_end_meta(w, "nonfinite_tokens", (double)st->n_nonfinite)))
        return err;
    if (st->n_nonfinite)
        proto_warn("%llu of %llu tokens have non-finite %s", (unsigned long long)st->n_nonfinite,
                   (unsigned long long)st->n_tokens, st->o->hook_name ? "activations" : "input activations");
    if (st->o->hook_name) return PROTO_OK;
    for (int k = 0; k < N_LOSS_OUT; k++) {
        char key[48];
        snprintf(key, sizeof key, "nonfinite_%s", LOSS_KEY[k]);
        if (k == 0 || (k < 3 && st->nonfinite_loss[1] + st->nonfinite_loss[2]) || st->nonfinite_loss[k])
            if ((err = proto_writer_end_meta(w, key, (double)st->nonfinite_loss[k]))) return err;
        if (st->nonfinite_loss[k])
            proto_warn("%llu per-token %s values are not finite", (unsigned long long)st->nonfinite_loss[k], LOSS_KEY[k]);
    }
    return PROTO_OK;
}

/* Header: check hook / d_model against the upstream meta; add model, hook, d_model. */
static int write_header(struct state *st, const struct proto_frame *hdr, struct proto_writer *w, int argc, char **argv)
{
    const struct model *m = &st->m;
    const struct proto_value *mv = proto_frame_get((struct proto_frame *)hdr, "meta");
    const msgpack_object *meta = mv && mv->type == PROTO_V_OBJ ? &mv->obj : NULL;
    char hook[256];
    uint64_t d_model;
    int err;
    if (meta) proto_meta_uint(meta, "total_rows", &st->total_rows);
    if (st->o->from_name && meta) {
        if ((err = proto_hook_select(meta, st->o->from_name, &st->multi))) return err;
        if (!st->multi && proto_meta_str(meta, "hook", hook, sizeof hook) == PROTO_OK && strcmp(hook, st->o->from_name) != 0) {
            proto_set_detail("header: the stream's hook is %s, --from is %s", hook, st->o->from_name);
            return PROTO_E_MISMATCH;
        }
        if (proto_meta_uint(meta, "d_model", &d_model) == PROTO_OK && d_model != (uint64_t)m->c.d_model) {
            proto_set_detail("header: d_model %llu does not match the model's hidden_size %d", (unsigned long long)d_model,
                             m->c.d_model);
            return PROTO_E_MISMATCH;
        }
    }
    /* the hooks written: --hook's list, or --from's hook (a multi-hook stream keeps its list: carried) */
    const char *hooks = st->o->hook_name ? st->hl.joined : st->multi ? NULL : st->o->from_name;
    struct proto_meta pm;
    proto_meta_init(&pm, meta, argc, argv);
    if (!(err = proto_meta_set_str(&pm, "model", m->hf->name)) &&
        !(err = proto_meta_set_str(&pm, "model_path", m->hf->dir)) &&
        !(err = proto_meta_set_str(&pm, "architecture", proto_hf_arch_name(m->c.arch))) &&
        (!hooks || !(err = proto_meta_set_str(&pm, "hook", hooks))) &&
        !(err = proto_meta_set_uint(&pm, "d_model", (uint64_t)m->c.d_model)) &&
        !(err = proto_meta_set_uint(&pm, "vocab_size", (uint64_t)m->vocab)))
        err = proto_writer_header(w, &pm);
    proto_meta_destroy(&pm);
    return err;
}

/* ---------------------------------------------------------------------------------------- */
/* command line */

static void usage(FILE *fp)
{
    fprintf(fp,
        "usage: sf-forward --model DIR --hook blocks.L.hook_resid_pre|post[,...]|all [options]\n"
        "       sf-forward --model DIR --from blocks.L.hook_resid_pre|post --loss [--ablate] [options]\n"
        "Runs a Hugging Face checkpoint (DIR/config.json, DIR/model.safetensors or shards listed in\n"
        "DIR/model.safetensors.index.json; f32/f16/bf16) in float32. Architectures: LlamaForCausalLM,\n"
        "MistralForCausalLM (GQA, sliding window), GemmaForCausalLM (v1).\n"
        "  --hook H: tokens frames in, acts frames out: the residual stream at H (TransformerLens\n"
        "    names: blocks.L.hook_resid_pre is the input of block L, hook_resid_post its output, before\n"
        "    the final norm) as acts [rows, ctx, d_model]; the frame's other keys are carried. Only the\n"
        "    blocks up to H run and only their weights are read. Several hooks (--hook A,B or --hook\n"
        "    repeated; all = blocks.0.hook_resid_pre and every block's hook_resid_post): one pass to\n"
        "    the deepest, one acts frame per hook per tokens frame in network order (a multi-hook\n"
        "    stream; the header's hook lists them; sf-cat --hook H selects one).\n"
        "  --from H --loss: acts frames at H in (from --hook H, maybe with keep and recon), loss frames\n"
        "    out: per-token f32 [rows, ctx-1] ce_clean (nats, position t predicts token t+1); with a\n"
        "    recon tensor also ce_spliced and kl_spliced (recon where keep is 1, everywhere without\n"
        "    keep; with keep also ce_spliced_unfiltered and kl_spliced_unfiltered: recon at every\n"
        "    token, the figures without outlier filtering); with --ablate ce_ablated and kl_ablated\n"
        "    (zeros where keep is 1). kl_* is\n"
        "    KL(clean || patched) per token. acts, recon and feats are dropped, other keys carried.\n"
        "    Non-finite values are counted in the end frame's meta (nonfinite_*) and on stderr.\n"
        "End frame meta: upstream counts carried, plus nonfinite_tokens (acts with a non-finite value)\n"
        "and seconds.sf-forward (--hook) or seconds.sf-forward --loss (--from): compute time.\n"
        "\n"
        "options:\n"
        "  --model DIR           the checkpoint directory (required; may also be the operand)\n"
        "  --hook H[,H...]|all   mode 1: run to hook H (or to each of several, in one pass)\n"
        "  --from H --loss       mode 2: run from hook H to the loss (frames at other hooks of a\n"
        "                        multi-hook stream pass through)\n"
        "  --ablate              mode 2: also the zero-ablation loss\n"
        "  --out-dtype T         acts dtype: f32 (default), bf16, f16\n"
        "  --vocab-limit N       use only the first N vocabulary ids (a finetune's added rows cut off);\n"
        "                        a token id >= N is an error\n"
        "  --cache-mb N          keep f32 copies of bf16/f16 weights (layer by layer, then the\n"
        "                        unembedding) while they fit in N MiB (default: an eighth of the\n"
        "                        memory, at most a quarter of the available memory: pipelines run\n"
        "                        up to four sf-forward at once); the rest is converted per layer\n"
        "                        and frame (0: never cache). Converted weights are not kept twice:\n"
        "                        the resident size is about the cache plus one layer\n"
        "Memory: the weights are mmapped (plus the f32 cache); work buffers take about\n"
        "6·rows·ctx·d_model floats per frame (with --from times the variants: clean, spliced, spliced\n"
        "at every token when keep marks an outlier, and --ablate's rows that have an outlier) plus\n"
        "128 MiB for the MLP and 128 MiB for a vocabulary chunk of logits.\n\n");
    proto_cli_help_common(fp);
    fprintf(fp,
        "\nexamples:\n"
        "  sf-tokenize --tokenizer M --ctx 128 data.jsonl | sf-forward --model M --hook blocks.6.hook_resid_post > acts.sf\n"
        "  sf-forward --model M --hook blocks.2.hook_resid_post --out-dtype bf16 -i tok.sf -o acts.sf.zst\n"
        "  sf-encode --sae SAE --splice -i acts.sf | sf-forward --model M --from blocks.2.hook_resid_post --loss --ablate \\\n"
        "      | sf-cat --summary\n"
        "  sf-forward --model FT --vocab-limit 32000 --hook blocks.16.hook_resid_post -i tok.sf -o ft.sf\n"
        "  sf-forward --model M --hook all -i tok.sf | sf-cat --hook blocks.3.hook_resid_post | sf-cat --summary\n");
}

enum { OPT_MODEL = PROTO_OPT_FIRST_FREE, OPT_HOOK, OPT_FROM, OPT_LOSS, OPT_ABLATE, OPT_OUT_DTYPE, OPT_VOCAB_LIMIT,
       OPT_CACHE_MB };

static void parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        PROTO_CLI_LONGOPTS,
        {"model", required_argument, 0, OPT_MODEL},
        {"hook", required_argument, 0, OPT_HOOK},
        {"from", required_argument, 0, OPT_FROM},
        {"loss", no_argument, 0, OPT_LOSS},
        {"ablate", no_argument, 0, OPT_ABLATE},
        {"out-dtype", required_argument, 0, OPT_OUT_DTYPE},
        {"vocab-limit", required_argument, 0, OPT_VOCAB_LIMIT},
        {"cache-mb", required_argument, 0, OPT_CACHE_MB},
        {0, 0, 0, 0},
    };
    const char *dtype = NULL;
    int c;
    while ((c = getopt_long(argc, argv, PROTO_CLI_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case OPT_MODEL: o->model_dir = optarg; break;
        case OPT_HOOK:
            if (o->n_hook_args == PROTO_MAX_HOOKS) proto_usage_error("--hook: at most %d", PROTO_MAX_HOOKS);
            o->hook_args[o->n_hook_args++] = optarg;
            if (!o->hook_name) o->hook_name = optarg;
            break;
        case OPT_FROM: o->from_name = optarg; break;
        case OPT_LOSS: o->loss = true; break;
        case OPT_ABLATE: o->ablate = true; break;
        case OPT_OUT_DTYPE: dtype = optarg; break;
        case OPT_VOCAB_LIMIT: o->vocab_limit = proto_parse_ll("--vocab-limit", optarg, 1, INT32_MAX); break;
        case OPT_CACHE_MB: o->cache_mb = proto_parse_ll("--cache-mb", optarg, 0, 1LL << 40); break;
        default: proto_cli_common(&o->cli, c, optarg, usage);
        }
    }
    if (optind < argc && !o->model_dir) o->model_dir = argv[optind++];
    if (optind < argc) proto_usage_error("unexpected operand '%s'", argv[optind]);
    if (!o->model_dir) proto_usage_error("--model DIR is required");
    if (!o->hook_name == !o->from_name) proto_usage_error("give exactly one of --hook H and --from H --loss");
    if (o->from_name && !proto_hook_parse(o->from_name, &o->hook))
        proto_usage_error("--from: '%s' is not blocks.L.hook_resid_pre or blocks.L.hook_resid_post", o->from_name);
    static struct hooklist names;   /* the names now; their range is checked with the model */
    if (o->n_hook_args && hooks_resolve(&names, o, 0)) proto_usage_error("%s", proto_detail());
    if (o->from_name && !o->loss) proto_usage_error("--from needs --loss (the only output from a hook is the loss)");
    if (o->hook_name && (o->loss || o->ablate)) proto_usage_error("--loss and --ablate go with --from, not --hook");
    if (dtype) {
        if (o->from_name) proto_usage_error("--out-dtype goes with --hook");
        if (strcmp(dtype, "f32") == 0) o->out_dtype = PROTO_F32;
        else if (strcmp(dtype, "bf16") == 0) o->out_dtype = PROTO_BF16;
        else if (strcmp(dtype, "f16") == 0) o->out_dtype = PROTO_F16;
        else proto_usage_error("--out-dtype: '%s' is not f32, bf16 or f16", dtype);
    }
    proto_cli_finish(&o->cli, true);
}

/* ---------------------------------------------------------------------------------------- */

#ifndef SF_FORWARD_NO_MAIN   /* tests/unit/test-vexp.c includes this file for its vector exp */
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
    if ((err = state_init(&st, &o)) != 0) { rc = proto_fail(err, o.model_dir); goto out; }
    proto_info("%s: %s d_model %d, %d layers (running %d..%d), %d heads / %d kv x %d, d_ff %d, vocab %d, %s weights",
               st.m.hf->name, proto_hf_arch_name(st.m.c.arch), st.m.c.d_model, st.m.c.n_layers, st.start, st.stop - 1,
               st.m.c.n_heads, st.m.c.n_kv_heads, st.m.c.head_dim, st.m.c.d_ff, st.m.vocab,
               st.m.cached ? "f32 in place or cached" : "partly converted per frame");
    if (!(in = proto_reader_open(o.cli.in, &err))) { rc = proto_fail(err, o.cli.in); goto out; }
    if (!(out = proto_writer_open(o.cli.out, &wo, &err))) { rc = proto_fail(err, o.cli.out); goto out; }
    if ((err = proto_reader_next(in, &fr)) != PROTO_OK) { rc = proto_fail(err == PROTO_END ? PROTO_E_SEQ : err, o.cli.in); goto out; }
    if ((err = write_header(&st, &fr, out, argc, argv)) != 0) {
        rc = proto_fail(err, proto_writer_error(out) ? o.cli.out : o.cli.in);
        goto out;
    }
    proto_progress_init(&prog, proto_cli_progress_on(&o.cli), "forward", st.total_rows);
    while ((err = proto_reader_next(in, &fr)) == PROTO_OK) {
        if ((err = process_frame(&st, &fr, out)) != 0) break;
        proto_progress_update(&prog, st.n_rows, st.n_tokens);
    }
    if (err != PROTO_END) { rc = proto_fail(err, proto_writer_error(out) ? o.cli.out : o.cli.in); goto out; }
    proto_progress_done(&prog, st.n_rows, st.n_tokens);
    proto_info("%llu rows, %llu tokens in %.3f s: %.1f tokens/s, %.2f GFLOP/s", (unsigned long long)st.n_rows,
               (unsigned long long)st.n_tokens, st.seconds, st.seconds > 0 ? st.n_tokens / st.seconds : 0.0,
               st.seconds > 0 ? st.w.flops / st.seconds / 1e9 : 0.0);
    if ((err = write_end_meta(&st, &fr, out)) != 0) { rc = proto_fail(err, o.cli.out); goto out; }
out:
    if (out && (err = proto_writer_close(out, rc == PROTO_EXIT_OK)) != 0 && rc == PROTO_EXIT_OK)
        rc = proto_fail(err, o.cli.out);
    proto_reader_close(in);
    state_destroy(&st);
    return rc;
}
#endif
