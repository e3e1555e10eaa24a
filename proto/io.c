/* io.c - endpoints: readers and writers of frame streams over fds, files, .zst files and
 * ZeroMQ PUSH/PULL. The reader enforces the stream grammar: header first, seq 0,1,2,... with no
 * gap, end last with the right frame and row counts, nothing after it on a file or pipe (EOF);
 * EOF before end is PROTO_E_TRUNCATED. A frame may hold at most READ_MAX_OBJECTS msgpack
 * objects, checked before msgpack-c unpacks it. */
#include <errno.h>
#include <fcntl.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include <zmq.h>
#include <zstd.h>
#include "proto.h"

enum ep_type { EP_FD, EP_ZSTD, EP_ZMQ };
#define READ_CHUNK (1u << 20)
#define STAGE_CAP (1u << 18)
#define DIRECT_MIN (1u << 16)

/* ---- endpoint strings ---- */
static bool has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }
static bool ends_with(const char *s, const char *x) { size_t a = strlen(s), b = strlen(x); return a >= b && strcmp(s + a - b, x) == 0; }
static int zmq_timeout_ms(void)
{
    const char *e = getenv("SAEFLOW_ZMQ_TIMEOUT");
    long s = e ? strtol(e, NULL, 10) : 600;
    if (s <= 0 || s > 86400) s = 600;
    return (int)(s * 1000);
}
/* tcp with host "*" binds, any other host connects; ipc binds on the writer side */
static bool zmq_binds(const char *ep, bool writer)
{
    if (has_prefix(ep, "ipc://")) return writer;
    return has_prefix(ep, "tcp://*:");
}
/* Writers keep a send high-water mark of 4 frames (back-pressure on the producer). Readers
 * have none (0 = unbounded queue): libzmq 4.3.4 drops the data of a connection whose reader is
 * held back by its receive high-water mark when the writer closes (measured here: about one
 * stream in three lost its last frames over ipc://). So a ZeroMQ reader may queue frames ahead
 * of a slow consumer; SAEFLOW_ZMQ_RCVHWM=N bounds it (at that risk). */
static int zmq_setup(void **ctx, void **sock, const char *ep, int type, bool writer)
{
    const char *e = getenv("SAEFLOW_ZMQ_RCVHWM");
    int to = zmq_timeout_ms(), hwm = writer ? 4 : (e ? atoi(e) : 0), linger = writer ? to : 0;
    if (!has_prefix(ep, "tcp://") && !has_prefix(ep, "ipc://")) { proto_set_detail("%s: unsupported endpoint", ep); return PROTO_E_ENDPOINT; }
    if (!(*ctx = zmq_ctx_new())) { proto_set_detail("zmq_ctx_new: %s", zmq_strerror(errno)); return PROTO_E_ZMQ; }
    if (!(*sock = zmq_socket(*ctx, type))) { proto_set_detail("zmq_socket: %s", zmq_strerror(errno)); return PROTO_E_ZMQ; }
    zmq_setsockopt(*sock, writer ? ZMQ_SNDHWM : ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(*sock, writer ? ZMQ_SNDTIMEO : ZMQ_RCVTIMEO, &to, sizeof to);
    zmq_setsockopt(*sock, ZMQ_LINGER, &linger, sizeof linger);
    int rc = zmq_binds(ep, writer) ? zmq_bind(*sock, ep) : zmq_connect(*sock, ep);
    if (rc != 0) { proto_set_detail("%s: %s", ep, zmq_strerror(errno)); return PROTO_E_ZMQ; }
    return PROTO_OK;
}

static void zmq_teardown(void *ctx, void *sock)
{
    if (sock) zmq_close(sock);
    if (ctx) zmq_ctx_term(ctx);
}

/* ================= reader ================= */
struct proto_reader {
    char name[256];
    enum ep_type type;
    int fd; bool own_fd;
    ZSTD_DStream *zd;
    unsigned char *zin; size_t zin_len, zin_pos; bool zin_eof; size_t zlast;
    void *zctx, *zsock; zmq_msg_t msg; bool msg_live;
    char *buf; size_t start, len, cap;   /* fd/zstd: bytes [start, len) not yet parsed */
    msgpack_unpacked res;
    struct proto_slots slots;
    int state;               /* 0: expect header, 1: data, 2: after end */
    uint64_t frames, rows;
};

static struct proto_reader *reader_new(const char *name)
{
    struct proto_reader *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    snprintf(r->name, sizeof r->name, "%s", name);
    r->fd = -1;
    msgpack_unpacked_init(&r->res);
    return r;
}

static void grow_pipe(int fd)
{
#ifdef F_SETPIPE_SZ
    fcntl(fd, F_SETPIPE_SZ, 1 << 20);   /* fewer, larger reads and writes; best effort */
#else
    (void)fd;
#endif
}

static int reader_stream_init(struct proto_reader *r)
{
    r->cap = 2 * READ_CHUNK;
    if (!(r->buf = proto_aligned_alloc(r->cap))) return PROTO_E_NOMEM;
    grow_pipe(r->fd);
    if (r->type == EP_ZSTD) {
        if (!(r->zd = ZSTD_createDStream()) || !(r->zin = malloc(ZSTD_DStreamInSize()))) return PROTO_E_NOMEM;
        ZSTD_initDStream(r->zd);
    }
    return PROTO_OK;
}

struct proto_reader *proto_reader_open_fd(int fd, const char *name, int *err)
{
    struct proto_reader *r = reader_new(name);
    if (!r) { *err = PROTO_E_NOMEM; return NULL; }
    r->type = EP_FD; r->fd = fd;
    if ((*err = reader_stream_init(r)) != PROTO_OK) { proto_reader_close(r); return NULL; }
    return r;
}

struct proto_reader *proto_reader_open(const char *ep, int *err)
{
    proto_clear_detail();
    if (!ep || !*ep) { *err = PROTO_E_ENDPOINT; proto_set_detail("empty endpoint"); return NULL; }
    if (strcmp(ep, "-") == 0) { struct proto_reader *r = proto_reader_open_fd(0, "stdin", err); return r; }
    struct proto_reader *r = reader_new(ep);
    if (!r) { *err = PROTO_E_NOMEM; return NULL; }
    if (has_prefix(ep, "tcp://") || has_prefix(ep, "ipc://")) {
        r->type = EP_ZMQ;
        if ((*err = zmq_setup(&r->zctx, &r->zsock, ep, ZMQ_PULL, false)) != PROTO_OK) { proto_reader_close(r); return NULL; }
        return r;
    }
    r->type = ends_with(ep, ".zst") ? EP_ZSTD : EP_FD;
    r->fd = open(ep, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) { proto_set_detail("%s", strerror(errno)); *err = PROTO_E_IO; proto_reader_close(r); return NULL; }
    r->own_fd = true;
    if ((*err = reader_stream_init(r)) != PROTO_OK) { proto_reader_close(r); return NULL; }
    return r;
}

static ssize_t read_some(int fd, void *buf, size_t n)
{
    for (;;) {
        ssize_t k = read(fd, buf, n);
        if (k >= 0 || errno != EINTR) return k;
    }
}

/* Size of the msgpack object at p[0..n): > 0 when it is all there, 0 when more bytes are
 * needed, PROTO_E_PARSE for a byte that starts no msgpack object. Only headers are looked at
 * (bins and strings are skipped by length), so rescanning a partial frame is cheap. */
#define ALIGN_MIN_BIN (1u << 16)   /* bins this large are received 64-byte aligned */
/* At most this many msgpack objects (every value, key, array and map counts one) in one frame:
 * msgpack-c's unpacker takes 24 bytes per object (a 20 MB frame of nils took 490 MB), so a frame
 * costs at most ~1.6 MB beyond its own bytes. Real frames hold a few dozen (tensors are bins). */
#define READ_MAX_OBJECTS (1u << 16)
#define MP_TOO_MANY (-1000)         /* mp_size: over READ_MAX_OBJECTS (no proto error code) */
static long long mp_size(const unsigned char *p, size_t n, size_t *big_body)
{
    *big_body = 0;
    size_t pos = 0;
    uint64_t pending = 1, objs = 0;
    while (pending) {
        if (++objs > READ_MAX_OBJECTS) return MP_TOO_MANY;
        if (pos >= n) return 0;
        unsigned b = p[pos];
        uint64_t hs = 1, body = 0, add = 0;
        int lenbytes = 0;
        if (b <= 0x7f || b >= 0xe0 || (b >= 0xc0 && b <= 0xc3 && b != 0xc1)) hs = 1;
        else if (b >= 0x80 && b <= 0x8f) add = 2 * (b & 0x0f);
        else if (b >= 0x90 && b <= 0x9f) add = b & 0x0f;
        else if (b >= 0xa0 && b <= 0xbf) body = b & 0x1f;
        else switch (b) {
            case 0xc4: case 0xd9: lenbytes = 1; break;          /* bin8 / str8 */
            case 0xc5: case 0xda: lenbytes = 2; break;
            case 0xc6: case 0xdb: lenbytes = 4; break;
            case 0xc7: lenbytes = 1; body = 1; break;           /* ext: + type byte */
            case 0xc8: lenbytes = 2; body = 1; break;
            case 0xc9: lenbytes = 4; body = 1; break;
            case 0xca: case 0xce: case 0xd2: hs = 5; break;
            case 0xcb: case 0xcf: case 0xd3: hs = 9; break;
            case 0xcc: case 0xd0: hs = 2; break;
            case 0xcd: case 0xd1: hs = 3; break;
            case 0xd4: hs = 3; break; case 0xd5: hs = 4; break; case 0xd6: hs = 6; break;
            case 0xd7: hs = 10; break; case 0xd8: hs = 18; break;
            case 0xdc: case 0xde: lenbytes = 2; break;
            case 0xdd: case 0xdf: lenbytes = 4; break;
            default: return PROTO_E_PARSE;                      /* 0xc1 */
        }
        if (lenbytes) {
            if (pos + 1 + lenbytes > n) return 0;
            uint64_t v = 0;
            for (int i = 0; i < lenbytes; i++) v = v << 8 | p[pos + 1 + i];
            hs = 1 + (uint64_t)lenbytes;
            if (b == 0xdc || b == 0xdd) add = v;
            else if (b == 0xde || b == 0xdf) add = 2 * v;
            else body += v;
        }
        if (body >= ALIGN_MIN_BIN && pos + hs + body > n && pos + hs <= n && !*big_body) *big_body = pos + hs;
        pos += hs + body;
        pending += add;
        pending--;
        if (pos > n && pending == 0) return 0;
    }
    return pos <= n ? (long long)pos : 0;
}

/* more bytes into r->buf: >0 bytes, 0 EOF, <0 error code. The buffer is 64-byte aligned and
 * compaction keeps r->start modulo 64, so a bin body placed on a 64-byte boundary stays there. */
static long read_more(struct proto_reader *r)
{
    if (r->start >= 64 && (r->start == r->len || r->cap - r->len < READ_CHUNK)) {
        size_t keep = r->start % 64;
        memmove(r->buf + keep, r->buf + r->start, r->len - r->start);
        r->len -= r->start - keep; r->start = keep;
    }
    if (r->cap - r->len < READ_CHUNK) {
        size_t cap = r->cap * 2;
        char *nb = proto_aligned_alloc(cap);
        if (!nb) return PROTO_E_NOMEM;
        memcpy(nb, r->buf, r->len);
        free(r->buf);
        r->buf = nb; r->cap = cap;
    }
    char *dst = r->buf + r->len;
    size_t cap = r->cap - r->len;
    if (r->type == EP_FD) {
        ssize_t k = read_some(r->fd, dst, cap);
        if (k < 0) { proto_set_detail("read: %s", strerror(errno)); return PROTO_E_IO; }
        r->len += (size_t)k;
        return (long)k;
    }
    /* zstd: decompress until some output or EOF */
    ZSTD_outBuffer out = {dst, cap, 0};
    while (out.pos == 0) {
        if (r->zin_pos == r->zin_len) {
            if (r->zin_eof) {
                if (r->zlast != 0) { proto_set_detail("zstd stream is truncated"); return PROTO_E_TRUNCATED; }
                return 0;
            }
            ssize_t k = read_some(r->fd, r->zin, ZSTD_DStreamInSize());
            if (k < 0) { proto_set_detail("read: %s", strerror(errno)); return PROTO_E_IO; }
            if (k == 0) { r->zin_eof = true; continue; }
            r->zin_len = (size_t)k; r->zin_pos = 0;
        }
        ZSTD_inBuffer in = {r->zin, r->zin_len, r->zin_pos};
        size_t z = ZSTD_decompressStream(r->zd, &out, &in);
        r->zin_pos = in.pos;
        if (ZSTD_isError(z)) { proto_set_detail("zstd: %s", ZSTD_getErrorName(z)); return PROTO_E_ZSTD; }
        r->zlast = z;
    }
    r->len += out.pos;
    return (long)out.pos;
}

/* mp_size's failures and msgpack_unpack_next's, with a detail. */
static int mp_fail(const struct proto_reader *r, long long code)
{
    unsigned long long k = (unsigned long long)r->frames;
    if (code == MP_TOO_MANY) {
        proto_set_detail("after %llu data frames: a frame of more than %u msgpack objects (the bound per frame)", k, READ_MAX_OBJECTS);
        return PROTO_E_SCHEMA;
    }
    if (code == MSGPACK_UNPACK_NOMEM_ERROR) {   /* msgpack-c says so for nesting over 32 levels too */
        proto_set_detail("after %llu data frames: msgpack nested deeper than 32 levels, or out of memory", k);
        return PROTO_E_PARSE;
    }
    proto_set_detail("after %llu data frames: bytes are not msgpack", k);
    return PROTO_E_PARSE;
}

static int next_object(struct proto_reader *r, const msgpack_object **obj)
{
    if (r->type == EP_ZMQ) {
        if (r->msg_live) zmq_msg_close(&r->msg);
        zmq_msg_init(&r->msg); r->msg_live = true;
        for (;;) {
            if (zmq_msg_recv(&r->msg, r->zsock, 0) >= 0) break;
            if (errno == EINTR) continue;
            if (errno == EAGAIN) { proto_set_detail("no frame within %d s (SAEFLOW_ZMQ_TIMEOUT)", zmq_timeout_ms() / 1000); return PROTO_E_TIMEOUT; }
            proto_set_detail("zmq_msg_recv: %s", zmq_strerror(errno)); return PROTO_E_ZMQ;
        }
        size_t off = 0, size = zmq_msg_size(&r->msg), big;
        long long need = mp_size(zmq_msg_data(&r->msg), size, &big);   /* the object bound, before unpacking */
        if (need == MP_TOO_MANY) return mp_fail(r, need);
        msgpack_unpack_return ret = need <= 0 ? MSGPACK_UNPACK_PARSE_ERROR : msgpack_unpack_next(&r->res, zmq_msg_data(&r->msg), size, &off);
        if (ret == MSGPACK_UNPACK_NOMEM_ERROR) return mp_fail(r, ret);
        if (ret != MSGPACK_UNPACK_SUCCESS || off != size) { proto_set_detail("message of %zu bytes is not one msgpack frame", size); return PROTO_E_PARSE; }
        *obj = &r->res.data;
        return PROTO_OK;
    }
    for (;;) {
        size_t big = 0;
        long long size = mp_size((const unsigned char *)r->buf + r->start, r->len - r->start, &big);
        if (size == 0 && big && (r->start + big) % 64 != 0) {
            /* a large bin is arriving: move the partial frame so its body lands 64-byte aligned
             * and the frame parser can use it in place instead of copying it */
            size_t to = (64 - big % 64) % 64, n = r->len - r->start;
            if (to + n + READ_CHUNK > r->cap) { /* read_more grows it; align next time round */ }
            else { memmove(r->buf + to, r->buf + r->start, n); r->start = to; r->len = to + n; }
        }
        if (size < 0) return mp_fail(r, size);
        if (size > 0) {
            size_t off = 0;
            msgpack_unpack_return ret = msgpack_unpack_next(&r->res, r->buf + r->start, (size_t)size, &off);
            if (ret != MSGPACK_UNPACK_SUCCESS || off != (size_t)size) return mp_fail(r, ret);
            r->start += (size_t)size;   /* the objects point into buf until the next read_more */
            *obj = &r->res.data;
            return PROTO_OK;
        }
        long k = read_more(r);
        if (k < 0) return (int)k;
        if (k == 0) {
            bool mid = r->len > r->start;
            proto_set_detail("stream ended %safter %llu data frames without an end frame",
                             mid ? "in the middle of a frame " : "", (unsigned long long)r->frames);
            return PROTO_E_TRUNCATED;
        }
    }
}

/* After the end frame a file or pipe must be at EOF: one more byte is a second stream or garbage
 * that would otherwise be dropped unseen (ZeroMQ is not checked: a message after the end could
 * only be seen by waiting for it). */
static int check_eof_after_end(struct proto_reader *r)
{
    if (r->type == EP_ZMQ) return PROTO_OK;
    for (;;) {
        if (r->len > r->start) {
            proto_set_detail("data after the end frame (at least %zu bytes after %llu data frames)",
                             r->len - r->start, (unsigned long long)r->frames);
            return PROTO_E_SEQ;
        }
        long k = read_more(r);
        if (k <= 0) return (int)k;
    }
}

/* The end frame's counts against what arrived; then nothing may follow it. */
static int check_end(struct proto_reader *r, struct proto_frame *end)
{
    const struct proto_value *fr = proto_frame_get(end, "frames"), *rows = proto_frame_get(end, "rows");
    if (fr->u != r->frames) {
        proto_set_detail("end frame counts %llu frames, %llu arrived", (unsigned long long)fr->u, (unsigned long long)r->frames);
        return PROTO_E_SEQ;
    }
    if (rows && (rows->type != PROTO_V_UINT || rows->u != r->rows)) {
        if (rows->type != PROTO_V_UINT) proto_set_detail("end frame 'rows' is not a uint");
        else proto_set_detail("end frame counts %llu rows, %llu arrived in %llu data frames", (unsigned long long)rows->u,
                              (unsigned long long)r->rows, (unsigned long long)r->frames);
        return PROTO_E_SEQ;
    }
    return check_eof_after_end(r);
}

int proto_reader_next(struct proto_reader *r, struct proto_frame *out)
{
    proto_clear_detail();
    if (r->state == 2) { proto_frame_init(out, PROTO_KIND_END); return PROTO_END; }
    const msgpack_object *obj = NULL;
    int err = next_object(r, &obj);
    if (err) return err;
    err = proto_frame_from_obj(obj, out, &r->slots);
    if (err) {
        if (r->state == 0 && err == PROTO_E_SCHEMA && obj->type != MSGPACK_OBJECT_MAP) {
            proto_set_detail("first bytes are not a frame (msgpack type %d)", obj->type);
            return PROTO_E_PARSE;
        }
        return err;
    }
    if (r->state == 0) {
        if (out->kind != PROTO_KIND_HEADER) { proto_set_detail("first frame is '%s', expected 'header'", out->kind_name); return PROTO_E_SEQ; }
        r->state = 1;
        return PROTO_OK;
    }
    if (out->kind == PROTO_KIND_HEADER) { proto_set_detail("second header frame after %llu data frames", (unsigned long long)r->frames); return PROTO_E_SEQ; }
    if (out->kind == PROTO_KIND_END) {
        if ((err = check_end(r, out))) return err;
        r->state = 2;
        return PROTO_END;
    }
    if (out->seq != r->frames) {
        proto_set_detail("frame seq %llu, expected %llu (gap or reorder)", (unsigned long long)out->seq, (unsigned long long)r->frames);
        return PROTO_E_SEQ;
    }
    const struct proto_tensor *tok = proto_frame_tensor(out, "tokens");
    if (tok) r->rows += tok->shape[0];
    r->frames++;
    return PROTO_OK;
}

const char *proto_reader_name(const struct proto_reader *r) { return r->name; }
uint64_t proto_reader_frames(const struct proto_reader *r) { return r->frames; }

void proto_reader_close(struct proto_reader *r)
{
    if (!r) return;
    msgpack_unpacked_destroy(&r->res);
    free(r->buf);
    if (r->msg_live) zmq_msg_close(&r->msg);
    zmq_teardown(r->zctx, r->zsock);
    if (r->zd) ZSTD_freeDStream(r->zd);
    free(r->zin);
    if (r->own_fd && r->fd >= 0) close(r->fd);
    proto_slots_destroy(&r->slots);
    free(r);
}

/* ================= writer ================= */
struct end_item { char key[48]; double v; };
struct proto_writer {
    char name[256];
    enum ep_type type;
    int fd; bool own_fd;
    ZSTD_CStream *zc; unsigned char *zout; size_t zout_cap;
    void *zctx, *zsock;
    unsigned char *stage; size_t stage_len;   /* fd: small writes gathered here */
    msgpack_sbuffer sbuf;                     /* zmq: one message */
    msgpack_packer pk;
    struct proto_writer_opts o;
    int err;
    bool header_done;
    uint64_t frames, rows;
    int n_end; struct end_item end[32];
};

static int write_all(struct proto_writer *w, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t k = write(w->fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) { proto_set_detail("writing output failed: %s", strerror(errno)); return PROTO_E_IO; }
        p += k; n -= (size_t)k;
    }
    return PROTO_OK;
}
static int stage_flush(struct proto_writer *w)
{
    int err = w->stage_len ? write_all(w, w->stage, w->stage_len) : PROTO_OK;
    w->stage_len = 0;
    return err;
}
static int zstd_feed(struct proto_writer *w, const void *buf, size_t n, ZSTD_EndDirective mode)
{
    ZSTD_inBuffer in = {buf, n, 0};
    for (;;) {
        ZSTD_outBuffer out = {w->zout, w->zout_cap, 0};
        size_t left = ZSTD_compressStream2(w->zc, &out, &in, mode);
        if (ZSTD_isError(left)) { proto_set_detail("zstd: %s", ZSTD_getErrorName(left)); return PROTO_E_ZSTD; }
        if (out.pos) { int err = write_all(w, w->zout, out.pos); if (err) return err; }
        if (mode == ZSTD_e_continue ? in.pos == in.size : left == 0) return PROTO_OK;
    }
}
/* msgpack packer callback */
static int writer_cb(void *data, const char *buf, size_t len)
{
    struct proto_writer *w = data;
    if (w->err) return -1;
    if (len == 0) return 0;   /* empty bins come with a NULL pointer */
    switch (w->type) {
    case EP_ZMQ: return msgpack_sbuffer_write(&w->sbuf, buf, len);
    case EP_ZSTD: w->err = zstd_feed(w, buf, len, ZSTD_e_continue); break;
    case EP_FD:
        if (len >= DIRECT_MIN) { if (!(w->err = stage_flush(w))) w->err = write_all(w, buf, len); }
        else {
            if (w->stage_len + len > STAGE_CAP) w->err = stage_flush(w);
            memcpy(w->stage + w->stage_len, buf, len); w->stage_len += len;
        }
        break;
    }
    return w->err ? -1 : 0;
}
/* frame boundary: make the frame visible downstream */
static int writer_boundary(struct proto_writer *w)
{
    if (w->err) return w->err;
    switch (w->type) {
    case EP_FD: w->err = stage_flush(w); break;
    case EP_ZSTD: w->err = zstd_feed(w, NULL, 0, ZSTD_e_flush); break;
    case EP_ZMQ:
        for (;;) {
            if (zmq_send(w->zsock, w->sbuf.data, w->sbuf.size, 0) >= 0) break;
            if (errno == EINTR) continue;
            if (errno == EAGAIN) { proto_set_detail("no reader took a frame within %d s (SAEFLOW_ZMQ_TIMEOUT)", zmq_timeout_ms() / 1000); w->err = PROTO_E_TIMEOUT; }
            else { proto_set_detail("zmq_send: %s", zmq_strerror(errno)); w->err = PROTO_E_ZMQ; }
            break;
        }
        msgpack_sbuffer_clear(&w->sbuf);
        break;
    }
    return w->err;
}

static struct proto_writer *writer_new(const char *name, const struct proto_writer_opts *o)
{
    struct proto_writer *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    snprintf(w->name, sizeof w->name, "%s", name);
    w->fd = -1;
    if (o) w->o = *o;
    if (w->o.zstd_level == 0) w->o.zstd_level = 3;
    msgpack_sbuffer_init(&w->sbuf);
    msgpack_packer_init(&w->pk, w, writer_cb);
    return w;
}
static int writer_stream_init(struct proto_writer *w)
{
    if (!(w->stage = malloc(STAGE_CAP))) return PROTO_E_NOMEM;
    grow_pipe(w->fd);
    if (w->type == EP_ZSTD) {
        w->zout_cap = ZSTD_CStreamOutSize();
        if (!(w->zc = ZSTD_createCStream()) || !(w->zout = malloc(w->zout_cap))) return PROTO_E_NOMEM;
        ZSTD_CCtx_setParameter(w->zc, ZSTD_c_compressionLevel, w->o.zstd_level);
    }
    return PROTO_OK;
}

struct proto_writer *proto_writer_open_fd(int fd, const char *name, const struct proto_writer_opts *o, int *err)
{
    struct proto_writer *w = writer_new(name, o);
    if (!w) { *err = PROTO_E_NOMEM; return NULL; }
    w->type = EP_FD; w->fd = fd;
    if ((*err = writer_stream_init(w)) != PROTO_OK) { proto_writer_close(w, false); return NULL; }
    return w;
}

struct proto_writer *proto_writer_open(const char *ep, const struct proto_writer_opts *o, int *err)
{
    proto_clear_detail();
    if (!ep || !*ep) { *err = PROTO_E_ENDPOINT; proto_set_detail("empty endpoint"); return NULL; }
    if (strcmp(ep, "-") == 0) return proto_writer_open_fd(1, "stdout", o, err);
    struct proto_writer *w = writer_new(ep, o);
    if (!w) { *err = PROTO_E_NOMEM; return NULL; }
    if (has_prefix(ep, "tcp://") || has_prefix(ep, "ipc://")) {
        w->type = EP_ZMQ;
        if ((*err = zmq_setup(&w->zctx, &w->zsock, ep, ZMQ_PUSH, true)) != PROTO_OK) { proto_writer_close(w, false); return NULL; }
        return w;
    }
    w->type = ends_with(ep, ".zst") ? EP_ZSTD : EP_FD;
    w->fd = open(ep, O_WRONLY | O_CREAT | O_TRUNC | O_CLOEXEC, 0644);
    if (w->fd < 0) { proto_set_detail("%s", strerror(errno)); *err = PROTO_E_IO; proto_writer_close(w, false); return NULL; }
    w->own_fd = true;
    if ((*err = writer_stream_init(w)) != PROTO_OK) { proto_writer_close(w, false); return NULL; }
    return w;
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n); msgpack_pack_str_body(pk, s, n);
}

int proto_writer_header(struct proto_writer *w, const struct proto_meta *m)
{
    if (w->err) return w->err;
    if (w->header_done) { proto_set_detail("header written twice"); return PROTO_E_INVAL; }
    msgpack_pack_map(&w->pk, 3);
    pack_cstr(&w->pk, "sf"); msgpack_pack_uint32(&w->pk, PROTO_VERSION);
    pack_cstr(&w->pk, "kind"); pack_cstr(&w->pk, "header");
    pack_cstr(&w->pk, "meta");
    if (m) proto_meta_pack(m, &w->pk); else msgpack_pack_map(&w->pk, 0);
    w->header_done = true;
    return writer_boundary(w);
}

int proto_writer_put(struct proto_writer *w, const struct proto_frame *f)
{
    if (w->err) return w->err;
    if (f->kind == PROTO_KIND_HEADER || f->kind == PROTO_KIND_END) { proto_set_detail("put of a %s frame", f->kind_name); return PROTO_E_INVAL; }
    if (!w->header_done) { int err = proto_writer_header(w, NULL); if (err) return err; }
    struct proto_frame c = *f;
    c.seq = w->frames;
    int err = proto_frame_validate(&c);
    if (err) return err;
    err = proto_frame_pack(&w->pk, &c, w->o.zstd_tensors, w->o.zstd_level);
    if (err && !w->err) w->err = err;
    if ((err = writer_boundary(w))) return err;
    const struct proto_tensor *tok = proto_frame_tensor(&c, "tokens");
    if (tok && tok->ndim >= 1) w->rows += tok->shape[0];
    w->frames++;
    return PROTO_OK;
}

int proto_writer_raw(struct proto_writer *w, const void *bytes, size_t n)
{
    if (w->err) return w->err;
    if (writer_cb(w, bytes, n) != 0) return w->err ? w->err : PROTO_E_NOMEM;
    w->header_done = true;
    return writer_boundary(w);
}

int proto_writer_carry_end_meta(struct proto_writer *w, const struct proto_frame *end)
{
    const struct proto_value *mv = proto_frame_get((struct proto_frame *)end, "meta");
    if (!mv || mv->type != PROTO_V_OBJ || mv->obj.type != MSGPACK_OBJECT_MAP) return PROTO_OK;
    const msgpack_object_map *m = &mv->obj.via.map;
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
        char key[48];
        double d;
        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size >= sizeof key) continue;
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) d = (double)v->via.u64;
        else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) d = (double)v->via.i64;
        else if (v->type == MSGPACK_OBJECT_FLOAT32 || v->type == MSGPACK_OBJECT_FLOAT64) d = v->via.f64;
        else continue;
        memcpy(key, k->via.str.ptr, k->via.str.size);
        key[k->via.str.size] = 0;
        int err = proto_writer_end_meta(w, key, d);
        if (err) return err;
    }
    return PROTO_OK;
}

int proto_writer_end_meta(struct proto_writer *w, const char *key, double value)
{
    for (int i = 0; i < w->n_end; i++)
        if (strcmp(w->end[i].key, key) == 0) { w->end[i].v = value; return PROTO_OK; }
    if (w->n_end >= 32 || strlen(key) >= sizeof w->end[0].key) return PROTO_E_INVAL;
    snprintf(w->end[w->n_end].key, sizeof w->end[0].key, "%s", key);
    w->end[w->n_end++].v = value;
    return PROTO_OK;
}

static int write_end(struct proto_writer *w)
{
    if (!w->header_done) { int err = proto_writer_header(w, NULL); if (err) return err; }
    msgpack_pack_map(&w->pk, w->n_end ? 5 : 4);
    pack_cstr(&w->pk, "sf"); msgpack_pack_uint32(&w->pk, PROTO_VERSION);
    pack_cstr(&w->pk, "kind"); pack_cstr(&w->pk, "end");
    pack_cstr(&w->pk, "frames"); msgpack_pack_uint64(&w->pk, w->frames);
    pack_cstr(&w->pk, "rows"); msgpack_pack_uint64(&w->pk, w->rows);
    if (w->n_end) {
        pack_cstr(&w->pk, "meta");
        msgpack_pack_map(&w->pk, (size_t)w->n_end);
        for (int i = 0; i < w->n_end; i++) {
            pack_cstr(&w->pk, w->end[i].key);
            double v = w->end[i].v;
            if (v >= 0 && v < 1.8e19 && v == (double)(uint64_t)v) msgpack_pack_uint64(&w->pk, (uint64_t)v);
            else msgpack_pack_double(&w->pk, v);
        }
    }
    return writer_boundary(w);
}

int proto_writer_close(struct proto_writer *w, bool complete)
{
    if (!w) return PROTO_OK;
    int err = w->err;
    if (!err && complete) err = write_end(w);
    if (!err && w->type == EP_ZSTD && w->zc) err = zstd_feed(w, NULL, 0, ZSTD_e_end);
    if (!err && w->type != EP_ZMQ && w->stage) err = stage_flush(w);
    if (w->own_fd && w->fd >= 0 && close(w->fd) != 0 && !err) { proto_set_detail("writing output failed: %s", strerror(errno)); err = PROTO_E_IO; }
    zmq_teardown(w->zctx, w->zsock);
    if (w->zc) ZSTD_freeCStream(w->zc);
    free(w->zout); free(w->stage);
    msgpack_sbuffer_destroy(&w->sbuf);
    free(w);
    return err;
}

const char *proto_writer_name(const struct proto_writer *w) { return w->name; }
int proto_writer_error(const struct proto_writer *w) { return w ? w->err : 0; }
uint64_t proto_writer_frames(const struct proto_writer *w) { return w->frames; }
uint64_t proto_writer_rows(const struct proto_writer *w) { return w->rows; }
