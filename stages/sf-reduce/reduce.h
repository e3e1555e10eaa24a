/* reduce.h - sf-reduce's private header: the state every part shares and the functions they call
 * across files. The parts, in the order a run goes through them:
 *
 *   main.c         options, usage, parse_args, main (which mode runs, one exit)
 *   checkpoints.c  --base-model/--finetune-model/--sae, opened and checked BEFORE any frame is
 *                  read (the weight deviation and the unembedding Frobenius figures are computed
 *                  there too), the logit
 *                  similarity of the chosen features after the streams, and --weights-only
 *   inputs.c       reading the streams: one at a time (-i) or paired frame by frame (--base/
 *                  --finetune), each input's header/end into the provenance
 *   accumulate.c   histograms and the running sums (similarity, per model, transfer)
 *   partial.c      the "partial" block (raw running sums) out, and --merge reading it back in
 *   finalize.c     the SPEC §4 result document from the running sums
 *   features.c     the per-feature drill-down (issue 16): every feature's top-k activating
 *                  contexts in each model (bounded: topk_bytes), the "features" block of the
 *                  features the report shows, features.jsonl (--features-out), the token pieces
 *
 * Every sum over frames is kept in double and every count in uint64 (STYLE 6.7). No stored
 * activations: memory is O(d_sae + d_model + ctx + rows) whatever the number of tokens, plus the
 * drill-down's fixed d_sae x K x (2W + 1) top-k windows (topk_bytes, refused over DRILL_MAX_BYTES).
 */
#ifndef SF_REDUCE_REDUCE_H
#define SF_REDUCE_REDUCE_H

#include <stdbool.h>
#include <stdint.h>
#include <stdio.h>
#include <cjson/cJSON.h>
#include "proto.h"
#include "cli.h"
#include "hf-model.h"
#include "hook.h"
#include "sae-dir.h"

/* ======================== constants ======================== */
#define L0_EPS      1e-8     /* a feature counts towards L0 when f > L0_EPS */
#define DENS_EPS    1e-10    /* ... and towards its density when f > DENS_EPS */
#define LOG_EPS     1e-10    /* log10(density + LOG_EPS), log10(a + LOG_EPS) */
#define NORM_FLOOR  1e-12    /* norms are floored here before dividing */
#define DEAD_LOG    (-9.0)   /* dead: log_density <= -9 */
#define XDEAD_LOG   (-8.0)   /* exclusively dead sets: <= -8 in one model, > -8 in the other */
#define REG_LO      (-5.0)   /* regular: REG_LO <= log_density <= REG_HI in both models */
#define REG_HI      (-1.0)
#define SIM_HI      0.8      /* activation_similarity.frac_above_0.8 */
#define MAX_INPUTS  16
#define PARTIAL_VERSION 1
#define MAX_D_SAE   (1u << 24)   /* largest feats.d_sae accepted (accumulators are 56 bytes per feature) */

/* ======================== options ======================== */
struct opts {
    struct proto_cli cli;
    const char *in[MAX_INPUTS]; int n_in;
    const char *base[MAX_INPUTS]; int n_base;
    const char *ft[MAX_INPUTS]; int n_ft;
    const char *base_model, *ft_model, *sae_dir;
    const char *hook;           /* --hook H: only H's frames of a multi-hook stream */
    bool weights_only, pretty, merge, no_partial;
    char **merge_files; int n_merge;
    long long sample; uint64_t seed;
    /* drill-down (features.c) */
    long long top_k, ctx_w, cards, logit_n;   /* --top-k (0: off), --context, --feature-cards, --logit-tokens */
    const char *features_out, *tokenizer;     /* --features-out FILE, --tokenizer PATH */
    bool all_logits;                          /* --all-logits: logit figures of every feature in the jsonl */
    uint32_t asked[256]; int n_asked;         /* --features i,j,k */
    int argc; char **argv;
};

/* ======================== histograms ========================
 * Two kinds, both with fixed edges so two runs can be compared and merged:
 * LIN : n bins [lo + k*step, lo + (k+1)*step); a value v goes to floor((v - lo)/step).
 * LOGZ: bin 0 is [0, 10^lo); bin k >= 1 is [10^(lo+(k-1)*step), 10^(lo+k*step)); a value v >= 10^lo
 *       goes to 1 + floor((log10(v) - lo)/step). Used for norms and l2 distances, whose scale
 *       differs by model (stories260k ~7, Gemma-2b ~100s).
 * The last bin also takes its right edge. Values outside go to "below"/"above", NaN to "nan". */
enum hkind { H_LIN, H_LOGZ };
/* lo = lo_num/den, step = step_num/den: edges are exact decimals, binning uses the same integers */
struct hspec { enum hkind kind; int lo_num, step_num, den, n; };
extern const struct hspec HS_COS, HS_NORM, HS_ACT, HS_DENS;

struct hist {
    struct hspec s;
    uint64_t *c;                 /* (s.n) */
    uint64_t below, above, nan;
    double zlo;                  /* LOGZ: 10^lo */
};

int hist_init(struct hist *h, struct hspec s);
void hist_add(struct hist *h, double v);
double hist_edge(const struct hspec *s, int k);

/* ======================== drill-down: top-k contexts ======================== */
struct pair;                    /* features.c: (feature, value) of a sorted CSR copy */
#define TOPK_DEFAULT   8
#define CTXW_DEFAULT   8
#define TOPK_MAX       64
#define CTXW_MAX       64
#define CARDS_DEFAULT  5        /* best and worst regular features, and of each dead set, shown */
#define LOGIT_DEFAULT  10       /* top and bottom logit tokens per feature per model */
#define MAX_ASKED      256      /* --features list */
#define DRILL_MAX_BYTES (2048ULL << 20)   /* top-k state of one model: refused above 2 GiB */
/* One model's top-k activating contexts of every feature. An example is a token where the
 * feature fired (f > 0, finite); the K largest are kept, descending, ties to the earlier token
 * (stream order), with the window of W tokens each side clipped to the token's row. */
struct topk {
    uint32_t d_sae, K, W, span;   /* span = 2W + 1 */
    uint32_t *n;                  /* (d_sae) examples kept */
    float *thr;                   /* (d_sae) the value a new example must beat: the K-th, or 0 */
    float *val;                   /* (d_sae, K) descending */
    uint64_t *row;                /* (d_sae, K) row over this model's feats frames, from 0 */
    uint32_t *pos;                /* (d_sae, K) position in the row */
    uint8_t *slot;                /* (d_sae, K) where the k-th example's window is: the windows stay put */
    int32_t *tok;                 /* (d_sae, K slots, span) window token ids, -1 past the row's edges */
    float *wact;                  /* (d_sae, K slots, span) the feature's activation on each window token */
    void *pairs; uint64_t cap;    /* (cap) frame scratch: an unsorted frame's CSR, sorted per token */
    const struct pair *sp_pairs;  /* the current frame's sorted copy (pairs), NULL: use the CSR */
};
/* bytes of a topk of d_sae features: d_sae * (8 + K * (17 + 8 * (2W + 1))) */
uint64_t topk_bytes(uint64_t d_sae, uint64_t K, uint64_t W);
int topk_init(struct topk *t, uint32_t d_sae, uint32_t K, uint32_t W);
void topk_destroy(struct topk *t);
/* One frame: feats sp over rows x ctx tokens, tok (rows, ctx); row0 its first row's number. */
void topk_add(struct topk *t, const struct proto_sparse *sp, const int32_t *tok, uint64_t ctx, uint64_t row0);
struct modelacc;
/* partial.MODEL.topk of a --shard run (features.c), and --merge reading it back */
cJSON *topk_partial(const struct modelacc *m);
int topk_from(struct modelacc *m, const cJSON *o);

/* ======================== accumulators ======================== */
/* similarity: per-token cos and l2 of base vs finetune */
struct simacc {
    uint64_t n, nonfinite;
    double s_cos, s_l2;
    uint64_t ctx;
    double *pos_cos, *pos_l2; uint64_t *pos_n;   /* (ctx) */
    double *row_cos, *row_l2; uint64_t *row_n;   /* (row_cap), the first rows used */
    size_t rows, row_cap;
    struct hist h_cos, h_l2;
};

/* one mean-of-values key of loss frames */
struct lossacc { double sum; uint64_t n, nonfinite; bool seen; };
enum { CE_CLEAN, CE_SPLICED, CE_ABLATED, KL_SPLICED, KL_ABLATED, CE_SPLICED_ALL, KL_SPLICED_ALL, N_LOSS };
extern const char *const LOSS_KEYS[N_LOSS];

/* reconstruction sums over a set of tokens */
struct reconacc {
    uint64_t r_tok, r_nonfinite, ev_tok, ev_nonfinite;
    double r_n, r_mean, r_m2;            /* scalars: Chan's running count, mean, M2 */
    double ss_res, ev_sum, cos_sum, ratio_sum;
};

/* per-model: features, activations, reconstruction, loss */
struct modelacc {
    uint32_t d_sae; uint64_t d_model;
    /* feats (all tokens) */
    uint64_t f_tok, l0_count, feat_nonfinite, act_pos;
    double l1_sum;
    uint64_t *fire, *nz;                 /* (d_sae) #f > DENS_EPS, #f != 0 */
    double *sa, *sa2, *amax, *amin;      /* (d_sae) over f != 0 */
    struct hist h_act;                   /* log10 f, f > 0 */
    /* acts frames (all their tokens; outliers from keep, norms when acts is there) */
    uint64_t a_tok, outliers;
    struct hist h_norm;
    /* recon: rc over the non-outlier tokens (the seed's filtering), rc_all over every token (only
     * when the stream has keep: the figures without any filtering, "*_unfiltered") */
    struct reconacc rc, rc_all;
    bool has_rc_all;
    struct lossacc loss[N_LOSS];
    double outlier_threshold;            /* from the header meta (sf-outliers), NaN when unknown */
    struct topk tk; uint64_t tk_rows;    /* drill-down (when on): contexts, rows of feats frames seen */
    uint64_t hdr_d_sae;                  /* the current input header's d_sae (sf-encode), 0 when unknown */
    bool has_feats, has_acts, has_recon, has_loss;
};

/* transfer: per-feature cross sums of the paired streams */
struct xacc {
    uint64_t n_tok; uint32_t d_sae;
    double *sab, *sld;                   /* (d_sae) Σ a_b·a_f, Σ |log10(a_b+eps) - log10(a_f+eps)| */
};

/* the whole state of one run (or of a merge) */
struct acc {
    int paired;                 /* 0: one model ("model"), 1: base/finetune */
    uint64_t tokens, rows, ctx; /* of the primary input (first input / first pair) */
    uint64_t ktok[PROTO_KIND_OTHER + 1], krows[PROTO_KIND_OTHER + 1];   /* ... by frame kind */
    char hook[256], sae[1024];
    struct simacc sim; bool has_sim;
    struct modelacc m[2];
    struct xacc x; bool has_x;
    double seconds; uint64_t reduce_rows, reduce_tokens;
    cJSON *prov_inputs;         /* array of {role, endpoint, header, end} */
    struct proto_progress prog;
    bool warned_sim, warned_hook;
    uint32_t tk_k, tk_w;        /* drill-down: --top-k, --context (tk_k 0: off; off in multi-hook runs) */
    bool tk_partial;            /* the top-k contexts go into the partial block (--shard runs) */
    /* a multi-hook stream (header "hook" lists several, no --hook): one acc per hook, in stream
     * order, each finalized into its own block of "hooks" (PROTOCOL.md §5) */
    bool multi;
    struct acc **sub; int n_sub;
};

/* frame-local scratch, grown only when needed */
struct scratch {
    struct proto_buf acts, recon, acts2, cosb, l2b, mu, flag;
    float *vb, *vf;     /* (d_sae) dense views of one token's features, zero between tokens */
    uint32_t d_sae;
};

int acc_init(struct acc *a, int paired);
/* The acc a frame goes to: a itself, the multi-hook stream's acc of the frame's hook (made on first
 * sight), or NULL when the frame is skipped (another hook than --hook; no hook in a multi stream). */
int acc_route(struct acc *a, const struct opts *o, const struct proto_frame *f, struct acc **out);
void acc_destroy(struct acc *a);
int sim_grow_rows(struct simacc *s, size_t rows);
int sim_add(struct simacc *s, uint64_t rows, uint64_t ctx, const float *cos, const float *l2);
int model_init_feats(struct modelacc *m, uint32_t d_sae);
int x_init(struct xacc *x, uint32_t d_sae);
void chan_merge(double *n, double *mean, double *m2, double nb, double meanb, double m2b);
void scratch_destroy(struct scratch *s);
void model_add_feats(struct modelacc *m, const struct proto_sparse *sp);
int model_add_recon(struct modelacc *m, struct scratch *s, const float *x, const float *y,
                    const uint8_t *keep, uint64_t n_tok, uint64_t d);
void model_add_acts(struct modelacc *m, const float *x, uint64_t n_tok, uint64_t d);
void model_add_loss(struct modelacc *m, int key, const float *v, uint64_t n);
void x_add(struct xacc *x, const struct proto_sparse *b, const struct proto_sparse *f, float *vb, float *vf);
/* seq UINT64_MAX: the ctx comes from a partial (the detail says so) */
int set_ctx(struct acc *a, uint64_t ctx, uint64_t seq);
int need_feats(struct modelacc *m, struct scratch *s, uint32_t d_sae, uint64_t seq);

/* ======================== checkpoints ======================== */
/* The unembedding as HF stores it, E: (V, d) (lm_head, or embed_tokens when tied), and the final
 * norm weight folded into it, g: (d) = w, or 1 + w for Gemma. E borrows from its checkpoint. */
struct unembed {
    const struct proto_st_tensor *E;  /* (V, d) */
    float *g;                         /* (d), owned */
    uint64_t V, d;
};

/* Everything --base-model/--finetune-model/--sae give that does not depend on the streams,
 * opened, checked and computed by ckpts_open before the first frame is read. */
struct ckpts {
    bool on;                          /* --base-model and --finetune-model were given */
    struct proto_hf_model *cb, *cf;   /* base, finetune */
    struct unembed ub, uf;
    const char *sae_dir;              /* --sae, NULL without */
    bool has_sae;                     /* --sae too: sae is open (W_dec mapped, d_in = ub.d) */
    struct proto_sae sae;
    double frob_ratio, frob_error;    /* transfer.unembed_frobenius_ratio/error */
    cJSON *wdev;                      /* weight_deviation (as --weights-only gives it), owned */
};

/* Opens what o names (nothing without --base-model, or with --weights-only); *where names the
 * failing part. ckpts_close(ck) in every case. */
int ckpts_open(const struct opts *o, struct ckpts *ck, const char **where);
void ckpts_close(struct ckpts *ck);
/* transfer.logit_similarity of the features idx (n; < d_sae, the streams' d_sae): r (n). */
int logit_similarity(const struct ckpts *ck, const uint32_t *idx, size_t n, uint32_t d_sae, double *r);
int run_weights_only(const struct opts *o, cJSON **out, const char **where);
/* The N largest and N smallest logits W_dec[j]·(g ⊙ E)ᵀ over the base vocabulary of features idx
 * (n) through model mi (0 base, 1 finetune): ids and values (n, N) each, descending (top) and
 * ascending (bottom), ties to the lower id. Vocabulary in chunks of VOCAB_CHUNK rows, sgemm. */
int logit_extremes(const struct ckpts *ck, int mi, const uint32_t *idx, size_t n, uint32_t d_sae, uint32_t N,
                   uint32_t *top_id, float *top_v, uint32_t *bot_id, float *bot_v);

/* ======================== inputs ======================== */
int run_streams(const struct opts *o, struct acc *a, const char **where);

/* ======================== partial results ======================== */
cJSON *jarr_d(const double *v, size_t n);
cJSON *jarr_u(const uint64_t *v, size_t n);
cJSON *jarr_u_from32(const uint32_t *v, size_t n);
cJSON *acc_partial(const struct acc *a);
int run_merge(const struct opts *o, struct acc *a, const char **where);

/* ======================== finalize ======================== */
/* prov: provenance(), consumed. */
int finalize(struct acc *a, const struct opts *o, const struct ckpts *ck, cJSON *prov, cJSON **out);
cJSON *provenance(struct acc *a, const struct opts *o);
/* finalize for a multi-hook run: {"hooks": [one finalize() block per hook, "hook" first], ...} */
int finalize_hooks(struct acc *a, const struct opts *o, const struct ckpts *ck, cJSON *prov, cJSON **out);
int write_doc(const cJSON *doc, const struct opts *o);
double feat_pearson(const struct acc *a, uint32_t j);

/* --- drill-down output (features.c) --- */
/* The feature sets of a paired run (finalize.c's transfer block); all NULL/0 for one model. */
struct fsel {
    const uint32_t *reg, *deadb, *deadf; size_t nreg, ndeadb, ndeadf;
    const double *asim;         /* (d_sae) activation similarity of every feature, NULL for one model */
};
/* doc["features"]: the cards of the shown features (best/worst regular by activation similarity,
 * the exclusively dead sets, --features), with logit figures when the checkpoints and SAE are
 * given, and the token pieces; --features-out: every feature's line, written atomically. */
int features_block(const struct acc *a, const struct opts *o, const struct ckpts *ck, const struct fsel *fs, cJSON *doc);

/* --- warnings (issue 16) --- */
/* The "warnings" array of the result (finalize.c): figures that make the study's verdict
 * untrustworthy. The seed's outlier handling assumes a small outlier set (0.24% Gemma-2b, 0.7%
 * Mistral-7B): above WARN_OUTLIER_FRAC in either model CE spliced, R², EV cover too few tokens.
 * Below WARN_MIN_TOKENS (= 10^-REG_LO) tokens a feature at the regular set's lower density edge
 * (10^REG_LO) is expected to fire less than once: that edge cannot be resolved. */
#define WARN_OUTLIER_FRAC 0.01
#define WARN_MIN_TOKENS   100000.0


/* --- shards (issue 13) ---
 * A study plan (pipelines/transfer.sh --plan OUT writes OUT/study.json) fixes what every shard of
 * one study shares: {"saeflow_plan": 1, "plan_hash": H, "settings": {..., "rows": rows per frame,
 * "frames": F, "total_rows": T, "hook", "ctx", "base", "finetune", "sae", outlier rule ...}}.
 * Shard K of N (0-based) covers frames [K*F/N, (K+1)*F/N), i.e. rows [lo, hi) with lo = first
 * frame * rows, hi = min(end frame * rows, T). sf-reduce --plan FILE --shard K/N checks its
 * streams had hi - lo rows and writes partial.shard = {plan_hash, k, n, row_start, row_end,
 * settings}; --merge [--plan FILE] checks the parts form the plan exactly once, orders them by
 * row range, and takes the checkpoint and SAE paths from the settings. */
struct shardopts {
    const char *plan;               /* --plan FILE, NULL without */
    long long k, n;                 /* --shard K/N; n == 0: not given */
    char *hash;                     /* the plan's (or the first part's) plan_hash, owned */
    cJSON *settings;                /* the plan's (or the first part's) settings, owned */
    uint64_t rows_per_frame, frames, total_rows, row_lo, row_hi;
    const char *base_model, *ft_model, *sae_dir;   /* borrowed from settings */
};
/* "K/N" -> so->k, so->n (usage error otherwise) */
void shard_parse_arg(const char *arg, struct shardopts *so);
/* Reads so->plan (hash, settings) and, with --shard, the row range. */
int plan_load(struct shardopts *so, const char **where);
/* The shard block into doc's partial; the streams must have had the plan's rows. */
int shard_annotate(cJSON *doc, const struct acc *a, const struct shardopts *so);
/* --merge: checks the parts against each other (and the plan), reorders o->merge_files by row
 * range, and sets so's paths from the settings. Unsharded parts (no partial.shard) pass as before. */
int merge_check(struct opts *o, struct shardopts *so, const char **where);
void shard_free(struct shardopts *so);

#endif
