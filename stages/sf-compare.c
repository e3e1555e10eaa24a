/* sf-compare - per-token similarity of two models' activations over the same tokens.
 *
 * Reads two `acts` streams (--base, --finetune) frame by frame; their tokens must be identical
 * (else exit 1 naming the first differing seq/row/position). Writes `sim` frames: tokens,
 * hook, cos f32 [rows, ctx] = <a/|a|, b/|b|> (norms floored at 1e-12) and l2 f32 [rows, ctx] =
 * |a - b|, computed in double. The header is the base stream's, plus finetune_model.
 */
#include <math.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "proto.h"
#include "study.h"
#include "cli.h"
#include "hook.h"

/* ======================== options ======================== */
struct opts { struct proto_cli cli; const char *base, *ft; };

static struct opts opts_default(void)
{
    struct opts o;
    memset(&o, 0, sizeof o);
    return o;
}

/* ======================== state ======================== */
struct state {
    struct proto_buf xa, xb, cos, l2;   /* f32 views of the activations, outputs (n_tok) */
    struct proto_progress prog;
    uint64_t rows, tokens;
};

static void state_destroy(struct state *s)
{
    proto_buf_destroy(&s->xa); proto_buf_destroy(&s->xb);
    proto_buf_destroy(&s->cos); proto_buf_destroy(&s->l2);
}

/* ======================== frames ======================== */

static int process_pair(struct state *s, const struct proto_frame *fb, const struct proto_frame *ff, struct proto_writer *w)
{
    unsigned long long seq = fb->seq;
    int err;
    if (fb->kind != PROTO_KIND_ACTS || ff->kind != PROTO_KIND_ACTS) {
        proto_set_detail("seq %llu: expected acts frames, got '%s' (base) and '%s' (finetune)", seq, fb->kind_name, ff->kind_name);
        return PROTO_E_SCHEMA;
    }
    const struct proto_tensor *tb = proto_frame_tensor(fb, "tokens");   /* acts frames always have tokens (validated) */
    const struct proto_tensor *ab = proto_frame_tensor(fb, "acts"), *af = proto_frame_tensor(ff, "acts");
    if (!ab || !af) { proto_set_detail("seq %llu: the %s acts frame has no acts tensor", seq, ab ? "finetune" : "base"); return PROTO_E_SCHEMA; }
    if ((err = proto_frame_same_tokens(fb, ff))) return err;
    if ((err = proto_frames_same_hook(fb, ff))) return err;   /* multi-hook streams: frame by frame */
    char hb[PROTO_HOOK_NAME] = "";
    proto_frame_str(fb, "hook", hb, sizeof hb);
    if (ab->shape[2] != af->shape[2]) {
        proto_set_detail("seq %llu: d_model %llu (base) vs %llu (finetune)", seq, (unsigned long long)ab->shape[2], (unsigned long long)af->shape[2]);
        return PROTO_E_MISMATCH;
    }
    uint64_t rows = tb->shape[0], ctx = tb->shape[1], n_tok = rows * ctx, d = ab->shape[2];
    const float *x = proto_tensor_f32(ab, &s->xa, &err); if (!x) return err;   /* (n_tok, d) */
    const float *y = proto_tensor_f32(af, &s->xb, &err); if (!y) return err;   /* (n_tok, d) */
    if ((err = proto_buf_reserve(&s->cos, n_tok * 4)) || (err = proto_buf_reserve(&s->l2, n_tok * 4))) return err;
    proto_sim_tokens(x, y, n_tok, d, s->cos.p, s->l2.p);
    struct proto_frame out;
    uint64_t shape[2] = {rows, ctx};
    proto_frame_init(&out, PROTO_KIND_SIM);
    if ((err = proto_frame_set_tensor(&out, "tokens", tb->dtype, 2, shape, tb->data))) return err;
    if (hb[0] && (err = proto_frame_set_str(&out, "hook", hb))) return err;
    if ((err = proto_frame_set_tensor(&out, "cos", PROTO_F32, 2, shape, s->cos.p)) ||
        (err = proto_frame_set_tensor(&out, "l2", PROTO_F32, 2, shape, s->l2.p))) return err;
    if ((err = proto_writer_put(w, &out))) return err;
    s->rows += rows; s->tokens += n_tok;
    proto_progress_update(&s->prog, s->rows, s->tokens);
    return PROTO_OK;
}

/* Header: the base stream's meta, plus the finetune's model name, plus this stage. */
static int write_header(struct proto_frame *hb, struct proto_frame *hf, struct proto_writer *w, int argc, char **argv)
{
    struct proto_value *mb = proto_frame_get(hb, "meta"), *mf = proto_frame_get(hf, "meta");
    const msgpack_object *base = mb && mb->type == PROTO_V_OBJ ? &mb->obj : NULL;
    const msgpack_object *ft = mf && mf->type == PROTO_V_OBJ ? &mf->obj : NULL;
    struct proto_meta m;
    char model[1024];
    int err = PROTO_OK;
    proto_meta_init(&m, base, argc, argv);
    if (ft && proto_meta_str(ft, "model", model, sizeof model) == PROTO_OK) err = proto_meta_set_str(&m, "finetune_model", model);
    if (!err) err = proto_writer_header(w, &m);
    proto_meta_destroy(&m);
    return err;
}

/* ======================== usage ======================== */
static void usage(FILE *fp)
{
    fprintf(fp,
"usage: sf-compare --base ENDPOINT --finetune ENDPOINT [options]\n"
"\n"
"Per-token similarity of two models' activations at the same hook over the same tokens.\n"
"Reads two acts streams frame by frame (tokens must be identical: else exit 1 naming the first\n"
"differing seq/row/position) and writes sim frames: tokens, hook, cos f32 [rows, ctx]\n"
"(<a/|a|, b/|b|>, norms floored at 1e-12) and l2 f32 [rows, ctx] (|a - b|), computed in double.\n"
"The output header is the base stream's meta plus finetune_model. sf-reduce turns sim frames into\n"
"the similarity block.\n"
"\n"
"Options:\n"
"  --base ENDPOINT          acts stream of the base model\n"
"  --finetune ENDPOINT      acts stream of the finetune over the same tokens\n");
    proto_cli_help_common(fp);
    fprintf(fp,
"\nExamples:\n"
"  sf-compare --base base.sf --finetune ft.sf | sf-reduce --pretty\n"
"  sf-compare --base tcp://@127.0.0.1:5555 --finetune tcp://@127.0.0.1:5556 -o sim.sf.zst\n");
}

enum { OPT_BASE = PROTO_OPT_FIRST_FREE, OPT_FT };

static void parse_args(int argc, char **argv, struct opts *o)
{
    static const struct option lo[] = {
        PROTO_CLI_LONGOPTS,
        {"base", required_argument, 0, OPT_BASE}, {"finetune", required_argument, 0, OPT_FT}, {0, 0, 0, 0}};
    int c;
    proto_cli_init(&o->cli, argv[0]);
    while ((c = getopt_long(argc, argv, PROTO_CLI_SHORTOPTS, lo, NULL)) != -1) {
        switch (c) {
        case OPT_BASE: o->base = optarg; break;
        case OPT_FT: o->ft = optarg; break;
        case 'i': proto_usage_error("the inputs are --base and --finetune, not -i"); break;
        default: if (!proto_cli_common(&o->cli, c, optarg, usage)) proto_usage_error("unknown option"); break;
        }
    }
    if (optind < argc) proto_usage_error("unexpected argument '%s'", argv[optind]);
    if (!o->base || !o->ft) proto_usage_error("--base and --finetune are both required");
    if (strcmp(o->base, o->ft) == 0 && strcmp(o->base, "-") == 0) proto_usage_error("--base and --finetune cannot both be stdin");
    proto_cli_finish(&o->cli, true);
    proto_cli_check_distinct(o->cli.out, o->base);
    proto_cli_check_distinct(o->cli.out, o->ft);
}

/* ======================== main ======================== */
int main(int argc, char **argv)
{
    struct opts o = opts_default();
    struct state st;
    struct proto_reader *rb = NULL, *rf = NULL;
    struct proto_writer *out = NULL;
    struct proto_frame fb, ff;
    const char *where = "";
    int err = PROTO_OK, eb, ef, rc = PROTO_EXIT_OK;
    memset(&st, 0, sizeof st);
    parse_args(argc, argv, &o);
    struct proto_writer_opts wo = { .zstd_tensors = o.cli.zstd, .zstd_level = 3 };
    proto_progress_init(&st.prog, proto_cli_progress_on(&o.cli), "sf-compare", 0);

    if (!(rb = proto_reader_open(where = o.base, &err)) || (err = proto_reader_next(rb, &fb))) goto fail;
    if (!(rf = proto_reader_open(where = o.ft, &err)) || (err = proto_reader_next(rf, &ff))) goto fail;
    if (!(out = proto_writer_open(where = o.cli.out, &wo, &err))) goto fail;
    if ((err = write_header(&fb, &ff, out, argc, argv))) goto fail;
    for (;;) {
        if ((eb = proto_reader_next(rb, &fb)) < 0) { err = eb; where = o.base; goto fail; }
        if ((ef = proto_reader_next(rf, &ff)) < 0) { err = ef; where = o.ft; goto fail; }
        if (eb == PROTO_END || ef == PROTO_END) {
            if (eb == ef) break;
            where = eb == PROTO_END ? o.base : o.ft;
            proto_set_detail("ended after %llu frames, the other stream goes on",
                             (unsigned long long)proto_reader_frames(eb == PROTO_END ? rb : rf));
            err = PROTO_E_MISMATCH; goto fail;
        }
        if ((err = proto_frame_validate(&fb))) { where = o.base; goto fail; }
        if ((err = proto_frame_validate(&ff))) { where = o.ft; goto fail; }
        where = "base vs finetune";
        if ((err = process_pair(&st, &fb, &ff, out))) {
            if (proto_writer_error(out)) where = o.cli.out;   /* the writer's own (sticky) failure */
            goto fail;
        }
    }
    proto_progress_done(&st.prog, st.rows, st.tokens);
    goto out;
fail:
    rc = proto_fail(err ? err : PROTO_E_TRUNCATED, where);
out:
    /* the end frame only on success: a failed compare leaves its output truncated on purpose */
    if (out && (err = proto_writer_close(out, rc == PROTO_EXIT_OK)) != 0 && rc == PROTO_EXIT_OK)
        rc = proto_fail(err, o.cli.out);
    proto_reader_close(rb); proto_reader_close(rf);
    state_destroy(&st);
    return rc;
}
