/* frame-gen - writes N acts frames of a given size (f32 [rows, ctx, d_model]) to an endpoint,
 * for the throughput benchmarks: frame-gen ENDPOINT N ROWS CTX D_MODEL [zstd] */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "cli.h"
#include "proto.h"

int main(int argc, char **argv)
{
    if (argc < 6) { fprintf(stderr, "usage: frame-gen ENDPOINT N ROWS CTX D_MODEL [zstd]\n"); return 2; }
    int n = atoi(argv[2]);
    uint64_t rows = strtoull(argv[3], 0, 10), ctx = strtoull(argv[4], 0, 10), d = strtoull(argv[5], 0, 10);
    struct proto_writer_opts wo = {.zstd_tensors = argc > 6 && !strcmp(argv[6], "zstd"), .zstd_level = 1};
    int err;
    struct proto_writer *w = proto_writer_open(argv[1], &wo, &err);
    if (!w) { fprintf(stderr, "frame-gen: %s: %s %s\n", argv[1], proto_strerror(err), proto_detail()); return 1; }
    int32_t *tok = calloc(rows * ctx, 4);          /* (rows, ctx) */
    float *acts = proto_aligned_alloc(rows * ctx * d * 4);   /* (rows, ctx, d) */
    for (size_t i = 0; i < rows * ctx * d; i++) acts[i] = (float)((i * 2654435761u) % 1000) * 0.01f;
    uint64_t s2[2] = {rows, ctx}, s3[3] = {rows, ctx, d};
    struct proto_frame f;
    proto_frame_init(&f, PROTO_KIND_ACTS);
    proto_frame_set_tensor(&f, "tokens", PROTO_I32, 2, s2, tok);
    proto_frame_set_str(&f, "hook", "blocks.0.hook_resid_post");
    proto_frame_set_tensor(&f, "acts", PROTO_F32, 3, s3, acts);
    err = proto_writer_header(w, NULL);
    for (int i = 0; i < n && !err; i++) err = proto_writer_put(w, &f);
    int cerr = proto_writer_close(w, !err);
    free(tok); free(acts);
    if (err || cerr) { fprintf(stderr, "frame-gen: %s %s\n", proto_strerror(err ? err : cerr), proto_detail()); return 1; }
    return 0;
}
