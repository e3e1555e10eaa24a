/* sf-tokenize - text in, `tokens` frames out (SPEC §1).
 * Reads input files in order (positional, `-` = stdin): JSONL with a text field, plain text
 * (one document per file, or per blank-line-separated paragraph), or pre-tokenized JSONL
 * (input_ids/tokens rows of exactly ctx ids). Tokenizes each document with the model's own
 * tokenizer (tokenizer.json: our C BPE, hf-bpe.c; tokenizer.model: libsentencepiece) and
 * batches exactly as SAELens 3.22.2 concat_and_batch_sequences does. Writes a header (meta:
 * tokenizer, bos, bos_id, ctx, vocab_size, total_rows when known), `tokens` frames i32
 * [rows, ctx] and an end frame. Flags: --tokenizer --ctx --bos/--no-bos --rows --max-tokens
 * --skip-rows --format --field --paragraphs --threads (documents encoded in parallel, output
 * identical); see usage().
 */
#include <errno.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <cjson/cJSON.h>
#include <zstd.h>
#include "cli.h"
#include "json.h"
#include "parallel.h"
#include "proto.h"
#include "tokenizer.h"

/* Tokens buffered before the header is written, so that total_rows can be put in it. An input
 * that yields more streams on without total_rows. */
#define BUFFER_TOKENS ((uint64_t)8 << 20)
/* --threads > 1: documents are encoded in parallel in batches of up to this many (the first
 * batch holds 16, each next one twice as many, so a short run tokenizes little extra) or bytes */
#define BATCH_DOCS 1024
#define BATCH_BYTES ((size_t)4 << 20)
/* --max-doc-bytes default. A document is tokenized whole (SAELens tokenizes each document whole
 * before batching; cutting its text would change the ids at the cut), and SentencePiece takes
 * about 130 bytes of memory per byte of one document (4 MiB: 0.5 GB, 3.5 s), so it is bounded. */
#define MAX_DOC_BYTES ((int64_t)4 << 20)

/* ------------------------------------------------------------------ options */

enum fmt { FMT_AUTO, FMT_JSONL, FMT_TEXT, FMT_IDS };
enum dump { DUMP_NONE, DUMP_IDS };

struct opts {
    struct proto_cli cli;
    const char *tokenizer;
    const char *field;
    bool field_set;
    enum fmt format;
    bool paragraphs;
    int64_t ctx;
    bool bos;
    int64_t bos_id;                /* -1: the tokenizer's */
    int64_t rows;                  /* rows per frame */
    int64_t max_tokens;            /* -1: all */
    int64_t skip_rows;
    int64_t max_doc_bytes;         /* 0: no limit */
    bool stream;                   /* write the header at once (no total_rows) */
    enum dump dump;
    char **inputs; int n_inputs;
};

static struct opts opts_default(void)
{
    struct opts o = {0};
    o.field = "text"; o.format = FMT_AUTO; o.ctx = 128; o.bos = true; o.bos_id = -1;
    o.rows = 8; o.max_tokens = -1; o.max_doc_bytes = MAX_DOC_BYTES;
    return o;
}

/* ------------------------------------------------------------------ tokenizer */

struct tok {
    struct hf_bpe *hf;
    struct spm *sp;
    char path[4096];
    int bos_id, vocab_size;
};

static bool is_dir(const char *p) { struct stat s; return stat(p, &s) == 0 && S_ISDIR(s.st_mode); }
static bool exists(const char *p) { struct stat s; return stat(p, &s) == 0; }

/* PATH is a tokenizer.json / tokenizer.model file or a model directory holding one
 * (tokenizer.json preferred: it is what transformers and SAELens run). */
static int tok_open(struct tok *t, const char *path, char *msg, size_t cap)
{
    char err[512] = "";
    memset(t, 0, sizeof *t);
    t->bos_id = -1;
    if (is_dir(path)) {
        snprintf(t->path, sizeof t->path, "%s/tokenizer.json", path);
        if (!exists(t->path)) snprintf(t->path, sizeof t->path, "%s/tokenizer.model", path);
        if (!exists(t->path)) { snprintf(msg, cap, "%s: no tokenizer.json or tokenizer.model in this directory", path); return -1; }
    } else snprintf(t->path, sizeof t->path, "%s", path);
    FILE *f = fopen(t->path, "rb");
    if (!f) { snprintf(msg, cap, "%s: %s", t->path, strerror(errno)); return -1; }
    int c;
    while ((c = fgetc(f)) == ' ' || c == '\n' || c == '\r' || c == '\t') {}
    fclose(f);
    if (c == '{') {
        if (!(t->hf = hf_bpe_load(t->path, err, sizeof err))) { snprintf(msg, cap, "%s: %s", t->path, err); return -1; }
        t->bos_id = hf_bpe_bos_id(t->hf); t->vocab_size = hf_bpe_vocab_size(t->hf);
    } else {
        if (!(t->sp = spm_load(t->path, err, sizeof err))) { snprintf(msg, cap, "%s: %s", t->path, err); return -1; }
        t->bos_id = spm_bos_id(t->sp); t->vocab_size = spm_vocab_size(t->sp);
    }
    return 0;
}

static int tok_encode(struct tok *t, const char *s, size_t n, struct ids *out, char *msg, size_t cap)
{
    if (t->hf) {
        if (hf_bpe_encode(t->hf, s, n, out) == 0) return 0;
        snprintf(msg, cap, "out of memory");
        return -1;
    }
    return spm_encode(t->sp, s, n, out, msg, cap);
}

static void tok_close(struct tok *t) { hf_bpe_free(t->hf); spm_free(t->sp); }

/* A handle on the same tokenizer for another thread (shared tables, own scratch). */
static int tok_worker(struct tok *w, struct tok *t)
{
    *w = *t;
    w->hf = t->hf ? hf_bpe_worker(t->hf) : NULL;
    w->sp = t->sp ? spm_worker(t->sp) : NULL;
    return (t->hf && !w->hf) || (t->sp && !w->sp) ? -1 : 0;
}

/* A document waiting in a batch: its text in state.texts, its ids once encoded. */
struct doc {
    size_t off, len;
    const char *name; long long line;   /* where it came from (line 0: the whole file) */
    struct ids ids;
    int rc; char err[256];
};

/* ------------------------------------------------------------------ state */

struct state {
    const struct opts *o;
    int argc; char **argv;
    struct tok tok; bool have_tok;
    int32_t bos_id;
    /* batcher (SAELens): the partly filled row */
    int32_t *row;                  /* (ctx) */
    int64_t fill;
    /* output */
    uint64_t rows_seen;            /* stream rows made, skipped ones included */
    uint64_t rows_out, max_rows;
    bool done;                     /* --max-tokens reached: stop reading */
    int32_t *pend;                 /* (pend_cap, ctx) rows not yet written */
    uint64_t pend_rows, pend_cap;
    struct proto_writer *w;
    bool header_written;
    struct proto_progress prog;
    /* --threads N > 1: batches of documents encoded on N threads, then batched in order */
    int n_threads;
    struct tok *workers;           /* (n_threads - 1) handles for the helper threads */
    struct doc *docs; size_t n_docs, docs_cap, batch_docs;
    char *texts; size_t texts_len, texts_cap;
    atomic_size_t next_doc;
    /* inputs */
    bool saw_text, saw_ids;
    struct ids ids;
    char *line; size_t line_cap;
    char msg[10240];               /* "<where>: <what>" of the first error */
};

static int state_init(struct state *st, const struct opts *o, int argc, char **argv)
{
    memset(st, 0, sizeof *st);
    st->o = o; st->argc = argc; st->argv = argv;
    st->bos_id = (int32_t)o->bos_id;
    st->max_rows = o->max_tokens >= 0 ? (uint64_t)o->max_tokens / (uint64_t)o->ctx : UINT64_MAX;
    st->row = malloc((size_t)o->ctx * sizeof *st->row);
    if (!st->row) { snprintf(st->msg, sizeof st->msg, "init: out of memory"); return -1; }
    if (o->tokenizer) {
        if (tok_open(&st->tok, o->tokenizer, st->msg, sizeof st->msg)) return -1;
        st->have_tok = true;
        if (o->bos_id < 0) st->bos_id = st->tok.bos_id;
        /* by default at most 8: more documents at once gain little and cost memory */
        st->n_threads = proto_cli_threads(&o->cli, o->cli.threads > 0 ? PROTO_MAX_THREADS : 8);
        st->batch_docs = 16;
        if (st->n_threads > 1) {
            st->workers = calloc((size_t)st->n_threads - 1, sizeof *st->workers);
            if (!st->workers) { snprintf(st->msg, sizeof st->msg, "init: out of memory"); return -1; }
            for (int k = 0; k < st->n_threads - 1; k++)
                if (tok_worker(&st->workers[k], &st->tok)) { snprintf(st->msg, sizeof st->msg, "init: out of memory"); return -1; }
        }
    }
    if (o->bos && st->bos_id < 0 && o->format != FMT_IDS) {
        snprintf(st->msg, sizeof st->msg, "%s: the tokenizer names no BOS token; give --bos-id N or --no-bos", st->tok.path);
        return -1;
    }
    if (st->have_tok && st->bos_id >= st->tok.vocab_size) {
        snprintf(st->msg, sizeof st->msg, "--bos-id %d is outside the vocabulary (%d pieces)", st->bos_id, st->tok.vocab_size);
        return -1;
    }
    /* progress starts after the tokenizer is loaded: the rate is the encoding rate */
    proto_progress_init(&st->prog, o->dump == DUMP_NONE && proto_cli_progress_on(&o->cli), NULL,
                        o->max_tokens >= 0 ? st->max_rows : 0);
    return 0;
}

static void state_destroy(struct state *st)
{
    if (st->workers) for (int k = 0; k < st->n_threads - 1; k++) tok_close(&st->workers[k]);
    free(st->workers);
    for (size_t i = 0; i < st->docs_cap; i++) ids_destroy(&st->docs[i].ids);
    free(st->docs); free(st->texts);
    if (st->have_tok) tok_close(&st->tok);
    free(st->row); free(st->pend); free(st->line);
    ids_destroy(&st->ids);
}

/* ------------------------------------------------------------------ output */

static int fail_proto(struct state *st, int err, const char *where)
{
    const char *d = proto_detail();
    snprintf(st->msg, sizeof st->msg, "%s: %s%s%s", where, proto_strerror(err), *d ? ": " : "", d);
    return -1;
}

static int write_header(struct state *st, bool known)
{
    const struct opts *o = st->o;
    struct proto_meta m;
    proto_meta_init(&m, NULL, st->argc, st->argv);
    int err = PROTO_OK;
    if (st->have_tok) err |= proto_meta_set_str(&m, "tokenizer", st->tok.path);
    err |= proto_meta_set_bool(&m, "bos", o->bos);
    err |= proto_meta_set_uint(&m, "ctx", (uint64_t)o->ctx);
    if (st->bos_id >= 0) err |= proto_meta_set_int(&m, "bos_id", st->bos_id);
    if (st->have_tok) err |= proto_meta_set_uint(&m, "vocab_size", (uint64_t)st->tok.vocab_size);
    if (known) err |= proto_meta_set_uint(&m, "total_rows", st->pend_rows);
    if (err == PROTO_OK) err = proto_writer_header(st->w, &m);
    proto_meta_destroy(&m);
    if (err != PROTO_OK) return fail_proto(st, err, proto_writer_name(st->w));
    st->header_written = true;
    if (known) st->prog.total_rows = st->pend_rows;
    return 0;
}

/* Writes pending rows as frames of --rows rows; the last, shorter one only when final. */
static int flush_rows(struct state *st, bool final)
{
    const uint64_t B = (uint64_t)st->o->rows, ctx = (uint64_t)st->o->ctx;
    uint64_t i = 0;
    while (st->pend_rows - i >= B || (final && i < st->pend_rows)) {
        uint64_t n = st->pend_rows - i < B ? st->pend_rows - i : B;
        struct proto_frame f;
        proto_frame_init(&f, PROTO_KIND_TOKENS);
        uint64_t shape[2] = { n, ctx };
        int err = proto_frame_set_tensor(&f, "tokens", PROTO_I32, 2, shape, st->pend + i * ctx);
        if (err == PROTO_OK) err = proto_writer_put(st->w, &f);
        if (err != PROTO_OK) return fail_proto(st, err, proto_writer_name(st->w));
        i += n;
    }
    if (i > 0) memmove(st->pend, st->pend + i * ctx, (st->pend_rows - i) * ctx * sizeof *st->pend);
    st->pend_rows -= i;
    return 0;
}

/* One finished stream row: --skip-rows, --max-tokens, then the output buffer. */
static int emit_row(struct state *st, const int32_t *row)
{
    const uint64_t ctx = (uint64_t)st->o->ctx;
    if (st->rows_seen++ < (uint64_t)st->o->skip_rows) return 0;
    if (st->rows_out >= st->max_rows) { st->done = true; return 0; }
    if (st->pend_rows == st->pend_cap) {
        uint64_t nc = st->pend_cap ? st->pend_cap * 2 : 64;
        int32_t *p = realloc(st->pend, nc * ctx * sizeof *p);
        if (!p) { snprintf(st->msg, sizeof st->msg, "out of memory (%llu rows buffered)", (unsigned long long)st->pend_rows); return -1; }
        st->pend = p; st->pend_cap = nc;
    }
    memcpy(st->pend + st->pend_rows * ctx, row, ctx * sizeof *row);
    st->pend_rows++; st->rows_out++;
    proto_progress_update(&st->prog, st->rows_out, st->rows_out * ctx);
    if (st->rows_out >= st->max_rows) st->done = true;
    if (!st->header_written && !st->done && (st->o->stream || st->pend_rows * ctx >= BUFFER_TOKENS))
        if (write_header(st, false)) return -1;
    return st->header_written ? flush_rows(st, false) : 0;
}

static int finish(struct state *st)
{
    if (!st->header_written && write_header(st, true)) return -1;
    if (flush_rows(st, true)) return -1;
    proto_progress_done(&st->prog, st->rows_out, st->rows_out * (uint64_t)st->o->ctx);
    return 0;
}

/* ------------------------------------------------------------------ batching */

/* SAELens 3.22.2 concat_and_batch_sequences with begin_batch_token = separator = BOS (--bos)
 * or neither (--no-bos), begin_sequence_token None:
 *  - a fresh row starts with BOS unless the document's next token already is BOS;
 *  - a document starting inside a partly filled row is preceded by one BOS separator (unless it
 *    starts with BOS itself); the separator may take a row's last place;
 *  - no padding: the final partial row is dropped (finish() never sees it). */
static int add_doc(struct state *st, const int32_t *t, size_t n)
{
    const int64_t ctx = st->o->ctx;
    const bool bos = st->o->bos;
    size_t off = 0;
    while (off < n && !st->done) {
        if (bos && t[off] != st->bos_id) st->row[st->fill++] = st->bos_id;
        size_t take = (size_t)(ctx - st->fill);
        if (take > n - off) take = n - off;
        memcpy(st->row + st->fill, t + off, take * sizeof *t);
        st->fill += (int64_t)take; off += take;
        if (st->fill == ctx) {
            st->fill = 0;
            if (emit_row(st, st->row)) return -1;
        }
    }
    return 0;
}

/* ------------------------------------------------------------------ inputs */

static void fmt_where(char *dst, size_t cap, const char *name, long long line)
{
    if (line > 0) snprintf(dst, cap, "%s:%lld", name, line);
    else snprintf(dst, cap, "%s", name);
}

/* One encoded document: --dump-ids prints it, else it goes to the batcher. */
static int use_ids(struct state *st, const struct ids *ids)
{
    if (st->o->dump == DUMP_IDS) {
        putchar('[');
        for (size_t i = 0; i < ids->n; i++) printf(i ? ", %d" : "%d", ids->v[i]);
        puts("]");
        return 0;
    }
    return add_doc(st, ids->v, ids->n);
}

/* Worker ith of a batch: takes the next unencoded document until none is left (documents
 * differ in length, so they are handed out one by one rather than in fixed ranges). Each
 * document's ids go to its own slot, so the result does not depend on nth. Worker 0 (the
 * calling thread) uses the main tokenizer handle, worker k the helper handle workers[k - 1]. */
static void encode_worker(void *arg, int ith, int nth)
{
    struct state *st = arg;
    struct tok *tok = ith == 0 ? &st->tok : &st->workers[ith - 1];
    size_t i;
    while ((i = atomic_fetch_add(&st->next_doc, 1)) < st->n_docs) {
        struct doc *d = &st->docs[i];
        d->ids.n = 0;
        d->rc = tok_encode(tok, st->texts + d->off, d->len, &d->ids, d->err, sizeof d->err);
    }
}

/* Encodes the waiting documents on n_threads threads (this one included), then hands their
 * ids to the batcher in input order. */
static int run_batch(struct state *st)
{
    if (st->n_docs == 0) return 0;
    atomic_store(&st->next_doc, 0);
    proto_parallel_run(st->n_threads, encode_worker, st);
    int rc = 0;
    for (size_t i = 0; i < st->n_docs && !rc && !st->done; i++) {
        struct doc *d = &st->docs[i];
        if (d->rc) {
            char where[4200];
            fmt_where(where, sizeof where, d->name, d->line);
            snprintf(st->msg, sizeof st->msg, "%s: %s", where, d->err);
            rc = -1;
        } else rc = use_ids(st, &d->ids);
    }
    st->n_docs = 0; st->texts_len = 0;
    if (st->batch_docs < BATCH_DOCS) st->batch_docs *= 2;
    return rc;
}

/* A document's text (name:line says where it came from; line 0 = the whole file). */
static int do_text(struct state *st, const char *s, size_t n, const char *name, long long line)
{
    char where[4200];
    fmt_where(where, sizeof where, name, line);
    if (st->saw_ids) { snprintf(st->msg, sizeof st->msg, "%s: text input after pre-tokenized input (use one kind per run)", where); return -1; }
    st->saw_text = true;
    if (!st->have_tok) { snprintf(st->msg, sizeof st->msg, "%s: text input needs --tokenizer", where); return -1; }
    if (st->o->max_doc_bytes && n > (uint64_t)st->o->max_doc_bytes) {
        snprintf(st->msg, sizeof st->msg, "%s: document of %zu bytes is over --max-doc-bytes %lld (raise it, or split the document)",
                 where, n, (long long)st->o->max_doc_bytes);
        return -1;
    }
    if (st->n_threads <= 1) {
        st->ids.n = 0;
        char err[512];
        if (tok_encode(&st->tok, s, n, &st->ids, err, sizeof err)) { snprintf(st->msg, sizeof st->msg, "%s: %s", where, err); return -1; }
        return use_ids(st, &st->ids);
    }
    if (st->n_docs == st->docs_cap) {
        size_t nc = st->docs_cap ? st->docs_cap * 2 : 64;
        struct doc *d = realloc(st->docs, nc * sizeof *d);
        if (!d) { snprintf(st->msg, sizeof st->msg, "%s: out of memory", where); return -1; }
        memset(d + st->docs_cap, 0, (nc - st->docs_cap) * sizeof *d);
        st->docs = d; st->docs_cap = nc;
    }
    if (st->texts_len + n > st->texts_cap) {
        size_t nc = st->texts_cap ? st->texts_cap : BATCH_BYTES;
        while (nc < st->texts_len + n) nc *= 2;
        char *t = realloc(st->texts, nc);
        if (!t) { snprintf(st->msg, sizeof st->msg, "%s: out of memory", where); return -1; }
        st->texts = t; st->texts_cap = nc;
    }
    if (n > 0) memcpy(st->texts + st->texts_len, s, n);
    struct doc *d = &st->docs[st->n_docs++];
    d->off = st->texts_len; d->len = n; d->name = name; d->line = line;
    st->texts_len += n;
    if (st->n_docs >= st->batch_docs || st->texts_len >= BATCH_BYTES) return run_batch(st);
    return 0;
}

/* A pre-tokenized row: exactly ctx ids, used as it is. */
static int do_ids(struct state *st, const cJSON *arr, const char *where)
{
    if (st->saw_text) { snprintf(st->msg, sizeof st->msg, "%s: pre-tokenized input after text input (use one kind per run)", where); return -1; }
    st->saw_ids = true;
    int n = cJSON_GetArraySize(arr);
    if (n != st->o->ctx) {
        snprintf(st->msg, sizeof st->msg, "%s: pre-tokenized row has %d ids, --ctx is %lld", where, n, (long long)st->o->ctx);
        return -1;
    }
    int64_t lim = st->have_tok ? st->tok.vocab_size : INT32_MAX;
    int k = 0;
    const cJSON *v;
    cJSON_ArrayForEach(v, arr) {
        double d = cJSON_IsNumber(v) ? v->valuedouble : -1;
        if (d < 0 || d >= (double)lim || d != (double)(int64_t)d) {
            snprintf(st->msg, sizeof st->msg, "%s: id %d is not an integer in [0, %lld)", where, k, (long long)lim);
            return -1;
        }
        st->row[k++] = (int32_t)d;
    }
    if (st->o->dump == DUMP_IDS) {
        putchar('[');
        for (int i = 0; i < k; i++) printf(i ? ", %d" : "%d", st->row[i]);
        puts("]");
        return 0;
    }
    return emit_row(st, st->row);
}

static bool ends_with(const char *s, const char *suffix)
{
    size_t n = strlen(s), k = strlen(suffix);
    return n >= k && strcmp(s + n - k, suffix) == 0;
}

static enum fmt file_format(const struct opts *o, const char *path)
{
    if (o->format != FMT_AUTO) return o->format;
    return ends_with(path, ".jsonl") || ends_with(path, ".jsonl.zst") ? FMT_JSONL : FMT_TEXT;
}

/* FILE.zst inputs: a FILE* that reads the decompressed bytes (fopencookie), so that getline and
 * fread work on them unchanged. */
struct zin { FILE *f; ZSTD_DCtx *dc; ZSTD_inBuffer in; char buf[1 << 16]; size_t last; bool eof; };

static ssize_t zin_read(void *cookie, char *dst, size_t n)
{
    struct zin *z = cookie;
    ZSTD_outBuffer out = { dst, n, 0 };
    while (out.pos == 0) {
        if (z->in.pos == z->in.size) {
            if (z->eof) return 0;
            z->in.size = fread(z->buf, 1, sizeof z->buf, z->f); z->in.pos = 0;
            if (z->in.size == 0) {
                z->eof = true;
                if (ferror(z->f) || z->last != 0) { errno = EIO; return -1; }   /* last != 0: frame incomplete */
                return 0;
            }
        }
        size_t r = ZSTD_decompressStream(z->dc, &out, &z->in);
        if (ZSTD_isError(r)) { errno = EILSEQ; return -1; }
        z->last = r;
    }
    return (ssize_t)out.pos;
}

static int zin_close(void *cookie)
{
    struct zin *z = cookie;
    fclose(z->f); ZSTD_freeDCtx(z->dc); free(z);
    return 0;
}

static FILE *open_zst(const char *path)
{
    struct zin *z = calloc(1, sizeof *z);
    if (!z) return NULL;
    z->in.src = z->buf;
    if (!(z->f = fopen(path, "rb"))) { free(z); return NULL; }
    if (!(z->dc = ZSTD_createDCtx())) { fclose(z->f); free(z); errno = ENOMEM; return NULL; }
    FILE *f = fopencookie(z, "rb", (cookie_io_functions_t){ .read = zin_read, .close = zin_close });
    if (!f) zin_close(z);
    return f;
}

/* JSONL: one object per line; blank lines are skipped. With --format jsonl/auto, a file whose
 * first object has no string --field but an input_ids/tokens array is read as pre-tokenized. */
static int read_jsonl(struct state *st, FILE *f, const char *name, enum fmt fmt)
{
    char where[4200];
    long long lineno = 0;
    ssize_t len;
    int mode = fmt == FMT_IDS ? 1 : -1;              /* -1 undecided, 0 text, 1 ids */
    while (!st->done && (len = getline(&st->line, &st->line_cap, f)) >= 0) {
        lineno++;
        snprintf(where, sizeof where, "%s:%lld", name, lineno);
        char *line = st->line;
        if (lineno == 1 && len >= 3 && memcmp(line, "\xEF\xBB\xBF", 3) == 0) { line += 3; len -= 3; }  /* UTF-8 BOM */
        ssize_t i = 0;
        while (i < len && (line[i] == ' ' || line[i] == '\t' || line[i] == '\r' || line[i] == '\n')) i++;
        if (i == len) continue;
        /* length + 1: the NUL getline puts after the line, so trailing garbage is an error */
        cJSON *obj = cJSON_ParseWithLengthOpts(line, (size_t)len + 1, NULL, true);
        if (!obj) { snprintf(st->msg, sizeof st->msg, "%s: invalid JSON", where); return -1; }
        int rc = 0;
        const char *txt = NULL;
        int has_txt = proto_json_str(obj, st->o->field, &txt);   /* 1, 0 absent/null, < 0 not a string */
        const cJSON *arr = NULL;
        if (mode != 0) {
            const char *keys[] = { st->o->field_set ? st->o->field : "input_ids", "input_ids", "tokens" };
            for (int k = 0; k < 3 && !cJSON_IsArray(arr); k++) arr = proto_json_get(obj, keys[k]);
            if (!cJSON_IsArray(arr)) arr = NULL;
        }
        if (mode < 0) mode = has_txt != 1 && arr ? 1 : 0;
        if (!cJSON_IsObject(obj)) {
            snprintf(st->msg, sizeof st->msg, "%s: not a JSON object", where); rc = -1;
        } else if (mode == 1) {
            if (!arr) { snprintf(st->msg, sizeof st->msg, "%s: no input_ids/tokens array", where); rc = -1; }
            else rc = do_ids(st, arr, where);
        } else if (has_txt == 0 && !cJSON_GetObjectItemCaseSensitive(obj, st->o->field)) {
            snprintf(st->msg, sizeof st->msg, "%s: no field '%s' (set it with --field)", where, st->o->field); rc = -1;
        } else if (has_txt != 1) {   /* not a string, or null (a null text is not a missing field) */
            snprintf(st->msg, sizeof st->msg, "%s: field '%s' is not a string", where, st->o->field); rc = -1;
        } else rc = do_text(st, txt, strlen(txt), name, lineno);
        cJSON_Delete(obj);
        if (rc) return rc;
    }
    if (ferror(f)) { snprintf(st->msg, sizeof st->msg, "%s: read failed: %s", name, strerror(errno)); return -1; }
    return 0;
}

/* Plain text: the whole file is one document, or (--paragraphs) each run of non-blank lines
 * is one (a blank line holds only spaces, tabs, CR; a paragraph ends before its last '\n'). */
static int read_text(struct state *st, FILE *f, const char *name)
{
    char *buf = NULL; size_t n = 0, cap = 0;
    for (;;) {
        if (cap - n < 65536) {
            cap = cap ? cap * 2 : 1 << 20;
            char *b = realloc(buf, cap);
            if (!b) { free(buf); snprintf(st->msg, sizeof st->msg, "%s: out of memory", name); return -1; }
            buf = b;
        }
        size_t got = fread(buf + n, 1, cap - n, f);
        n += got;
        if (got == 0) break;
        if (!st->o->paragraphs && st->o->max_doc_bytes && n > (uint64_t)st->o->max_doc_bytes) {  /* one document: stop early */
            free(buf);
            snprintf(st->msg, sizeof st->msg, "%s: document of more than %lld bytes is over --max-doc-bytes (raise it, or split the document)",
                     name, (long long)st->o->max_doc_bytes);
            return -1;
        }
    }
    if (ferror(f)) { free(buf); snprintf(st->msg, sizeof st->msg, "%s: read failed: %s", name, strerror(errno)); return -1; }
    int rc = 0;
    if (!st->o->paragraphs) {
        rc = do_text(st, buf, n, name, 0);
    } else {
        size_t i = 0, par_start = 0, par_end = 0, lineno = 0, par_line = 0;
        bool in_par = false;
        while (i < n && !rc && !st->done) {
            size_t e = i;
            while (e < n && buf[e] != '\n') e++;
            lineno++;
            bool blank = true;
            for (size_t k = i; k < e; k++) if (!strchr(" \t\r", buf[k])) { blank = false; break; }
            if (!blank) {
                if (!in_par) { in_par = true; par_start = i; par_line = lineno; }
                par_end = e;
            }
            i = e + 1;
            if ((blank || i >= n) && in_par) {
                rc = do_text(st, buf + par_start, par_end - par_start, name, (long long)par_line);
                in_par = false;
            }
        }
    }
    free(buf);
    return rc;
}

static int read_input(struct state *st, const char *path)
{
    bool is_stdin = strcmp(path, "-") == 0;
    const char *name = is_stdin ? "stdin" : path;
    FILE *f = is_stdin ? stdin : ends_with(path, ".zst") ? open_zst(path) : fopen(path, "rb");
    if (!f) { snprintf(st->msg, sizeof st->msg, "%s: %s", path, strerror(errno)); return -1; }
    enum fmt fmt = file_format(st->o, is_stdin ? "" : path);
    int rc = fmt == FMT_TEXT ? read_text(st, f, name) : read_jsonl(st, f, name, fmt);
    if (rc && ferror(f) && ends_with(path, ".zst"))
        snprintf(st->msg, sizeof st->msg, "%s: not a valid, complete zstd stream", path);
    if (!is_stdin) fclose(f);
    return rc;
}

/* ------------------------------------------------------------------ CLI */

static void usage(FILE *fp)
{
    fprintf(fp,
        "Usage: sf-tokenize --tokenizer PATH [OPTIONS] [FILE...]\n"
        "Tokenize documents with a model's own tokenizer and batch them as SAELens does;\n"
        "writes a header, `tokens` frames i32 [rows, ctx] and an end frame.\n\n"
        "Inputs (in order; none or `-` = stdin; -i FILE works too):\n"
        "  *.jsonl            one JSON object per line, text in --field (blank lines skipped);\n"
        "                     a file whose first object has input_ids/tokens (and no string\n"
        "                     --field) is read as pre-tokenized\n"
        "  other files        plain text, the whole file is one document\n"
        "  FILE.zst           zstd-compressed input (FILE.jsonl.zst is JSONL)\n"
        "      --format F     jsonl | text | ids (pre-tokenized JSONL); default: by extension\n"
        "                     (pre-tokenized rows are used as they are: --bos adds nothing,\n"
        "                     it only sets the header's bos)\n"
        "      --field NAME   JSONL text field (default text); with --format ids the ids field\n"
        "                     (default input_ids, then tokens)\n"
        "      --paragraphs   plain text: each run of non-blank lines is one document\n"
        "      --max-doc-bytes N  refuse (exit 1, naming FILE:LINE) a document over N bytes\n"
        "                     (default 4194304; 0 = no limit). Documents are tokenized whole,\n"
        "                     as SAELens does, and SentencePiece needs ~130 bytes of memory per\n"
        "                     byte of one (4 MiB: ~0.5 GB, per --threads thread)\n\n"
        "Tokenizer:\n"
        "      --tokenizer PATH  tokenizer.json (Hugging Face BPE), tokenizer.model\n"
        "                     (SentencePiece), or a model directory (tokenizer.json preferred);\n"
        "                     not needed for --format ids. tokenizer.json: BPE with no or a\n"
        "                     Metaspace pre-tokenizer (Llama 2, Mistral, Gemma); byte-level BPE\n"
        "                     (GPT-2, Llama 3) is refused\n"
        "      --bos-id N     BOS id (default: the tokenizer's: post_processor/<bos>/<s>, bos_id)\n"
        "  Ids are what the reference libraries give (HF tokenizers with add_special_tokens=false,\n"
        "  SentencePiece encode()). Special-token strings in text: tokenizer.json cuts its added\n"
        "  tokens (<s>, <bos>, ...) out first; SentencePiece reads them as characters.\n"
        "  Invalid UTF-8 is handled as the reference handles it, never rejected: tokenizer.json\n"
        "  decodes with one U+FFFD per maximal invalid sequence (Python errors=\"replace\");\n"
        "  SentencePiece turns each invalid byte into U+FFFD. A NUL inside a JSON string ends it.\n\n"
        "Batching (SAELens concat_and_batch_sequences):\n"
        "      --ctx N        tokens per row (default 128)\n"
        "      --bos          BOS starts every row and separates documents (default); a document\n"
        "                     starting in a partly filled row gets one BOS first, which may take\n"
        "                     a row's last place; the final partial row is dropped\n"
        "      --no-bos       plain contiguous chunks of ctx tokens\n"
        "      --rows B       rows per frame (default 8; the last frame may be shorter)\n"
        "      --skip-rows K  drop the first K rows of the batched stream\n"
        "      --max-tokens N stop after floor(N / ctx) whole rows (counted after --skip-rows)\n"
        "      --stream       write the header at once, without total_rows. By default up to\n"
        "                     8M tokens are tokenized before the header is written so that it\n"
        "                     carries total_rows; longer inputs stream on without it\n"
        "      --dump-ids     debug: print each document's ids as a JSON array line (to -o FILE\n"
        "                     or stdout), no frames\n"
        "      --threads N    encode documents on N threads (default: the number of cores, at\n"
        "                     most 8); the ids and their order do not depend on it\n\n");
    proto_cli_help_common(fp);
    fprintf(fp,
        "\nExamples:\n"
        "  sf-tokenize --tokenizer models/gemma-2b data.jsonl -o tokens.zst\n"
        "  sf-tokenize --tokenizer tokenizer.model --ctx 1024 --rows 5 --max-tokens 256000 \\\n"
        "      data/*.jsonl | sf-forward --model models/gemma-2b --hook blocks.6.hook_resid_post\n"
        "  cat book.txt | sf-tokenize --tokenizer tok/ --paragraphs --no-bos | sf-cat --summary\n"
        "  sf-tokenize --format ids --ctx 128 pretokenized.jsonl -o tokens.bin\n"
        "  echo 'Hello world' | sf-tokenize --tokenizer tokenizer.json --format text --dump-ids\n");
}

static void parse_args(int argc, char **argv, struct opts *o)
{
    enum { OPT_TOK = PROTO_OPT_FIRST_FREE, OPT_FIELD, OPT_FORMAT, OPT_PARA, OPT_CTX, OPT_BOS, OPT_NOBOS,
           OPT_BOSID, OPT_ROWS, OPT_MAXTOK, OPT_SKIP, OPT_STREAM, OPT_DUMP, OPT_MAXDOC };
    static const struct option longopts[] = {
        PROTO_CLI_LONGOPTS,
        {"tokenizer", required_argument, 0, OPT_TOK}, {"field", required_argument, 0, OPT_FIELD},
        {"format", required_argument, 0, OPT_FORMAT}, {"paragraphs", no_argument, 0, OPT_PARA},
        {"ctx", required_argument, 0, OPT_CTX}, {"bos", no_argument, 0, OPT_BOS},
        {"no-bos", no_argument, 0, OPT_NOBOS}, {"bos-id", required_argument, 0, OPT_BOSID},
        {"rows", required_argument, 0, OPT_ROWS}, {"max-tokens", required_argument, 0, OPT_MAXTOK},
        {"skip-rows", required_argument, 0, OPT_SKIP}, {"stream", no_argument, 0, OPT_STREAM},
        {"dump-ids", no_argument, 0, OPT_DUMP}, {"max-doc-bytes", required_argument, 0, OPT_MAXDOC},
        {0, 0, 0, 0}};
    int c;
    bool in_set = false;
    while ((c = getopt_long(argc, argv, PROTO_CLI_SHORTOPTS, longopts, NULL)) != -1) {
        if (c == 'i') in_set = true;
        if (proto_cli_common(&o->cli, c, optarg, usage)) continue;
        switch (c) {
        case OPT_TOK: o->tokenizer = optarg; break;
        case OPT_FIELD: o->field = optarg; o->field_set = true; break;
        case OPT_FORMAT:
            if (strcmp(optarg, "jsonl") == 0) o->format = FMT_JSONL;
            else if (strcmp(optarg, "text") == 0) o->format = FMT_TEXT;
            else if (strcmp(optarg, "ids") == 0) o->format = FMT_IDS;
            else proto_usage_error("--format: '%s' is not jsonl, text or ids", optarg);
            break;
        case OPT_PARA: o->paragraphs = true; break;
        case OPT_CTX: o->ctx = proto_parse_ll("--ctx", optarg, 1, 1 << 24); break;
        case OPT_BOS: o->bos = true; break;
        case OPT_NOBOS: o->bos = false; break;
        case OPT_BOSID: o->bos_id = proto_parse_ll("--bos-id", optarg, 0, INT32_MAX); break;
        case OPT_ROWS: o->rows = proto_parse_ll("--rows", optarg, 1, 1 << 20); break;
        case OPT_MAXTOK: o->max_tokens = proto_parse_ll("--max-tokens", optarg, 0, (long long)1 << 62); break;
        case OPT_SKIP: o->skip_rows = proto_parse_ll("--skip-rows", optarg, 0, (long long)1 << 62); break;
        case OPT_STREAM: o->stream = true; break;
        case OPT_DUMP: o->dump = DUMP_IDS; break;
        case OPT_MAXDOC: o->max_doc_bytes = proto_parse_ll("--max-doc-bytes", optarg, 0, INT64_MAX); break;
        default: proto_usage_error("unknown option");
        }
    }
    o->inputs = argv + optind; o->n_inputs = argc - optind;
    if (in_set && o->n_inputs > 0) proto_usage_error("give input files either with -i or as arguments, not both");
    if (o->n_inputs == 0) { o->inputs = (char **)&o->cli.in; o->n_inputs = 1; }
    if (!o->tokenizer && o->format != FMT_IDS) proto_usage_error("--tokenizer PATH is required (except with --format ids)");
    if (o->bos && o->ctx < 2) proto_usage_error("--ctx must be at least 2 with --bos");
    if (o->max_tokens >= 0 && o->max_tokens < o->ctx)
        proto_usage_error("--max-tokens %lld is less than one row of --ctx %lld", (long long)o->max_tokens, (long long)o->ctx);
    if ((uint64_t)o->ctx * (uint64_t)o->rows > (1u << 28)) proto_usage_error("--ctx x --rows is too large for one frame");
}

int main(int argc, char **argv)
{
    struct opts o = opts_default();
    proto_cli_init(&o.cli, argv[0]);
    parse_args(argc, argv, &o);
    proto_cli_finish(&o.cli, o.dump == DUMP_NONE);
    for (int i = 0; i < o.n_inputs; i++) proto_cli_check_distinct(o.cli.out, o.inputs[i]);
    if (o.tokenizer) proto_cli_check_distinct(o.cli.out, o.tokenizer);

    int rc = PROTO_EXIT_OK, err = 0;
    struct state st;
    if (state_init(&st, &o, argc, argv)) { rc = PROTO_EXIT_FAIL; goto out; }
    if (o.dump == DUMP_NONE) {
        struct proto_writer_opts wo = { .zstd_tensors = o.cli.zstd };
        if (!(st.w = proto_writer_open(o.cli.out, &wo, &err))) { rc = proto_fail(err, o.cli.out); goto out; }
    } else if (strcmp(o.cli.out, "-") != 0 && !freopen(o.cli.out, "w", stdout)) {
        snprintf(st.msg, sizeof st.msg, "%s: %s", o.cli.out, strerror(errno));
        rc = PROTO_EXIT_FAIL; goto out;
    }
    for (int i = 0; i < o.n_inputs && !st.done; i++)
        if (read_input(&st, o.inputs[i])) { rc = PROTO_EXIT_FAIL; goto out; }
    if (run_batch(&st)) { rc = PROTO_EXIT_FAIL; goto out; }
    if (st.w && finish(&st)) { rc = PROTO_EXIT_FAIL; goto out; }
    if (o.dump != DUMP_NONE && (fflush(stdout) != 0 || ferror(stdout))) {
        snprintf(st.msg, sizeof st.msg, "%s: writing output failed: %s", strcmp(o.cli.out, "-") ? o.cli.out : "stdout", strerror(errno));
        rc = PROTO_EXIT_FAIL;
    }
out:
    if (rc == PROTO_EXIT_FAIL && st.msg[0]) proto_error("%s", st.msg);
    if (st.w && (err = proto_writer_close(st.w, rc == PROTO_EXIT_OK)) != 0 && rc == PROTO_EXIT_OK)
        rc = proto_fail(err, o.cli.out);
    state_destroy(&st);
    return rc;
}
