/* test-proto.c - the frame library: round trips of every frame kind through every endpoint
 * type (pipe, file, .zst file, ipc://, tcp://), bit-exact; a reader fed one byte at a time;
 * misaligned bins; and every kind of bad stream with its error code. */
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>
#include "proto.h"
#include "check.h"

/* ---- a fixed set of frames ---- */
static int32_t g_tok[2 * 3] = {1, 5, 9, 1, 7, 511};
static float g_acts[2 * 3 * 4];            /* (2, 3, 4) */
static uint16_t g_recon[2 * 3 * 4];        /* bf16 (2, 3, 4) */
static uint8_t g_keep[6] = {1, 1, 0, 1, 1, 1};
static uint32_t g_indptr[7] = {0, 2, 2, 3, 5, 5, 6}, g_index[6] = {0, 7, 3, 1, 2, 7};
static float g_value[6] = {0.5f, 1e-8f, 3.f, 2.5f, 1.f, 4.f};
static float g_ce[2 * 2] = {1.f, 2.f, 3.f, NAN};
static float g_cos[6] = {1, .5f, .25f, 0, -1, .75f};

static void make_frames(struct proto_frame *f /* [4] */)
{
    for (int i = 0; i < 24; i++) { g_acts[i] = sinf((float)i) * 100.f; g_recon[i] = proto_f32_to_bf16(g_acts[i] * 0.9f); }
    uint64_t s2[2] = {2, 3}, s3[3] = {2, 3, 4}, sl[2] = {2, 2};
    proto_frame_init(&f[0], PROTO_KIND_TOKENS);
    proto_frame_set_tensor(&f[0], "tokens", PROTO_I32, 2, s2, g_tok);
    proto_frame_init(&f[1], PROTO_KIND_ACTS);
    proto_frame_set_tensor(&f[1], "tokens", PROTO_I32, 2, s2, g_tok);
    proto_frame_set_str(&f[1], "hook", "blocks.2.hook_resid_post");
    proto_frame_set_tensor(&f[1], "acts", PROTO_F32, 3, s3, g_acts);
    proto_frame_set_tensor(&f[1], "recon", PROTO_BF16, 3, s3, g_recon);
    proto_frame_set_tensor(&f[1], "keep", PROTO_U8, 2, s2, g_keep);
    struct proto_sparse sp = {8, 6, 6, g_indptr, g_index, g_value};
    proto_frame_set_sparse(&f[1], "feats", &sp);
    proto_frame_set_uint(&f[1], "extra", 42);
    proto_frame_init(&f[2], PROTO_KIND_LOSS);
    proto_frame_set_tensor(&f[2], "tokens", PROTO_I32, 2, s2, g_tok);
    proto_frame_set_tensor(&f[2], "ce_clean", PROTO_F32, 2, sl, g_ce);
    proto_frame_init(&f[3], PROTO_KIND_SIM);
    proto_frame_set_tensor(&f[3], "tokens", PROTO_I32, 2, s2, g_tok);
    proto_frame_set_tensor(&f[3], "cos", PROTO_F32, 2, s2, g_cos);
    proto_frame_set_tensor(&f[3], "l2", PROTO_F32, 2, s2, g_cos);
}

static int write_stream(const char *ep, int fd, bool zstd)
{
    struct proto_frame f[4];
    make_frames(f);
    struct proto_writer_opts wo = {.zstd_tensors = zstd};
    int err;
    struct proto_writer *w = fd >= 0 ? proto_writer_open_fd(fd, "pipe", &wo, &err) : proto_writer_open(ep, &wo, &err);
    if (!w) return err;
    struct proto_meta m;
    char *argv[] = {"/x/test-proto", "--flag", "1"};
    proto_meta_init(&m, NULL, 3, argv);
    proto_meta_set_str(&m, "model", "tiny");
    proto_meta_set_uint(&m, "d_model", 4);
    proto_meta_set_double(&m, "scale", 0.3125);
    err = proto_writer_header(w, &m);
    for (int i = 0; i < 4 && !err; i++) err = proto_writer_put(w, &f[i]);
    if (!err) err = proto_writer_end_meta(w, "nonfinite", 1);
    int cerr = proto_writer_close(w, err == 0);
    proto_meta_destroy(&m);
    return err ? err : cerr;
}

static bool same_value(const struct proto_value *a, const struct proto_value *b)
{
    if (a->type != b->type) return false;
    switch (a->type) {
    case PROTO_V_TENSOR:
        if (a->t.dtype != b->t.dtype || a->t.ndim != b->t.ndim) return false;
        for (int i = 0; i < a->t.ndim; i++) if (a->t.shape[i] != b->t.shape[i]) return false;
        if (((uintptr_t)b->t.data & 63) != 0) return false;   /* reader data is 64-byte aligned */
        return memcmp(a->t.data, b->t.data, proto_tensor_nbytes(&a->t)) == 0;
    case PROTO_V_SPARSE:
        return a->sp.d_sae == b->sp.d_sae && a->sp.n_tok == b->sp.n_tok && a->sp.nnz == b->sp.nnz
            && !memcmp(a->sp.indptr, b->sp.indptr, (a->sp.n_tok + 1) * 4) && !memcmp(a->sp.index, b->sp.index, a->sp.nnz * 4)
            && !memcmp(a->sp.value, b->sp.value, a->sp.nnz * 4);
    case PROTO_V_STR: return a->len == b->len && !memcmp(a->str, b->str, a->len);
    case PROTO_V_UINT: return a->u == b->u;
    default: return true;
    }
}

/* reads and checks the stream made by write_stream; returns 0 if identical */
static int check_stream(struct proto_reader *r, const char *what)
{
    struct proto_frame want[4], got;
    make_frames(want);
    int bad0 = g_failed, err = proto_reader_next(r, &got);
    CHECK(err == PROTO_OK && got.kind == PROTO_KIND_HEADER, "%s: header: %d %s", what, err, proto_detail());
    const struct proto_value *meta = proto_frame_get(&got, "meta");
    CHECK(meta && meta->type == PROTO_V_OBJ, "%s: header has meta", what);
    if (meta) {
        char s[64] = ""; uint64_t u = 0; double d = 0;
        CHECK(proto_meta_str(&meta->obj, "model", s, sizeof s) == 0 && !strcmp(s, "tiny"), "%s: meta model", what);
        CHECK(proto_meta_uint(&meta->obj, "d_model", &u) == 0 && u == 4, "%s: meta d_model", what);
        CHECK(proto_meta_double(&meta->obj, "scale", &d) == 0 && d == 0.3125, "%s: meta scale", what);
        const msgpack_object *st = proto_meta_get(&meta->obj, "stages");
        CHECK(st && st->type == MSGPACK_OBJECT_ARRAY && st->via.array.size == 1, "%s: stages", what);
        if (st && st->via.array.size == 1) {
            CHECK(proto_meta_str(&st->via.array.ptr[0], "name", s, sizeof s) == 0 && !strcmp(s, "test-proto"), "%s: stage name %s", what, s);
            CHECK(proto_meta_str(&st->via.array.ptr[0], "args", s, sizeof s) == 0 && !strcmp(s, "--flag 1"), "%s: stage args %s", what, s);
        }
    }
    for (int i = 0; i < 4; i++) {
        err = proto_reader_next(r, &got);
        CHECK(err == PROTO_OK, "%s: frame %d: %d %s", what, i, err, proto_detail());
        if (err) break;
        CHECK(got.kind == want[i].kind && got.seq == (uint64_t)i && got.n == want[i].n, "%s: frame %d kind/seq/n", what, i);
        for (int k = 0; k < want[i].n; k++) {
            const struct proto_value *g = proto_frame_get(&got, want[i].v[k].key);
            CHECK(g && same_value(&want[i].v[k], g), "%s: frame %d key %s", what, i, want[i].v[k].key);
        }
    }
    err = proto_reader_next(r, &got);
    CHECK(err == PROTO_END, "%s: end: %d %s", what, err, proto_detail());
    const struct proto_value *fr = proto_frame_get(&got, "frames"), *rows = proto_frame_get(&got, "rows");
    CHECK(fr && fr->u == 4 && rows && rows->u == 8, "%s: end counts", what);
    const struct proto_value *em = proto_frame_get(&got, "meta");
    uint64_t nf = 0;
    CHECK(em && proto_meta_uint(&em->obj, "nonfinite", &nf) == 0 && nf == 1, "%s: end meta", what);
    return g_failed != bad0;
}

static void roundtrip_file(const char *path, bool zstd)
{
    CHECK(write_stream(path, -1, zstd) == 0, "write %s: %s", path, proto_detail());
    int err;
    struct proto_reader *r = proto_reader_open(path, &err);
    CHECK(r, "open %s", path);
    if (r) { check_stream(r, path); proto_reader_close(r); }
}

static void roundtrip_zmq(const char *ep)
{
    pid_t pid = fork();
    if (pid == 0) _exit(write_stream(ep, -1, false) ? 1 : 0);
    int err, st;
    struct proto_reader *r = proto_reader_open(ep, &err);
    CHECK(r, "open %s: %s", ep, proto_detail());
    if (r) { check_stream(r, ep); proto_reader_close(r); }
    waitpid(pid, &st, 0);
    CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "%s writer exit", ep);
}

/* feed bytes to a reader through a pipe, `chunk` bytes per write */
static struct proto_reader *pipe_reader(const void *bytes, size_t n, size_t chunk, pid_t *pid)
{
    int p[2];
    if (pipe(p)) return NULL;
    *pid = fork();
    if (*pid == 0) {
        close(p[0]);
        for (size_t i = 0; i < n; i += chunk) if (write(p[1], (const char *)bytes + i, n - i < chunk ? n - i : chunk) < 0) _exit(1);
        _exit(0);
    }
    close(p[1]);
    int err;
    struct proto_reader *r = proto_reader_open_fd(p[0], "pipe", &err);
    return r;
}
static void close_pipe_reader(struct proto_reader *r, int fd_hint, pid_t pid)
{
    (void)fd_hint;
    proto_reader_close(r);
    int st; waitpid(pid, &st, 0);
}

static char *slurp(const char *path, size_t *n)
{
    char *b; proto_read_file(path, &b, n); return b;
}

/* the first error a stream gives */
static int first_error(const void *bytes, size_t n)
{
    pid_t pid;
    struct proto_reader *r = pipe_reader(bytes, n, 4096, &pid);
    struct proto_frame f;
    int err;
    while ((err = proto_reader_next(r, &f)) == PROTO_OK) {}
    close_pipe_reader(r, -1, pid);
    return err;
}

/* pack JSON-free raw frames with msgpack directly */
static void pk_str(msgpack_packer *pk, const char *s) { msgpack_pack_str(pk, strlen(s)); msgpack_pack_str_body(pk, s, strlen(s)); }
static void raw_frame(msgpack_sbuffer *sb, unsigned version, const char *kind, long seq, const char *dtype, unsigned rows, size_t nbytes)
{
    msgpack_packer pk; msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    bool data = seq >= 0;
    msgpack_pack_map(&pk, 2 + (data ? 2 : 0) + (!strcmp(kind, "end") ? 2 : 0) + (!strcmp(kind, "header") ? 1 : 0));
    pk_str(&pk, "sf"); msgpack_pack_uint32(&pk, version);
    pk_str(&pk, "kind"); pk_str(&pk, kind);
    if (!strcmp(kind, "header")) { pk_str(&pk, "meta"); msgpack_pack_map(&pk, 0); }
    if (!strcmp(kind, "end")) { pk_str(&pk, "frames"); msgpack_pack_uint32(&pk, rows); pk_str(&pk, "rows"); msgpack_pack_uint32(&pk, rows); }
    if (data) {
        pk_str(&pk, "seq"); msgpack_pack_uint64(&pk, (uint64_t)seq);
        pk_str(&pk, "tokens"); msgpack_pack_map(&pk, 3);
        pk_str(&pk, "dtype"); pk_str(&pk, dtype);
        pk_str(&pk, "shape"); msgpack_pack_array(&pk, 2); msgpack_pack_uint32(&pk, rows); msgpack_pack_uint32(&pk, 2);
        static const char zeros[64];
        pk_str(&pk, "data"); msgpack_pack_bin(&pk, nbytes); msgpack_pack_bin_body(&pk, zeros, nbytes);
    }
}

int main(void)
{
    char dir[] = "/tmp/sfproto.XXXXXX", path[256], ep[300];
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    setenv("SAEFLOW_ZMQ_TIMEOUT", "20", 1);

    /* 1. conversions */
    CHECK(proto_bf16_to_f32(proto_f32_to_bf16(1.0f)) == 1.0f, "bf16 1");
    CHECK(proto_f32_to_bf16(1.00390625f) == 0x3f80, "bf16 ties to even (down)");
    CHECK(proto_f32_to_bf16(1.01171875f) == 0x3f82, "bf16 ties to even (up)");
    CHECK(proto_f32_to_f16(1.0f) == 0x3c00 && proto_f16_to_f32(0x3c00) == 1.0f, "f16 1");
    CHECK(proto_f32_to_f16(65504.f) == 0x7bff && proto_f32_to_f16(1e6f) == 0x7c00, "f16 max/inf");
    CHECK(proto_f16_to_f32(0x0001) == ldexpf(1, -24) && proto_f32_to_f16(ldexpf(1, -24)) == 1, "f16 subnormal");
    CHECK(proto_f32_to_f16(ldexpf(3, -26)) == 1, "f16 subnormal rounding 0.75 -> 1");
    CHECK(isnan(proto_f16_to_f32(proto_f32_to_f16(NAN))) && isnan(proto_bf16_to_f32(proto_f32_to_bf16(NAN))), "NaN kept");
    int nbad = 0;
    for (uint32_t h = 0; h < 0x10000; h++) {   /* every finite f16 survives f16 -> f32 -> f16 */
        float f = proto_f16_to_f32((uint16_t)h);
        if (!isnan(f) && proto_f32_to_f16(f) != h) nbad++;
    }
    CHECK(nbad == 0, "f16 round trip: %d values differ", nbad);

    /* 2. round trips through every endpoint type */
    snprintf(path, sizeof path, "%s/s.bin", dir); roundtrip_file(path, false);
    snprintf(path, sizeof path, "%s/s.zst", dir); roundtrip_file(path, false);
    snprintf(path, sizeof path, "%s/sz.bin", dir); roundtrip_file(path, true);   /* zstd tensor payloads */
    snprintf(ep, sizeof ep, "ipc://%s/sock", dir); roundtrip_zmq(ep);
    int port = 20000 + getpid() % 20000;
    snprintf(ep, sizeof ep, "tcp://127.0.0.1:%d", port);
    {   /* tcp: the reader binds (tcp://@127.0.0.1, loopback), the writer connects */
        char bind_ep[64]; snprintf(bind_ep, sizeof bind_ep, "tcp://@127.0.0.1:%d", port);
        pid_t pid = fork();
        if (pid == 0) _exit(write_stream(ep, -1, true) ? 1 : 0);
        int err, st;
        struct proto_reader *r = proto_reader_open(bind_ep, &err);
        CHECK(r, "open %s: %s", bind_ep, proto_detail());
        if (r) { check_stream(r, "tcp"); proto_reader_close(r); }
        waitpid(pid, &st, 0);
        CHECK(WIFEXITED(st) && WEXITSTATUS(st) == 0, "tcp writer exit");
    }

    /* 3. a pipe fed one byte at a time, and misaligned bins */
    snprintf(path, sizeof path, "%s/s.bin", dir);
    size_t n; char *bytes = slurp(path, &n);
    pid_t pid;
    struct proto_reader *r = pipe_reader(bytes, n, 1, &pid);
    check_stream(r, "one byte at a time");
    close_pipe_reader(r, -1, pid);
    for (int shift = 1; shift < 4; shift++) {   /* the same frames at offsets 1..3 of a buffer */
        char *buf = malloc(n + 8);
        memcpy(buf + shift, bytes, n);
        r = pipe_reader(buf + shift, n, 7, &pid);
        check_stream(r, "misaligned");
        close_pipe_reader(r, -1, pid);
        free(buf);
    }

    /* 3b. large bins (placed 64-byte aligned by the reader and used in place): two frames of a
     * 256 KiB tensor behind an odd-length string, through a pipe in odd-sized chunks */
    {
        static float big[256 * 256];   /* (1, 256, 256) */
        static int32_t btok[256];
        for (int i = 0; i < 256 * 256; i++) big[i] = (float)i * 0.5f - 7.f;
        uint64_t s2[2] = {1, 256}, s3[3] = {1, 256, 256};
        char bpath[300]; snprintf(bpath, sizeof bpath, "%s/big.bin", dir);
        int err;
        struct proto_writer *w = proto_writer_open(bpath, NULL, &err);
        struct proto_frame f; proto_frame_init(&f, PROTO_KIND_ACTS);
        proto_frame_set_str(&f, "hook", "blocks.0.hook_resid_pre+odd");
        proto_frame_set_tensor(&f, "tokens", PROTO_I32, 2, s2, btok);
        proto_frame_set_tensor(&f, "acts", PROTO_F32, 3, s3, big);
        err = proto_writer_header(w, NULL);
        for (int k = 0; k < 2 && !err; k++) err = proto_writer_put(w, &f);
        CHECK(proto_writer_close(w, err == 0) == 0 && err == 0, "write big frames");
        size_t bn; char *bb = slurp(bpath, &bn);
        for (size_t chunk = 997; chunk <= 65537; chunk *= 66) {
            struct proto_reader *br = pipe_reader(bb, bn, chunk, &pid);
            struct proto_frame g;
            CHECK(proto_reader_next(br, &g) == PROTO_OK, "big: header");
            for (int k = 0; k < 2; k++) {
                CHECK(proto_reader_next(br, &g) == PROTO_OK, "big: frame %d: %s", k, proto_detail());
                const struct proto_tensor *t = proto_frame_tensor(&g, "acts");
                CHECK(t && ((uintptr_t)t->data & 63) == 0 && !memcmp(t->data, big, sizeof big), "big: frame %d data (chunk %zu)", k, chunk);
            }
            CHECK(proto_reader_next(br, &g) == PROTO_END, "big: end");
            close_pipe_reader(br, -1, pid);
        }
        free(bb);
    }

    /* 4. bad streams */
    CHECK(first_error(bytes, n - 1) == PROTO_E_TRUNCATED, "truncated last byte");
    CHECK(first_error(bytes, n / 2) == PROTO_E_TRUNCATED, "truncated mid stream");
    msgpack_sbuffer sb; msgpack_sbuffer_init(&sb);
    raw_frame(&sb, 1, "header", -1, "", 0, 0); raw_frame(&sb, 1, "tokens", 0, "i32", 1, 8);
    CHECK(first_error(sb.data, sb.size) == PROTO_E_TRUNCATED, "missing end");
    raw_frame(&sb, 1, "tokens", 2, "i32", 1, 8);
    CHECK(first_error(sb.data, sb.size) == PROTO_E_SEQ, "seq gap");
    msgpack_sbuffer_clear(&sb);
    raw_frame(&sb, 2, "header", -1, "", 0, 0);
    CHECK(first_error(sb.data, sb.size) == PROTO_E_VERSION, "wrong version");
    msgpack_sbuffer_clear(&sb);
    raw_frame(&sb, 1, "header", -1, "", 0, 0); raw_frame(&sb, 1, "tokens", 0, "q7", 1, 8);
    CHECK(first_error(sb.data, sb.size) == PROTO_E_SCHEMA, "unknown dtype");
    msgpack_sbuffer_clear(&sb);
    raw_frame(&sb, 1, "header", -1, "", 0, 0); raw_frame(&sb, 1, "tokens", 0, "i32", 1, 12);
    CHECK(first_error(sb.data, sb.size) == PROTO_E_SCHEMA, "data length != shape");
    CHECK(strstr(proto_detail(), "12 bytes") != NULL, "detail names the byte count: %s", proto_detail());
    msgpack_sbuffer_clear(&sb);
    raw_frame(&sb, 1, "header", -1, "", 0, 0); raw_frame(&sb, 1, "tokens", 0, "i32", 1, 8); raw_frame(&sb, 1, "end", -1, "", 3, 0);
    CHECK(first_error(sb.data, sb.size) == PROTO_E_SEQ, "end count mismatch");
    msgpack_sbuffer_clear(&sb);
    raw_frame(&sb, 1, "tokens", 0, "i32", 1, 8);
    CHECK(first_error(sb.data, sb.size) == PROTO_E_SEQ, "header not first");
    CHECK(first_error("\xc1\xc1\xc1garbage", 10) == PROTO_E_PARSE, "garbage");
    msgpack_sbuffer_destroy(&sb);
    free(bytes);

    /* 5. writer on /dev/full */
    {
        int err;
        struct proto_writer *w = proto_writer_open("/dev/full", NULL, &err);
        CHECK(w != NULL, "open /dev/full");
        if (w) {
            struct proto_frame f[4]; make_frames(f);
            err = proto_writer_header(w, NULL);
            if (!err) err = proto_writer_put(w, &f[1]);
            int cerr = proto_writer_close(w, err == 0);
            CHECK((err ? err : cerr) == PROTO_E_IO, "/dev/full gives PROTO_E_IO");
        }
    }
    char cmd[300]; snprintf(cmd, sizeof cmd, "rm -rf %s", dir);
    if (system(cmd)) {}
    if (g_failed) { fprintf(stderr, "%d checks failed\n", g_failed); return 1; }
    printf("all proto checks passed\n");
    return 0;
}
