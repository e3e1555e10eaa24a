/* sf-reduce - every metric of the study, streaming, in one pass: frames in, one JSON document out.
 *
 * Reads `sim` frames (similarity block), `acts` frames with `feats` (+ `recon`, `keep`) and
 * `loss` frames (per-model block) from one or more inputs (-i, repeatable), or two paired
 * streams (--base A --finetune B: both per-model blocks, the similarity block from the paired
 * activations and the transfer block). With --base-model/--finetune-model/--sae it adds the
 * logit weight similarity and the unembedding Frobenius figures; --weights-only compares two
 * checkpoints tensor by tensor without any stream. --merge a.json b.json ... combines the
 * "partial" blocks of shard results into the result one pass over all shards would give.
 * Keys: proto/PROTOCOL.md §5; definitions: proto/PROTOCOL.md §6; layout choices: usage().
 * The parts of this stage and what each holds: reduce.h. This file: options, usage, main.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "reduce.h"

/* ======================== options ======================== */
static struct opts opts_default(void)
{
    struct opts o;
    memset(&o, 0, sizeof o);
    o.seed = 0;
    o.top_k = TOPK_DEFAULT; o.ctx_w = CTXW_DEFAULT; o.cards = CARDS_DEFAULT; o.logit_n = LOGIT_DEFAULT;
    return o;
}

/* ======================== usage ======================== */
/* long: one help text, flag by flag; split, it would read worse */
static void usage(FILE *fp)
{
    fprintf(fp,
"usage: sf-reduce [options] [-i ENDPOINT]...\n"
"       sf-reduce [options] --base ENDPOINT --finetune ENDPOINT [--base-model DIR --finetune-model DIR --sae DIR]\n"
"       sf-reduce --weights-only --base-model DIR --finetune-model DIR\n"
"       sf-reduce --merge [--plan study.json] A.json B.json ...\n"
"       sf-reduce --plan study.json --shard K/N --base ENDPOINT --finetune ENDPOINT ...\n"
"\n"
"Reduces saeflow streams to one JSON document (proto/PROTOCOL.md section 5) in one pass, with\n"
"memory independent of the number of tokens. What each frame kind gives:\n"
"  sim frames                      -> \"similarity\" (cos/l2 means, by position, by row, histograms)\n"
"  acts + feats (+ recon, keep)    -> \"model\": l0, l1, log_density, dead_*, r2_pooled,\n"
"                                     explained_variance, mse, cos_recon, l2_ratio, outliers, histograms\n"
"  loss frames                     -> \"model\": ce_clean/spliced/ablated, ce_delta, ce_recovered, kl_*\n"
"Several -i inputs are reduced one after the other into the same blocks (e.g. an acts+feats stream\n"
"and a loss stream of the same model); top-level tokens/rows count the first input (the frame\n"
"kind that covers the most tokens, when one stream carries several kinds over the same tokens).\n"
"Every input is read from the start: inputs after the first (pair) that are not regular files\n"
"(fifos, stdin, ZeroMQ) are drained by a thread into $TMPDIR while the first is reduced, so no\n"
"writer waits for another stream to end (disk: those streams' size; removed at the end).\n"
"\n"
"Options:\n"
"  -i, --in ENDPOINT        input stream (repeatable; default -)\n"
"  --base ENDPOINT          base-model stream; --finetune ENDPOINT the finetune's over the same tokens\n"
"                           (repeatable in pairs). Gives \"base\", \"finetune\", \"similarity\" (from the\n"
"                           paired acts) and \"transfer\" (when both carry feats). Different tokens: exit 1.\n"
"  --base-model DIR, --finetune-model DIR\n"
"                           HF checkpoints: weight_deviation (first, before any frame; --progress: its mean,\n"
"                           max), transfer.unembed_frobenius_*; --sae DIR: transfer.logit_similarity too\n"
"  --sae DIR                SAELens SAE directory (W_dec of sae_weights.safetensors)\n"
"  --weights-only           only compare the checkpoints (weight_deviation, unembedding figures); no stream\n"
"  --sample N               use N random features of each transfer set (default: all)\n"
"  --seed S                 seed of --sample (default 0)\n"
"  --merge                  the positional arguments are sf-reduce JSON files of shards of one study\n"
"                           (in stream order; shards of a plan: any order); prints what one pass gives\n"
"  --plan FILE --shard K/N  the streams are shard K of N (frames [K*F/N, (K+1)*F/N)) of a study plan\n"
"                           (transfer.sh --plan); partial.shard gets its hash, K/N, rows, settings. A\n"
"                           merge of shards orders them by rows, refuses (exit 1) missing, repeated,\n"
"                           overlapping shards, gaps, mixed plans/settings (--plan FILE: all of FILE),\n"
"                           and takes --base-model/--finetune-model/--sae from the settings\n"
"  --pretty                 indent the JSON\n"
"\n"
"Per-feature drill-down (issue 16; the \"features\" block, proto/PROTOCOL.md section 5):\n"
"  --top-k K                keep every feature's K largest activations in each model (default %d; 0: off;\n"
"                           at most %d), each with its token window; ties go to the earlier token\n"
"  --context W              tokens each side of a kept activation (default %d; at most %d), clipped to its row\n"
"                           MEMORY BOUND: d_sae x (8 + K x (17 + 8 x (2W + 1))) bytes per model, allocated\n"
"                           at the first feats frame (d_sae 65536, K 8, W 8: 77 MiB per model, 154 MiB paired);\n"
"                           over %llu MiB per model the run is refused (exit 1). --shard runs put them in\n"
"                           partial.MODEL.topk, so merged shards have the single pass's contexts (unsharded\n"
"                           parts: none); none for multi-hook streams (select --hook H)\n"
"  --feature-cards N        cards of the N best and N worst regular features by activation similarity and\n"
"                           of the N most active features of each exclusively dead set (default %d)\n"
"  --features I,J,K         cards of these features too (at most %d)\n"
"  --logit-tokens N         top and bottom N logits W_dec[j].(g * E)^T of each card's feature in each model\n"
"                           (default %d; needs --base-model/--finetune-model/--sae; vocabulary in blocks, sgemm)\n"
"  --features-out FILE      every feature's line (id, log densities, max acts, act-sim, logit-sim of the\n"
"                           carded features, top contexts) as JSON lines, written whole or not at all\n"
"  --all-logits             with --features-out: logit similarity and tokens of EVERY feature (d_sae x V x\n"
"                           d_model multiply-adds per model, 256 features at a time)\n"
"  --tokenizer PATH         tokenizer.model / tokenizer.json (or a directory) whose pieces decode the cards'\n"
"                           token ids (features.pieces); default: the --base-model directory's\n"
"  --no-partial             leave out the \"partial\" block (the result can then not be merged)\n"
"\n"
"Definitions (proto/PROTOCOL.md section 6), and the choices this stage makes:\n"
"  l0: mean #features with f > 1e-8; density: #tokens with f > 1e-10 / N;\n"
"  log_density = log10(density + 1e-10); dead <=> log_density <= -9. Exclusively dead in base:\n"
"  L_b <= -8 < L_f (and vice versa); regular: -5 <= L <= -1 in both models.\n"
"  r2_pooled = 1 - SS_res/SS_tot over every scalar of the non-outlier tokens (one scalar mean).\n"
"  explained_variance (SAELens): per token 1 - sum_d(x-xhat)^2 / sum_d(x-mu)^2, mu the per-dimension\n"
"  mean over the non-outlier tokens of the same frame (one frame = one SAELens batch), averaged\n"
"  over tokens. mse = mean sum_d (x-xhat)^2; cos_recon, l2_ratio = mean ||xhat||/||x|| (norms\n"
"  floored at 1e-12), all over non-outlier tokens. ce_recovered = (abl - spl)/(abl - clean) of the means.\n"
"  transfer: dead_only_base/dead_only_finetune/regular_count are set sizes; each set's block has\n"
"  \"features\" (indices, after --sample) and \"values\" in the same order, \"mean\", \"count\", \"nan_count\".\n"
"  activation error of a feature: mean over all tokens of |log10(a_b + 1e-10) - log10(a_f + 1e-10)|;\n"
"  max_finetune_act/max_base_act: the largest activation of the set's features in each model.\n"
"  activation_similarity: per-feature Pearson over all tokens from running sums in double (NaN for\n"
"  a constant vector); activation_similarity_all has it for every feature.\n"
"  logit_similarity: Pearson over the base vocabulary of W_dec[j] (diag(g) E^T), g the final norm\n"
"  weight (1 + w for Gemma, from config.json),\n"
"  E lm_head.weight or, tied, model.embed_tokens.weight; the unembedding is centred over the\n"
"  vocabulary (Pearson does not change; the Frobenius figures use the centred, folded W_U).\n"
"  weight_deviation: {tensors: {NAME: ||A - B||/||A||}, mean, max, max_tensor, skipped: [missing or\n"
"  other shape], by_layer: [{layer, mean, max, count}] of model.layers.L.*, by_kind: {KIND: {mean, max,\n"
"  count}}} (KIND: q_proj, norm...: the name's last part before .weight; NaN left out); vocabulary cut.\n"
"  NaN/inf are written as null; every exclusion is counted in \"nan_counts\": {WHERE: {count, reason}}.\n"
"Histograms {edges [n+1], counts [n], below, above, nan} have fixed edges: cos_hist -1..1 step 0.01;\n"
"  l2_hist, norm_hist: [0, 1e-3) then 10^(-3 + 0.025 k) up to 1e5; act_log10_hist: log10 f of f > 0,\n"
"  -10..5 step 0.05 (+ \"zeros\": token-feature pairs with f = 0); density_hist: log_density,\n"
"  -10.05..0.15 step 0.1. Bins are [left, right), the last one closed.\n"
"Extra keys: \"provenance\" (each input's header meta and end frame, the flags), \"partial\" (raw\n"
"  running sums; what --merge adds up), per block \"tokens\", \"d_sae\" and \"outlier_threshold\" (the\n"
"  input header's, set by sf-outliers; for the norm_hist plot). Bounds: feats.d_sae must equal the\n"
"  input header's d_sae (when it has one) and be at most 2^24 (16777216), else exit 1; memory is then\n"
"  at most about 56 bytes per feature (x2 paired) plus the frame being read. \"throughput\" has this stage\n"
"  and every upstream stage that put \"seconds.STAGE\" (a number) into its stream's end-frame meta.\n"
"\n", TOPK_DEFAULT, TOPK_MAX, CTXW_DEFAULT, CTXW_MAX, (unsigned long long)(DRILL_MAX_BYTES >> 20), CARDS_DEFAULT,
            MAX_ASKED, LOGIT_DEFAULT);
    proto_cli_help_common(fp);
    fprintf(fp,
"\nExamples:\n"
"  sf-encode --sae SAE < acts.sf | sf-reduce --pretty > model.json\n"
"  sf-reduce --base base.sf --finetune ft.sf --base-model M --finetune-model F --sae SAE -o study.json\n"
"  sf-reduce -i part1.sf -o p1.json; ...; sf-reduce --merge p1.json p2.json p3.json > all.json\n"
"  sf-reduce --weights-only --base-model gemma-2b --finetune-model gemma-2b-python\n");
}

enum { OPT_BASE = PROTO_OPT_FIRST_FREE, OPT_FT, OPT_BASE_MODEL, OPT_FT_MODEL, OPT_SAE, OPT_WEIGHTS_ONLY,
       OPT_SAMPLE, OPT_SEED, OPT_MERGE, OPT_PRETTY, OPT_NO_PARTIAL, OPT_PLAN, OPT_SHARD, OPT_HOOK,
       OPT_TOPK, OPT_CONTEXT, OPT_CARDS, OPT_LOGIT_N, OPT_FEATURES, OPT_FEATURES_OUT, OPT_TOKENIZER, OPT_ALL_LOGITS };

/* --features i,j,k -> o->asked */
static void parse_features(const char *arg, struct opts *o)
{
    const char *p = arg;
    while (*p) {
        char *end;
        if (*p < '0' || *p > '9') proto_usage_error("--features: '%s' is not a comma-separated list of feature indices", arg);
        unsigned long long v = strtoull(p, &end, 10);
        if (v >= MAX_D_SAE) proto_usage_error("--features: %llu is over the largest d_sae (%u)", v, MAX_D_SAE);
        if (o->n_asked == MAX_ASKED) proto_usage_error("--features: at most %d features", MAX_ASKED);
        o->asked[o->n_asked++] = (uint32_t)v;
        if (*end == ',' && end[1]) p = end + 1;
        else if (*end == 0) p = end;
        else proto_usage_error("--features: '%s' is not a comma-separated list of feature indices", arg);
    }
    if (!o->n_asked) proto_usage_error("--features: empty list");
}

static void parse_args(int argc, char **argv, struct opts *o, struct shardopts *so)
{
    static const struct option lo[] = {
        PROTO_CLI_LONGOPTS,
        {"base", required_argument, 0, OPT_BASE}, {"finetune", required_argument, 0, OPT_FT},
        {"base-model", required_argument, 0, OPT_BASE_MODEL}, {"finetune-model", required_argument, 0, OPT_FT_MODEL},
        {"sae", required_argument, 0, OPT_SAE}, {"weights-only", no_argument, 0, OPT_WEIGHTS_ONLY},
        {"sample", required_argument, 0, OPT_SAMPLE}, {"seed", required_argument, 0, OPT_SEED},
        {"merge", no_argument, 0, OPT_MERGE}, {"pretty", no_argument, 0, OPT_PRETTY},
        {"no-partial", no_argument, 0, OPT_NO_PARTIAL}, {"plan", required_argument, 0, OPT_PLAN},
        {"shard", required_argument, 0, OPT_SHARD}, {"hook", required_argument, 0, OPT_HOOK},
        {"top-k", required_argument, 0, OPT_TOPK}, {"context", required_argument, 0, OPT_CONTEXT},
        {"feature-cards", required_argument, 0, OPT_CARDS}, {"logit-tokens", required_argument, 0, OPT_LOGIT_N},
        {"features", required_argument, 0, OPT_FEATURES}, {"features-out", required_argument, 0, OPT_FEATURES_OUT},
        {"tokenizer", required_argument, 0, OPT_TOKENIZER}, {"all-logits", no_argument, 0, OPT_ALL_LOGITS}, {0, 0, 0, 0}};
    int c;
    o->argc = argc; o->argv = argv;
    proto_cli_init_blas(&o->cli, argv[0]);
    while ((c = getopt_long(argc, argv, PROTO_CLI_SHORTOPTS, lo, NULL)) != -1) {
        switch (c) {
        case 'i': if (o->n_in == MAX_INPUTS) proto_usage_error("at most %d -i inputs", MAX_INPUTS); o->in[o->n_in++] = optarg; break;
        case OPT_BASE: if (o->n_base == MAX_INPUTS) proto_usage_error("at most %d --base inputs", MAX_INPUTS); o->base[o->n_base++] = optarg; break;
        case OPT_FT: if (o->n_ft == MAX_INPUTS) proto_usage_error("at most %d --finetune inputs", MAX_INPUTS); o->ft[o->n_ft++] = optarg; break;
        case OPT_BASE_MODEL: o->base_model = optarg; break;
        case OPT_FT_MODEL: o->ft_model = optarg; break;
        case OPT_SAE: o->sae_dir = optarg; break;
        case OPT_WEIGHTS_ONLY: o->weights_only = true; break;
        case OPT_SAMPLE: o->sample = proto_parse_ll("--sample", optarg, 1, 1LL << 32); break;
        case OPT_SEED: o->seed = (uint64_t)proto_parse_ll("--seed", optarg, 0, INT64_MAX); break;
        case OPT_MERGE: o->merge = true; break;
        case OPT_PRETTY: o->pretty = true; break;
        case OPT_NO_PARTIAL: o->no_partial = true; break;
        case OPT_PLAN: so->plan = optarg; break;
        case OPT_SHARD: shard_parse_arg(optarg, so); break;
        case OPT_TOPK: o->top_k = proto_parse_ll("--top-k", optarg, 0, TOPK_MAX); break;
        case OPT_CONTEXT: o->ctx_w = proto_parse_ll("--context", optarg, 0, CTXW_MAX); break;
        case OPT_CARDS: o->cards = proto_parse_ll("--feature-cards", optarg, 0, 1000); break;
        case OPT_LOGIT_N: o->logit_n = proto_parse_ll("--logit-tokens", optarg, 0, 1000); break;
        case OPT_FEATURES: parse_features(optarg, o); break;
        case OPT_FEATURES_OUT: o->features_out = optarg; break;
        case OPT_TOKENIZER: o->tokenizer = optarg; break;
        case OPT_ALL_LOGITS: o->all_logits = true; break;
        case OPT_HOOK: {
            struct proto_hook h;
            if (!proto_hook_parse(optarg, &h)) proto_usage_error("--hook: '%s' is not blocks.L.hook_resid_pre or blocks.L.hook_resid_post", optarg);
            o->hook = optarg;
            break;
        }
        default: if (!proto_cli_common(&o->cli, c, optarg, usage)) proto_usage_error("unknown option"); break;
        }
    }
    int npos = argc - optind;
    if (o->merge) {
        if (npos < 1) proto_usage_error("--merge needs at least one JSON file");
        if (o->n_in || o->n_base || o->n_ft || o->weights_only) proto_usage_error("--merge takes JSON files, not streams");
        o->merge_files = argv + optind; o->n_merge = npos;
    } else if (npos) proto_usage_error("unexpected argument '%s' (inputs are given with -i)", argv[optind]);
    if (o->n_base != o->n_ft) proto_usage_error("--base and --finetune come in pairs (%d vs %d)", o->n_base, o->n_ft);
    if (o->n_base && o->n_in) proto_usage_error("-i cannot be combined with --base/--finetune");
    if (!o->n_base && !o->merge && !o->weights_only && !o->n_in) o->in[o->n_in++] = "-";
    int n_stdin = 0;
    for (int i = 0; i < o->n_in; i++) n_stdin += strcmp(o->in[i], "-") == 0;
    for (int i = 0; i < o->n_base; i++) n_stdin += (strcmp(o->base[i], "-") == 0) + (strcmp(o->ft[i], "-") == 0);
    if (n_stdin > 1) proto_usage_error("only one input can be stdin (-)");
    if (!o->base_model != !o->ft_model) proto_usage_error("--base-model and --finetune-model go together");
    if (o->weights_only && (!o->base_model || o->n_base || o->n_in)) proto_usage_error("--weights-only needs --base-model and --finetune-model and no stream");
    if ((o->base_model || o->sae_dir) && !o->n_base && !o->merge && !o->weights_only) proto_usage_error("--base-model/--sae need --base/--finetune streams (or --weights-only)");
    if (so->n && (!so->plan || !o->n_base)) proto_usage_error("--shard K/N needs --plan FILE and --base/--finetune streams");
    if (so->plan && !so->n && !o->merge) proto_usage_error("--plan needs --shard K/N (or --merge)");
    if (so->n && o->no_partial) proto_usage_error("--shard needs the partial block (no --no-partial)");
    if (o->weights_only && (o->features_out || o->n_asked)) proto_usage_error("--features/--features-out need streams (or --merge), not --weights-only");
    if (o->all_logits && (!o->features_out || !o->sae_dir)) proto_usage_error("--all-logits needs --features-out FILE and --base-model/--finetune-model/--sae");
    if (o->features_out && (strcmp(o->features_out, "-") == 0 || (strcmp(o->cli.out, "-") != 0 && proto_same_file(o->features_out, o->cli.out))))
        proto_usage_error("--features-out needs a file of its own (not -, not the -o output)");
    proto_cli_finish(&o->cli, false);
    for (int i = 0; i < o->n_in; i++) proto_cli_check_distinct(o->cli.out, o->in[i]);
    for (int i = 0; i < o->n_base; i++) { proto_cli_check_distinct(o->cli.out, o->base[i]); proto_cli_check_distinct(o->cli.out, o->ft[i]); }
    for (int i = 0; i < o->n_merge; i++) proto_cli_check_distinct(o->cli.out, o->merge_files[i]);
    for (int i = 0; o->features_out && i < o->n_in; i++) proto_cli_check_distinct(o->features_out, o->in[i]);
    for (int i = 0; o->features_out && i < o->n_base; i++) { proto_cli_check_distinct(o->features_out, o->base[i]); proto_cli_check_distinct(o->features_out, o->ft[i]); }
}

/* ======================== main ======================== */
#ifndef SF_REDUCE_NO_MAIN   /* tests/fuzz/fuzz-partial.c links the rest of sf-reduce without it */
int main(int argc, char **argv)
{
    struct opts o = opts_default();
    struct acc a;
    struct ckpts ck = {0};
    struct shardopts so = {0};
    cJSON *doc = NULL;
    const char *where = "init";
    int err, rc = PROTO_EXIT_OK;
    parse_args(argc, argv, &o, &so);
    if ((err = acc_init(&a, o.n_base > 0))) goto fail;
    a.tk_k = (uint32_t)o.top_k; a.tk_w = (uint32_t)o.ctx_w;   /* the drill-down's contexts (features.c) */
    a.tk_partial = so.n > 0;                                   /* a shard's contexts are merged later */
    if (o.merge && (err = merge_check(&o, &so, &where))) goto fail;   /* before the checkpoints: they may come from the plan */
    if (!o.merge && so.plan && (err = plan_load(&so, &where))) goto fail;
    if (o.merge && !o.base_model && so.base_model && so.ft_model) { o.base_model = so.base_model; o.ft_model = so.ft_model; }
    if (o.merge && !o.sae_dir && so.sae_dir && o.base_model) o.sae_dir = so.sae_dir;
    if ((err = ckpts_open(&o, &ck, &where))) goto fail;   /* before the first frame: bad paths fail at once */
    if (o.weights_only) err = run_weights_only(&o, &doc, &where);
    else if (o.merge) err = run_merge(&o, &a, &where);
    else err = run_streams(&o, &a, &where);
    if (err) goto fail;
    where = "finish";
    if (a.multi && so.n) {
        proto_set_detail("a multi-hook stream (%d hooks) cannot be a shard (not yet): select one with --hook H", a.n_sub);
        err = PROTO_E_INVAL; goto fail;
    }
    if (o.features_out && !a.multi && (!a.m[0].has_feats || (a.paired && !a.has_x))) {
        proto_set_detail("--features-out: the %s carry no feats", o.merge ? "merged parts" : "streams");
        err = PROTO_E_INVAL; goto fail;
    }
    if (a.multi && o.features_out) {
        proto_set_detail("--features-out: a multi-hook stream (%d hooks) has no drill-down (not yet): select one with --hook H", a.n_sub);
        err = PROTO_E_INVAL; goto fail;
    }
    if (!doc && a.multi && (err = finalize_hooks(&a, &o, &ck, provenance(&a, &o), &doc))) goto fail;
    if (!doc && (err = finalize(&a, &o, &ck, provenance(&a, &o), &doc))) goto fail;
    if (!o.merge && (err = shard_annotate(doc, &a, &so))) goto fail;
    if (o.merge && so.hash) {   /* provenance.plan: which plan the shards were of */
        cJSON *pl = cJSON_AddObjectToObject(cJSON_GetObjectItemCaseSensitive(doc, "provenance"), "plan");
        cJSON_AddStringToObject(pl, "plan_hash", so.hash);
        cJSON_AddNumberToObject(pl, "shards", (double)so.n);
    }
    where = o.cli.out;
    if ((err = write_doc(doc, &o))) goto fail;
    goto out;
fail:
    rc = proto_fail(err, where);
out:
    cJSON_Delete(doc);
    ckpts_close(&ck);
    acc_destroy(&a);
    shard_free(&so);
    return rc;
}
#endif
