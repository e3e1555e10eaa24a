/* sf-cat - look at or make any saeflow stream by hand.
 * Reads frames (-i ENDPOINT) and writes one JSON object per frame (SPEC §3): tensors as
 * {"dtype","shape","data":[flat row-major numbers]}, floats %.9g, NaN/Infinity as Python's
 * json writes them (a frame's "crc" checksum is checked by the reader and never shown). --pack
 * turns such JSON lines back into frames, byte for byte what they say (no checks and no
 * checksum added: tests use it to make broken streams too); -o FILE is kept only when every line
 * was packed, and the JSON lines (or summary) go to -o FILE through a temp file renamed over it
 * only when the whole stream was read. --summary prints one line per frame
 * without tensor data; --check validates a whole stream; --head N stops after N data frames. */
#include <ctype.h>
#include <errno.h>
#include <fcntl.h>
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <zmq.h>
#include <cjson/cJSON.h>
#include "cli.h"
#include "hook.h"
#include "json.h"
#include "proto.h"

/* ---- options ---- */
enum mode { MODE_JSON, MODE_PACK, MODE_SUMMARY, MODE_CHECK, MODE_KEYGEN, MODE_HOOK };
struct opts { struct proto_cli cli; enum mode mode; long long head; const char *keygen, *hook; int argc; char **argv; };

/* ---- JSON output ---- */
static void put_jstr(FILE *fp, const char *s, size_t n)
{
    fputc('"', fp);
    for (size_t i = 0; i < n; i++) {
        unsigned char c = (unsigned char)s[i];
        if (c == '"' || c == '\\') { fputc('\\', fp); fputc(c, fp); }
        else if (c == '\n') fputs("\\n", fp);
        else if (c == '\t') fputs("\\t", fp);
        else if (c == '\r') fputs("\\r", fp);
        else if (c < 0x20) fprintf(fp, "\\u%04x", c);
        else fputc(c, fp);
    }
    fputc('"', fp);
}
static void put_double(FILE *fp, double d, const char *fmt)
{
    if (isnan(d)) fputs("NaN", fp);
    else if (isinf(d)) fputs(d > 0 ? "Infinity" : "-Infinity", fp);
    else fprintf(fp, fmt, d);
}
static void put_obj(FILE *fp, const msgpack_object *o)
{
    switch (o->type) {
    case MSGPACK_OBJECT_NIL: fputs("null", fp); break;
    case MSGPACK_OBJECT_BOOLEAN: fputs(o->via.boolean ? "true" : "false", fp); break;
    case MSGPACK_OBJECT_POSITIVE_INTEGER: fprintf(fp, "%llu", (unsigned long long)o->via.u64); break;
    case MSGPACK_OBJECT_NEGATIVE_INTEGER: fprintf(fp, "%lld", (long long)o->via.i64); break;
    case MSGPACK_OBJECT_FLOAT32: put_double(fp, o->via.f64, "%.9g"); break;
    case MSGPACK_OBJECT_FLOAT64: put_double(fp, o->via.f64, "%.17g"); break;
    case MSGPACK_OBJECT_STR: put_jstr(fp, o->via.str.ptr, o->via.str.size); break;
    case MSGPACK_OBJECT_BIN: fprintf(fp, "{\"bin\":%u}", o->via.bin.size); break;
    case MSGPACK_OBJECT_EXT: fputs("null", fp); break;
    case MSGPACK_OBJECT_ARRAY:
        fputc('[', fp);
        for (uint32_t i = 0; i < o->via.array.size; i++) { if (i) fputc(',', fp); put_obj(fp, &o->via.array.ptr[i]); }
        fputc(']', fp);
        break;
    case MSGPACK_OBJECT_MAP:
        fputc('{', fp);
        for (uint32_t i = 0; i < o->via.map.size; i++) {
            if (i) fputc(',', fp);
            const msgpack_object *k = &o->via.map.ptr[i].key;
            if (k->type == MSGPACK_OBJECT_STR) put_jstr(fp, k->via.str.ptr, k->via.str.size);
            else { fputc('"', fp); put_obj(fp, k); fputc('"', fp); }
            fputc(':', fp); put_obj(fp, &o->via.map.ptr[i].val);
        }
        fputc('}', fp);
        break;
    }
}
static void put_shape(FILE *fp, const struct proto_tensor *t)
{
    fputc('[', fp);
    for (int i = 0; i < t->ndim; i++) fprintf(fp, "%s%llu", i ? "," : "", (unsigned long long)t->shape[i]);
    fputc(']', fp);
}
static void put_tensor(FILE *fp, const struct proto_tensor *t)
{
    fprintf(fp, "{\"dtype\":\"%s\",\"shape\":", proto_dtype_name(t->dtype));
    put_shape(fp, t);
    fputs(",\"data\":[", fp);
    size_t n = (size_t)proto_tensor_numel(t);
    const unsigned char *p = t->data;
    for (size_t i = 0; i < n; i++) {
        if (i) fputc(',', fp);
        switch (t->dtype) {
        case PROTO_F32: put_double(fp, ((const float *)t->data)[i], "%.9g"); break;
        case PROTO_F16: { uint16_t h; memcpy(&h, p + 2 * i, 2); put_double(fp, proto_f16_to_f32(h), "%.9g"); } break;
        case PROTO_BF16: { uint16_t h; memcpy(&h, p + 2 * i, 2); put_double(fp, proto_bf16_to_f32(h), "%.9g"); } break;
        case PROTO_I32: fprintf(fp, "%d", ((const int32_t *)t->data)[i]); break;
        case PROTO_U32: fprintf(fp, "%u", ((const uint32_t *)t->data)[i]); break;
        case PROTO_U8: fprintf(fp, "%u", p[i]); break;
        default: break;
        }
    }
    fputs("]}", fp);
}
static void put_sparse_as(FILE *fp, const struct proto_sparse *sp)
{
    struct proto_tensor ip = {PROTO_U32, 1, {sp->n_tok + 1}, sp->indptr};
    struct proto_tensor ix = {PROTO_U32, 1, {sp->nnz}, sp->index};
    struct proto_tensor va = {PROTO_F32, 1, {sp->nnz}, sp->value};
    fprintf(fp, "{\"d_sae\":%u,\"indptr\":", sp->d_sae); put_tensor(fp, &ip);
    fputs(",\"index\":", fp); put_tensor(fp, &ix);
    fputs(",\"value\":", fp); put_tensor(fp, &va);
    fputc('}', fp);
}
static void put_frame(FILE *fp, const struct proto_frame *f)
{
    fprintf(fp, "{\"sf\":%d,\"kind\":", PROTO_VERSION);
    put_jstr(fp, f->kind_name, strlen(f->kind_name));
    if (f->kind != PROTO_KIND_HEADER && f->kind != PROTO_KIND_END) fprintf(fp, ",\"seq\":%llu", (unsigned long long)f->seq);
    for (int i = 0; i < f->n; i++) {
        const struct proto_value *v = &f->v[i];
        fputc(',', fp); put_jstr(fp, v->key, strlen(v->key)); fputc(':', fp);
        switch (v->type) {
        case PROTO_V_TENSOR: put_tensor(fp, &v->t); break;
        case PROTO_V_SPARSE: put_sparse_as(fp, &v->sp); break;
        case PROTO_V_STR: put_jstr(fp, v->str, v->len); break;
        case PROTO_V_UINT: fprintf(fp, "%llu", (unsigned long long)v->u); break;
        case PROTO_V_OBJ: put_obj(fp, &v->obj); break;
        }
    }
    fputs("}\n", fp);
}
static void put_summary(FILE *fp, const struct proto_frame *f)
{
    fputs(f->kind_name, fp);
    if (f->kind != PROTO_KIND_HEADER && f->kind != PROTO_KIND_END) fprintf(fp, " seq=%llu", (unsigned long long)f->seq);
    size_t bytes = 0;
    for (int i = 0; i < f->n; i++) {
        const struct proto_value *v = &f->v[i];
        fprintf(fp, " %s=", v->key);
        switch (v->type) {
        case PROTO_V_TENSOR: fputs(proto_dtype_name(v->t.dtype), fp); put_shape(fp, &v->t); bytes += proto_tensor_nbytes(&v->t); break;
        case PROTO_V_SPARSE: fprintf(fp, "csr[n_tok=%llu,d_sae=%u,nnz=%llu]", (unsigned long long)v->sp.n_tok, v->sp.d_sae, (unsigned long long)v->sp.nnz);
            bytes += (size_t)(v->sp.n_tok + 1) * 4 + (size_t)v->sp.nnz * 8; break;
        case PROTO_V_STR: fprintf(fp, "%.*s", (int)v->len, v->str); break;
        case PROTO_V_UINT: fprintf(fp, "%llu", (unsigned long long)v->u); break;
        case PROTO_V_OBJ: put_obj(fp, &v->obj); break;
        }
    }
    if (bytes) fprintf(fp, " bytes=%zu", bytes);
    fputc('\n', fp);
}

/* ---- --pack: JSON lines -> msgpack ---- */
/* NaN/Infinity/-Infinity outside strings become the strings "NaN" etc. so cJSON can read them */
static char *quote_nonfinite(const char *line)
{
    size_t n = strlen(line);
    char *o = malloc(n * 2 + 1), *q = o;
    if (!o) return NULL;
    bool in_str = false;
    for (size_t i = 0; i < n; i++) {
        char c = line[i];
        if (in_str) { *q++ = c; if (c == '\\' && i + 1 < n) *q++ = line[++i]; else if (c == '"') in_str = false; continue; }
        if (c == '"') { in_str = true; *q++ = c; continue; }
        const char *w = NULL;
        if (strncmp(line + i, "NaN", 3) == 0) w = "NaN";
        else if (strncmp(line + i, "-Infinity", 9) == 0) w = "-Infinity";
        else if (strncmp(line + i, "Infinity", 8) == 0) w = "Infinity";
        if (w) { q += sprintf(q, "\"%s\"", w); i += strlen(w) - 1; continue; }
        *q++ = c;
    }
    *q = 0;
    return o;
}
static double num_of(const cJSON *j)
{
    if (cJSON_IsNumber(j)) return j->valuedouble;
    if (cJSON_IsString(j)) {
        if (!strcmp(j->valuestring, "NaN")) return NAN;
        if (!strcmp(j->valuestring, "Infinity")) return INFINITY;
        if (!strcmp(j->valuestring, "-Infinity")) return -INFINITY;
    }
    return NAN;
}
static void pack_cstr(msgpack_packer *pk, const char *s) { size_t n = strlen(s); msgpack_pack_str(pk, n); msgpack_pack_str_body(pk, s, n); }

static int pack_json(msgpack_packer *pk, const cJSON *j, char *err, size_t errcap);

/* a JSON tensor object: {"dtype","shape","data":[...]} -> tensor map with a bin */
static int pack_json_tensor(msgpack_packer *pk, const cJSON *j, char *err, size_t errcap)
{
    const cJSON *sh = proto_json_get(j, "shape"), *da = proto_json_get(j, "data");
    const char *dtype = NULL;
    enum proto_dtype d;
    if (proto_json_str(j, "dtype", &dtype) != 1 || proto_dtype_parse(dtype, strlen(dtype), &d) != PROTO_OK) {
        /* unknown dtype: pack it as it stands so tests can make such frames */
        return -2;
    }
    if (!cJSON_IsArray(sh) || !cJSON_IsArray(da)) { snprintf(err, errcap, "tensor needs shape and data arrays"); return -1; }
    size_t n = (size_t)cJSON_GetArraySize(da), sz = proto_dtype_size(d);
    unsigned char *buf = malloc(n * sz + 1);
    if (!buf) { snprintf(err, errcap, "out of memory"); return -1; }
    size_t i = 0;
    const cJSON *e;
    cJSON_ArrayForEach(e, da) {
        double v = num_of(e);
        float f = (float)v;
        switch (d) {
        case PROTO_F32: memcpy(buf + 4 * i, &f, 4); break;
        case PROTO_F16: proto_convert_from_f32(buf + 2 * i, PROTO_F16, &f, 1); break;
        case PROTO_BF16: proto_convert_from_f32(buf + 2 * i, PROTO_BF16, &f, 1); break;
        case PROTO_I32: { int32_t x = (int32_t)v; memcpy(buf + 4 * i, &x, 4); } break;
        case PROTO_U32: { uint32_t x = (uint32_t)v; memcpy(buf + 4 * i, &x, 4); } break;
        case PROTO_U8: buf[i] = (unsigned char)v; break;
        default: break;
        }
        i++;
    }
    msgpack_pack_map(pk, 3);
    pack_cstr(pk, "dtype"); pack_cstr(pk, dtype);
    pack_cstr(pk, "shape"); msgpack_pack_array(pk, (size_t)cJSON_GetArraySize(sh));
    cJSON_ArrayForEach(e, sh) msgpack_pack_uint64(pk, (uint64_t)e->valuedouble);
    pack_cstr(pk, "data"); msgpack_pack_bin(pk, n * sz); msgpack_pack_bin_body(pk, buf, n * sz);
    free(buf);
    return 0;
}

static int pack_json(msgpack_packer *pk, const cJSON *j, char *err, size_t errcap)
{
    if (proto_json_get(j, "dtype") && cJSON_IsArray(proto_json_get(j, "data"))) {
        int r = pack_json_tensor(pk, j, err, errcap);
        if (r != -2) return r;
    }
    const cJSON *e;
    if (cJSON_IsObject(j)) {
        msgpack_pack_map(pk, (size_t)cJSON_GetArraySize(j));
        cJSON_ArrayForEach(e, j) { pack_cstr(pk, e->string); if (pack_json(pk, e, err, errcap)) return -1; }
    } else if (cJSON_IsArray(j)) {
        msgpack_pack_array(pk, (size_t)cJSON_GetArraySize(j));
        cJSON_ArrayForEach(e, j) if (pack_json(pk, e, err, errcap)) return -1;
    } else if (cJSON_IsString(j)) pack_cstr(pk, j->valuestring);
    else if (cJSON_IsBool(j)) { if (cJSON_IsTrue(j)) msgpack_pack_true(pk); else msgpack_pack_false(pk); }
    else if (cJSON_IsNull(j)) msgpack_pack_nil(pk);
    else if (cJSON_IsNumber(j)) {
        double v = j->valuedouble;
        if (v == floor(v) && v >= 0 && v < 1.8e19) msgpack_pack_uint64(pk, (uint64_t)v);
        else if (v == floor(v) && v < 0 && v > -9.2e18) msgpack_pack_int64(pk, (int64_t)v);
        else msgpack_pack_double(pk, v);
    }
    return 0;
}

static int run_pack(const struct opts *o)
{
    FILE *in = strcmp(o->cli.in, "-") == 0 ? stdin : fopen(o->cli.in, "r");
    if (!in) proto_die(PROTO_EXIT_FAIL, "%s: cannot open: %s", o->cli.in, strerror(errno));
    int err = 0, rc = PROTO_EXIT_OK;
    struct proto_writer *w = proto_writer_open(o->cli.out, NULL, &err);
    if (!w) { rc = proto_fail(err, o->cli.out); if (in != stdin) fclose(in); return rc; }
    char *line = NULL; size_t cap = 0; ssize_t len; long lineno = 0;
    msgpack_sbuffer sb; msgpack_sbuffer_init(&sb);
    msgpack_packer pk; msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    while ((len = getline(&line, &cap, in)) > 0) {
        lineno++;
        while (len && isspace((unsigned char)line[len - 1])) line[--len] = 0;
        if (!len) continue;
        char *q = quote_nonfinite(line), errmsg[256] = "";
        cJSON *j = q ? cJSON_Parse(q) : NULL;
        free(q);
        if (!j) { proto_error("%s:%ld: invalid JSON", o->cli.in, lineno); rc = PROTO_EXIT_FAIL; break; }
        msgpack_sbuffer_clear(&sb);
        int r = pack_json(&pk, j, errmsg, sizeof errmsg);
        cJSON_Delete(j);
        if (r) { proto_error("%s:%ld: %s", o->cli.in, lineno, errmsg); rc = PROTO_EXIT_FAIL; break; }
        if ((err = proto_writer_raw(w, sb.data, sb.size))) { rc = proto_fail(err, o->cli.out); break; }
    }
    free(line);
    msgpack_sbuffer_destroy(&sb);
    if (in != stdin) fclose(in);
    if ((err = proto_writer_close(w, rc == PROTO_EXIT_OK)) && rc == PROTO_EXIT_OK) rc = proto_fail(err, o->cli.out);
    return rc;
}

/* ---- frames -> text ---- */
/* The text output: stdout; a fifo or device in place; a plain file (or the one a symlink names)
 * through a temp file in its folder, renamed over it only when the whole stream was printed
 * (text_close), as frame files are (PROTOCOL.md §1 "Outputs"). */
struct text_out { FILE *fp; bool atomic, anon; char path[4200], tmp[4200]; };
static void text_open(struct text_out *t, const char *ep)
{
    t->fp = stdout;
    if (strcmp(ep, "-") == 0) return;
    int fd = proto_out_open(ep, t->path, t->tmp, sizeof t->tmp, &t->anon);
    if (fd < 0) proto_die(PROTO_EXIT_FAIL, "%s: cannot open: %s", ep, strerror(errno));
    t->atomic = t->anon || t->tmp[0];
    if (!(t->fp = fdopen(fd, "w"))) {
        int e = errno;
        proto_tmp_finish(fd, t->anon, t->tmp, sizeof t->tmp, t->path, false);
        close(fd);
        proto_die(PROTO_EXIT_FAIL, "%s: cannot open: %s", ep, strerror(e));
    }
}
/* Flushes and closes; a temp file is renamed into place only when ok. Returns the exit code. */
static int text_close(struct text_out *t, const char *ep, int rc)
{
    if (fflush(t->fp) != 0 || ferror(t->fp)) { proto_error("%s: writing output failed: %s", ep, strerror(errno)); if (!rc) rc = PROTO_EXIT_FAIL; }
    if (t->atomic) {
        int err = proto_tmp_finish(fileno(t->fp), t->anon, t->tmp, sizeof t->tmp, t->path, rc == PROTO_EXIT_OK);
        if (err && !rc) rc = proto_fail(err, ep);
    }
    if (t->fp != stdout && fclose(t->fp) != 0 && !rc) { proto_error("%s: writing output failed: %s", ep, strerror(errno)); rc = PROTO_EXIT_FAIL; }
    return rc;
}

static int run_read(const struct opts *o)
{
    int err = 0, rc = PROTO_EXIT_OK;
    struct text_out t = {0};
    text_open(&t, o->cli.out);
    FILE *out = t.fp;
    static char obuf[1 << 20];
    setvbuf(out, obuf, _IOFBF, sizeof obuf);
    struct proto_reader *r = proto_reader_open(o->cli.in, &err);
    if (!r) { rc = proto_fail(err, o->cli.in); goto done; }
    struct proto_frame f;
    long long data = 0;
    for (;;) {
        err = proto_reader_next(r, &f);
        if (err < 0) {
            char where[300];
            snprintf(where, sizeof where, "%s", proto_reader_name(r));
            fflush(out);
            rc = proto_fail(err, where);
            break;
        }
        bool is_data = f.kind != PROTO_KIND_HEADER && f.kind != PROTO_KIND_END;
        if (o->head >= 0 && is_data && data >= o->head) break;
        if (o->mode == MODE_JSON) put_frame(out, &f);
        else if (o->mode == MODE_SUMMARY) put_summary(out, &f);
        if (is_data) data++;
        if (err == PROTO_END) break;
    }
    if (rc == PROTO_EXIT_OK && o->mode == MODE_CHECK)
        proto_info("%s: ok, %llu frames", proto_reader_name(r), (unsigned long long)proto_reader_frames(r));
    proto_reader_close(r);
done:
    return text_close(&t, o->cli.out, rc);
}

/* ---- --hook H: one hook's frames of a multi-hook stream (PROTOCOL.md §1 "Hooks") ---- */
static int select_header(const struct opts *o, struct proto_frame *hdr, struct proto_writer *w)
{
    const struct proto_value *mv = proto_frame_get(hdr, "meta");
    const msgpack_object *meta = mv && mv->type == PROTO_V_OBJ ? &mv->obj : NULL;
    char list[PROTO_MAX_HOOKS * PROTO_HOOK_NAME];
    if (proto_meta_hooks(meta, list, sizeof list) && !proto_hook_listed(list, o->hook)) {
        proto_set_detail("header: the stream carries the hooks %s, not %s", list, o->hook);
        return PROTO_E_MISMATCH;
    }
    struct proto_meta pm;
    proto_meta_init(&pm, meta, o->argc, o->argv);
    int err = proto_meta_set_str(&pm, "hook", o->hook);
    if (!err) err = proto_writer_header(w, &pm);
    proto_meta_destroy(&pm);
    return err;
}

static int run_hook(const struct opts *o)
{
    struct proto_writer_opts wo = {.zstd_tensors = o->cli.zstd, .zstd_level = 3};
    struct proto_reader *r = NULL;
    struct proto_writer *w = NULL;
    struct proto_frame f;
    int err, rc = PROTO_EXIT_OK;
    const char *where = o->cli.in;
    if (!(r = proto_reader_open(o->cli.in, &err))) goto fail;
    where = o->cli.out;
    if (!(w = proto_writer_open(o->cli.out, &wo, &err))) goto fail;
    where = o->cli.in;
    if ((err = proto_reader_next(r, &f)) != PROTO_OK) { if (err == PROTO_END) err = PROTO_E_SEQ; goto fail; }
    if ((err = select_header(o, &f, w))) goto fail;
    while ((err = proto_reader_next(r, &f)) == PROTO_OK)   /* frames without a hook (tokens...) pass */
        if (proto_frame_hook_is(&f, o->hook) != 0 && (err = proto_writer_put(w, &f))) break;
    if (err == PROTO_END) err = proto_writer_carry_end_meta(w, &f);
    if (err) goto fail;
    goto out;
fail:
    rc = proto_fail(err, w && proto_writer_error(w) ? o->cli.out : where);
out:
    if (w && (err = proto_writer_close(w, rc == PROTO_EXIT_OK)) && rc == PROTO_EXIT_OK) rc = proto_fail(err, o->cli.out);
    proto_reader_close(r);
    return rc;
}

/* ---- --keygen: CURVE key pairs for tcp:// links (PROTOCOL.md §2) ---- */
static int write_key(const char *dir, const char *name, const char *key, mode_t mode)
{
    char path[4200];
    snprintf(path, sizeof path, "%s/%s", dir, name);
    int fd = open(path, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, mode);
    if (fd < 0) { proto_error("%s: %s", path, strerror(errno)); return PROTO_EXIT_FAIL; }
    char line[48];
    int n = snprintf(line, sizeof line, "%s\n", key);
    bool ok = write(fd, line, (size_t)n) == n;
    if (close(fd) != 0) ok = false;
    if (!ok) { proto_error("%s: writing failed: %s", path, strerror(errno)); unlink(path); return PROTO_EXIT_FAIL; }
    return PROTO_EXIT_OK;
}
static int run_keygen(const char *dir)
{
    if (!zmq_has("curve")) proto_die(PROTO_EXIT_FAIL, "this libzmq has no CURVE support");
    if (mkdir(dir, 0700) != 0 && errno != EEXIST) proto_die(PROTO_EXIT_FAIL, "%s: %s", dir, strerror(errno));
    static const char *const names[4] = {"server.pub", "server.secret", "client.pub", "client.secret"};
    for (int i = 0; i < 4; i++) {
        char path[4200];
        snprintf(path, sizeof path, "%s/%s", dir, names[i]);
        if (access(path, F_OK) == 0) proto_die(PROTO_EXIT_FAIL, "%s: already exists (keys are never overwritten)", path);
    }
    char pub[2][41], sec[2][41];
    for (int k = 0; k < 2; k++)
        if (zmq_curve_keypair(pub[k], sec[k]) != 0) proto_die(PROTO_EXIT_FAIL, "zmq_curve_keypair: %s", zmq_strerror(errno));
    for (int k = 0; k < 2; k++) {
        if (write_key(dir, names[2 * k], pub[k], 0644) || write_key(dir, names[2 * k + 1], sec[k], 0600)) return PROTO_EXIT_FAIL;
    }
    return PROTO_EXIT_OK;
}

/* ---- usage ---- */
static void usage(FILE *fp)
{
    fprintf(fp,
        "Usage: sf-cat [OPTIONS]\n"
        "Print a saeflow frame stream as JSON lines (one object per frame), or make one.\n\n"
        "  (default)          frames in, JSON lines out: tensors as {\"dtype\",\"shape\",\"data\"},\n"
        "                     floats %%.9g, NaN/Infinity as Python's json writes them\n"
        "  -p, --pack         JSON lines in (-i, text), frames out (-o), each line as it stands\n"
        "                     (header and end frames included; nothing is checked)\n"
        "      --summary      one line per frame: kind, seq, keys with dtype[shape], bytes\n"
        "      --check        validate the whole stream; prints nothing; exit 0, 1 or 3\n"
        "      --head N       stop after N data frames (no end frame is printed)\n"
        "      --hook H       frames in, frames out: only hook H's frames of a multi-hook stream\n"
        "                     (sf-forward --hook A,B,...; other hooks' frames dropped, seq renumbered,\n"
        "                     the header's hook set to H): a single-hook stream any stage reads\n"
        "      --keygen DIR   write CURVE keys for tcp:// links into DIR (server.pub, server.secret,\n"
        "                     client.pub, client.secret; Z85 text; never overwrites); use with --keys DIR\n\n");
    proto_cli_help_common(fp);
    fprintf(fp,
        "\nExamples:\n"
        "  sf-cat -i acts.zst --summary                 what is in a saved stream\n"
        "  sf-forward ... | tee >(sf-cat --summary >&2) | sf-encode ...   tap a pipeline\n"
        "  sf-cat -i acts.zst --head 1 | jq '.acts.shape'\n"
        "  sf-cat --pack -i frames.jsonl -o stream.bin   make a stream by hand\n"
        "  sf-forward --model M --hook all -i tok.sf | sf-cat --hook blocks.2.hook_resid_post | sf-encode --sae S\n"
        "  sf-cat --check -i ipc:///tmp/sf/acts           validate a stream from ZeroMQ\n"
        "  sf-cat --keygen keys; sf-cat --keys keys -i tcp://@10.0.0.7:5555   an authenticated link\n");
}

static void parse_args(int argc, char **argv, struct opts *o)
{
    enum { OPT_SUMMARY = PROTO_OPT_FIRST_FREE, OPT_CHECK, OPT_HEAD, OPT_KEYGEN, OPT_HOOK };
    static const struct option longopts[] = {
        PROTO_CLI_LONGOPTS,
        {"pack", no_argument, 0, 'p'}, {"summary", no_argument, 0, OPT_SUMMARY},
        {"check", no_argument, 0, OPT_CHECK}, {"head", required_argument, 0, OPT_HEAD},
        {"keygen", required_argument, 0, OPT_KEYGEN}, {"hook", required_argument, 0, OPT_HOOK}, {0, 0, 0, 0}};
    int c;
    while ((c = getopt_long(argc, argv, PROTO_CLI_SHORTOPTS "p", longopts, NULL)) != -1) {
        if (proto_cli_common(&o->cli, c, optarg, usage)) continue;
        switch (c) {
        case 'p': o->mode = MODE_PACK; break;
        case OPT_SUMMARY: o->mode = MODE_SUMMARY; break;
        case OPT_CHECK: o->mode = MODE_CHECK; break;
        case OPT_HEAD: o->head = proto_parse_ll("--head", optarg, 0, (long long)1 << 62); break;
        case OPT_KEYGEN: o->mode = MODE_KEYGEN; o->keygen = optarg; break;
        case OPT_HOOK: o->hook = optarg; break;
        default: proto_usage_error("unknown option");
        }
    }
    if (optind < argc) proto_usage_error("unexpected argument '%s'", argv[optind]);
    if (o->hook) {
        struct proto_hook h;
        if (o->mode != MODE_JSON || o->head >= 0) proto_usage_error("--hook writes frames: it takes no --pack, --summary, --check, --head or --keygen");
        if (!proto_hook_parse(o->hook, &h)) proto_usage_error("--hook: '%s' is not blocks.L.hook_resid_pre or blocks.L.hook_resid_post", o->hook);
        o->mode = MODE_HOOK;
    }
    o->argc = argc; o->argv = argv;
}

int main(int argc, char **argv)
{
    struct opts o = {.mode = MODE_JSON, .head = -1};
    proto_cli_init(&o.cli, argv[0]);
    parse_args(argc, argv, &o);
    if (o.mode == MODE_KEYGEN) return run_keygen(o.keygen);
    proto_cli_finish(&o.cli, o.mode == MODE_PACK || o.mode == MODE_HOOK);
    proto_cli_check_distinct(o.cli.out, o.cli.in);
    return o.mode == MODE_PACK ? run_pack(&o) : o.mode == MODE_HOOK ? run_hook(&o) : run_read(&o);
}
