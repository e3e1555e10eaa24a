/* sf-mkmodel - write a small deterministic synthetic Llama checkpoint (and a "finetune" of one).
 *
 * Writes a Hugging Face directory DIR: config.json (LlamaForCausalLM), model.safetensors (f32 or
 * bf16, HF tensor names, linear weights [out, in], tensors sorted by name) and a Gemma-style
 * byte-level tokenizer.json (BPE, byte_fallback, " " -> "▁", <pad> <eos> <bos> <unk> = 0..3,
 * <0x00>..<0xFF> = 4..259, then the characters of --corpus and --merges merged pieces learned
 * by a plain BPE over it). The weights are synthetic: token embeddings are sparse sums of random
 * "atom" directions (so the residual stream has structure an SAE can find), the blocks are
 * random, and with a corpus the untied lm_head is a least-squares fit of the corpus' bigram
 * log-probabilities from the normalised embeddings (so the model predicts text a little).
 * --finetune-of DIR writes a copy of DIR whose chosen layers are perturbed by a relative
 * Frobenius magnitude, deterministically. Nothing is read from or written to stdout.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>

#include <cjson/cJSON.h>

#include "cli.h"
#include "json.h"
#include "proto.h"

/* ---------------------------------------------------------------------------------------- */
/* options */

enum { OPT_SEED = PROTO_OPT_FIRST_FREE, OPT_D_MODEL, OPT_LAYERS, OPT_HEADS, OPT_KV_HEADS, OPT_D_FF,
       OPT_CORPUS, OPT_MERGES, OPT_DTYPE, OPT_ATOMS, OPT_ATOMS_PER_TOKEN, OPT_LAYER_SCALE,
       OPT_FINETUNE_OF, OPT_PERTURB_LAYERS, OPT_MAGNITUDE, OPT_FIELD, OPT_TIED };

#define MAX_LAYERS 256
#define N_SPECIAL 4
#define N_BYTES 256

struct opts {
    struct proto_cli cli;
    unsigned long long seed;
    int d_model, n_layers, n_heads, n_kv_heads, d_ff;
    const char *corpus, *field;
    int n_merges;
    enum proto_dtype dtype;
    int n_atoms, atoms_per_token;
    double layer_scale;
    bool tied;
    const char *finetune_of;
    bool perturb[MAX_LAYERS]; bool perturb_given;
    double magnitude;
};

static struct opts opts_default(const char *argv0)
{
    struct opts o = {0};
    proto_cli_init(&o.cli, argv0);
    o.d_model = 64; o.n_layers = 4; o.n_heads = 4; o.n_kv_heads = 2; o.d_ff = 128;
    o.n_merges = 256; o.dtype = PROTO_F32; o.n_atoms = 256; o.atoms_per_token = 3;
    o.layer_scale = 0.3; o.magnitude = 0.05; o.field = "text";
    return o;
}

/* ---------------------------------------------------------------------------------------- */
static uint64_t hash_str(const char *s)
{
    uint64_t h = 1469598103934665603ULL;
    for (; *s; s++) h = (h ^ (uint8_t)*s) * 1099511628211ULL;
    return h;
}

/* ---------------------------------------------------------------------------------------- */
/* tensors of the checkpoint */

struct tensor { char name[160]; int ndim; uint64_t shape[2]; float *w; };   // w: (shape[0], shape[1])

struct model { struct tensor *t; int n, cap; };

static float *model_add(struct model *m, const char *name, uint64_t rows, uint64_t cols)
{
    if (m->n == m->cap) {
        int nc = m->cap ? 2 * m->cap : 64;
        struct tensor *t = realloc(m->t, (size_t)nc * sizeof *t);
        if (!t) return NULL;
        m->t = t; m->cap = nc;
    }
    struct tensor *t = &m->t[m->n];
    snprintf(t->name, sizeof t->name, "%s", name);
    t->ndim = cols ? 2 : 1;
    t->shape[0] = rows; t->shape[1] = cols;
    t->w = calloc(rows * (cols ? cols : 1), sizeof(float));
    if (!t->w) return NULL;
    m->n++;
    return t->w;
}

static void model_destroy(struct model *m)
{
    for (int i = 0; i < m->n; i++) free(m->t[i].w);
    free(m->t);
    memset(m, 0, sizeof *m);
}

static uint64_t numel(const struct tensor *t) { return t->shape[0] * (t->ndim == 2 ? t->shape[1] : 1); }

/* model.safetensors (tensors sorted by name, as the Rust crate writes them) */
static int write_safetensors(const char *path, const struct model *m, enum proto_dtype dt)
{
    struct proto_st_entry *e = calloc((size_t)(m->n ? m->n : 1), sizeof *e);
    if (!e) return PROTO_E_NOMEM;
    for (int i = 0; i < m->n; i++) {
        const struct tensor *t = &m->t[i];
        e[i] = (struct proto_st_entry){t->name, t->w, t->ndim, {t->shape[0], t->ndim == 2 ? t->shape[1] : 0}};
    }
    int err = proto_st_write(path, e, m->n, dt);
    free(e);
    return err;
}

static int write_json(const char *path, const cJSON *j)
{
    char *s = cJSON_Print(j);
    if (!s) return PROTO_E_NOMEM;
    FILE *f = fopen(path, "w");
    if (!f) { free(s); proto_set_detail("%s: %s", path, strerror(errno)); return PROTO_E_IO; }
    fputs(s, f); fputc('\n', f);
    free(s);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) { proto_set_detail("%s: write failed", path); return PROTO_E_IO; }
    return PROTO_OK;
}

/* ---------------------------------------------------------------------------------------- */
/* the corpus and a plain BPE over its words */

/* A piece is a UTF-8 string; a word is a run of pieces. Words are cut before each "▁" (the
 * tokenizer has no pre-tokenizer, but a learned piece never spans a "▁" that is not its first
 * character, so per-word merges are the whole-text merges). */
struct strs { char **s; int n, cap; };

static int strs_push(struct strs *a, char *s)
{
    if (a->n == a->cap) {
        int nc = a->cap ? 2 * a->cap : 256;
        char **p = realloc(a->s, (size_t)nc * sizeof *p);
        if (!p) return PROTO_E_NOMEM;
        a->s = p; a->cap = nc;
    }
    a->s[a->n++] = s;
    return PROTO_OK;
}
static void strs_destroy(struct strs *a) { for (int i = 0; i < a->n; i++) free(a->s[i]); free(a->s); }

struct word { char *text; int *sym; int len; long long count; };

struct bpe {
    struct strs piece;           /* piece strings; vocab id = N_SPECIAL + N_BYTES + index */
    struct strs merge;           /* "a b" */
    struct word *w; int n_words;
    int *doc_words; size_t n_doc_words;  /* the corpus as word indices, -1 between documents */
};

static void bpe_destroy(struct bpe *b)
{
    strs_destroy(&b->piece); strs_destroy(&b->merge);
    for (int i = 0; i < b->n_words; i++) { free(b->w[i].text); free(b->w[i].sym); }
    free(b->w); free(b->doc_words);
}

static int utf8_len(unsigned char c) { return c < 0x80 ? 1 : c < 0xe0 ? 2 : c < 0xf0 ? 3 : 4; }

static int cmp_str(const void *a, const void *b) { return strcmp(*(char *const *)a, *(char *const *)b); }

static int find_str(char **arr, int n, const char *s)
{
    char **p = bsearch(&s, arr, (size_t)n, sizeof *arr, cmp_str);
    return p ? (int)(p - arr) : -1;
}

/* Reads the documents (JSONL field, or a text file = one document), normalises " " -> "▁"
 * and cuts them into words. */
static int read_corpus(const char *path, const char *field, struct strs *docs_words)
{
    char *text = NULL; size_t len;
    int err = proto_read_file(path, &text, &len);
    if (err) { proto_set_detail("%s: %s", path, strerror(errno)); return err; }
    bool jsonl = strlen(path) > 6 && !strcmp(path + strlen(path) - 6, ".jsonl");
    char *save = NULL, *line = jsonl ? strtok_r(text, "\n", &save) : text;
    int lineno = 0;
    while (line && !err) {
        lineno++;
        const char *doc = line;
        cJSON *j = NULL;
        if (jsonl) {
            j = cJSON_Parse(line);
            if (proto_json_str(j, field, &doc) != 1) {
                cJSON_Delete(j); proto_set_detail("%s:%d: no string field '%s'", path, lineno, field); err = PROTO_E_FORMAT; break;
            }
        }
        /* words: each starts at a "▁" (or the document start) */
        size_t n = strlen(doc);
        char *cur = malloc(3 * n + 4); size_t cl = 0;
        if (!cur) { cJSON_Delete(j); err = PROTO_E_NOMEM; break; }
        for (size_t i = 0; i <= n && !err; i++) {
            if ((i == n || doc[i] == ' ') && cl) { cur[cl] = 0; err = strs_push(docs_words, strdup(cur)); cl = 0; }
            if (i == n) break;
            if (doc[i] == ' ') { memcpy(cur + cl, "\xe2\x96\x81", 3); cl += 3; }
            else cur[cl++] = doc[i];
        }
        if (!err) err = strs_push(docs_words, NULL);   /* document boundary */
        free(cur);
        cJSON_Delete(j);
        line = jsonl ? strtok_r(NULL, "\n", &save) : NULL;
    }
    free(text);
    return err;
}

struct pair { uint64_t key; long long count; };
static int cmp_pair(const void *a, const void *b)
{
    uint64_t x = ((const struct pair *)a)->key, y = ((const struct pair *)b)->key;
    return (x > y) - (x < y);
}

/* The unique words of the corpus (sorted) with their counts, and the corpus as word indices. */
static int words_count(struct bpe *b, const struct strs *dw)
{
    int err = PROTO_OK;
    struct strs uniq = {0};
    for (int i = 0; i < dw->n && !err; i++) if (dw->s[i]) err = strs_push(&uniq, dw->s[i]);
    if (err) { free(uniq.s); return err; }
    qsort(uniq.s, (size_t)uniq.n, sizeof *uniq.s, cmp_str);
    int nu = 0;
    for (int i = 0; i < uniq.n; i++) if (!nu || strcmp(uniq.s[nu - 1], uniq.s[i])) uniq.s[nu++] = uniq.s[i];
    b->w = calloc((size_t)nu ? (size_t)nu : 1, sizeof *b->w);
    b->doc_words = malloc((size_t)(dw->n ? dw->n : 1) * sizeof *b->doc_words);
    if (!b->w || !b->doc_words) { free(uniq.s); return PROTO_E_NOMEM; }
    b->n_words = nu;
    for (int i = 0; i < nu; i++) b->w[i].text = strdup(uniq.s[i]);
    for (int i = 0; i < dw->n; i++) {
        int k = dw->s[i] ? find_str(uniq.s, nu, dw->s[i]) : -1;
        b->doc_words[b->n_doc_words++] = k;
        if (k >= 0) b->w[k].count++;
    }
    free(uniq.s);
    return PROTO_OK;
}

/* The first pieces are the characters of the words (sorted by their UTF-8 bytes = by code
 * point); each word becomes a run of them. */
static int pieces_init(struct bpe *b)
{
    int err = PROTO_OK;
    struct strs chars = {0};
    for (int i = 0; i < b->n_words && !err; i++)
        for (const char *p = b->w[i].text; *p && !err; p += utf8_len((unsigned char)*p)) {
            int l = utf8_len((unsigned char)*p);
            err = strs_push(&chars, strndup(p, (size_t)l));
        }
    if (err) { strs_destroy(&chars); return err; }
    qsort(chars.s, (size_t)chars.n, sizeof *chars.s, cmp_str);
    for (int i = 0; i < chars.n && !err; i++)
        if (!b->piece.n || strcmp(b->piece.s[b->piece.n - 1], chars.s[i])) err = strs_push(&b->piece, strdup(chars.s[i]));
    strs_destroy(&chars);
    if (err) return err;
    int n_chars = b->piece.n;
    for (int i = 0; i < b->n_words; i++) {
        struct word *w = &b->w[i];
        w->sym = malloc(strlen(w->text) * sizeof *w->sym + sizeof *w->sym);
        if (!w->sym) return PROTO_E_NOMEM;
        for (const char *p = w->text; *p; p += utf8_len((unsigned char)*p)) {
            char c[5] = {0};
            memcpy(c, p, (size_t)utf8_len((unsigned char)*p));
            w->sym[w->len++] = find_str(b->piece.s, n_chars, c);
        }
    }
    return PROTO_OK;
}

/* The most frequent adjacent pair of pieces over the words weighted by their counts (ties to
 * the smallest piece ids) into *best; returns its count. pr: scratch for every pair. */
static long long best_pair(const struct bpe *b, struct pair *pr, uint64_t *best)
{
    size_t np = 0;
    for (int i = 0; i < b->n_words; i++)
        for (int k = 0; k + 1 < b->w[i].len; k++)
            pr[np++] = (struct pair){ (uint64_t)b->w[i].sym[k] << 32 | (uint32_t)b->w[i].sym[k + 1], b->w[i].count };
    qsort(pr, np, sizeof *pr, cmp_pair);
    long long best_n = 0;
    *best = 0;
    for (size_t i = 0; i < np;) {
        size_t j = i; long long c = 0;
        for (; j < np && pr[j].key == pr[i].key; j++) c += pr[j].count;
        if (c > best_n) { best_n = c; *best = pr[i].key; }
        i = j;
    }
    return best_n;
}

/* Adds the piece a+c (id = its index) and its merge rule "a c", and applies it to every word. */
static int merge_add(struct bpe *b, int a, int c)
{
    size_t la = strlen(b->piece.s[a]), lc = strlen(b->piece.s[c]);
    char *merged = malloc(la + lc + 1), *rule = malloc(la + lc + 2);
    if (!merged || !rule) { free(merged); free(rule); return PROTO_E_NOMEM; }
    sprintf(merged, "%s%s", b->piece.s[a], b->piece.s[c]);
    sprintf(rule, "%s %s", b->piece.s[a], b->piece.s[c]);
    int id = b->piece.n, err;
    if ((err = strs_push(&b->piece, merged))) { free(merged); free(rule); return err; }
    if ((err = strs_push(&b->merge, rule))) { free(rule); return err; }
    for (int i = 0; i < b->n_words; i++) {
        struct word *w = &b->w[i];
        int o = 0;
        for (int k = 0; k < w->len; k++) {
            if (k + 1 < w->len && w->sym[k] == a && w->sym[k + 1] == c) { w->sym[o++] = id; k++; }
            else w->sym[o++] = w->sym[k];
        }
        w->len = o;
    }
    return PROTO_OK;
}

/* Learns up to n_merges merges (the most frequent adjacent pair, ties to the smallest piece
 * ids) over the unique words weighted by their counts. */
static int bpe_learn(struct bpe *b, const struct strs *dw, int n_merges)
{
    int err;
    if ((err = words_count(b, dw)) || (err = pieces_init(b))) return err;
    size_t n_sym = 0;
    for (int i = 0; i < b->n_words; i++) n_sym += (size_t)b->w[i].len;
    struct pair *pr = malloc((n_sym + 1) * sizeof *pr);   /* (n_sym) adjacent pairs at most */
    if (!pr) return PROTO_E_NOMEM;
    for (int m = 0; m < n_merges && !err; m++) {
        uint64_t best;
        if (best_pair(b, pr, &best) < 2) break;
        err = merge_add(b, (int)(best >> 32), (int)(uint32_t)best);
    }
    free(pr);
    return err;
}

/* tokenizer.json in the layout of Gemma v1's. */
static cJSON *tokenizer_json(const struct bpe *b)
{
    static const char *special[N_SPECIAL] = { "<pad>", "<eos>", "<bos>", "<unk>" };
    cJSON *root = cJSON_CreateObject();
    cJSON_AddStringToObject(root, "version", "1.0");
    cJSON_AddNullToObject(root, "truncation");
    cJSON_AddNullToObject(root, "padding");
    cJSON *added = cJSON_AddArrayToObject(root, "added_tokens");
    for (int i = 0; i < N_SPECIAL; i++) {
        cJSON *a = cJSON_CreateObject();
        cJSON_AddNumberToObject(a, "id", i);
        cJSON_AddStringToObject(a, "content", special[i]);
        cJSON_AddBoolToObject(a, "single_word", 0); cJSON_AddBoolToObject(a, "lstrip", 0);
        cJSON_AddBoolToObject(a, "rstrip", 0); cJSON_AddBoolToObject(a, "normalized", 0);
        cJSON_AddBoolToObject(a, "special", 1);
        cJSON_AddItemToArray(added, a);
    }
    cJSON *norm = cJSON_AddObjectToObject(root, "normalizer");
    cJSON_AddStringToObject(norm, "type", "Replace");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(norm, "pattern"), "String", " ");
    cJSON_AddStringToObject(norm, "content", "\xe2\x96\x81");
    cJSON_AddNullToObject(root, "pre_tokenizer");
    cJSON *pp = cJSON_AddObjectToObject(root, "post_processor");
    cJSON_AddStringToObject(pp, "type", "TemplateProcessing");
    cJSON *single = cJSON_AddArrayToObject(pp, "single");
    cJSON *st = cJSON_CreateObject(), *sq = cJSON_CreateObject();
    cJSON *sti = cJSON_AddObjectToObject(st, "SpecialToken");
    cJSON_AddStringToObject(sti, "id", "<bos>"); cJSON_AddNumberToObject(sti, "type_id", 0);
    cJSON *sqi = cJSON_AddObjectToObject(sq, "Sequence");
    cJSON_AddStringToObject(sqi, "id", "A"); cJSON_AddNumberToObject(sqi, "type_id", 0);
    cJSON_AddItemToArray(single, st); cJSON_AddItemToArray(single, sq);
    cJSON *sps = cJSON_AddObjectToObject(cJSON_AddObjectToObject(pp, "special_tokens"), "<bos>");
    cJSON_AddStringToObject(sps, "id", "<bos>");
    cJSON_AddItemToObject(sps, "ids", cJSON_CreateIntArray((const int[]){2}, 1));
    cJSON *toks = cJSON_AddArrayToObject(sps, "tokens");
    cJSON_AddItemToArray(toks, cJSON_CreateString("<bos>"));
    cJSON *dec = cJSON_AddObjectToObject(root, "decoder");
    cJSON_AddStringToObject(dec, "type", "Sequence");
    cJSON *decs = cJSON_AddArrayToObject(dec, "decoders");
    cJSON *d0 = cJSON_CreateObject();
    cJSON_AddStringToObject(d0, "type", "Replace");
    cJSON_AddStringToObject(cJSON_AddObjectToObject(d0, "pattern"), "String", "\xe2\x96\x81");
    cJSON_AddStringToObject(d0, "content", " ");
    cJSON_AddItemToArray(decs, d0);
    cJSON *d1 = cJSON_CreateObject(); cJSON_AddStringToObject(d1, "type", "ByteFallback"); cJSON_AddItemToArray(decs, d1);
    cJSON *d2 = cJSON_CreateObject(); cJSON_AddStringToObject(d2, "type", "Fuse"); cJSON_AddItemToArray(decs, d2);
    cJSON *model = cJSON_AddObjectToObject(root, "model");
    cJSON_AddStringToObject(model, "type", "BPE");
    cJSON_AddNullToObject(model, "dropout");
    cJSON_AddStringToObject(model, "unk_token", "<unk>");
    cJSON_AddNullToObject(model, "continuing_subword_prefix");
    cJSON_AddNullToObject(model, "end_of_word_suffix");
    cJSON_AddBoolToObject(model, "fuse_unk", 1);
    cJSON_AddBoolToObject(model, "byte_fallback", 1);
    cJSON *vocab = cJSON_AddObjectToObject(model, "vocab");
    for (int i = 0; i < N_SPECIAL; i++) cJSON_AddNumberToObject(vocab, special[i], i);
    for (int i = 0; i < N_BYTES; i++) {
        char s[8];
        snprintf(s, sizeof s, "<0x%02X>", i);
        cJSON_AddNumberToObject(vocab, s, N_SPECIAL + i);
    }
    for (int i = 0; i < b->piece.n; i++) cJSON_AddNumberToObject(vocab, b->piece.s[i], N_SPECIAL + N_BYTES + i);
    cJSON *merges = cJSON_AddArrayToObject(model, "merges");
    for (int i = 0; i < b->merge.n; i++) cJSON_AddItemToArray(merges, cJSON_CreateString(b->merge.s[i]));
    return root;
}

/* ---------------------------------------------------------------------------------------- */
/* the synthetic weights */

static void fill_normal(float *w, size_t n, double mean, double std, uint64_t *r)
{
    for (size_t i = 0; i < n; i++) w[i] = (float)(mean + std * proto_rng_normal(r));
}

/* Token embeddings: each token is a sum of k distinct atoms (random unit directions) with
 * weights 1 + |N(0, 0.5)|; special and byte tokens too. Without atoms: N(0, 1). */
static void make_embeddings(float *E /* (V, d) */, int V, int d, int n_atoms, int k, uint64_t *r)
{
    if (n_atoms <= 0) { fill_normal(E, (size_t)V * d, 0, 1, r); return; }
    float *A = malloc((size_t)n_atoms * d * sizeof *A);   // (n_atoms, d)
    if (!A) { fill_normal(E, (size_t)V * d, 0, 1, r); return; }
    for (int a = 0; a < n_atoms; a++) {
        double nn = 0;
        for (int i = 0; i < d; i++) { A[(size_t)a * d + i] = (float)proto_rng_normal(r); nn += (double)A[(size_t)a * d + i] * A[(size_t)a * d + i]; }
        for (int i = 0; i < d; i++) A[(size_t)a * d + i] = (float)(A[(size_t)a * d + i] / sqrt(nn));
    }
    if (k > n_atoms) k = n_atoms;
    for (int v = 0; v < V; v++) {
        float *e = E + (size_t)v * d;
        int chosen[64]; int nc = 0;
        while (nc < k && nc < 64) {
            int a = (int)(proto_rng_next(r) % (uint64_t)n_atoms), dup = 0;
            for (int c = 0; c < nc; c++) dup |= chosen[c] == a;
            if (dup) continue;
            chosen[nc++] = a;
            float c = (float)(1 + fabs(0.5 * proto_rng_normal(r)));
            for (int i = 0; i < d; i++) e[i] += c * A[(size_t)a * d + i];
        }
    }
    free(A);
}

/* Solves M X = R for X (d, V) with M (d, d) symmetric positive definite (Cholesky, in double). */
static int solve_spd(double *M, double *R, int d, int V)
{
    for (int j = 0; j < d; j++) {
        double s = M[j * d + j];
        for (int k = 0; k < j; k++) s -= M[j * d + k] * M[j * d + k];
        if (s <= 0) return PROTO_E_INVAL;
        M[j * d + j] = sqrt(s);
        for (int i = j + 1; i < d; i++) {
            double t = M[i * d + j];
            for (int k = 0; k < j; k++) t -= M[i * d + k] * M[j * d + k];
            M[i * d + j] = t / M[j * d + j];
        }
    }
    for (int c = 0; c < V; c++) {   /* L y = r, then Lᵀ x = y, column by column */
        for (int i = 0; i < d; i++) {
            double t = R[(size_t)i * V + c];
            for (int k = 0; k < i; k++) t -= M[i * d + k] * R[(size_t)k * V + c];
            R[(size_t)i * V + c] = t / M[i * d + i];
        }
        for (int i = d - 1; i >= 0; i--) {
            double t = R[(size_t)i * V + c];
            for (int k = i + 1; k < d; k++) t -= M[k * d + i] * R[(size_t)k * V + c];
            R[(size_t)i * V + c] = t / M[i * d + i];
        }
    }
    return PROTO_OK;
}

/* lm_head (V, d): weighted least squares so that rmsnorm(E[a]) · W_Uᵀ ≈ log p(b | a) − mean_b,
 * the add-0.1 smoothed bigram log-probabilities of the corpus, weights = 1 + count(a). */
static int fit_unembedding(float *W_U, const float *E, int V, int d, const struct bpe *b)
{
    const int base = N_SPECIAL + N_BYTES;
    double *C = calloc((size_t)V * V, sizeof *C);       // (V, V) bigram counts
    double *M = calloc((size_t)d * d, sizeof *M);       // (d, d)
    double *R = calloc((size_t)d * V, sizeof *R);       // (d, V)
    double *L = malloc((size_t)V * sizeof *L), *eh = malloc((size_t)d * sizeof *eh);
    int err = PROTO_OK;
    if (!C || !M || !R || !L || !eh) { err = PROTO_E_NOMEM; goto out; }
    int prev = 2;   /* <bos> starts every document */
    for (size_t i = 0; i < b->n_doc_words; i++) {
        int wi = b->doc_words[i];
        if (wi < 0) { prev = 2; continue; }
        for (int k = 0; k < b->w[wi].len; k++) {
            int cur = base + b->w[wi].sym[k];
            C[(size_t)prev * V + cur] += 1;
            prev = cur;
        }
    }
    for (int a = 0; a < V; a++) {
        double tot = 0, mean = 0;
        for (int c = 0; c < V; c++) tot += C[(size_t)a * V + c];
        for (int c = 0; c < V; c++) { L[c] = log((C[(size_t)a * V + c] + 0.1) / (tot + 0.1 * V)); mean += L[c] / V; }
        double ms = 0;
        for (int i = 0; i < d; i++) ms += (double)E[(size_t)a * d + i] * E[(size_t)a * d + i] / d;
        for (int i = 0; i < d; i++) eh[i] = E[(size_t)a * d + i] / sqrt(ms + 1e-5);
        double w = 1 + tot;
        for (int i = 0; i < d; i++) {
            for (int j = 0; j < d; j++) M[i * d + j] += w * eh[i] * eh[j];
            for (int c = 0; c < V; c++) R[(size_t)i * V + c] += w * eh[i] * (L[c] - mean);
        }
    }
    double tr = 0;
    for (int i = 0; i < d; i++) tr += M[i * d + i];
    for (int i = 0; i < d; i++) M[i * d + i] += 1e-3 * tr / d;   /* ridge */
    if ((err = solve_spd(M, R, d, V))) { proto_set_detail("bigram fit: singular system"); goto out; }
    for (int c = 0; c < V; c++)
        for (int i = 0; i < d; i++) W_U[(size_t)c * d + i] = (float)R[(size_t)i * V + c];
out:
    free(C); free(M); free(R); free(L); free(eh);
    return err;
}

static int build_model(struct model *m, const struct opts *o, int V, const struct bpe *b)
{
    const int d = o->d_model, hd = d / o->n_heads, kvd = hd * o->n_kv_heads, ff = o->d_ff;
    const double s = o->layer_scale;
    uint64_t r = o->seed * 0x9e3779b97f4a7c15ULL + 12345;
    char name[160];
    float *E = model_add(m, "model.embed_tokens.weight", (uint64_t)V, (uint64_t)d);
    if (!E) return PROTO_E_NOMEM;
    make_embeddings(E, V, d, o->n_atoms, o->atoms_per_token, &r);
    for (int l = 0; l < o->n_layers; l++) {
        /* q/k at 0.125 so attention is far from uniform; v/o and down times --layer-scale: at
         * the default 0.3 the embedding stays the larger part of the residual stream (so the
         * bigram unembedding still predicts), and the blocks still move it */
        struct { const char *n; int rows, cols; double mean, std; } spec[] = {
            {"input_layernorm", d, 0, 1, 0.05}, {"post_attention_layernorm", d, 0, 1, 0.05},
            {"self_attn.q_proj", d, d, 0, 0.125}, {"self_attn.k_proj", kvd, d, 0, 0.125},
            {"self_attn.v_proj", kvd, d, 0, 0.09 * s}, {"self_attn.o_proj", d, d, 0, 0.09 * s},
            {"mlp.gate_proj", ff, d, 0, 0.125}, {"mlp.up_proj", ff, d, 0, 0.125}, {"mlp.down_proj", d, ff, 0, 0.12 * s},
        };
        for (size_t k = 0; k < sizeof spec / sizeof spec[0]; k++) {
            snprintf(name, sizeof name, "model.layers.%d.%s.weight", l, spec[k].n);
            float *w = model_add(m, name, (uint64_t)spec[k].rows, (uint64_t)spec[k].cols);
            if (!w) return PROTO_E_NOMEM;
            fill_normal(w, (size_t)spec[k].rows * (spec[k].cols ? spec[k].cols : 1), spec[k].mean, spec[k].std, &r);
        }
    }
    float *g = model_add(m, "model.norm.weight", (uint64_t)d, 0);
    if (!g) return PROTO_E_NOMEM;
    for (int i = 0; i < d; i++) g[i] = 1;
    if (o->tied) return PROTO_OK;
    float *W_U = model_add(m, "lm_head.weight", (uint64_t)V, (uint64_t)d);
    if (!W_U) return PROTO_E_NOMEM;
    E = m->t[0].w;   /* model_add may have moved the tensor array, not the data */
    if (b && b->n_doc_words) return fit_unembedding(W_U, E, V, d, b);
    fill_normal(W_U, (size_t)V * d, 0, 0.02, &r);
    return PROTO_OK;
}

static cJSON *config_json(const struct opts *o, int V)
{
    cJSON *c = cJSON_CreateObject();
    cJSON_AddItemToObject(c, "architectures", cJSON_CreateStringArray((const char *[]){"LlamaForCausalLM"}, 1));
    cJSON_AddStringToObject(c, "model_type", "llama");
    cJSON_AddNumberToObject(c, "hidden_size", o->d_model);
    cJSON_AddNumberToObject(c, "intermediate_size", o->d_ff);
    cJSON_AddNumberToObject(c, "num_hidden_layers", o->n_layers);
    cJSON_AddNumberToObject(c, "num_attention_heads", o->n_heads);
    cJSON_AddNumberToObject(c, "num_key_value_heads", o->n_kv_heads);
    cJSON_AddNumberToObject(c, "vocab_size", V);
    cJSON_AddNumberToObject(c, "max_position_embeddings", 2048);
    cJSON_AddNumberToObject(c, "rms_norm_eps", 1e-5);
    cJSON_AddNumberToObject(c, "rope_theta", 10000.0);
    cJSON_AddStringToObject(c, "hidden_act", "silu");
    cJSON_AddBoolToObject(c, "tie_word_embeddings", o->tied);
    cJSON_AddNumberToObject(c, "bos_token_id", 2);
    cJSON_AddNumberToObject(c, "eos_token_id", 1);
    cJSON_AddNumberToObject(c, "pad_token_id", 0);
    cJSON_AddStringToObject(c, "torch_dtype", o->dtype == PROTO_BF16 ? "bfloat16" : "float32");
    cJSON_AddBoolToObject(c, "attention_bias", 0);
    cJSON_AddBoolToObject(c, "mlp_bias", 0);
    cJSON *p = cJSON_AddObjectToObject(c, "saeflow_mkmodel");
    cJSON_AddStringToObject(p, "note", "synthetic weights written by sf-mkmodel (not a trained model)");
    cJSON_AddNumberToObject(p, "seed", (double)o->seed);
    cJSON_AddNumberToObject(p, "atoms", o->n_atoms);
    cJSON_AddNumberToObject(p, "atoms_per_token", o->atoms_per_token);
    cJSON_AddNumberToObject(p, "layer_scale", o->layer_scale);
    if (o->corpus) cJSON_AddStringToObject(p, "corpus", o->corpus);
    return c;
}

static int make_dir(const char *dir)
{
    if (mkdir(dir, 0777) != 0 && errno != EEXIST) { proto_set_detail("%s: %s", dir, strerror(errno)); return PROTO_E_IO; }
    return PROTO_OK;
}

static int run_new(const struct opts *o)
{
    struct bpe b = {0};
    struct strs dw = {0};
    struct model m = {0};
    cJSON *tok = NULL, *cfg = NULL;
    char path[4200];
    int err = PROTO_OK;
    if (o->corpus) {
        if ((err = read_corpus(o->corpus, o->field, &dw))) goto out;
        if ((err = bpe_learn(&b, &dw, o->n_merges))) goto out;
    } else {
        for (int c = 0x21; c < 0x7f && !err; c++) { char s[2] = {(char)c, 0}; err = strs_push(&b.piece, strdup(s)); }
        if (!err) err = strs_push(&b.piece, strdup("\xe2\x96\x81"));
        if (err) goto out;
    }
    const int V = N_SPECIAL + N_BYTES + b.piece.n;
    if ((err = make_dir(o->cli.out))) goto out;
    if ((err = build_model(&m, o, V, &b))) goto out;
    snprintf(path, sizeof path, "%s/model.safetensors", o->cli.out);
    if ((err = write_safetensors(path, &m, o->dtype))) goto out;
    cfg = config_json(o, V);
    snprintf(path, sizeof path, "%s/config.json", o->cli.out);
    if ((err = write_json(path, cfg))) goto out;
    tok = tokenizer_json(&b);
    snprintf(path, sizeof path, "%s/tokenizer.json", o->cli.out);
    if ((err = write_json(path, tok))) goto out;
    proto_info("%s: vocab %d (%d pieces, %d merges), d_model %d, %d layers", o->cli.out, V, b.piece.n, b.merge.n,
               o->d_model, o->n_layers);
out:
    for (int i = 0; i < dw.n; i++) free(dw.s[i]);
    free(dw.s);
    bpe_destroy(&b);
    model_destroy(&m);
    cJSON_Delete(tok); cJSON_Delete(cfg);
    return err;
}

/* ---------------------------------------------------------------------------------------- */
/* --finetune-of */

static int copy_file(const char *src, const char *dst)
{
    char *text = NULL; size_t len;
    int err = proto_read_file(src, &text, &len);
    if (err) return err;
    FILE *f = fopen(dst, "wb");
    if (!f) { free(text); proto_set_detail("%s: %s", dst, strerror(errno)); return PROTO_E_IO; }
    fwrite(text, 1, len, f);
    free(text);
    int bad = ferror(f);
    if (fclose(f) != 0 || bad) { proto_set_detail("%s: write failed", dst); return PROTO_E_IO; }
    return PROTO_OK;
}

/* W += magnitude · ‖W‖_F · G/‖G‖_F, G ~ N(0, 1) seeded by (seed, tensor name). */
static void perturb(float *w, size_t n, double magnitude, uint64_t seed, const char *name)
{
    uint64_t r = seed * 0x9e3779b97f4a7c15ULL ^ hash_str(name);
    double nw = 0, ng = 0;
    float *g = malloc(n * sizeof *g);
    if (!g) return;
    for (size_t i = 0; i < n; i++) { g[i] = (float)proto_rng_normal(&r); ng += (double)g[i] * g[i]; nw += (double)w[i] * w[i]; }
    double c = ng > 0 ? magnitude * sqrt(nw / ng) : 0;
    for (size_t i = 0; i < n; i++) w[i] = (float)(w[i] + c * g[i]);
    free(g);
}

static int run_finetune(const struct opts *o)
{
    char src[4200], dst[4200];
    struct proto_st st = {0};
    struct model m = {0};
    int err;
    if ((err = make_dir(o->cli.out))) return err;
    snprintf(src, sizeof src, "%s/model.safetensors", o->finetune_of);
    if ((err = proto_st_open(&st, src))) { if (!*proto_detail()) proto_set_detail("%s", src); return err; }
    enum proto_dtype dt = PROTO_F32;
    int n_perturbed = 0;
    for (int i = 0; i < st.n && !err; i++) {
        const struct proto_st_tensor *t = &st.t[i];
        if (t->ndim < 1 || t->ndim > 2 || (t->dtype != PROTO_F32 && t->dtype != PROTO_BF16 && t->dtype != PROTO_F16)) {
            proto_set_detail("%s: tensor %s: only 1-D/2-D float tensors are supported", src, t->name);
            err = PROTO_E_FORMAT; break;
        }
        if (t->dtype == PROTO_BF16) dt = PROTO_BF16;
        float *w = model_add(&m, t->name, t->shape[0], t->ndim == 2 ? t->shape[1] : 0);
        if (!w) { err = PROTO_E_NOMEM; break; }
        void *tmp = malloc(t->nbytes ? t->nbytes : 1);   /* the mapping is not aligned */
        if (!tmp) { err = PROTO_E_NOMEM; break; }
        memcpy(tmp, t->data, t->nbytes);
        proto_convert_to_f32(w, tmp, t->dtype, numel(&m.t[m.n - 1]));
        free(tmp);
        int layer;
        if (sscanf(t->name, "model.layers.%d.", &layer) == 1 && layer >= 0 && layer < MAX_LAYERS && o->perturb[layer]) {
            perturb(w, numel(&m.t[m.n - 1]), o->magnitude, o->seed, t->name);
            n_perturbed++;
        }
    }
    proto_st_close(&st);
    if (err) goto out;
    if (!n_perturbed) proto_warn("%s: no tensor of the chosen layers was found; the copy is unchanged", o->finetune_of);
    snprintf(dst, sizeof dst, "%s/model.safetensors", o->cli.out);
    if ((err = write_safetensors(dst, &m, dt))) goto out;
    const char *files[] = { "tokenizer.json", "tokenizer.model", "tokenizer_config.json" };
    for (size_t k = 0; k < sizeof files / sizeof files[0] && !err; k++) {
        snprintf(src, sizeof src, "%s/%s", o->finetune_of, files[k]);
        snprintf(dst, sizeof dst, "%s/%s", o->cli.out, files[k]);
        struct stat sb;
        if (stat(src, &sb) == 0) err = copy_file(src, dst);
    }
    if (err) goto out;
    /* config.json: the base's, with the recipe recorded */
    snprintf(src, sizeof src, "%s/config.json", o->finetune_of);
    cJSON *cfg = proto_json_load(src, &err);   /* the detail names src */
    if (!cfg) goto out;
    cJSON_DeleteItemFromObjectCaseSensitive(cfg, "saeflow_finetune");
    cJSON *p = cJSON_AddObjectToObject(cfg, "saeflow_finetune");
    cJSON_AddStringToObject(p, "note", "synthetic finetune written by sf-mkmodel: random perturbation, not training");
    cJSON_AddStringToObject(p, "finetune_of", o->finetune_of);
    cJSON *ls = cJSON_AddArrayToObject(p, "perturb_layers");
    for (int l = 0; l < MAX_LAYERS; l++) if (o->perturb[l]) cJSON_AddItemToArray(ls, cJSON_CreateNumber(l));
    cJSON_AddNumberToObject(p, "magnitude", o->magnitude);
    cJSON_AddNumberToObject(p, "seed", (double)o->seed);
    snprintf(dst, sizeof dst, "%s/config.json", o->cli.out);
    err = write_json(dst, cfg);
    cJSON_Delete(cfg);
    proto_info("%s: %d tensors perturbed by relative magnitude %g", o->cli.out, n_perturbed, o->magnitude);
out:
    model_destroy(&m);
    return err;
}

/* ---------------------------------------------------------------------------------------- */
/* command line */

static void usage(FILE *fp)
{
    fprintf(fp,
"usage: sf-mkmodel -o DIR [--corpus FILE] [options]\n"
"       sf-mkmodel -o DIR --finetune-of BASE_DIR --perturb-layers 1,2 --magnitude 0.05 [--seed S]\n"
"Writes a small deterministic SYNTHETIC Llama checkpoint in Hugging Face layout: config.json\n"
"(LlamaForCausalLM), model.safetensors (f32 or bf16; HF tensor names; linear weights [out, in])\n"
"and a Gemma-style byte-level tokenizer.json (BPE with byte_fallback, normalizer \" \" -> \"\xe2\x96\x81\",\n"
"<pad> <eos> <bos> <unk> = ids 0..3, <0x00>..<0xFF> = 4..259, then the characters of --corpus\n"
"and up to --merges pieces learned by a plain BPE over its words).\n"
"The weights are made up, not trained: each token embedding is a sum of --atoms-per-token of\n"
"--atoms random unit directions (a residual stream with sparse structure), the blocks are\n"
"random, and with --corpus the untied lm_head is a least-squares fit of the corpus' bigram\n"
"log-probabilities from the normalised embeddings, so the model predicts text a little.\n"
"Same flags, same bytes.\n"
"\n"
"options:\n"
"  -o, --out DIR            output directory (required; created if missing)\n"
"  --seed S                 default 0\n"
"  --d-model N              default 64\n"
"  --layers N               default 4\n"
"  --heads N                default 4 (head_dim = d_model / heads)\n"
"  --kv-heads N             default 2\n"
"  --d-ff N                 MLP width (default 128)\n"
"  --corpus FILE            *.jsonl (text in --field, default text) or a text file\n"
"  --merges N               BPE merges to learn (default 256)\n"
"  --atoms N                embedding atoms (default 256; 0 = N(0,1) embeddings)\n"
"  --atoms-per-token K      default 3\n"
"  --layer-scale X          scales v/o/down weights: how much the blocks add (default 0.3)\n"
"  --tied                   no lm_head (tied to the embedding)\n"
"  --dtype f32|bf16         default f32\n"
"finetune mode:\n"
"  --finetune-of DIR        copy DIR (config.json, tokenizer files, weights) ...\n"
"  --perturb-layers LIST    ... adding to every tensor of these layers (comma list, or 'all')\n"
"  --magnitude M            ... Gaussian noise of relative Frobenius norm M (default 0.05):\n"
"                           W' = W + M*|W|*G/|G|, G seeded by --seed and the tensor name\n");
    proto_cli_help_common(fp);
    fprintf(fp,
"\nexamples:\n"
"  sf-mkmodel -o demo/base --corpus data/demo/stories.jsonl --seed 1\n"
"  sf-mkmodel -o demo/ft-mild --finetune-of demo/base --perturb-layers 1,2 --magnitude 0.05\n"
"  sf-mkmodel -o tiny --d-model 32 --layers 2 --dtype bf16 --atoms 0\n");
}

static void parse_layers(struct opts *o, const char *s)
{
    o->perturb_given = true;
    if (!strcmp(s, "all")) { for (int l = 0; l < MAX_LAYERS; l++) o->perturb[l] = true; return; }
    char *tmp = strdup(s), *save = NULL;
    for (char *t = strtok_r(tmp, ",", &save); t; t = strtok_r(NULL, ",", &save))
        o->perturb[proto_parse_ll("--perturb-layers", t, 0, MAX_LAYERS - 1)] = true;
    free(tmp);
}

static void parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {
        PROTO_CLI_LONGOPTS,
        {"seed", required_argument, 0, OPT_SEED}, {"d-model", required_argument, 0, OPT_D_MODEL},
        {"layers", required_argument, 0, OPT_LAYERS}, {"heads", required_argument, 0, OPT_HEADS},
        {"kv-heads", required_argument, 0, OPT_KV_HEADS}, {"d-ff", required_argument, 0, OPT_D_FF},
        {"corpus", required_argument, 0, OPT_CORPUS}, {"field", required_argument, 0, OPT_FIELD},
        {"merges", required_argument, 0, OPT_MERGES}, {"dtype", required_argument, 0, OPT_DTYPE},
        {"atoms", required_argument, 0, OPT_ATOMS}, {"atoms-per-token", required_argument, 0, OPT_ATOMS_PER_TOKEN},
        {"layer-scale", required_argument, 0, OPT_LAYER_SCALE}, {"tied", no_argument, 0, OPT_TIED},
        {"finetune-of", required_argument, 0, OPT_FINETUNE_OF}, {"perturb-layers", required_argument, 0, OPT_PERTURB_LAYERS},
        {"magnitude", required_argument, 0, OPT_MAGNITUDE}, {0, 0, 0, 0}};
    bool out_given = false;
    int c;
    while ((c = getopt_long(argc, argv, PROTO_CLI_SHORTOPTS, lo, NULL)) != -1) {
        if (c == 'o') out_given = true;
        if (proto_cli_common(&o->cli, c, optarg, usage)) continue;
        switch (c) {
        case OPT_SEED: o->seed = (unsigned long long)proto_parse_ll("--seed", optarg, 0, 1LL << 62); break;
        case OPT_D_MODEL: o->d_model = (int)proto_parse_ll("--d-model", optarg, 2, 1 << 16); break;
        case OPT_LAYERS: o->n_layers = (int)proto_parse_ll("--layers", optarg, 1, MAX_LAYERS); break;
        case OPT_HEADS: o->n_heads = (int)proto_parse_ll("--heads", optarg, 1, 1024); break;
        case OPT_KV_HEADS: o->n_kv_heads = (int)proto_parse_ll("--kv-heads", optarg, 1, 1024); break;
        case OPT_D_FF: o->d_ff = (int)proto_parse_ll("--d-ff", optarg, 1, 1 << 20); break;
        case OPT_CORPUS: o->corpus = optarg; break;
        case OPT_FIELD: o->field = optarg; break;
        case OPT_MERGES: o->n_merges = (int)proto_parse_ll("--merges", optarg, 0, 1 << 20); break;
        case OPT_ATOMS: o->n_atoms = (int)proto_parse_ll("--atoms", optarg, 0, 1 << 20); break;
        case OPT_ATOMS_PER_TOKEN: o->atoms_per_token = (int)proto_parse_ll("--atoms-per-token", optarg, 1, 64); break;
        case OPT_LAYER_SCALE: o->layer_scale = proto_parse_double("--layer-scale", optarg, 0, 1e3); break;
        case OPT_TIED: o->tied = true; break;
        case OPT_DTYPE:
            if (!strcmp(optarg, "f32")) o->dtype = PROTO_F32;
            else if (!strcmp(optarg, "bf16")) o->dtype = PROTO_BF16;
            else proto_usage_error("--dtype: '%s' is not f32 or bf16", optarg);
            break;
        case OPT_FINETUNE_OF: o->finetune_of = optarg; break;
        case OPT_PERTURB_LAYERS: parse_layers(o, optarg); break;
        case OPT_MAGNITUDE: o->magnitude = proto_parse_double("--magnitude", optarg, 0, 1e6); break;
        default: proto_usage_error("unknown option");
        }
    }
    if (optind < argc) proto_usage_error("unexpected argument '%s'", argv[optind]);
    if (!out_given || !strcmp(o->cli.out, "-")) proto_usage_error("-o DIR is required");
    if (o->finetune_of && !o->perturb_given) proto_usage_error("--finetune-of needs --perturb-layers");
    if (!o->finetune_of && o->perturb_given) proto_usage_error("--perturb-layers needs --finetune-of");
    if (o->d_model % o->n_heads) proto_usage_error("--d-model %d is not a multiple of --heads %d", o->d_model, o->n_heads);
    if (o->n_heads % o->n_kv_heads) proto_usage_error("--heads %d is not a multiple of --kv-heads %d", o->n_heads, o->n_kv_heads);
    if ((o->d_model / o->n_heads) % 2) proto_usage_error("head_dim %d must be even (RoPE)", o->d_model / o->n_heads);
    proto_cli_finish(&o->cli, false);
    if (o->finetune_of) proto_cli_check_distinct(o->cli.out, o->finetune_of);   /* a finetune must not overwrite its base */
}

int main(int argc, char **argv)
{
    struct opts o = opts_default(argv[0]);
    parse_args(argc, argv, &o);
    int err = o.finetune_of ? run_finetune(&o) : run_new(&o);
    if (err) return proto_fail(err, o.finetune_of ? o.finetune_of : o.corpus ? o.corpus : o.cli.out);
    return PROTO_EXIT_OK;
}
