/* proto.h - saeflow's shared library: frames, endpoints, tensors, safetensors, CLI helpers.
 *
 * WIRE FORMAT: proto/PROTOCOL.md is the reference (frames, tensors, sparse feats, header meta,
 * end meta, sf-cat JSON lines, sf-reduce JSON, exit codes); change it with the code. In short:
 * a stream is one "header" frame, data frames with "seq" 0, 1, 2, ..., one "end" frame
 * {frames, rows, meta}; every frame is a msgpack map {"sf": 1, "kind": str, ...}; a tensor is
 * {"dtype", "shape", "data": bin} (f32 f16 bf16 i32 u32 u8, little-endian, row-major,
 * len(data) == prod(shape)*size, at most PROTO_MAX_DIMS dims, "zstd": true for a compressed
 * payload); "feats" is CSR {d_sae, indptr u32 [n+1], index u32 [nnz], value f32 [nnz]}.
 * Kinds: tokens {tokens i32 [rows, ctx]}; acts {tokens, hook, acts [rows, ctx, d_model], later
 * keep u8 [rows, ctx], feats, recon}; loss {tokens, ce_* / kl_* f32 [rows, ctx-1]}; sim {tokens,
 * cos, l2 f32 [rows, ctx]}. Pipe/file: concatenated maps; .zst: the same in zstd, flushed per
 * frame; ZeroMQ (DEALER writer, ROUTER reader, an ack after the end frame): one frame per message.
 *
 * OWNERSHIP: proto_reader_next fills `out` with views that borrow from the reader; they are
 * valid until the next proto_reader_next or proto_reader_close. Tensor data in a read frame is
 * 64-byte aligned and decompressed: copied into the reader's storage, or used in place where the
 * reader received it aligned (it places large bins on 64-byte boundaries). proto_writer_put borrows its
 * frame; the caller keeps ownership. Library functions return error codes and never print.
 */
#ifndef SAEFLOW_PROTO_H
#define SAEFLOW_PROTO_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>
#include <msgpack.h>

#define PROTO_VERSION 1
#define SAEFLOW_VERSION "0.1.0"
#define PROTO_MAX_DIMS 4
#define PROTO_MAX_KEYS 32

/* ---- error codes (negative) ---- */
enum {
    PROTO_OK = 0,
    PROTO_END = 1,            /* reader: the end frame was read; the stream is complete */
    PROTO_E_IO = -1,          /* read/write/open failed (errno kept in proto_errno()) */
    PROTO_E_TRUNCATED = -2,   /* stream ended without an end frame, or mid-frame */
    PROTO_E_PARSE = -3,       /* bytes are not msgpack */
    PROTO_E_SCHEMA = -4,      /* msgpack, but not a valid frame (missing key, bad dtype, shape) */
    PROTO_E_VERSION = -5,     /* "sf" is not PROTO_VERSION */
    PROTO_E_SEQ = -6,         /* seq gap, header not first, end count mismatch */
    PROTO_E_NOMEM = -7,
    PROTO_E_ZSTD = -8,        /* zstd (de)compression failed */
    PROTO_E_ZMQ = -9,         /* ZeroMQ failure */
    PROTO_E_TIMEOUT = -10,    /* ZeroMQ: nothing arrived / could be sent within the timeout */
    PROTO_E_ENDPOINT = -11,   /* malformed endpoint string */
    PROTO_E_FORMAT = -12,     /* a file (safetensors, json) is malformed */
    PROTO_E_MISMATCH = -13,   /* shapes / models / SAE disagree */
    PROTO_E_INVAL = -14,      /* invalid argument */
};
const char *proto_strerror(int err);
/* A detail message for the last error of this thread (e.g. "frame 17: acts data is 12 bytes,
 * shape [2 3] f32 needs 24"); "" when none. Library code sets it with proto_set_detail. */
const char *proto_detail(void);
void proto_set_detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void proto_clear_detail(void);
/* Puts "<prefix>: " before the current detail (e.g. the file a parser was reading). */
void proto_prefix_detail(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

/* ---- dtypes and tensors ---- */
enum proto_dtype { PROTO_F32, PROTO_F16, PROTO_BF16, PROTO_I32, PROTO_U32, PROTO_U8, PROTO_DTYPE_COUNT };
size_t proto_dtype_size(enum proto_dtype dt);
const char *proto_dtype_name(enum proto_dtype dt);
int proto_dtype_parse(const char *s, size_t len, enum proto_dtype *out); /* PROTO_OK or PROTO_E_SCHEMA */

struct proto_tensor {
    enum proto_dtype dtype;
    int ndim;
    uint64_t shape[PROTO_MAX_DIMS];
    const void *data;         /* prod(shape)*size bytes; aligned when it comes from a reader */
};
uint64_t proto_tensor_numel(const struct proto_tensor *t);
size_t proto_tensor_nbytes(const struct proto_tensor *t);

/* bf16/f16 <-> f32 */
float proto_bf16_to_f32(uint16_t h);
uint16_t proto_f32_to_bf16(float f);     /* round to nearest even */
float proto_f16_to_f32(uint16_t h);
uint16_t proto_f32_to_f16(float f);      /* round to nearest even */
void proto_convert_to_f32(float *dst, const void *src, enum proto_dtype dt, size_t n);
void proto_convert_from_f32(void *dst, enum proto_dtype dt, const float *src, size_t n);

/* 64-byte-aligned grow-only buffers. */
struct proto_buf { void *p; size_t cap; };
int proto_buf_reserve(struct proto_buf *b, size_t nbytes); /* keeps 64-byte alignment; may lose contents */
void proto_buf_destroy(struct proto_buf *b);
void *proto_aligned_alloc(size_t nbytes);                   /* 64-byte aligned, free() it */
/* The tensor as f32: t->data itself when it is f32, else converted into *scratch.
 * NULL (PROTO_E_SCHEMA / NOMEM) when the dtype is not a float type. */
const float *proto_tensor_f32(const struct proto_tensor *t, struct proto_buf *scratch, int *err);

/* ---- sparse features (CSR) ---- */
struct proto_sparse {
    uint32_t d_sae;
    uint64_t n_tok;             /* indptr has n_tok + 1 entries */
    uint64_t nnz;
    const uint32_t *indptr;     /* (n_tok + 1) */
    const uint32_t *index;      /* (nnz) */
    const float *value;         /* (nnz) */
};

/* ---- frames ---- */
enum proto_kind { PROTO_KIND_HEADER, PROTO_KIND_TOKENS, PROTO_KIND_ACTS, PROTO_KIND_LOSS,
                  PROTO_KIND_SIM, PROTO_KIND_END, PROTO_KIND_OTHER };
const char *proto_kind_name(enum proto_kind k);

enum proto_vtype {
    PROTO_V_TENSOR,   /* .t */
    PROTO_V_SPARSE,   /* .sp (the "feats" map) */
    PROTO_V_STR,      /* .str, .len (not NUL-terminated when it comes from a reader) */
    PROTO_V_UINT,     /* .u */
    PROTO_V_OBJ,      /* .obj: any other msgpack value, carried through as it is */
};
struct proto_value {
    const char *key;      /* NUL-terminated */
    enum proto_vtype type;
    bool zstd;            /* writer: compress this tensor's data (also set by proto_writer --zstd) */
    struct proto_tensor t;
    struct proto_sparse sp;
    const char *str; size_t len;
    uint64_t u;
    msgpack_object obj;
};
/* A frame: kind, seq, and its other keys in order ("sf", "kind", "seq" are not in v[]). */
struct proto_frame {
    enum proto_kind kind;
    char kind_name[32];
    uint64_t seq;
    int n;
    struct proto_value v[PROTO_MAX_KEYS];
};
void proto_frame_init(struct proto_frame *f, enum proto_kind kind); /* empty frame */
struct proto_value *proto_frame_get(struct proto_frame *f, const char *key);         /* NULL if absent */
const struct proto_tensor *proto_frame_tensor(const struct proto_frame *f, const char *key); /* NULL if absent or not a tensor */
const struct proto_sparse *proto_frame_sparse(const struct proto_frame *f, const char *key);
/* Copies a string value into dst (NUL-terminated, truncation is an error). PROTO_E_SCHEMA if absent. */
int proto_frame_str(const struct proto_frame *f, const char *key, char *dst, size_t cap);
/* Set (add or replace) a key. The frame borrows data/str pointers: keep them alive until put. */
int proto_frame_set_tensor(struct proto_frame *f, const char *key, enum proto_dtype dt, int ndim,
                           const uint64_t *shape, const void *data);
int proto_frame_set_sparse(struct proto_frame *f, const char *key, const struct proto_sparse *sp);
int proto_frame_set_str(struct proto_frame *f, const char *key, const char *s);
int proto_frame_set_uint(struct proto_frame *f, const char *key, uint64_t u);
int proto_frame_set_obj(struct proto_frame *f, const char *key, const msgpack_object *o);
void proto_frame_del(struct proto_frame *f, const char *key);
/* The tokens of a base and a finetune frame are the same (both absent counts as the same):
 * PROTO_E_MISMATCH naming the first differing seq/row/position otherwise. */
int proto_frame_same_tokens(const struct proto_frame *base, const struct proto_frame *ft);
/* The "acts" tensor [rows, ctx, d_model] of a frame (validated first); NULL with *err set and a
 * detail naming the frame when it is missing. */
const struct proto_tensor *proto_frame_acts(const struct proto_frame *f, int *err);
/* Checks a data frame's shapes against its kind (tokens [rows,ctx]; acts [rows,ctx,d];
 * keep [rows,ctx]; recon same as acts; loss [rows,ctx-1]; sim [rows,ctx]; feats n_tok =
 * rows*ctx, indptr monotone, index < d_sae). Sets the detail message. */
int proto_frame_validate(const struct proto_frame *f);

/* ---- header meta ----
 * Reading: look keys up in the header's "meta" map (a msgpack_object borrowed from the reader).
 * Writing: a stage builds its output header from the input one: copy what came, override or add
 * keys, and append its own {name, version, args} to "stages". */
const msgpack_object *proto_meta_get(const msgpack_object *meta, const char *key); /* NULL if absent */
int proto_meta_str(const msgpack_object *meta, const char *key, char *dst, size_t cap); /* PROTO_E_SCHEMA if absent/not str */
int proto_meta_uint(const msgpack_object *meta, const char *key, uint64_t *out);
int proto_meta_double(const msgpack_object *meta, const char *key, double *out);  /* any number */
int proto_meta_bool(const msgpack_object *meta, const char *key, bool *out);

enum proto_mtype { PROTO_M_STR, PROTO_M_UINT, PROTO_M_INT, PROTO_M_DOUBLE, PROTO_M_BOOL, PROTO_M_NIL, PROTO_M_OBJ };
struct proto_meta_item { char key[48]; enum proto_mtype type; char *s; uint64_t u; int64_t i; double d; bool b; msgpack_object obj; };
struct proto_meta {
    const msgpack_object *base;          /* the upstream meta map, or NULL */
    int n;
    struct proto_meta_item item[48];
    char stage_name[64];
    char *stage_args;                    /* argv joined by spaces (owned) */
};
/* Starts from the upstream meta (may be NULL); records this stage (argv[0]'s basename) and its
 * args. The base must stay valid until the meta is packed (keep the header frame around or
 * pack before the next read). */
void proto_meta_init(struct proto_meta *m, const msgpack_object *base, int argc, char **argv);
void proto_meta_destroy(struct proto_meta *m);
int proto_meta_set_str(struct proto_meta *m, const char *key, const char *s);  /* copies s */
int proto_meta_set_uint(struct proto_meta *m, const char *key, uint64_t u);
int proto_meta_set_int(struct proto_meta *m, const char *key, int64_t i);
int proto_meta_set_double(struct proto_meta *m, const char *key, double d);
int proto_meta_set_bool(struct proto_meta *m, const char *key, bool b);
int proto_meta_set_obj(struct proto_meta *m, const char *key, const msgpack_object *o); /* borrowed */
/* Packs the meta as a map: base keys (overridden ones replaced), new keys, and "stages" =
 * base stages + this stage (when stage_name is set). */
int proto_meta_pack(const struct proto_meta *m, msgpack_packer *pk);

/* ---- endpoints: readers and writers ----
 * ENDPOINT: "-" stdin/stdout; "FILE.zst" a zstd-compressed file; anything else a file path;
 * ZeroMQ (PROTOCOL.md §1-2): "tcp://HOST:PORT" connects, "tcp://@ADDR:PORT" binds ADDR, a
 * host of "*" binds every interface; "ipc://PATH": the writer binds, the reader connects.
 * ZeroMQ writers are DEALER and readers ROUTER sockets (one frame per message, PUSH/PULL-like);
 * the reader acknowledges the end frame and proto_writer_close waits for that ack, so a writer
 * returns PROTO_OK only for a delivered stream. ZMTP heartbeats (SAEFLOW_ZMQ_HEARTBEAT s,
 * default 10) detect a dead or unreachable peer: a reader then fails with PROTO_E_TRUNCATED,
 * a writer with PROTO_E_ZMQ ("peer gone ..."). While a peer is connected a wait has no time
 * limit (a slow producer is alive); SAEFLOW_ZMQ_TIMEOUT seconds (default 600) bound a wait with
 * no peer connected -> PROTO_E_TIMEOUT ("timed out waiting"). Writers block after 4 queued
 * frames, readers after 16 (SAEFLOW_ZMQ_RCVHWM=N, 0 = unbounded).
 * Security: with keys (proto_zmq_set_keys or SAEFLOW_ZMQ_KEYS=DIR, made by sf-cat --keygen)
 * tcp links use CURVE: the binding side is the server (DIR/server.secret) and admits only the
 * clients whose public keys are DIR/client*.pub; the connecting side uses DIR/server.pub,
 * DIR/client.pub and DIR/client.secret. Without keys a tcp bind to a non-loopback address is
 * refused (PROTO_E_ENDPOINT) unless proto_zmq_set_insecure(true) (the --insecure flag).
 * While a reader of a thread waits for input it also watches that thread's ZeroMQ writers: one
 * whose reader left (or sent an abort frame) fails the read with PROTO_E_ZMQ and its writer's
 * detail (proto_writer_error then says it is the output's failure). */
void proto_zmq_set_keys(const char *dir);      /* NULL: SAEFLOW_ZMQ_KEYS decides */
void proto_zmq_set_insecure(bool on);
const char *proto_zmq_keys(void);              /* the key directory in force, or NULL */
/* PROTO_OK, or PROTO_E_ENDPOINT with a detail when ep is a tcp bind to a non-loopback address
 * while there are no keys and insecure is off (or ep is a malformed tcp endpoint). */
int proto_zmq_check_exposure(const char *ep);
struct proto_reader;
struct proto_reader *proto_reader_open(const char *endpoint, int *err);
struct proto_reader *proto_reader_open_fd(int fd, const char *name, int *err); /* does not close fd */
/* Reads the next frame. The first frame returned is the header (the reader checks it is
 * first). Returns PROTO_OK with a frame, PROTO_END after the end frame (then *out holds the
 * end frame: frames, rows, meta), or an error < 0 (the detail names the frame). */
int proto_reader_next(struct proto_reader *r, struct proto_frame *out);
const char *proto_reader_name(const struct proto_reader *r);
uint64_t proto_reader_frames(const struct proto_reader *r); /* data frames read so far */
void proto_reader_close(struct proto_reader *r);

struct proto_writer;
struct proto_writer_opts { bool zstd_tensors; int zstd_level; };
struct proto_writer *proto_writer_open(const char *endpoint, const struct proto_writer_opts *o, int *err); /* o may be NULL */
/* Fan-out (PROTOCOL.md §1 -o, §2): one writer over n endpoints, each of which gets every frame
 * (packed once, sent to each in turn, so the slowest sets the pace). The first endpoint that
 * fails fails the writer (the detail names it); close(complete) waits for every ZeroMQ reader's
 * ack before any file is renamed into place, so PROTO_OK means every endpoint got the whole
 * stream; an incomplete close sends each healthy endpoint an abort frame. name: for messages.
 * proto_writer_fanout registers name as such a list (the common flags do it for -o given
 * several times): proto_writer_open(name) then opens them all; proto_writer_fanout_list gives
 * the list of a registered name (0 for any other). */
struct proto_writer *proto_writer_open_many(const char *name, const char *const *eps, int n, const struct proto_writer_opts *o, int *err);
void proto_writer_fanout(const char *name, const char *const *eps, int n);
int proto_writer_fanout_list(const char *name, const char *const **eps);
/* Abort frames (PROTOCOL.md §2): {"sf":1,"kind":"abort","stage":S,"reason":R,"frames":N}.
 * proto_writer_close(w, false) sends one on a pipe, fifo, stdout or ZeroMQ link (not after an
 * end frame; a file is removed instead), and a ZeroMQ reader closed before the end frame sends
 * one back to its writer. S and R are the first failure this process noted: its own
 * (proto_abort_note(NULL, reason), which proto_fail calls), or one it heard of (an abort frame
 * read, an upstream writer gone: then S is the upstream stage), so every stage names the stage
 * that failed first. A reader that reads an abort frame returns PROTO_E_TRUNCATED ("upstream S
 * failed after N frames: R"); a writer that gets one, PROTO_E_ZMQ ("peer gone: downstream S left
 * after N frames: R"). proto_set_stage names this process (proto_cli_init: the program name). */
void proto_set_stage(const char *name);
void proto_abort_note(const char *stage, const char *reason);   /* the first note wins; stage NULL: this process */
struct proto_writer *proto_writer_open_fd(int fd, const char *name, const struct proto_writer_opts *o, int *err);
/* Writes the header frame: {"sf":1,"kind":"header","meta": m}. Must be called first. */
int proto_writer_header(struct proto_writer *w, const struct proto_meta *m);
/* Writes a data frame. The writer assigns seq (0, 1, 2, ...) itself, ignoring f->seq, and
 * counts rows from "tokens". Borrows f. Header and end frames cannot be put this way. */
int proto_writer_put(struct proto_writer *w, const struct proto_frame *f);
/* Writes one already-packed frame as it is (sf-cat --pack, tests): no checks, no seq, no
 * checksum added. proto_writer_close then writes no end frame (the bytes carry their own);
 * its complete says whether a file output is kept. */
int proto_writer_raw(struct proto_writer *w, const void *bytes, size_t n);
/* Carries the numeric entries of an upstream end frame's "meta" into this writer's end meta,
 * so a count (outliers, non-finite values, seconds.STAGE) survives the stages after the one
 * that made it. */
int proto_writer_carry_end_meta(struct proto_writer *w, const struct proto_frame *end);
/* Adds counts to the end frame's meta (e.g. "nonfinite", "outliers"). */
int proto_writer_end_meta(struct proto_writer *w, const char *key, double value);
/* complete: write the end frame {frames, rows, meta}; then flush and close. Returns the first
 * write/flush/close error. With complete=false no end frame is written (downstream sees a
 * truncated stream, on purpose): a pipe, fifo, stdout or ZeroMQ link gets an abort frame
 * instead, naming the stage that failed (see proto_abort_note). A plain file endpoint (not "-", a fifo or a device; .zst
 * too) is written to a temp file in its folder that is fsynced and renamed over the path only
 * when complete is true and nothing failed; otherwise the temp is removed and an existing file
 * stays as it was (whole or nothing). After proto_writer_raw, complete only says whether to
 * keep the file: the raw bytes carry their own end frame. NULL-safe. */
int proto_writer_close(struct proto_writer *w, bool complete);
const char *proto_writer_name(const struct proto_writer *w);
/* The writer's own failure, sticky: the first write/flush/send error it met (every later put
 * returns it too), 0 while it is healthy or for NULL. A stage's main uses it to say whether a
 * failure was the output's ("writing output failed") or the input's. A frame refused by
 * validation is not a writer failure. */
int proto_writer_error(const struct proto_writer *w);
uint64_t proto_writer_frames(const struct proto_writer *w);
uint64_t proto_writer_rows(const struct proto_writer *w);

/* Packs a frame (no seq change) with a packer; used by writer and tests. */
int proto_frame_pack(msgpack_packer *pk, const struct proto_frame *f, bool zstd_tensors, int zstd_level);
/* Per-frame checksum (PROTOCOL.md §2): a data frame may end with "crc": uint32, the CRC32C of
 * the bytes of its tensor "data" bins as they stand in the frame (compressed bytes for a zstd
 * tensor), in key order, a sparse map's as indptr, index, value. proto_frame_pack_crc adds it
 * (replacing any "crc" in f); a reader checks it when present (PROTO_E_SCHEMA, "frame N:
 * checksum mismatch") and drops it from the frame it returns. Writers add it to files (and
 * stdout when it is a regular file), .zst files (which also get zstd's content checksum) and
 * tcp://, not to pipes or ipc://; proto_checksum_set(1/0) forces it on/off (--checksum,
 * --no-checksum), -1 restores that default. Raw writes (proto_writer_raw) are never changed. */
#define PROTO_CRC_KEY "crc"
int proto_frame_pack_crc(msgpack_packer *pk, const struct proto_frame *f, bool zstd_tensors, int zstd_level, bool with_crc);
uint32_t proto_crc32c(uint32_t crc, const void *data, size_t n);   /* crc = 0 to start */
void proto_checksum_set(int mode);
/* Parses one frame from a msgpack object (views borrow from obj; tensors are copied into the
 * given slots). Used by reader and tests. */
struct proto_slots { struct proto_buf b[PROTO_MAX_KEYS + 4]; char keys[PROTO_MAX_KEYS][64]; };
void proto_slots_destroy(struct proto_slots *s);
int proto_frame_from_obj(const msgpack_object *obj, struct proto_frame *out, struct proto_slots *slots);

/* ---- safetensors (mmapped, every offset bounds-checked) ---- */
struct proto_st_tensor {
    char name[160];
    enum proto_dtype dtype;   /* F32 F16 BF16 I32 U8 ...; others are PROTO_E_FORMAT */
    int ndim;
    uint64_t shape[PROTO_MAX_DIMS];
    const void *data;         /* into the mapping: NOT aligned in general */
    size_t nbytes;
};
struct proto_st {
    char path[4096];
    void *map; size_t map_len;
    int n;
    struct proto_st_tensor *t;
};
/* Opens and validates: header length within the file and at most PROTO_ST_MAX_HEADER bytes
 * (the safetensors crate's bound) holding at most PROTO_ST_MAX_VALUES JSON values (counted
 * before it is parsed: the parser's memory stays within ~100 bytes a value), JSON well formed,
 * each tensor's [begin, end) inside the data area, begin <= end, end - begin == numel*size, no
 * overlaps, no name twice. */
#define PROTO_ST_MAX_HEADER 100000000u
#define PROTO_ST_MAX_VALUES (1u << 20)
int proto_st_open(struct proto_st *st, const char *path);
const struct proto_st_tensor *proto_st_find(const struct proto_st *st, const char *name);
void proto_st_close(struct proto_st *st);
/* Parses a safetensors header from memory (used by proto_st_open and the fuzz target). */
int proto_st_parse(struct proto_st *st, const void *buf, size_t len);
/* A tensor's dtype is f32, f16 or bf16 (else PROTO_E_FORMAT "WHAT has dtype i32 (f32, f16 or
 * bf16 expected)") and its shape is shape[0..ndim) (else PROTO_E_MISMATCH "WHAT has shape [a b],
 * SOURCE [c d]", SOURCE e.g. "expected", "config.json implies"). The caller prefixes the file. */
int proto_st_check(const struct proto_st_tensor *t, const char *what, int ndim, const uint64_t *shape,
                   const char *source);
/* "a b c" (no brackets) of shape[0..ndim) into buf, truncated to cap; returns buf. 96 bytes hold
 * PROTO_MAX_DIMS dims. Every "[a b c]" in a message is made with it (frames too). */
const char *proto_shape_str(const uint64_t *shape, int ndim, char *buf, size_t cap);

/* ---- deterministic random numbers (splitmix64; the same seed gives the same values everywhere) ---- */
uint64_t proto_rng_next(uint64_t *state);
double proto_rng_uniform(uint64_t *state);   /* (0, 1) */
double proto_rng_normal(uint64_t *state);    /* N(0, 1), Box-Muller */

/* One tensor to write: f32 values, stored as the dtype given to proto_st_write. */
struct proto_st_entry { const char *name; const float *data; int ndim; uint64_t shape[PROTO_MAX_DIMS]; };
/* Writes a safetensors file as the Rust crate does: u64 LE header length, compact JSON header
 * (__metadata__ first, tensors sorted by name) padded with spaces to a multiple of 8, data in
 * that order, stored as dt (F32, F16 or BF16, rounded to nearest even). Little-endian hosts. */
int proto_st_write(const char *path, const struct proto_st_entry *e, int n, enum proto_dtype dt);

/* ---- small file helpers ---- */
/* Reads a whole file into a NUL-terminated malloc'd buffer. */
int proto_read_file(const char *path, char **out, size_t *len);
/* True when endpoints a and b name the same file: the same regular file or directory (st_dev,
 * st_ino) when both exist, the same string otherwise. "-", tcp://, ipc:// and inproc:// are never
 * files; devices (/dev/null), fifos and sockets read and written are not one file overwritten. */
bool proto_same_file(const char *a, const char *b);
/* Whole-or-nothing outputs. proto_tmp_create makes an empty file PATH.tmp-XXXXXX (0666 less the
 * umask) and puts its name in tmp; write it, then proto_tmp_commit fsyncs it and renames it over
 * path (on failure the temp is removed; on a failed write, unlink(tmp) yourself). */
int proto_tmp_create(const char *path, char *tmp, size_t cap);
int proto_tmp_commit(const char *tmp, const char *path);
/* The same for a stream written through an fd: proto_tmp_open returns an fd open for writing
 * (or an error < 0): an unnamed file in path's folder (O_TMPFILE, *anon = true: a process that
 * dies leaves nothing) or, where the file system has none, PATH.tmp-XXXXXX (named in tmp).
 * proto_tmp_finish(commit=true) fsyncs fd, names it PATH.tmp-XXXXXX if it was unnamed and
 * renames it over path; commit=false (or a failure) removes the temp. Close fd yourself. A path
 * that is not a regular file (/dev/null, a fifo) is opened and written in place instead (tmp "",
 * not anon; finish does nothing): a rename would replace it; a folder fails at the open. proto_tmp_commit refuses to rename over
 * anything but a regular file. */
int proto_tmp_open(const char *path, char *tmp, size_t cap, bool *anon);
/* proto_tmp_open for an output endpoint ep: a symlink to a file is followed (path gets the file
 * it names, else ep; path and tmp of cap bytes, cap >= PATH_MAX) and the temp takes the file's
 * mode. A temp was made (finish renames it over path) when *anon or tmp[0]; else ep is written
 * in place (a device or fifo). fd, or an error < 0 with errno from the open. */
int proto_out_open(const char *ep, char *path, char *tmp, size_t cap, bool *anon);
int proto_tmp_finish(int fd, bool anon, char *tmp, size_t cap, const char *path, bool commit);
/* Writes n bytes to path through a temp file + rename: path is whole or untouched. */
int proto_write_atomic(const char *path, const void *data, size_t n);
/* A directory's last component without trailing slashes ("runs/m1/" -> "m1"), into dst. */
void proto_dir_basename(const char *dir, char *dst, size_t cap);

#endif
