/* inputs.c - sf-reduce reads its streams: one after the other into the same blocks (-i), or two
 * paired streams frame by frame over the same tokens (--base/--finetune: both per-model blocks,
 * the similarity from the paired activations, the transfer cross sums). Each input's header meta
 * and end frame go into the provenance. */
#include <limits.h>
#include <math.h>
#include <pthread.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "reduce.h"
#include "study.h"

/* ======================== frames ======================== */
/* The drill-down's top-k contexts of one acts frame's feats (tok: its tokens, i32 (rows, ctx)). */
static int add_contexts(struct acc *a, struct modelacc *m, const struct proto_sparse *sp, const struct proto_tensor *tok, uint64_t seq)
{
    int err;
    if (tok->dtype != PROTO_I32) { proto_set_detail("frame %llu: tokens must be i32", (unsigned long long)seq); return PROTO_E_SCHEMA; }
    if (!m->tk.d_sae && (err = topk_init(&m->tk, sp->d_sae, a->tk_k, a->tk_w))) return err;
    topk_add(&m->tk, sp, tok->data, tok->shape[1], m->tk_rows);   /* tok->data: (rows, ctx) */
    m->tk_rows += tok->shape[0];
    return PROTO_OK;
}

static int add_frame(struct acc *a, struct scratch *s, int mi, const struct proto_frame *f, bool primary)
{
    struct modelacc *m = &a->m[mi];
    const struct proto_tensor *tok = proto_frame_tensor(f, "tokens");
    int err;
    if (!tok) return PROTO_OK;   /* kinds we do not reduce */
    uint64_t rows = tok->shape[0], ctx = tok->shape[1], n_tok = rows * ctx;
    if ((err = set_ctx(a, ctx, f->seq))) return err;
    if (primary) {   /* one stream may carry several kinds over the same tokens: count each kind */
        a->krows[f->kind] += rows; a->ktok[f->kind] += n_tok;
        proto_progress_update(&a->prog, a->krows[f->kind], a->ktok[f->kind]);
    }
    a->reduce_rows += rows; a->reduce_tokens += n_tok;
    const struct proto_value *hv = proto_frame_get((struct proto_frame *)f, "hook");
    if (hv && hv->type == PROTO_V_STR && !a->hook[0] && hv->len < sizeof a->hook) {
        memcpy(a->hook, hv->str, hv->len); a->hook[hv->len] = 0;
    }
    if (f->kind == PROTO_KIND_SIM) {
        if (a->paired) {   /* paired runs compute similarity from the activations */
            if (!a->warned_sim) proto_warn("sim frames are ignored with --base/--finetune (similarity comes from the paired acts)");
            a->warned_sim = true;
            return PROTO_OK;
        }
        const struct proto_tensor *tc = proto_frame_tensor(f, "cos"), *tl = proto_frame_tensor(f, "l2");
        if (!tc || !tl) { proto_set_detail("frame %llu: sim frame needs cos and l2", (unsigned long long)f->seq); return PROTO_E_SCHEMA; }
        const float *c = proto_tensor_f32(tc, &s->cosb, &err); if (!c) return err;   /* (rows, ctx) */
        const float *l = proto_tensor_f32(tl, &s->l2b, &err); if (!l) return err;    /* (rows, ctx) */
        a->has_sim = true;
        return sim_add(&a->sim, rows, ctx, c, l);
    }
    if (f->kind == PROTO_KIND_LOSS) {
        for (int k = 0; k < N_LOSS; k++) {
            const struct proto_tensor *t = proto_frame_tensor(f, LOSS_KEYS[k]);
            if (!t) continue;
            const float *v = proto_tensor_f32(t, &s->cosb, &err); if (!v) return err;   /* (numel) */
            model_add_loss(m, k, v, proto_tensor_numel(t));
        }
        return PROTO_OK;
    }
    if (f->kind != PROTO_KIND_ACTS) return PROTO_OK;
    const struct proto_tensor *ta = proto_frame_tensor(f, "acts"), *tr = proto_frame_tensor(f, "recon"),
                              *tk = proto_frame_tensor(f, "keep");
    const struct proto_sparse *sp = proto_frame_sparse(f, "feats");
    if (tk && tk->dtype != PROTO_U8) { proto_set_detail("frame %llu: keep must be u8", (unsigned long long)f->seq); return PROTO_E_SCHEMA; }
    const uint8_t *keep = tk ? tk->data : NULL;   /* (n_tok) */
    /* outliers: from keep, also when the activations were dropped upstream */
    m->has_acts = true;
    m->a_tok += n_tok;
    for (uint64_t t = 0; keep && t < n_tok; t++) m->outliers += !keep[t];
    if (ta) {
        uint64_t d = ta->shape[2];
        if (m->d_model && m->d_model != d) { proto_set_detail("frame %llu: d_model %llu, earlier frames had %llu", (unsigned long long)f->seq, (unsigned long long)d, (unsigned long long)m->d_model); return PROTO_E_MISMATCH; }
        m->d_model = d;
        const float *x = proto_tensor_f32(ta, &s->acts, &err); if (!x) return err;   /* (n_tok, d) */
        model_add_acts(m, x, n_tok, d);
        if (tr) {
            const float *y = proto_tensor_f32(tr, &s->recon, &err); if (!y) return err;   /* (n_tok, d) */
            if ((err = model_add_recon(m, s, x, y, keep, n_tok, d))) return err;
            m->has_recon = true;
        }
    }
    if (sp) {
        if ((err = need_feats(m, s, sp->d_sae, f->seq))) return err;
        model_add_feats(m, sp);
        if (a->tk_k && (err = add_contexts(a, m, sp, tok, f->seq))) return err;
    }
    return PROTO_OK;
}

/* tokens of two paired frames must be identical */
static int same_tokens(const struct proto_frame *b, const struct proto_frame *f)
{
    if (b->kind != f->kind) {
        proto_set_detail("seq %llu: base frame is '%s', finetune frame is '%s'", (unsigned long long)b->seq, b->kind_name, f->kind_name);
        return PROTO_E_MISMATCH;
    }
    return proto_frame_same_tokens(b, f);
}

static int add_pair(struct acc *a, struct scratch *s, const struct proto_frame *fb, const struct proto_frame *ff, bool primary)
{
    int err;
    if ((err = same_tokens(fb, ff))) return err;
    if ((err = add_frame(a, s, 0, fb, primary)) || (err = add_frame(a, s, 1, ff, false))) return err;
    if (fb->kind != PROTO_KIND_ACTS) return PROTO_OK;
    char hb[256], hf[256];
    if (!a->warned_hook && proto_frame_str(fb, "hook", hb, sizeof hb) == PROTO_OK &&
        proto_frame_str(ff, "hook", hf, sizeof hf) == PROTO_OK && strcmp(hb, hf) != 0) {
        proto_warn("base hook %s, finetune hook %s: comparing different hook points", hb, hf);
        a->warned_hook = true;
    }
    const struct proto_tensor *tok = proto_frame_tensor(fb, "tokens");
    uint64_t rows = tok->shape[0], ctx = tok->shape[1], n_tok = rows * ctx;
    const struct proto_tensor *ab = proto_frame_tensor(fb, "acts"), *af = proto_frame_tensor(ff, "acts");
    if (ab && af) {
        if (ab->shape[2] != af->shape[2]) { proto_set_detail("seq %llu: d_model %llu (base) vs %llu (finetune)", (unsigned long long)fb->seq, (unsigned long long)ab->shape[2], (unsigned long long)af->shape[2]); return PROTO_E_MISMATCH; }
        const float *x = proto_tensor_f32(ab, &s->acts, &err); if (!x) return err;    /* (n_tok, d) */
        const float *y = proto_tensor_f32(af, &s->acts2, &err); if (!y) return err;   /* (n_tok, d) */
        if ((err = proto_buf_reserve(&s->cosb, n_tok * 4)) || (err = proto_buf_reserve(&s->l2b, n_tok * 4))) return err;
        proto_sim_tokens(x, y, n_tok, ab->shape[2], s->cosb.p, s->l2b.p);
        a->has_sim = true;
        if ((err = sim_add(&a->sim, rows, ctx, s->cosb.p, s->l2b.p))) return err;
    }
    const struct proto_sparse *sb = proto_frame_sparse(fb, "feats"), *sf = proto_frame_sparse(ff, "feats");
    if (sb && sf) {
        if (sb->d_sae != sf->d_sae) { proto_set_detail("seq %llu: d_sae %u (base) vs %u (finetune)", (unsigned long long)fb->seq, sb->d_sae, sf->d_sae); return PROTO_E_MISMATCH; }
        if (!a->has_x) { if ((err = x_init(&a->x, sb->d_sae))) return err; a->has_x = true; }
        x_add(&a->x, sb, sf, s->vb, s->vf);
    }
    return PROTO_OK;
}

/* ======================== reading inputs ======================== */
/* msgpack -> cJSON (header meta into provenance) */
static cJSON *mp_to_json(const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: return cJSON_CreateNull();
    case MSGPACK_OBJECT_BOOLEAN: return cJSON_CreateBool(o->via.boolean);
    case MSGPACK_OBJECT_POSITIVE_INTEGER: return cJSON_CreateNumber((double)o->via.u64);
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: return cJSON_CreateNumber((double)o->via.i64);
    case MSGPACK_OBJECT_FLOAT32: case MSGPACK_OBJECT_FLOAT64: return cJSON_CreateNumber(o->via.f64);
    case MSGPACK_OBJECT_STR: {
        char *t = malloc(o->via.str.size + 1);
        if (!t) return NULL;
        memcpy(t, o->via.str.ptr, o->via.str.size); t[o->via.str.size] = 0;
        cJSON *j = cJSON_CreateString(t); free(t); return j;
    }
    case MSGPACK_OBJECT_ARRAY: {
        cJSON *j = cJSON_CreateArray();
        for (uint32_t i = 0; j && i < o->via.array.size; i++) cJSON_AddItemToArray(j, mp_to_json(&o->via.array.ptr[i]));
        return j;
    }
    case MSGPACK_OBJECT_MAP: {
        cJSON *j = cJSON_CreateObject();
        for (uint32_t i = 0; j && i < o->via.map.size; i++) {
            const msgpack_object *k = &o->via.map.ptr[i].key;
            char key[256];
            if (k->type == MSGPACK_OBJECT_STR) snprintf(key, sizeof key, "%.*s", (int)k->via.str.size, k->via.str.ptr);
            else snprintf(key, sizeof key, "#%u", i);
            cJSON_AddItemToObject(j, key, mp_to_json(&o->via.map.ptr[i].val));
        }
        return j;
    }
    default: return cJSON_CreateNull();   /* bin, ext: not meta material */
    }
}

struct input { struct proto_reader *r; const char *ep; cJSON *prov; };

/* ======================== spools ========================
 * Every input is read from the start, whatever order the streams are reduced in: an input after
 * the first pair (or the first -i) that is not a regular file (a fifo, stdin, ZeroMQ) is drained
 * by a thread into a file under $TMPDIR while the first is reduced, and reduced from that file
 * when its turn comes. So a loss stream sent before the acts streams cannot stall the run, and a
 * writer of a later stream never waits for the first to end. Disk: the later streams' size (a
 * loss stream is about 20 bytes per token and key). */
struct spool {
    const char *ep;                 /* the input as given */
    char path[PATH_MAX];            /* its copy */
    pthread_t th; bool started, joined;
    int err; char detail[512];      /* the drain's outcome */
};
static struct spool spools[2 * MAX_INPUTS];
static int n_spools;
static char spool_dir[PATH_MAX];

static void *spool_run(void *arg)
{
    struct spool *sp = arg;
    struct proto_writer_opts wo = {.zstd_tensors = false, .zstd_level = 1};
    struct proto_writer *w = NULL;
    struct proto_frame f;
    struct proto_meta pm;
    int err;
    struct proto_reader *r = proto_reader_open(sp->ep, &err);
    if (r && (err = proto_reader_next(r, &f)) == PROTO_OK && (w = proto_writer_open(sp->path, &wo, &err))) {
        const struct proto_value *mv = proto_frame_get(&f, "meta");
        proto_meta_init(&pm, mv && mv->type == PROTO_V_OBJ ? &mv->obj : NULL, 0, NULL);   /* the header as it came */
        err = proto_writer_header(w, &pm);
        proto_meta_destroy(&pm);
        while (!err && (err = proto_reader_next(r, &f)) == PROTO_OK) err = proto_writer_put(w, &f);
        if (err == PROTO_END) err = proto_writer_carry_end_meta(w, &f);
    } else if (err == PROTO_END) err = PROTO_E_SEQ;   /* an end before any header */
    if (err) snprintf(sp->detail, sizeof sp->detail, "%s", proto_detail());
    if (w) { int e = proto_writer_close(w, err == PROTO_OK); if (!err && e) { err = e; snprintf(sp->detail, sizeof sp->detail, "%s", proto_detail()); } }
    proto_reader_close(r);
    sp->err = err;
    return NULL;
}

static int spool_start(const char *ep)
{
    struct stat sb;
    if (strcmp(ep, "-") != 0 && stat(ep, &sb) == 0 && S_ISREG(sb.st_mode)) return PROTO_OK;   /* a file waits */
    if (!spool_dir[0]) {
        const char *t = getenv("TMPDIR");
        snprintf(spool_dir, sizeof spool_dir, "%s/sf-reduce.XXXXXX", t && *t ? t : "/tmp");
        if (!mkdtemp(spool_dir)) { proto_set_detail("%s: cannot make a spool folder", spool_dir); spool_dir[0] = 0; return PROTO_E_IO; }
    }
    struct spool *sp = &spools[n_spools];
    memset(sp, 0, sizeof *sp);
    sp->ep = ep;
    snprintf(sp->path, sizeof sp->path, "%s/%d.sf", spool_dir, n_spools);
    if (pthread_create(&sp->th, NULL, spool_run, sp) != 0) { proto_set_detail("%s: cannot start a reader thread", ep); return PROTO_E_NOMEM; }
    sp->started = true;
    n_spools++;
    return PROTO_OK;
}

/* The file to read ep from: its spool once drained (its error, with the drain's detail), or ep. */
static int spool_source(const char *ep, const char **src)
{
    *src = ep;
    for (int i = 0; i < n_spools; i++) {
        struct spool *sp = &spools[i];
        if (sp->ep != ep) continue;
        if (!sp->joined) { pthread_join(sp->th, NULL); sp->joined = true; }
        if (sp->err) { proto_set_detail("%s", sp->detail); return sp->err; }
        *src = sp->path;
    }
    return PROTO_OK;
}

/* Removes the spool files (threads still blocked on a stream that never came are left: the
 * process is ending). */
static void spool_cleanup(void)
{
    for (int i = 0; i < n_spools; i++) unlink(spools[i].path);
    if (spool_dir[0]) rmdir(spool_dir);
}

static int input_open(struct acc *a, const struct opts *o, struct input *in, const char *ep, const char *role, int mi)
{
    int err;
    struct proto_frame f;
    const char *src;
    in->ep = ep;
    if ((err = spool_source(ep, &src))) return err;
    if (!(in->r = proto_reader_open(src, &err))) return err;
    if ((err = proto_reader_next(in->r, &f)) != PROTO_OK) return err < 0 ? err : PROTO_E_TRUNCATED;
    const struct proto_value *mv = proto_frame_get(&f, "meta");
    in->prov = cJSON_CreateObject();
    cJSON_AddStringToObject(in->prov, "role", role);
    cJSON_AddStringToObject(in->prov, "endpoint", ep);
    cJSON_AddItemToObject(in->prov, "header", mv && mv->type == PROTO_V_OBJ ? mp_to_json(&mv->obj) : cJSON_CreateObject());
    cJSON_AddItemToArray(a->prov_inputs, in->prov);
    a->m[mi].hdr_d_sae = 0;
    if (mv && mv->type == PROTO_V_OBJ) {
        bool multi;
        if (o->hook && (err = proto_hook_select(&mv->obj, o->hook, &multi))) return err;
        if (o->hook) snprintf(a->hook, sizeof a->hook, "%s", o->hook);
        char list[PROTO_MAX_HOOKS * PROTO_HOOK_NAME];
        if (!o->hook && proto_meta_hooks(&mv->obj, list, sizeof list) > 1) {
            if (a->prov_inputs && cJSON_GetArraySize(a->prov_inputs) > 1 && !a->multi) {
                proto_set_detail("header: a multi-hook stream (%s) after a single-hook one", list);
                return PROTO_E_MISMATCH;
            }
            a->multi = true;
        }
        proto_meta_uint(&mv->obj, "d_sae", &a->m[mi].hdr_d_sae);
        if (!a->hook[0]) proto_meta_str(&mv->obj, "hook", a->hook, sizeof a->hook);
        if (!a->sae[0]) proto_meta_str(&mv->obj, "sae", a->sae, sizeof a->sae);
        double th;
        if (isnan(a->m[mi].outlier_threshold) && proto_meta_double(&mv->obj, "outlier_threshold", &th) == PROTO_OK)
            a->m[mi].outlier_threshold = th;
    }
    return PROTO_OK;
}

/* Records the end frame (frames, rows, meta) of an input into its provenance. */
static void input_end(struct input *in, struct proto_frame *f)
{
    cJSON *e = cJSON_CreateObject();
    const struct proto_value *v;
    if ((v = proto_frame_get(f, "frames"))) cJSON_AddNumberToObject(e, "frames", (double)v->u);
    if ((v = proto_frame_get(f, "rows"))) cJSON_AddNumberToObject(e, "rows", (double)v->u);
    if ((v = proto_frame_get(f, "meta")) && v->type == PROTO_V_OBJ) cJSON_AddItemToObject(e, "meta", mp_to_json(&v->obj));
    cJSON_AddItemToObject(in->prov, "end", e);
}

/* Reduces one whole stream into model block mi. *where names the failing input. */
static int run_single(struct acc *a, const struct opts *o, struct scratch *s, const char *ep, const char *role, int mi,
                      bool primary, const char **where)
{
    struct acc *h;
    struct input in = {0};
    struct proto_frame f;
    int err;
    *where = ep;
    if ((err = input_open(a, o, &in, ep, role, mi))) goto out;
    while ((err = proto_reader_next(in.r, &f)) == PROTO_OK) {
        if ((err = proto_frame_validate(&f)) || (err = acc_route(a, o, &f, &h))) break;
        if (h && (err = add_frame(h, s, mi, &f, primary))) break;
    }
    if (err == PROTO_END) { input_end(&in, &f); err = PROTO_OK; }
out:
    proto_reader_close(in.r);
    return err;
}

/* Reduces two paired streams frame by frame (same tokens). */
static int run_pair(struct acc *a, const struct opts *o, struct scratch *s, const char *eb, const char *ef, bool primary,
                    const char **where)
{
    struct acc *h;
    struct input ib = {0}, iff = {0};
    struct proto_frame fb, ff;
    int err, eb_, ef_;
    *where = eb;
    if ((err = input_open(a, o, &ib, eb, "base", 0))) goto out;
    *where = ef;
    if ((err = input_open(a, o, &iff, ef, "finetune", 1))) goto out;
    for (;;) {
        *where = eb;
        if ((eb_ = proto_reader_next(ib.r, &fb)) < 0) { err = eb_; goto out; }
        *where = ef;
        if ((ef_ = proto_reader_next(iff.r, &ff)) < 0) { err = ef_; goto out; }
        if (eb_ == PROTO_END || ef_ == PROTO_END) {
            if (eb_ != ef_) {
                *where = "base vs finetune";
                proto_set_detail("the %s stream (%s) ended after %llu frames, the other one goes on",
                                 eb_ == PROTO_END ? "base" : "finetune", eb_ == PROTO_END ? eb : ef,
                                 (unsigned long long)proto_reader_frames(eb_ == PROTO_END ? ib.r : iff.r));
                err = PROTO_E_MISMATCH; goto out;
            }
            input_end(&ib, &fb); input_end(&iff, &ff);
            err = PROTO_OK; goto out;
        }
        *where = eb;
        if ((err = proto_frame_validate(&fb))) goto out;
        *where = ef;
        if ((err = proto_frame_validate(&ff))) goto out;
        *where = "base vs finetune";
        if ((a->multi || o->hook) && (err = proto_frames_same_hook(&fb, &ff))) goto out;
        if ((err = acc_route(a, o, &fb, &h))) goto out;
        if (h && (err = add_pair(h, s, &fb, &ff, primary))) goto out;
    }
out:
    proto_reader_close(ib.r); proto_reader_close(iff.r);
    return err;
}

/* Reduces every input of o in order: the pairs of --base/--finetune, or the -i inputs. */
int run_streams(const struct opts *o, struct acc *a, const char **where)
{
    struct scratch s;
    int err = PROTO_OK;
    memset(&s, 0, sizeof s);
    double t0 = proto_now();
    proto_progress_init(&a->prog, proto_cli_progress_on(&o->cli), "sf-reduce", 0);
    for (int i = 1; i < o->n_base && !err; i++) if (!(err = spool_start(o->base[i]))) err = spool_start(o->ft[i]);
    for (int i = 1; i < o->n_in && !err; i++) err = spool_start(o->in[i]);
    if (err) { *where = "spool"; spool_cleanup(); scratch_destroy(&s); return err; }
    if (o->n_base) {
        for (int i = 0; i < o->n_base && !err; i++) err = run_pair(a, o, &s, o->base[i], o->ft[i], i == 0, where);
    } else {
        for (int i = 0; i < o->n_in && !err; i++) err = run_single(a, o, &s, o->in[i], "model", 0, i == 0, where);
    }
    for (int i = 0; i < a->n_sub; i++) {   /* multi-hook: each hook's tokens; the run's are the first hook's */
        struct acc *h = a->sub[i];
        for (int k = 0; k <= PROTO_KIND_OTHER; k++)
            if (h->ktok[k] > h->tokens) { h->tokens = h->ktok[k]; h->rows = h->krows[k]; }
        h->seconds = proto_now() - t0;
        if (i == 0) for (int k = 0; k <= PROTO_KIND_OTHER; k++) { a->ktok[k] = h->ktok[k]; a->krows[k] = h->krows[k]; }
        a->reduce_rows += h->reduce_rows; a->reduce_tokens += h->reduce_tokens;
        if (!a->ctx) a->ctx = h->ctx;
    }
    a->seconds = proto_now() - t0;
    for (int k = 0; k <= PROTO_KIND_OTHER; k++)   /* tokens/rows: the kind that covers the most */
        if (a->ktok[k] > a->tokens) { a->tokens = a->ktok[k]; a->rows = a->krows[k]; }
    if (!err) proto_progress_done(&a->prog, a->rows, a->tokens);
    spool_cleanup();
    scratch_destroy(&s);
    return err;
}

