/* sf-train - train a sparse autoencoder on an `acts` stream, write it in SAELens format.
 *
 * Reads acts frames (-i), holds up to --max-tokens of their activations in memory (tokens with
 * keep = 0 and non-finite tokens are left out), then trains with Adam on shuffled batches of
 * --batch tokens for --steps (or --epochs). Architectures: SAELens "standard" ReLU with the L1
 * penalty scaled by the decoder row norms (the "anthropic" style: loss Σ_d(x − x̂)² +
 * λ·Σ_j f_j·‖W_dec[j]‖, λ warmed up linearly), or TopK (--k). --init-from SAE_DIR continues
 * from an existing SAE (its cfg decides the architecture). Writes DIR/cfg.json (the key set of
 * SAELens 3.22.2), DIR/sae_weights.safetensors (W_enc [d_in, d_sae], b_enc, W_dec [d_sae,
 * d_in], b_dec; f32) and DIR/sparsity.safetensors (log10 feature density + 1e-10 over the held
 * tokens, final weights). Progress (loss, L0, explained variance, dead count) on stderr.
 */
#include <cblas.h>
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "proto.h"
#include "sae-dir.h"

/* ---------------------------------------------------------------------------------------- */
/* options */

enum { OPT_INIT_FROM = PROTO_OPT_FIRST_FREE, OPT_D_SAE, OPT_K, OPT_L1, OPT_L1_WARMUP, OPT_LR,
       OPT_LR_DECAY, OPT_BATCH, OPT_STEPS, OPT_EPOCHS, OPT_MAX_TOKENS, OPT_SEED, OPT_DEC_NORM,
       OPT_NO_BDEC_IN, OPT_NORMALIZE, OPT_LOG_EVERY, OPT_DEAD_WINDOW, OPT_MODEL_NAME, OPT_DATASET,
       OPT_ALL_TOKENS };

struct opts {
    struct proto_cli cli;
    const char *init_from;      /* --init-from SAE_DIR */
    long long d_sae;            /* --d-sae N (0: 8 x d_in) */
    int k;                      /* --k K: TopK; 0 = ReLU */
    double l1;                  /* --l1 coefficient (ReLU) */
    long long l1_warmup;        /* --l1-warmup steps */
    double lr;                  /* --lr */
    double lr_decay;            /* --lr-decay F: linear decay to 0 over the last F of the steps */
    long long batch;            /* --batch tokens per step */
    long long steps;            /* --steps (0: from --epochs) */
    double epochs;              /* --epochs */
    long long max_tokens;       /* --max-tokens held in memory */
    unsigned long long seed;    /* --seed */
    double dec_norm;            /* --dec-init-norm: initial norm of the decoder rows */
    bool no_bdec_in;            /* --no-b-dec-in: apply_b_dec_to_input false */
    const char *normalize;      /* --normalize none|constant_norm_rescale */
    long long log_every;        /* --log-every steps */
    long long dead_window;      /* --dead-window tokens */
    const char *model_name;     /* --model-name (cfg model_name) */
    const char *dataset;        /* --dataset-path (cfg dataset_path) */
    bool all_tokens;            /* --all-tokens: also train on keep = 0 tokens */
};

static struct opts opts_default(const char *argv0)
{
    struct opts o = {0};
    proto_cli_init_blas(&o.cli, argv0);
    o.l1 = 5.0; o.l1_warmup = 100; o.lr = 1e-3; o.lr_decay = 0.2; o.batch = 4096;
    o.epochs = 1; o.max_tokens = 1 << 20; o.seed = 0; o.dec_norm = 0.1; o.log_every = 100;
    o.dead_window = 200000;
    return o;
}

/* ---------------------------------------------------------------------------------------- */
/* the SAE */

struct sae {
    int d_in, d_sae;
    int k;                      /* 0: ReLU, else TopK */
    bool b_dec_in;              /* apply_b_dec_to_input */
    bool rescale;               /* normalize_activations constant_norm_rescale */
    float *W_enc;               // (d_in, d_sae)
    float *b_enc;               // (d_sae)
    float *W_dec;               // (d_sae, d_in)
    float *b_dec;               // (d_in)
    cJSON *cfg;                 /* the cfg.json to write (owned) */
};

static void sae_destroy(struct sae *s)
{
    free(s->W_enc); free(s->b_enc); free(s->W_dec); free(s->b_dec);
    cJSON_Delete(s->cfg);
    memset(s, 0, sizeof *s);
}

static int sae_alloc(struct sae *s)
{
    size_t n = (size_t)s->d_in * s->d_sae;
    s->W_enc = proto_aligned_alloc(n * sizeof(float));
    s->W_dec = proto_aligned_alloc(n * sizeof(float));
    s->b_enc = proto_aligned_alloc((size_t)s->d_sae * sizeof(float));
    s->b_dec = proto_aligned_alloc((size_t)s->d_in * sizeof(float));
    if (!s->W_enc || !s->W_dec || !s->b_enc || !s->b_dec) return PROTO_E_NOMEM;
    return PROTO_OK;
}


/* Fresh SAE: W_dec rows random directions of norm dec_norm, W_enc = W_decᵀ, b_enc = 0,
 * b_dec = the mean of the training activations. */
static void sae_init_fresh(struct sae *s, const float *x, size_t n_tok, double dec_norm, uint64_t seed)
{
    const int d = s->d_in, m = s->d_sae;
    uint64_t r = seed * 0x2545f4914f6cdd1dULL + 1;
    for (int j = 0; j < m; j++) {
        float *w = s->W_dec + (size_t)j * d;   // (d_in)
        double nn = 0;
        for (int i = 0; i < d; i++) { w[i] = (float)proto_rng_normal(&r); nn += (double)w[i] * w[i]; }
        double sc = dec_norm / sqrt(nn > 0 ? nn : 1);
        for (int i = 0; i < d; i++) w[i] = (float)(w[i] * sc);
    }
    for (int j = 0; j < m; j++)
        for (int i = 0; i < d; i++) s->W_enc[(size_t)i * m + j] = s->W_dec[(size_t)j * d + i];
    memset(s->b_enc, 0, (size_t)m * sizeof(float));
    double *mu = calloc((size_t)d, sizeof *mu);   /* mean in double */
    for (size_t t = 0; t < n_tok && mu; t++)
        for (int i = 0; i < d; i++) mu[i] += x[t * d + i];
    for (int i = 0; i < d; i++) s->b_dec[i] = mu && n_tok ? (float)(mu[i] / n_tok) : 0;
    free(mu);
}

/* ---------------------------------------------------------------------------------------- */
/* safetensors and cfg files */

static int write_text(const char *path, const char *text)
{
    FILE *f = fopen(path, "w");
    if (!f) { proto_set_detail("%s: %s", path, strerror(errno)); return PROTO_E_IO; }
    errno = 0;
    int bad = fputs(text, f) == EOF || fputc('\n', f) == EOF || ferror(f), e = errno;
    if (fclose(f) != 0 && !bad) { bad = 1; e = errno; }
    if (bad) { proto_set_detail("%s: %s", path, strerror(e ? e : EIO)); return PROTO_E_IO; }
    return PROTO_OK;
}

/* What the stream told us, for cfg.json. */
struct provenance { char hook[128]; char model[512]; char dataset[512]; uint64_t ctx; int bos; };

static const char *base_name(const char *p)
{
    size_t n = strlen(p);
    while (n > 1 && p[n - 1] == '/') n--;
    static char buf[512];
    snprintf(buf, sizeof buf, "%.*s", (int)n, p);
    const char *s = strrchr(buf, '/');
    return s ? s + 1 : buf;
}

/* cfg.json with exactly the keys of SAELens 3.22.2 SAEConfig.to_dict(). */
static cJSON *cfg_build(const struct sae *s, const struct provenance *pv, const struct opts *o)
{
    cJSON *c = cJSON_CreateObject();
    int layer = -1;
    sscanf(pv->hook, "blocks.%d.", &layer);
    cJSON_AddStringToObject(c, "architecture", "standard");
    cJSON_AddNumberToObject(c, "d_in", s->d_in);
    cJSON_AddNumberToObject(c, "d_sae", s->d_sae);
    cJSON_AddStringToObject(c, "dtype", "float32");
    cJSON_AddStringToObject(c, "device", "cpu");
    cJSON_AddStringToObject(c, "model_name", o->model_name ? o->model_name : pv->model[0] ? base_name(pv->model) : "");
    cJSON_AddStringToObject(c, "hook_name", pv->hook);
    if (layer >= 0) cJSON_AddNumberToObject(c, "hook_layer", layer); else cJSON_AddNullToObject(c, "hook_layer");
    cJSON_AddNullToObject(c, "hook_head_index");
    cJSON_AddStringToObject(c, "activation_fn_str", s->k ? "topk" : "relu");
    cJSON *kw = cJSON_AddObjectToObject(c, "activation_fn_kwargs");
    if (s->k) cJSON_AddNumberToObject(kw, "k", s->k);
    cJSON_AddBoolToObject(c, "apply_b_dec_to_input", s->b_dec_in);
    cJSON_AddBoolToObject(c, "finetuning_scaling_factor", 0);
    cJSON_AddNullToObject(c, "sae_lens_training_version");
    if (pv->bos >= 0) cJSON_AddBoolToObject(c, "prepend_bos", pv->bos); else cJSON_AddBoolToObject(c, "prepend_bos", 1);
    cJSON_AddStringToObject(c, "dataset_path", o->dataset ? o->dataset : pv->dataset);
    cJSON_AddBoolToObject(c, "dataset_trust_remote_code", 1);
    cJSON_AddNumberToObject(c, "context_size", (double)pv->ctx);
    cJSON_AddStringToObject(c, "normalize_activations", s->rescale ? "constant_norm_rescale" : "none");
    cJSON_AddNullToObject(c, "neuronpedia_id");
    cJSON_AddObjectToObject(c, "model_from_pretrained_kwargs");
    return c;
}

/* Writes the SAE directory whole or not at all: every file goes to DIR/NAME.tmp-XXXXXX first;
 * only when all three are written (and fsynced) are they renamed into place, the weights first and
 * cfg.json last, so a failed save (full disk) leaves no partial file and any older SAE in DIR as it
 * was. names[i] are the final names; writing file i is write_one(i, tmp). */
static const char *const save_names[3] = {"sae_weights.safetensors", "sparsity.safetensors", "cfg.json"};

static int save_one(const struct sae *s, const float *log_density, const char *text, int i, const char *tmp)
{
    if (i == 2) return write_text(tmp, text);
    if (i == 1) {
        struct proto_st_entry sp = {"sparsity", log_density, 1, {(uint64_t)s->d_sae, 0}};
        return proto_st_write(tmp, &sp, 1, PROTO_F32);
    }
    struct proto_st_entry w[4] = {
        {"W_dec", s->W_dec, 2, {(uint64_t)s->d_sae, (uint64_t)s->d_in}},
        {"W_enc", s->W_enc, 2, {(uint64_t)s->d_in, (uint64_t)s->d_sae}},
        {"b_dec", s->b_dec, 1, {(uint64_t)s->d_in, 0}},
        {"b_enc", s->b_enc, 1, {(uint64_t)s->d_sae, 0}},
    };
    return proto_st_write(tmp, w, 4, PROTO_F32);
}

static int sae_save(const struct sae *s, const char *dir, const float *log_density /* (d_sae) */)
{
    char path[3][4200], tmp[3][4300];
    bool created = mkdir(dir, 0777) == 0;
    if (!created && errno != EEXIST) { proto_set_detail("%s: %s", dir, strerror(errno)); return PROTO_E_IO; }
    char *text = cJSON_Print(s->cfg);
    int err = text ? PROTO_OK : PROTO_E_NOMEM, made = 0;
    for (; made < 3 && !err; made++) {
        snprintf(path[made], sizeof path[made], "%s/%s", dir, save_names[made]);
        if ((err = proto_tmp_create(path[made], tmp[made], sizeof tmp[made]))) break;
        if ((err = save_one(s, log_density, text, made, tmp[made]))) {   /* name the file, not its temp */
            char d[1024];
            size_t n = strlen(tmp[made]);
            snprintf(d, sizeof d, "%s", proto_detail());
            if (strncmp(d, tmp[made], n) == 0) proto_set_detail("%s%s", path[made], d + n);
        }
    }
    free(text);
    for (int i = 0; i < 3 && !err; i++) err = proto_tmp_commit(tmp[i], path[i]);
    if (err) {   /* what is not renamed yet goes (commit removes its own temp on failure) */
        for (int i = 0; i < made; i++) unlink(tmp[i]);
        if (created) rmdir(dir);   /* only if empty */
    }
    return err;
}

/* --init-from: an existing SAELens SAE the trainer can continue (standard architecture, relu or
 * topk, normalize_activations none or constant_norm_rescale, no finetuning scaling factor). s
 * takes its weights and its cfg (written back as it came). */
static int sae_load(struct sae *s, const char *dir)
{
    struct proto_sae in;
    int err = proto_sae_load(dir, NAN, &in);
    if (err) return err;
    err = PROTO_E_FORMAT;
    if (in.arch != PROTO_SAE_ARCH_STANDARD)
        proto_set_detail("%s/cfg.json: architecture '%s' cannot be trained (standard only)", dir,
                         proto_sae_arch_name(in.arch));
    else if (in.act == PROTO_SAE_ACT_TANH_RELU)
        proto_set_detail("%s/cfg.json: activation '%s' cannot be trained (relu, topk)", dir, proto_sae_act_name(in.act));
    else if (in.norm != PROTO_SAE_NORM_NONE && in.norm != PROTO_SAE_NORM_CONSTANT_RESCALE)
        proto_set_detail("%s/cfg.json: normalize_activations '%s' cannot be trained (none, constant_norm_rescale)",
                         dir, proto_sae_norm_name(in.norm));
    else if (in.ft_scale)
        proto_set_detail("%s/cfg.json: a finetuning scaling factor cannot be trained", dir);
    else
        err = PROTO_OK;
    if (!err) {
        s->d_in = in.d_in; s->d_sae = in.d_sae;
        s->k = in.act == PROTO_SAE_ACT_TOPK ? in.k : 0;
        s->b_dec_in = in.apply_b_dec;
        s->rescale = in.norm == PROTO_SAE_NORM_CONSTANT_RESCALE;
        s->W_enc = in.W_enc; s->b_enc = in.b_enc; s->W_dec = in.W_dec; s->b_dec = in.b_dec; s->cfg = in.cfg;
        in.W_enc = in.b_enc = in.W_dec = in.b_dec = NULL;   /* now s's */
        in.cfg = NULL;
    }
    proto_sae_destroy(&in);
    return err;
}

/* ---------------------------------------------------------------------------------------- */
/* the activation buffer */

struct buffer {
    float *x;                   // (n_tok, d)
    size_t n_tok, cap, limit;   /* held, allocated, --max-tokens */
    int d;
    uint64_t skipped_keep, skipped_nonfinite, seen;
    struct provenance pv;
    bool full;
};

static int buffer_add_frame(struct buffer *b, const struct proto_frame *fr, const struct opts *o, struct proto_buf *scratch)
{
    int err;
    const struct proto_tensor *a = proto_frame_acts(fr, &err);
    if (!a) return err;
    if (!b->d) { b->d = (int)a->shape[2]; b->limit = (size_t)o->max_tokens; }
    if ((int)a->shape[2] != b->d) {
        proto_set_detail("frame %llu: acts d_model %llu does not match the stream's %d", (unsigned long long)fr->seq,
                         (unsigned long long)a->shape[2], b->d);
        return PROTO_E_MISMATCH;
    }
    if (!b->pv.hook[0]) proto_frame_str(fr, "hook", b->pv.hook, sizeof b->pv.hook);
    if (!b->pv.ctx) b->pv.ctx = a->shape[1];
    const float *x = proto_tensor_f32(a, scratch, &err);   // (rows*ctx, d)
    if (!x) return err;
    const struct proto_tensor *keep = proto_frame_tensor(fr, "keep");   // (rows, ctx) u8
    uint64_t n = a->shape[0] * a->shape[1];
    /* grow by doubling, up to --max-tokens */
    if (b->n_tok + n > b->cap && b->cap < b->limit) {
        size_t nc = b->cap ? b->cap : 4096;
        while (nc < b->n_tok + n && nc < b->limit) nc *= 2;
        if (nc > b->limit) nc = b->limit;
        float *nx = proto_aligned_alloc(nc * b->d * sizeof(float));
        if (!nx) { proto_set_detail("%zu tokens x %d floats", nc, b->d); return PROTO_E_NOMEM; }
        if (b->n_tok) memcpy(nx, b->x, b->n_tok * b->d * sizeof(float));
        free(b->x);
        b->x = nx; b->cap = nc;
    }
    for (uint64_t t = 0; t < n && b->n_tok < b->cap; t++) {
        b->seen++;
        if (keep && !o->all_tokens && keep->dtype == PROTO_U8 && !((const uint8_t *)keep->data)[t]) { b->skipped_keep++; continue; }
        const float *r = x + t * b->d;
        bool fin = true;
        for (int i = 0; i < b->d; i++) fin &= isfinite(r[i]) != 0;
        if (!fin) { b->skipped_nonfinite++; continue; }
        memcpy(b->x + b->n_tok * b->d, r, (size_t)b->d * sizeof(float));
        b->n_tok++;
    }
    b->full = b->n_tok >= b->limit;
    return PROTO_OK;
}

static void header_provenance(struct provenance *pv, const struct proto_frame *hdr)
{
    const struct proto_value *mv = proto_frame_get((struct proto_frame *)hdr, "meta");
    pv->bos = -1;
    if (!mv || mv->type != PROTO_V_OBJ) return;
    const msgpack_object *m = &mv->obj;
    bool bos;
    proto_meta_str(m, "hook", pv->hook, sizeof pv->hook);
    proto_meta_str(m, "model", pv->model, sizeof pv->model);
    proto_meta_uint(m, "ctx", &pv->ctx);
    if (proto_meta_bool(m, "bos", &bos) == PROTO_OK) pv->bos = bos;
    /* the first input file named in sf-tokenize's args, when there is one */
    const msgpack_object *stages = proto_meta_get(m, "stages");
    if (stages && stages->type == MSGPACK_OBJECT_ARRAY && stages->via.array.size > 0) {
        char args[2048];
        if (proto_meta_str(&stages->via.array.ptr[0], "args", args, sizeof args) == PROTO_OK) {
            const char *last = strrchr(args, ' ');
            last = last ? last + 1 : args;
            if (strstr(last, ".json") || strstr(last, ".txt")) snprintf(pv->dataset, sizeof pv->dataset, "%s", base_name(last));
        }
    }
}

/* constant_norm_rescale: train on x·sqrt(d)/‖x‖ */
static void buffer_rescale(struct buffer *b)
{
    for (size_t t = 0; t < b->n_tok; t++) {
        float *r = b->x + t * b->d;
        double nn = 0;
        for (int i = 0; i < b->d; i++) nn += (double)r[i] * r[i];
        float c = (float)(sqrt((double)b->d) / fmax(sqrt(nn), 1e-12));
        for (int i = 0; i < b->d; i++) r[i] *= c;
    }
}

/* ---------------------------------------------------------------------------------------- */
/* training */

struct adam { float *m, *v; size_t n; };

struct trainer {
    struct sae *s;
    const struct opts *o;
    int B;                      /* batch tokens */
    float *X;                   // (B, d)   the batch
    float *U;                   // (B, d)   encoder input: X − b_dec (or X)
    float *PRE;                 // (B, m)   pre-activations; dPRE in a dense backward pass
    float *Fd;                  // (B, m)   dense feature activations (dense passes only)
    /* the active features of each token (f > 0), CSR: row b holds fidx/fval[fptr[b]..fptr[b+1]) */
    uint32_t *fptr;             // (B + 1)
    uint32_t *fidx;             // (B * m)  at most
    float *fval;                // (B * m)
    float *XH;                  // (B, d)   reconstruction; becomes G = dL/dx̂
    float *gW_enc;              // (d, m)
    float *gW_encT;             // (m, d)   the same, accumulated row by row
    float *gW_dec;              // (m, d)
    float *gb_enc;              // (m)
    float *gb_dec;              // (d)
    float *dec_norm;            // (m)   ‖W_dec[j]‖
    float *fsum;                // (m)   Σ_b F[b, j]
    float *tmp;                 // (m)   topk scratch
    struct adam a_W_enc, a_b_enc, a_W_dec, a_b_dec;
    uint64_t *last_fired;       // (m)   token count when feature j last fired
    uint64_t tokens_done;
};

static int adam_init(struct adam *a, size_t n)
{
    a->n = n;
    a->m = calloc(n, sizeof(float)); a->v = calloc(n, sizeof(float));
    return a->m && a->v ? PROTO_OK : PROTO_E_NOMEM;
}
static void adam_destroy(struct adam *a) { free(a->m); free(a->v); }

/* w -= lr · m̂ / (sqrt(v̂) + eps), with bias-corrected moments (β1 0.9, β2 0.999, eps 1e-8) */
static void adam_step(struct adam *a, float *w, const float *g, double lr, long long step)
{
    const float b1 = 0.9f, b2 = 0.999f, eps = 1e-8f;
    const float c1 = (float)(1 - pow(b1, (double)step)), c2 = (float)(1 - pow(b2, (double)step));
    const float lr_t = (float)lr * sqrtf(c2) / c1;
    const float eps_t = eps * sqrtf(c2);
    for (size_t i = 0; i < a->n; i++) {
        a->m[i] = b1 * a->m[i] + (1 - b1) * g[i];
        a->v[i] = b2 * a->v[i] + (1 - b2) * g[i] * g[i];
        w[i] -= lr_t * a->m[i] / (sqrtf(a->v[i]) + eps_t);
    }
}

static void trainer_destroy(struct trainer *t)
{
    free(t->X); free(t->U); free(t->PRE); free(t->fptr); free(t->fidx); free(t->fval); free(t->XH); free(t->gW_encT); free(t->Fd);
    free(t->gW_enc); free(t->gW_dec); free(t->gb_enc); free(t->gb_dec); free(t->dec_norm);
    free(t->fsum); free(t->tmp); free(t->last_fired);
    adam_destroy(&t->a_W_enc); adam_destroy(&t->a_b_enc); adam_destroy(&t->a_W_dec); adam_destroy(&t->a_b_dec);
}

static int trainer_init(struct trainer *t, struct sae *s, const struct opts *o, int B)
{
    const size_t d = s->d_in, m = s->d_sae;
    t->s = s; t->o = o; t->B = B;
    t->X = proto_aligned_alloc(B * d * 4); t->U = proto_aligned_alloc(B * d * 4);
    t->PRE = proto_aligned_alloc(B * m * 4); t->Fd = proto_aligned_alloc(B * m * 4);
    t->fptr = malloc((B + 1) * sizeof *t->fptr); t->fidx = malloc(B * m * sizeof *t->fidx); t->fval = malloc(B * m * 4);
    t->gW_encT = proto_aligned_alloc(d * m * 4);
    t->XH = proto_aligned_alloc(B * d * 4);
    t->gW_enc = proto_aligned_alloc(d * m * 4); t->gW_dec = proto_aligned_alloc(d * m * 4);
    t->gb_enc = proto_aligned_alloc(m * 4); t->gb_dec = proto_aligned_alloc(d * 4);
    t->dec_norm = proto_aligned_alloc(m * 4); t->fsum = proto_aligned_alloc(m * 4); t->tmp = proto_aligned_alloc(m * 4);
    t->last_fired = calloc(m, sizeof *t->last_fired);
    if (!t->X || !t->U || !t->PRE || !t->fptr || !t->fidx || !t->fval || !t->gW_encT || !t->Fd || !t->XH || !t->gW_enc || !t->gW_dec || !t->gb_enc || !t->gb_dec ||
        !t->dec_norm || !t->fsum || !t->tmp || !t->last_fired) return PROTO_E_NOMEM;
    int err;
    if ((err = adam_init(&t->a_W_enc, d * m)) || (err = adam_init(&t->a_b_enc, m)) ||
        (err = adam_init(&t->a_W_dec, d * m)) || (err = adam_init(&t->a_b_dec, d))) return err;
    return PROTO_OK;
}

/* The k-th largest value of v (n): a min-heap of the k largest seen so far, in tmp (k). Most
 * values fail the comparison with the root, so this is about one pass over v. */
static float kth_largest(const float *v, int n, int k, float *heap)
{
    int h = 0;
    for (int i = 0; i < n; i++) {
        float x = v[i];
        if (h < k) {                              /* push, sift up */
            int c = h++;
            while (c > 0 && heap[(c - 1) / 2] > x) { heap[c] = heap[(c - 1) / 2]; c = (c - 1) / 2; }
            heap[c] = x;
        } else if (x > heap[0]) {                 /* replace the root, sift down */
            int c = 0;
            for (;;) {
                int l = 2 * c + 1, r = l + 1, sm = c;
                float vs = x;
                if (l < k && heap[l] < vs) { sm = l; vs = heap[l]; }
                if (r < k && heap[r] < vs) { sm = r; }
                if (sm == c) break;
                heap[c] = heap[sm]; c = sm;
            }
            heap[c] = x;
        }
    }
    return heap[0];
}

/* Encode n rows of X (n, d): t->U, t->PRE and the active features (fptr, fidx, fval). */
static void encode(struct trainer *t, const float *X, int n)
{
    const struct sae *s = t->s;
    const int d = s->d_in, m = s->d_sae;
    for (int b = 0; b < n; b++)
        for (int i = 0; i < d; i++) t->U[(size_t)b * d + i] = X[(size_t)b * d + i] - (s->b_dec_in ? s->b_dec[i] : 0);
    /* PRE(n, m) = U(n, d) · W_enc(d, m) + b_enc */
    cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, m, d, 1.0f, t->U, d, s->W_enc, m, 0.0f, t->PRE, m);
    uint32_t nnz = 0;
    for (int b = 0; b < n; b++) {
        float *p = t->PRE + (size_t)b * m;
        for (int j = 0; j < m; j++) p[j] += s->b_enc[j];
        t->fptr[b] = nnz;
        if (!s->k) {
            for (int j = 0; j < m; j++) if (p[j] > 0) { t->fidx[nnz] = (uint32_t)j; t->fval[nnz++] = p[j]; }
            continue;
        }
        /* TopK: keep the k largest pre-activations (the first ones on ties), then ReLU */
        float th = kth_largest(p, m, s->k < m ? s->k : m, t->tmp);
        int above = 0;
        for (int j = 0; j < m; j++) above += p[j] > th;
        int ties = s->k - above;
        for (int j = 0; j < m; j++) {
            bool on = p[j] > th || (p[j] == th && ties-- > 0);
            if (on && p[j] > 0) { t->fidx[nnz] = (uint32_t)j; t->fval[nnz++] = p[j]; }
        }
    }
    t->fptr[n] = nnz;
}

/* Dense or sparse? Early in training (and for wide-open ReLU SAEs) many features fire: then
 * BLAS GEMMs over dense F beat the per-feature loops, whose cost is ∝ nnz·d. The crossover
 * (about 1 in 16 features active) is where 4 GEMMs at sgemm speed cost as much as 3 scalar
 * passes over the active features. */
static bool dense_pass(const struct trainer *t, int n) { return (uint64_t)t->fptr[n] * 16 > (uint64_t)n * t->s->d_sae; }

/* Fd(n, m) from the CSR activations */
static void densify(struct trainer *t, int n)
{
    const int m = t->s->d_sae;
    memset(t->Fd, 0, (size_t)n * m * sizeof(float));
    for (int b = 0; b < n; b++)
        for (uint32_t a = t->fptr[b]; a < t->fptr[b + 1]; a++) t->Fd[(size_t)b * m + t->fidx[a]] = t->fval[a];
}

/* XH(n, d) = F(n, m) · W_dec(m, d) + b_dec: a GEMM when dense, else over the active features
 * only (cost ∝ L0·d) */
static void decode(struct trainer *t, int n)
{
    const struct sae *s = t->s;
    const int d = s->d_in, m = s->d_sae;
    if (dense_pass(t, n)) {
        densify(t, n);
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasNoTrans, n, d, m, 1.0f, t->Fd, m, s->W_dec, d, 0.0f, t->XH, d);
        for (int b = 0; b < n; b++)
            for (int i = 0; i < d; i++) t->XH[(size_t)b * d + i] += s->b_dec[i];
        return;
    }
    for (int b = 0; b < n; b++) {
        float *xh = t->XH + (size_t)b * d;   // (d)
        memcpy(xh, s->b_dec, (size_t)d * sizeof *xh);
        for (uint32_t a = t->fptr[b]; a < t->fptr[b + 1]; a++) {
            const float f = t->fval[a], *w = s->W_dec + (size_t)t->fidx[a] * d;   // (d)
            for (int i = 0; i < d; i++) xh[i] += f * w[i];
        }
    }
}

/* Batch statistics in double: Σ_b Σ_d (x − x̂)², explained variance summed over tokens
 * (SAELens: per token 1 − Σ_d(x−x̂)²/Σ_d(x−μ)², μ the batch mean), L0 and L1 sums. */
struct stats { double mse, ev, l0, l1; long long n; };

static void batch_stats(const struct trainer *t, const float *X, int n, struct stats *st)
{
    const int d = t->s->d_in;
    double mu[4096];
    double *mup = d <= 4096 ? mu : calloc((size_t)d, sizeof *mup);
    if (!mup) return;
    for (int i = 0; i < d; i++) mup[i] = 0;
    for (int b = 0; b < n; b++) for (int i = 0; i < d; i++) mup[i] += X[(size_t)b * d + i];
    for (int i = 0; i < d; i++) mup[i] /= n;
    for (int b = 0; b < n; b++) {
        double se = 0, sv = 0;
        for (int i = 0; i < d; i++) {
            double e = (double)X[(size_t)b * d + i] - t->XH[(size_t)b * d + i], c = X[(size_t)b * d + i] - mup[i];
            se += e * e; sv += c * c;
        }
        st->mse += se;
        st->ev += sv > 0 ? 1 - se / sv : 0;
        st->l0 += t->fptr[b + 1] - t->fptr[b];
        for (uint32_t a = t->fptr[b]; a < t->fptr[b + 1]; a++) st->l1 += t->fval[a];
    }
    st->n += n;
    if (mup != mu) free(mup);
}

/* One Adam step on the batch in t->X. l1 = the current coefficient (0 for TopK). */
static void train_step(struct trainer *t, double l1, double lr, long long step, struct stats *st)
{
    struct sae *s = t->s;
    const int d = s->d_in, m = s->d_sae, B = t->B;
    encode(t, t->X, B);
    decode(t, B);
    batch_stats(t, t->X, B, st);

    /* G = dL/dx̂ = 2(x̂ − x)/B, in place of XH (loss: mean over tokens of Σ_d (x − x̂)²) */
    float *G = t->XH;   // (B, d)
    for (size_t i = 0; i < (size_t)B * d; i++) G[i] = 2.0f * (G[i] - t->X[i]) / B;
    for (int j = 0; j < m; j++) {
        double nn = 0;
        for (int i = 0; i < d; i++) nn += (double)s->W_dec[(size_t)j * d + i] * s->W_dec[(size_t)j * d + i];
        t->dec_norm[j] = (float)sqrt(nn);
    }
    /* Backward over the active features only (inactive ones have dPRE = 0), per active (b, j):
     *   dPRE[b,j] = G[b]·W_dec[j] + (λ/B)·‖W_dec[j]‖      (the L1 term: λ·f·‖W_dec[j]‖ / B)
     *   gb_enc[j] += dPRE[b,j];  gW_enc[:,j] += dPRE[b,j]·U[b];  gW_dec[j] += f[b,j]·G[b]
     * then gW_dec[j] += (λ/B)·Σ_b f[b,j] · W_dec[j]/‖W_dec[j]‖. Cost ∝ B·L0·d, not B·d_sae·d. */
    const float l1b = (float)(l1 / B);
    memset(t->fsum, 0, (size_t)m * sizeof(float));
    memset(t->gb_enc, 0, (size_t)m * sizeof(float));
    if (dense_pass(t, B)) {   /* decode() filled Fd */
        /* dPRE(B, m) = (G(B, d) · W_decᵀ + (λ/B)·‖W_dec[j]‖) ⊙ [f > 0], over PRE */
        float *dPRE = t->PRE;
        cblas_sgemm(CblasRowMajor, CblasNoTrans, CblasTrans, B, m, d, 1.0f, G, d, s->W_dec, d, 0.0f, dPRE, m);
        for (int b = 0; b < B; b++) {
            float *g = dPRE + (size_t)b * m;
            const float *f = t->Fd + (size_t)b * m;
            for (int j = 0; j < m; j++) {
                if (f[j] > 0) { g[j] += l1b * t->dec_norm[j]; t->fsum[j] += f[j]; t->last_fired[j] = t->tokens_done + B; }
                else g[j] = 0;
                t->gb_enc[j] += g[j];
            }
        }
        /* gW_enc(d, m) = Uᵀ(d, B) · dPRE(B, m);  gW_dec(m, d) = Fᵀ(m, B) · G(B, d) */
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, d, m, B, 1.0f, t->U, d, dPRE, m, 0.0f, t->gW_enc, m);
        cblas_sgemm(CblasRowMajor, CblasTrans, CblasNoTrans, m, d, B, 1.0f, t->Fd, m, G, d, 0.0f, t->gW_dec, d);
    } else {
    memset(t->gW_encT, 0, (size_t)m * d * sizeof(float));
    memset(t->gW_dec, 0, (size_t)m * d * sizeof(float));
    for (int b = 0; b < B; b++) {
        const float *g = G + (size_t)b * d, *u = t->U + (size_t)b * d;   // (d), (d)
        for (uint32_t a = t->fptr[b]; a < t->fptr[b + 1]; a++) {
            const uint32_t j = t->fidx[a];
            const float f = t->fval[a], *w = s->W_dec + (size_t)j * d;   // (d)
            float dp = 0;
            for (int i = 0; i < d; i++) dp += g[i] * w[i];
            dp += l1b * t->dec_norm[j];
            t->gb_enc[j] += dp; t->fsum[j] += f; t->last_fired[j] = t->tokens_done + B;
            float *ge = t->gW_encT + (size_t)j * d, *gd = t->gW_dec + (size_t)j * d;   // (d), (d)
            for (int i = 0; i < d; i++) { ge[i] += dp * u[i]; gd[i] += f * g[i]; }
        }
    }
    for (int j = 0; j < m; j++)
        for (int i = 0; i < d; i++) t->gW_enc[(size_t)i * m + j] = t->gW_encT[(size_t)j * d + i];
    }
    if (l1 > 0)
        for (int j = 0; j < m; j++) {
            if (t->fsum[j] == 0 || t->dec_norm[j] == 0) continue;
            float c = l1b * t->fsum[j] / t->dec_norm[j];
            for (int i = 0; i < d; i++) t->gW_dec[(size_t)j * d + i] += c * s->W_dec[(size_t)j * d + i];
        }
    /* gb_dec = Σ_b G_b − W_enc · gb_enc (the encoder sees x − b_dec) */
    for (int i = 0; i < d; i++) {
        double g = 0;
        for (int b = 0; b < B; b++) g += G[(size_t)b * d + i];
        t->gb_dec[i] = (float)g;
    }
    if (s->b_dec_in) cblas_sgemv(CblasRowMajor, CblasNoTrans, d, m, -1.0f, s->W_enc, m, t->gb_enc, 1, 1.0f, t->gb_dec, 1);

    adam_step(&t->a_W_enc, s->W_enc, t->gW_enc, lr, step);
    adam_step(&t->a_b_enc, s->b_enc, t->gb_enc, lr, step);
    adam_step(&t->a_W_dec, s->W_dec, t->gW_dec, lr, step);
    adam_step(&t->a_b_dec, s->b_dec, t->gb_dec, lr, step);
    t->tokens_done += B;
}

static int count_dead(const struct trainer *t, uint64_t window)
{
    int dead = 0;
    for (int j = 0; j < t->s->d_sae; j++)
        dead += t->tokens_done - t->last_fired[j] >= window && t->tokens_done >= window;
    return dead;
}

/* Shuffled order of the buffer (Fisher-Yates), refreshed every epoch. */
static void shuffle(uint32_t *perm, size_t n, uint64_t *r)
{
    for (size_t i = 0; i < n; i++) perm[i] = (uint32_t)i;
    for (size_t i = n; i > 1; i--) { size_t j = proto_rng_next(r) % i; uint32_t x = perm[i - 1]; perm[i - 1] = perm[j]; perm[j] = x; }
}

/* After training: one pass over the buffer with the final weights: density (log10 + 1e-10),
 * L0, explained variance (per batch of B tokens), MSE. */
static void final_pass(struct trainer *t, const struct buffer *buf, float *log_density, struct stats *st)
{
    const int d = t->s->d_in, m = t->s->d_sae;
    uint64_t *cnt = calloc((size_t)m, sizeof *cnt);
    for (size_t t0 = 0; t0 < buf->n_tok; t0 += t->B) {
        int n = (int)(buf->n_tok - t0 < (size_t)t->B ? buf->n_tok - t0 : (size_t)t->B);
        const float *X = buf->x + t0 * d;
        encode(t, X, n);
        decode(t, n);
        batch_stats(t, X, n, st);
        for (uint32_t a = 0; a < t->fptr[n] && cnt; a++) cnt[t->fidx[a]]++;
    }
    for (int j = 0; j < m; j++)
        log_density[j] = (float)log10((cnt ? (double)cnt[j] : 0) / (buf->n_tok ? buf->n_tok : 1) + 1e-10);
    free(cnt);
}

static int train(struct sae *s, const struct buffer *buf, const struct opts *o, float *log_density)
{
    struct trainer t = {0};
    const int B = (int)(o->batch < (long long)buf->n_tok ? o->batch : (long long)buf->n_tok);
    long long steps = o->steps ? o->steps : (long long)ceil(o->epochs * buf->n_tok / B);
    if (steps < 1) steps = 1;
    int err = trainer_init(&t, s, o, B);
    uint32_t *perm = malloc(buf->n_tok * sizeof *perm);
    if (err || !perm) { err = err ? err : PROTO_E_NOMEM; goto out; }
    uint64_t r = o->seed ^ 0x5851f42d4c957f2dULL;
    size_t pos = buf->n_tok;
    struct stats win = {0};
    bool show = proto_cli_progress_on(&o->cli) || g_verbose >= 2;
    long long decay_from = (long long)(steps * (1 - o->lr_decay));
    double t0 = proto_now();
    for (long long step = 1; step <= steps; step++) {
        for (int b = 0; b < B; b++) {
            if (pos == buf->n_tok) { shuffle(perm, buf->n_tok, &r); pos = 0; }
            memcpy(t.X + (size_t)b * s->d_in, buf->x + (size_t)perm[pos++] * s->d_in, (size_t)s->d_in * sizeof(float));
        }
        double lr = o->lr;
        if (o->lr_decay > 0 && step > decay_from) lr *= (double)(steps - step + 1) / (steps - decay_from);
        double l1 = s->k ? 0 : o->l1 * (o->l1_warmup > 0 && step < o->l1_warmup ? (double)step / o->l1_warmup : 1.0);
        train_step(&t, l1, lr, step, &win);
        if (show && (step % o->log_every == 0 || step == steps)) {
            double n = win.n ? (double)win.n : 1;
            fprintf(stderr, "%s: step %lld/%lld tokens %llu mse %.5g l1 %.5g loss %.5g L0 %.2f ev %.4f dead %d lr %.3g %.0f tok/s\n",
                    g_prog, step, steps, (unsigned long long)t.tokens_done, win.mse / n, win.l1 / n,
                    win.mse / n + l1 * win.l1 / n, win.l0 / n, win.ev / n,
                    count_dead(&t, (uint64_t)o->dead_window), lr, t.tokens_done / fmax(proto_now() - t0, 1e-9));
            win = (struct stats){0};
        }
    }
    struct stats fin = {0};
    final_pass(&t, buf, log_density, &fin);
    int dead = 0;
    for (int j = 0; j < s->d_sae; j++) dead += log_density[j] <= -9;
    if (show || g_verbose >= 2) {
        double n = fin.n ? (double)fin.n : 1;
        fprintf(stderr, "%s: final over %zu tokens: mse %.5g L0 %.2f L1 %.4g ev %.4f dead %d/%d (%.1f s)\n", g_prog,
                buf->n_tok, fin.mse / n, fin.l0 / n, fin.l1 / n, fin.ev / n, dead, s->d_sae, proto_now() - t0);
    }
out:
    free(perm);
    trainer_destroy(&t);
    return err;
}

/* ---------------------------------------------------------------------------------------- */
/* command line */

static void usage(FILE *fp)
{
    fprintf(fp,
"usage: sf-train -o SAE_DIR [options] [-i ACTS]\n"
"Trains a sparse autoencoder on the activations of an acts stream and writes it in SAELens\n"
"format: SAE_DIR/cfg.json (SAELens 3.22.2 keys; hook, context size and BOS from the stream),\n"
"sae_weights.safetensors (W_enc [d_in, d_sae], b_enc, W_dec [d_sae, d_in], b_dec; f32) and\n"
"sparsity.safetensors (sparsity [d_sae] = log10(feature density over the held tokens + 1e-10)).\n"
"\n"
"The stream's activations are held in memory (up to --max-tokens; tokens with keep = 0 and\n"
"non-finite ones are left out) and visited in a fresh random order every epoch.\n"
"Fresh SAE: W_dec rows random directions of norm --dec-init-norm, W_enc = W_dec^T, b_enc = 0,\n"
"b_dec = the mean activation. Decoder rows are never renormalised.\n"
"Loss per token: sum_d (x - xhat)^2, plus for ReLU l1 * sum_j f_j * |W_dec[j]| (SAELens\n"
"scale_sparsity_penalty_by_decoder_norm), l1 warmed up linearly over --l1-warmup steps.\n"
"Adam (beta 0.9/0.999, eps 1e-8), learning rate decayed linearly to 0 over the last\n"
"--lr-decay fraction of the steps.\n"
"\n"
"options:\n"
"  -o, --out DIR            the SAE directory to write (required; created if missing)\n"
"  --d-sae N                features (default 8 x d_in)\n"
"  --k K                    TopK SAE keeping K features per token (default: ReLU)\n"
"  --l1 C                   L1 coefficient for ReLU (default 5)\n"
"  --l1-warmup STEPS        default 100\n"
"  --lr LR                  default 1e-3\n"
"  --lr-decay F             default 0.2\n"
"  --batch N                tokens per step (default 4096)\n"
"  --steps N                optimiser steps (default: from --epochs)\n"
"  --epochs E               passes over the held tokens (default 1)\n"
"  --max-tokens N           tokens held in memory (default 1048576); the rest of the stream\n"
"                           is read and ignored\n"
"  --seed S                 initialisation and shuffling seed (default 0)\n"
"  --dec-init-norm R        initial decoder row norm (default 0.1)\n"
"  --no-b-dec-in            apply_b_dec_to_input false (default true)\n"
"  --normalize MODE         none (default) | constant_norm_rescale (train on x*sqrt(d)/|x|)\n"
"  --init-from SAE_DIR      continue from an existing SAELens SAE (standard relu/topk); its\n"
"                           cfg sets the architecture, k, b_dec-in, normalisation and d_sae\n"
"  --all-tokens             also train on tokens marked keep = 0 (outliers)\n"
"  --model-name NAME        cfg model_name (default: basename of the header's model)\n"
"  --dataset-path P         cfg dataset_path (default: the tokenizer's input file)\n"
"  --log-every N            progress every N steps (default 100; shown with --progress or -v)\n"
"  --dead-window N          a feature is dead in the progress line when it has not fired\n"
"                           in the last N tokens (default 200000)\n");
    fprintf(fp, "Progress lines: step, mse (sum over d, mean over tokens), l1, loss, L0, explained\n"
                "variance (SAELens, per token against the batch mean), dead count, lr, tokens/s.\n");
    proto_cli_help_common(fp);
    fprintf(fp,
"\nexamples:\n"
"  sf-tokenize --tokenizer M data.jsonl | sf-forward --model M --hook blocks.2.hook_resid_post \\\n"
"      | sf-train -o sae/ --d-sae 512 --l1 5 --steps 2000 --progress\n"
"  sf-train -i acts.zst -o sae-topk/ --k 32 --epochs 4\n"
"  sf-train -i ft-acts.zst --init-from sae/ -o sae-ft/ --steps 500 --lr 3e-4\n");
}

static void parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {
        PROTO_CLI_LONGOPTS,
        {"init-from", required_argument, 0, OPT_INIT_FROM}, {"d-sae", required_argument, 0, OPT_D_SAE},
        {"k", required_argument, 0, OPT_K}, {"l1", required_argument, 0, OPT_L1},
        {"l1-warmup", required_argument, 0, OPT_L1_WARMUP}, {"lr", required_argument, 0, OPT_LR},
        {"lr-decay", required_argument, 0, OPT_LR_DECAY}, {"batch", required_argument, 0, OPT_BATCH},
        {"steps", required_argument, 0, OPT_STEPS}, {"epochs", required_argument, 0, OPT_EPOCHS},
        {"max-tokens", required_argument, 0, OPT_MAX_TOKENS}, {"seed", required_argument, 0, OPT_SEED},
        {"dec-init-norm", required_argument, 0, OPT_DEC_NORM}, {"no-b-dec-in", no_argument, 0, OPT_NO_BDEC_IN},
        {"normalize", required_argument, 0, OPT_NORMALIZE}, {"log-every", required_argument, 0, OPT_LOG_EVERY},
        {"dead-window", required_argument, 0, OPT_DEAD_WINDOW}, {"model-name", required_argument, 0, OPT_MODEL_NAME},
        {"dataset-path", required_argument, 0, OPT_DATASET}, {"all-tokens", no_argument, 0, OPT_ALL_TOKENS},
        {0, 0, 0, 0}};
    bool out_given = false;
    int c;
    while ((c = getopt_long(argc, argv, PROTO_CLI_SHORTOPTS, lo, NULL)) != -1) {
        if (c == 'o') out_given = true;
        if (proto_cli_common(&o->cli, c, optarg, usage)) continue;
        switch (c) {
        case OPT_INIT_FROM: o->init_from = optarg; break;
        case OPT_D_SAE: o->d_sae = proto_parse_ll("--d-sae", optarg, 1, 1 << 24); break;
        case OPT_K: o->k = (int)proto_parse_ll("--k", optarg, 1, 1 << 24); break;
        case OPT_L1: o->l1 = proto_parse_double("--l1", optarg, 0, 1e9); break;
        case OPT_L1_WARMUP: o->l1_warmup = proto_parse_ll("--l1-warmup", optarg, 0, 1LL << 40); break;
        case OPT_LR: o->lr = proto_parse_double("--lr", optarg, 1e-12, 10); break;
        case OPT_LR_DECAY: o->lr_decay = proto_parse_double("--lr-decay", optarg, 0, 1); break;
        case OPT_BATCH: o->batch = proto_parse_ll("--batch", optarg, 1, 1 << 24); break;
        case OPT_STEPS: o->steps = proto_parse_ll("--steps", optarg, 1, 1LL << 40); break;
        case OPT_EPOCHS: o->epochs = proto_parse_double("--epochs", optarg, 1e-6, 1e6); break;
        case OPT_MAX_TOKENS: o->max_tokens = proto_parse_ll("--max-tokens", optarg, 1, 1LL << 32); break;
        case OPT_SEED: o->seed = (unsigned long long)proto_parse_ll("--seed", optarg, 0, 1LL << 62); break;
        case OPT_DEC_NORM: o->dec_norm = proto_parse_double("--dec-init-norm", optarg, 1e-9, 1e9); break;
        case OPT_NO_BDEC_IN: o->no_bdec_in = true; break;
        case OPT_NORMALIZE:
            if (strcmp(optarg, "none") && strcmp(optarg, "constant_norm_rescale"))
                proto_usage_error("--normalize: '%s' is not none or constant_norm_rescale", optarg);
            o->normalize = optarg; break;
        case OPT_LOG_EVERY: o->log_every = proto_parse_ll("--log-every", optarg, 1, 1LL << 40); break;
        case OPT_DEAD_WINDOW: o->dead_window = proto_parse_ll("--dead-window", optarg, 1, 1LL << 50); break;
        case OPT_MODEL_NAME: o->model_name = optarg; break;
        case OPT_DATASET: o->dataset = optarg; break;
        case OPT_ALL_TOKENS: o->all_tokens = true; break;
        default: proto_usage_error("unknown option");
        }
    }
    if (optind < argc) proto_usage_error("unexpected argument '%s'", argv[optind]);
    if (!out_given || !strcmp(o->cli.out, "-")) proto_usage_error("-o SAE_DIR is required");
    if (o->init_from && (o->d_sae || o->k || o->normalize || o->no_bdec_in))
        proto_usage_error("--init-from takes the architecture from the SAE's cfg.json (no --d-sae, --k, --normalize, --no-b-dec-in)");
    proto_cli_finish(&o->cli, false);
}

/* ---------------------------------------------------------------------------------------- */

static int read_stream(const struct opts *o, struct buffer *buf)
{
    int err;
    struct proto_reader *in = proto_reader_open(o->cli.in, &err);
    if (!in) return err;
    struct proto_frame fr;
    struct proto_buf scratch = {0};
    while ((err = proto_reader_next(in, &fr)) == PROTO_OK) {
        if (fr.kind == PROTO_KIND_HEADER) header_provenance(&buf->pv, &fr);
        else if (fr.kind == PROTO_KIND_ACTS && !buf->full) { if ((err = buffer_add_frame(buf, &fr, o, &scratch))) break; }
    }
    proto_buf_destroy(&scratch);
    proto_reader_close(in);
    return err == PROTO_END ? PROTO_OK : err;
}

int main(int argc, char **argv)
{
    struct opts o = opts_default(argv[0]);
    parse_args(argc, argv, &o);
    int rc = PROTO_EXIT_OK, err;
    struct buffer buf = {0};
    struct sae s = {0};
    float *log_density = NULL;

    if ((err = read_stream(&o, &buf))) { rc = proto_fail(err, o.cli.in); goto out; }
    if (buf.n_tok == 0) { rc = PROTO_EXIT_FAIL; proto_error("%s: no activations to train on", o.cli.in); goto out; }
    if (o.init_from) {
        if ((err = sae_load(&s, o.init_from))) { rc = proto_fail(err, o.init_from); goto out; }
        if (s.d_in != buf.d) {
            rc = PROTO_EXIT_FAIL;
            proto_error("%s: SAE d_in %d does not match the stream's d_model %d", o.init_from, s.d_in, buf.d);
            goto out;
        }
    } else {
        s.d_in = buf.d; s.d_sae = (int)(o.d_sae ? o.d_sae : 8LL * buf.d); s.k = o.k;
        s.b_dec_in = !o.no_bdec_in; s.rescale = o.normalize && !strcmp(o.normalize, "constant_norm_rescale");
        if ((err = sae_alloc(&s))) { rc = proto_fail(err, "init"); goto out; }
    }
    if (s.rescale) buffer_rescale(&buf);
    if (!o.init_from) {
        sae_init_fresh(&s, buf.x, buf.n_tok, o.dec_norm, o.seed);
        s.cfg = cfg_build(&s, &buf.pv, &o);
    }
    proto_info("%zu tokens held (%llu read, %llu outliers and %llu non-finite left out), d_in %d, d_sae %d, %s",
               buf.n_tok, (unsigned long long)buf.seen, (unsigned long long)buf.skipped_keep,
               (unsigned long long)buf.skipped_nonfinite, s.d_in, s.d_sae, s.k ? "topk" : "relu");
    if (!(log_density = malloc((size_t)s.d_sae * sizeof *log_density))) { rc = proto_fail(PROTO_E_NOMEM, "init"); goto out; }
    if ((err = train(&s, &buf, &o, log_density))) { rc = proto_fail(err, "train"); goto out; }
    if ((err = sae_save(&s, o.cli.out, log_density))) { rc = proto_fail(err, o.cli.out); goto out; }
out:
    free(log_density);
    free(buf.x);
    sae_destroy(&s);
    return rc;
}
