/* sf-outliers - flag tokens whose residual-stream activation norm is an outlier.
 *
 * Reads a stream of frames; every `acts` frame gets `keep` u8 [rows, ctx] (1 = kept, 0 =
 * outlier); other frames pass through untouched. A token is an outlier when ‖x‖ > T with T from
 * one rule (proto/PROTOCOL.md §6 "Outliers"): --max-norm T; --norm-scalar s --multiplier m
 * (s·‖x‖ > m·sqrt(d_model)); --estimate N --multiplier m (s = sqrt(d_model)/E‖x‖ over the
 * first N tokens of this stream). The rule goes into the output header's meta; since the header
 * precedes the data, --estimate holds the first frames (packed, in memory) until N tokens have
 * been seen, then writes the header and replays them. Norms are computed in double.
 * --report FILE writes the outliers as JSON lines; counts go into the end frame's meta.
 */
#include <errno.h>
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>

#include "cli.h"
#include "hook.h"
#include "proto.h"

/* ---------------------------------------------------------------------------------------- */
/* options */

enum rule { RULE_NONE, RULE_MAX_NORM, RULE_SCALAR, RULE_ESTIMATE };

/* The method (proto/PROTOCOL.md §6) rests on outliers being rare: the seed saw 0.24% (Gemma-2b)
 * and 0.7% (Mistral-7B). Above this fraction a warning says the filtered metrics cover less. */
#define OUTLIER_WARN_FRACTION 0.01

struct opts {
    struct proto_cli cli;
    enum rule rule;
    double max_norm;          /* --max-norm T */
    double scalar;            /* --norm-scalar s */
    double multiplier;        /* --multiplier m; NAN = not given */
    long long estimate_n;     /* --estimate N (tokens) */
    const char *report;       /* --report FILE */
    const char *hook;         /* --hook H: mark only its frames of a multi-hook stream */
};

static struct opts opts_default(const char *argv0)
{
    struct opts o = {0};
    proto_cli_init(&o.cli, argv0);
    o.multiplier = NAN;
    return o;
}

/* ---------------------------------------------------------------------------------------- */
/* stage state */

/* Frames held back until the rule is known (packed msgpack, replayed in order). */
struct held {
    msgpack_sbuffer buf;
    int n;
};

struct state {
    struct opts *o;
    FILE *report;
    uint64_t d_model;         /* 0 until known (header meta or first acts frame) */
    bool ready;               /* rule known, header written */
    double s, m, thresh;      /* scalar, multiplier, threshold on ‖x‖ (max-norm: thresh) */
    /* --estimate: Σ‖x‖ over finite tokens among the first N */
    double est_sum; uint64_t est_seen, est_finite;
    struct held held;
    /* the upstream header meta, owned (the reader's copy dies with the next frame) */
    msgpack_sbuffer meta_buf; msgpack_unpacked meta_copy; bool have_meta;
    double *norm; uint8_t *keep; size_t tok_cap;   /* (n_tok) per-frame scratch */
    bool multi;               /* the stream carries several hooks: frames not at --hook pass */
    struct proto_buf xs;
    uint64_t n_tokens, n_outliers, n_nonfinite;
};

static void state_destroy(struct state *st)
{
    if (st->report) fclose(st->report);
    msgpack_sbuffer_destroy(&st->held.buf);
    msgpack_sbuffer_destroy(&st->meta_buf);
    if (st->have_meta) msgpack_unpacked_destroy(&st->meta_copy);
    free(st->norm); free(st->keep);
    proto_buf_destroy(&st->xs);
}

/* ---------------------------------------------------------------------------------------- */
/* kernels */

/* norm[t] = ‖x_t‖₂ in double for n_tok tokens x (n_tok, d). */
static void token_norms(const float *x, uint64_t n_tok, uint64_t d, double *norm)
{
    for (uint64_t t = 0; t < n_tok; t++) {
        const float *r = x + t * d;   // (d)
        double sq = 0;
        for (uint64_t i = 0; i < d; i++) sq += (double)r[i] * r[i];
        norm[t] = sqrt(sq);
    }
}

/* Is the token an outlier? Non-finite norms always are. The relative rule is evaluated as
 * written, s·‖x‖ > m·sqrt(d), not through a divided threshold. */
static bool is_outlier(const struct state *st, double norm)
{
    if (!isfinite(norm)) return true;
    if (st->o->rule == RULE_MAX_NORM) return norm > st->thresh;
    return st->s * norm > st->m * sqrt((double)st->d_model);
}

/* ---------------------------------------------------------------------------------------- */
/* frames */

static int grow_tok(struct state *st, uint64_t n)
{
    if (n < st->tok_cap) return PROTO_OK;
    free(st->norm); free(st->keep);
    st->norm = malloc((n + 1) * sizeof *st->norm);   /* + 1: never NULL for an empty frame */
    st->keep = malloc(n + 1);
    st->tok_cap = st->norm && st->keep ? n + 1 : 0;
    return st->tok_cap ? PROTO_OK : PROTO_E_NOMEM;
}

/* The acts tensor of an acts frame as f32 + its norms in st->norm. */
static int frame_norms(struct state *st, const struct proto_frame *fr, uint64_t *rows, uint64_t *ctx)
{
    int err;
    const struct proto_tensor *a = proto_frame_acts(fr, &err);
    if (!a) return err;
    if (!st->d_model) st->d_model = a->shape[2];
    if (a->shape[2] != st->d_model) {
        proto_set_detail("frame %llu: acts d_model %llu does not match the stream's d_model %llu",
                         (unsigned long long)fr->seq, (unsigned long long)a->shape[2], (unsigned long long)st->d_model);
        return PROTO_E_MISMATCH;
    }
    const float *x = proto_tensor_f32(a, &st->xs, &err);   // (rows*ctx, d_model)
    if (!x) return err;
    *rows = a->shape[0]; *ctx = a->shape[1];
    if ((err = grow_tok(st, *rows * *ctx)) != 0) return err;
    token_norms(x, *rows * *ctx, st->d_model, st->norm);
    return PROTO_OK;
}

/* Marks an acts frame (rule known), reports its outliers, writes it. */
static int mark_frame(struct state *st, struct proto_frame *fr, struct proto_writer *w)
{
    if (fr->kind != PROTO_KIND_ACTS) return proto_writer_put(w, fr);
    uint64_t rows, ctx;
    int err = frame_norms(st, fr, &rows, &ctx);
    if (err) return err;
    const struct proto_tensor *tok = proto_frame_tensor(fr, "tokens");
    for (uint64_t t = 0; t < rows * ctx; t++) {
        bool out = is_outlier(st, st->norm[t]);
        st->keep[t] = !out;
        st->n_outliers += out;
        st->n_nonfinite += !isfinite(st->norm[t]);
        if (out && st->report) {
            fprintf(st->report, "{\"seq\":%llu,\"row\":%llu,\"position\":%llu,\"token\":",
                    (unsigned long long)fr->seq, (unsigned long long)(t / ctx), (unsigned long long)(t % ctx));
            if (tok && tok->dtype == PROTO_I32) fprintf(st->report, "%d", ((const int32_t *)tok->data)[t]);
            else fputs("null", st->report);
            if (isfinite(st->norm[t])) fprintf(st->report, ",\"norm\":%.9g}\n", st->norm[t]);
            else fputs(",\"norm\":null}\n", st->report);
        }
    }
    st->n_tokens += rows * ctx;
    uint64_t shape[2] = {rows, ctx};
    if ((err = proto_frame_set_tensor(fr, "keep", PROTO_U8, 2, shape, st->keep)) != 0) return err;
    return proto_writer_put(w, fr);
}

/* --estimate: adds the norms of this frame's tokens among the first N of the stream. */
static int estimate_frame(struct state *st, const struct proto_frame *fr)
{
    if (fr->kind != PROTO_KIND_ACTS) return PROTO_OK;
    uint64_t rows, ctx;
    int err = frame_norms(st, fr, &rows, &ctx);
    if (err) return err;
    for (uint64_t t = 0; t < rows * ctx && st->est_seen < (uint64_t)st->o->estimate_n; t++, st->est_seen++)
        if (isfinite(st->norm[t])) { st->est_sum += st->norm[t]; st->est_finite++; }
    return PROTO_OK;
}

static int hold_frame(struct state *st, const struct proto_frame *fr)
{
    msgpack_packer pk;
    msgpack_packer_init(&pk, &st->held.buf, msgpack_sbuffer_write);
    st->held.n++;
    return proto_frame_pack(&pk, fr, false, 0);
}

/* Keeps a copy of the upstream header meta that outlives the reader's frame. */
static int keep_meta(struct state *st, const struct proto_frame *hdr)
{
    const struct proto_value *mv = proto_frame_get((struct proto_frame *)hdr, "meta");
    if (!mv || mv->type != PROTO_V_OBJ) return PROTO_OK;
    msgpack_packer pk;
    msgpack_packer_init(&pk, &st->meta_buf, msgpack_sbuffer_write);
    if (msgpack_pack_object(&pk, mv->obj)) return PROTO_E_NOMEM;
    msgpack_unpacked_init(&st->meta_copy);
    st->have_meta = true;
    size_t off = 0;
    if (msgpack_unpack_next(&st->meta_copy, st->meta_buf.data, st->meta_buf.size, &off) != MSGPACK_UNPACK_SUCCESS)
        return PROTO_E_PARSE;
    uint64_t d;
    if (proto_meta_uint(&st->meta_copy.data, "d_model", &d) == PROTO_OK) st->d_model = d;
    if (st->o->hook) return proto_hook_select(&st->meta_copy.data, st->o->hook, &st->multi);
    char list[PROTO_MAX_HOOKS * PROTO_HOOK_NAME];
    if (proto_meta_hooks(&st->meta_copy.data, list, sizeof list) > 1) {
        proto_set_detail("header: the stream carries the hooks %s: give --hook H (the outlier rule is per hook)", list);
        return PROTO_E_INVAL;
    }
    return PROTO_OK;
}

/* The rule is known: header with the rule's parameters. */
static int write_header(struct state *st, struct proto_writer *w, int argc, char **argv)
{
    const struct opts *o = st->o;
    struct proto_meta m;
    int err = PROTO_OK;
    if (o->rule == RULE_ESTIMATE) {
        if (st->est_finite == 0 && st->est_seen > 0) {
            proto_set_detail("--estimate: none of the first %llu tokens has a finite norm", (unsigned long long)st->est_seen);
            return PROTO_E_INVAL;
        }
        if (st->est_seen < (uint64_t)o->estimate_n)
            proto_warn("--estimate %lld: the stream has only %llu tokens; estimating over those", o->estimate_n,
                       (unsigned long long)st->est_seen);
        double mean = st->est_finite ? st->est_sum / (double)st->est_finite : NAN;
        st->s = sqrt((double)st->d_model) / mean;
        proto_info("estimate over %llu tokens (%llu finite): E|x| = %.9g, norm scalar s = %.9g, threshold |x| > %.9g",
                   (unsigned long long)st->est_seen, (unsigned long long)st->est_finite, mean, st->s, st->m * mean);
    }
    if (o->rule != RULE_MAX_NORM) st->thresh = st->m * sqrt((double)st->d_model) / st->s;
    proto_meta_init(&m, st->have_meta ? &st->meta_copy.data : NULL, argc, argv);
    if (st->d_model) err = proto_meta_set_uint(&m, "d_model", st->d_model);
    if (err) {
    } else if (o->rule == RULE_MAX_NORM) {
        if (!(err = proto_meta_set_str(&m, "outlier_rule", "max_norm")))
            err = proto_meta_set_double(&m, "outlier_threshold", st->thresh);
    } else {
        bool known = o->rule != RULE_ESTIMATE || st->est_finite > 0;   /* no tokens: no estimate */
        if (!(err = proto_meta_set_str(&m, "outlier_rule", "relative")) && known)
            err = proto_meta_set_double(&m, "norm_scalar", st->s);
        if (!err) err = proto_meta_set_double(&m, "outlier_multiplier", st->m);
        if (!err && known && st->d_model) err = proto_meta_set_double(&m, "outlier_threshold", st->thresh);
        if (!err && o->rule == RULE_ESTIMATE)
            err = proto_meta_set_uint(&m, "norm_estimate_tokens", st->est_finite);
    }
    if (!err) err = proto_writer_header(w, &m);
    proto_meta_destroy(&m);
    st->ready = true;
    return err;
}

/* Writes the header, then the held frames (marked) in order. */
static int release(struct state *st, struct proto_writer *w, int argc, char **argv)
{
    int err = write_header(st, w, argc, argv);
    if (err) return err;
    msgpack_unpacked res;
    struct proto_slots *slots = calloc(1, sizeof *slots);
    struct proto_frame fr;
    size_t off = 0;
    if (!slots) return PROTO_E_NOMEM;
    msgpack_unpacked_init(&res);
    for (int i = 0; i < st->held.n && !err; i++) {
        if (msgpack_unpack_next(&res, st->held.buf.data, st->held.buf.size, &off) != MSGPACK_UNPACK_SUCCESS) err = PROTO_E_PARSE;
        else if (!(err = proto_frame_from_obj(&res.data, &fr, slots)))
            err = st->multi && proto_frame_hook_is(&fr, st->o->hook) == 0 ? proto_writer_put(w, &fr) : mark_frame(st, &fr, w);
    }
    msgpack_unpacked_destroy(&res);
    proto_slots_destroy(slots);
    free(slots);
    msgpack_sbuffer_destroy(&st->held.buf);
    msgpack_sbuffer_init(&st->held.buf);
    st->held.n = 0;
    return err;
}

/* One frame: hold it while the rule is unknown, else mark and write it. Frames at other hooks of
 * a multi-hook stream are held and written in order, untouched. */
static int process_frame(struct state *st, struct proto_frame *fr, struct proto_writer *w, int argc, char **argv)
{
    bool other = st->multi && proto_frame_hook_is(fr, st->o->hook) == 0;
    if (st->ready) return other ? proto_writer_put(w, fr) : mark_frame(st, fr, w);
    int err = PROTO_OK;
    uint64_t rows, ctx;
    if (other) err = PROTO_OK;
    else if (st->o->rule == RULE_ESTIMATE) err = estimate_frame(st, fr);
    else if (fr->kind == PROTO_KIND_ACTS) err = frame_norms(st, fr, &rows, &ctx);   /* learns d_model */
    if (err || (err = hold_frame(st, fr)) != 0) return err;
    bool known = st->o->rule == RULE_ESTIMATE ? st->est_seen >= (uint64_t)st->o->estimate_n : st->d_model > 0;
    return known ? release(st, w, argc, argv) : PROTO_OK;
}


/* ---------------------------------------------------------------------------------------- */
/* command line */

static void usage(FILE *fp)
{
    fprintf(fp,
        "usage: sf-outliers RULE [options]\n"
        "Adds keep u8 [rows, ctx] to every acts frame: 0 for a token whose activation norm |x| is\n"
        "an outlier (or not finite), 1 otherwise. Other frames pass through untouched.\n"
        "\n"
        "RULE (one of):\n"
        "  --max-norm T                   outlier if |x| > T (Mistral-7B in the study: 200)\n"
        "  --norm-scalar S --multiplier M outlier if S*|x| > M*sqrt(d_model) (Gemma: S 0.31279, M 2)\n"
        "  --estimate N --multiplier M    as above with S = sqrt(d_model)/mean|x| over the first N\n"
        "                                 tokens of this stream (all positions; non-finite skipped).\n"
        "                                 The frames that hold those N tokens are kept in memory\n"
        "                                 until the estimate is known, because the header that\n"
        "                                 records it comes first. Use the base model's stream.\n"
        "options:\n"
        "  --report FILE                  the outliers as JSON lines:\n"
        "                                 {\"seq\",\"row\",\"position\",\"token\",\"norm\"}\n"
        "  --hook H                       a multi-hook stream (sf-forward --hook A,B,...): mark only\n"
        "                                 H's frames, carry the others untouched (required there:\n"
        "                                 the rule is per hook; the header's rule is H's)\n"
        "\n"
        "Header meta written: outlier_rule (max_norm|relative), outlier_threshold (on |x|),\n"
        "norm_scalar, outlier_multiplier, norm_estimate_tokens. End meta: outliers,\n"
        "outlier_fraction, tokens, nonfinite_tokens (an upstream end meta is carried on).\n"
        "-v prints the estimate on stderr. A warning says so when more than 1%% of the tokens are\n"
        "outliers (the method assumes they are rare).\n\n");
    proto_cli_help_common(fp);
    fprintf(fp,
        "\nexamples:\n"
        "  sf-forward ... | sf-outliers --max-norm 200 | sf-encode --sae SAE --splice | ...\n"
        "  sf-outliers --estimate 4096 --multiplier 2 -v --report outliers.jsonl < acts.sf > marked.sf\n"
        "  sf-outliers --norm-scalar 0.31279 --multiplier 2 -i ft-acts.sf.zst -o ft-marked.sf.zst\n");
}

enum { OPT_MAX_NORM = PROTO_OPT_FIRST_FREE, OPT_SCALAR, OPT_MULT, OPT_ESTIMATE, OPT_REPORT, OPT_HOOK };

static void parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option longopts[] = {
        PROTO_CLI_LONGOPTS,
        {"max-norm", required_argument, 0, OPT_MAX_NORM},
        {"norm-scalar", required_argument, 0, OPT_SCALAR},
        {"multiplier", required_argument, 0, OPT_MULT},
        {"estimate", required_argument, 0, OPT_ESTIMATE},
        {"report", required_argument, 0, OPT_REPORT},
        {"hook", required_argument, 0, OPT_HOOK},
        {0, 0, 0, 0},
    };
    int c, n_rules = 0;
    while ((c = getopt_long(argc, argv, PROTO_CLI_SHORTOPTS, longopts, NULL)) != -1) {
        switch (c) {
        case OPT_MAX_NORM: o->rule = RULE_MAX_NORM; n_rules++;
            o->max_norm = proto_parse_double("--max-norm", optarg, 0, 1e300); break;
        case OPT_SCALAR: o->rule = RULE_SCALAR; n_rules++;
            o->scalar = proto_parse_double("--norm-scalar", optarg, 1e-300, 1e300); break;
        case OPT_ESTIMATE: o->rule = RULE_ESTIMATE; n_rules++;
            o->estimate_n = proto_parse_ll("--estimate", optarg, 1, (long long)1 << 50); break;
        case OPT_MULT: o->multiplier = proto_parse_double("--multiplier", optarg, 1e-300, 1e300); break;
        case OPT_REPORT: o->report = optarg; break;
        case OPT_HOOK: {
            struct proto_hook h;
            if (!proto_hook_parse(optarg, &h)) proto_usage_error("--hook: '%s' is not blocks.L.hook_resid_pre or blocks.L.hook_resid_post", optarg);
            o->hook = optarg;
            break;
        }
        default: proto_cli_common(&o->cli, c, optarg, usage);
        }
    }
    if (optind < argc) proto_usage_error("unexpected operand '%s'", argv[optind]);
    if (n_rules != 1) proto_usage_error("give exactly one of --max-norm, --norm-scalar, --estimate");
    if (o->rule == RULE_MAX_NORM && !isnan(o->multiplier)) proto_usage_error("--multiplier goes with --norm-scalar or --estimate, not --max-norm");
    if (o->rule != RULE_MAX_NORM && isnan(o->multiplier)) proto_usage_error("--norm-scalar and --estimate need --multiplier M");
    proto_cli_finish(&o->cli, true);
}

/* ---------------------------------------------------------------------------------------- */

int main(int argc, char **argv)
{
    struct opts o = opts_default(argv[0]);
    parse_args(argc, argv, &o);

    struct proto_reader *in = NULL;
    struct proto_writer *out = NULL;
    struct proto_writer_opts wo = { .zstd_tensors = o.cli.zstd, .zstd_level = 3 };
    struct state st = { .o = &o, .s = o.scalar, .m = o.multiplier, .thresh = o.max_norm };
    struct proto_frame fr;
    struct proto_progress prog;
    uint64_t total_rows = 0;
    int rc = PROTO_EXIT_OK, err;
    msgpack_sbuffer_init(&st.held.buf);
    msgpack_sbuffer_init(&st.meta_buf);
    if (o.report && !(st.report = fopen(o.report, "w"))) { proto_error("%s: %s", o.report, strerror(errno)); rc = PROTO_EXIT_FAIL; goto out; }
    if (!(in = proto_reader_open(o.cli.in, &err))) { rc = proto_fail(err, o.cli.in); goto out; }
    if (!(out = proto_writer_open(o.cli.out, &wo, &err))) { rc = proto_fail(err, o.cli.out); goto out; }
    if ((err = proto_reader_next(in, &fr)) != PROTO_OK) { rc = proto_fail(err == PROTO_END ? PROTO_E_SEQ : err, o.cli.in); goto out; }
    if ((err = keep_meta(&st, &fr)) != 0) { rc = proto_fail(err, o.cli.in); goto out; }
    if (st.have_meta) proto_meta_uint(&st.meta_copy.data, "total_rows", &total_rows);
    proto_progress_init(&prog, proto_cli_progress_on(&o.cli), "outliers", total_rows);
    if (o.rule == RULE_MAX_NORM || (o.rule == RULE_SCALAR && st.d_model)) err = write_header(&st, out, argc, argv);
    while (!err && (err = proto_reader_next(in, &fr)) == PROTO_OK) {
        err = process_frame(&st, &fr, out, argc, argv);
        proto_progress_update(&prog, proto_writer_rows(out), st.n_tokens);
    }
    if (err == PROTO_END && !st.ready) err = release(&st, out, argc, argv);   /* short stream */
    /* the writer remembers its failure: name the output when it failed, else the input */
    if (err != PROTO_END && err != PROTO_OK) { rc = proto_fail(err, proto_writer_error(out) ? o.cli.out : o.cli.in); goto out; }
    proto_progress_done(&prog, proto_writer_rows(out), st.n_tokens);
    double frac = st.n_tokens ? (double)st.n_outliers / (double)st.n_tokens : 0.0;
    proto_info("%llu outliers of %llu tokens (%.4g%%), %llu non-finite", (unsigned long long)st.n_outliers,
               (unsigned long long)st.n_tokens, 100 * frac, (unsigned long long)st.n_nonfinite);
    if (frac > OUTLIER_WARN_FRACTION)
        proto_warn("%.2f%% of the tokens are outliers (%llu of %llu, |x| > %.6g): the method assumes under 1%% "
                   "(seed: 0.24%% Gemma-2b, 0.7%% Mistral-7B), so R2, MSE and CE spliced cover only the rest",
                   100 * frac, (unsigned long long)st.n_outliers, (unsigned long long)st.n_tokens, st.thresh);
    if ((err = proto_writer_carry_end_meta(out, &fr)) ||
        (err = proto_writer_end_meta(out, "outliers", (double)st.n_outliers)) ||
        (err = proto_writer_end_meta(out, "outlier_fraction", frac)) ||
        (err = proto_writer_end_meta(out, "tokens", (double)st.n_tokens)) ||
        (err = proto_writer_end_meta(out, "nonfinite_tokens", (double)st.n_nonfinite))) {
        rc = proto_fail(err, o.cli.out);
        goto out;
    }
    if (st.report && (fflush(st.report) != 0 || ferror(st.report))) {
        proto_error("%s: writing the report failed: %s", o.report, strerror(errno));
        rc = PROTO_EXIT_FAIL;
    }
out:
    if (out && (err = proto_writer_close(out, rc == PROTO_EXIT_OK)) != 0 && rc == PROTO_EXIT_OK)
        rc = proto_fail(err, o.cli.out);
    proto_reader_close(in);
    state_destroy(&st);
    return rc;
}
