/* fuzz-jsonl - libFuzzer target for sf-tokenize's JSONL input path: its line reader
 * (read_jsonl: BOM, blank lines, cJSON with trailing-garbage checks, --field text or
 * pre-tokenized input_ids/tokens arrays) through tokenizing, SAELens batching and frame writing.
 * It includes stages/sf-tokenize/sf-tokenize.c with its main renamed, so it runs exactly the
 * stage's code; the tokenizer is a small tokenizer.json written once (SentencePiece is stubbed
 * out: no C++ here). The first input byte picks the format (auto / jsonl / ids), --bos and
 * ctx; the rest is the file. A line must be read or refused with a message; never a crash, a
 * leak, or a stream that does not read back. Seeds: tests/fuzz/seeds-fuzz-jsonl. */
#define main sf_tokenize_main
#include "../../stages/sf-tokenize/sf-tokenize.c"
#undef main

/* SentencePiece is not linked in: a .model tokenizer is never loaded here */
struct spm *spm_load(const char *path, char *err, size_t err_cap) { (void)path; snprintf(err, err_cap, "no sentencepiece"); return NULL; }
int spm_encode(struct spm *t, const char *text, size_t len, struct ids *out, char *err, size_t cap) { (void)t; (void)text; (void)len; (void)out; snprintf(err, cap, "no"); return -1; }
struct spm *spm_worker(struct spm *t) { (void)t; return NULL; }
int spm_bos_id(const struct spm *t) { (void)t; return -1; }
int spm_vocab_size(const struct spm *t) { (void)t; return 0; }
void spm_free(struct spm *t) { (void)t; }

static char g_tok[64], g_out[64];
static const char g_tok_json[] =
    "{\"added_tokens\":[{\"id\":0,\"content\":\"<bos>\",\"normalized\":false}],\"normalizer\":null,"
    "\"pre_tokenizer\":null,\"model\":{\"type\":\"BPE\",\"vocab\":{\"<bos>\":0,\"a\":1,\"b\":2,\"ab\":3,\"c\":4,\" \":5},"
    "\"merges\":[\"a b\"]}}";

static void setup(void)
{
    snprintf(g_tok, sizeof g_tok, "/tmp/fuzz-jsonl-tok-XXXXXX");
    int fd = mkstemp(g_tok);
    if (fd < 0 || write(fd, g_tok_json, sizeof g_tok_json - 1) != (ssize_t)(sizeof g_tok_json - 1)) abort();
    close(fd);
    snprintf(g_out, sizeof g_out, access("/dev/shm", W_OK) == 0 ? "/dev/shm/fuzz-jsonl-out-XXXXXX" : "/tmp/fuzz-jsonl-out-XXXXXX");   /* tmpfs: a cheap fsync */
    if ((fd = mkstemp(g_out)) < 0) abort();
    close(fd);
    g_verbose = 0;
}

/* what was written must be a stream that reads back whole */
static void check_output(void)
{
    int err = 0;
    struct proto_reader *r = proto_reader_open(g_out, &err);
    if (!r) abort();
    struct proto_frame f;
    while ((err = proto_reader_next(r, &f)) == PROTO_OK) {}
    if (err != PROTO_END) abort();
    proto_reader_close(r);
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_tok[0]) setup();
    if (size < 1) return 0;
    struct opts o = opts_default();
    static const enum fmt fmts[4] = {FMT_AUTO, FMT_JSONL, FMT_IDS, FMT_AUTO};
    o.cli.threads = 1; o.cli.in = "-"; o.cli.out = g_out; o.cli.progress = 0;
    o.tokenizer = g_tok;
    o.format = fmts[data[0] & 3];
    o.bos = (data[0] >> 2) & 1;
    o.ctx = 2 + ((data[0] >> 3) & 7);   /* the CLI refuses --ctx 1 with --bos */
    o.rows = 1 + (data[0] >> 6);
    o.max_doc_bytes = 4096;
    data++; size--;
    struct state st;
    char *argv[] = {"sf-tokenize", NULL};
    int rc = state_init(&st, &o, 1, argv), err = 0;
    FILE *f = rc ? NULL : fmemopen((void *)data, size ? size : 1, "rb");
    if (!rc && !f) abort();
    if (!rc && !(st.w = proto_writer_open(g_out, NULL, &err))) abort();
    if (!rc && size) rc = read_jsonl(&st, f, "fuzz.jsonl", o.format == FMT_IDS ? FMT_IDS : FMT_JSONL);
    if (!rc) rc = run_batch(&st);
    if (!rc) rc = finish(&st);
    if (rc && !st.msg[0]) abort();   /* every refusal says why */
    if (f) fclose(f);
    if (st.w && proto_writer_close(st.w, rc == 0) != 0 && rc == 0) abort();
    if (st.w && rc == 0) check_output();
    state_destroy(&st);
    return 0;
}
