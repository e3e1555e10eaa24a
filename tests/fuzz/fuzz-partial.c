/* fuzz-partial - libFuzzer target for sf-reduce --merge's partial-JSON reader (partial.c:
 * run_merge -> load_partial -> acc_add_partial: counts, sums, extremes, histograms, feature
 * densities, similarity, transfer), then the merged accumulators through finalize and back out
 * as a partial block, as `sf-reduce --merge A B` does. The input is one sf-reduce result
 * document, merged with itself (the second add meets the first's shapes). Links sf-reduce's .c
 * files with main.c's main left out (-DSF_REDUCE_NO_MAIN, the Makefile's FUZZ_EXTRA line). A
 * document must merge or be refused with a detail message; never a crash, a hang or a leak.
 * Seeds: tests/fuzz/seeds-fuzz-partial (small documents of our own). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "proto.h"
#include "../../stages/sf-reduce/reduce.h"
#include "fuzz-file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    char *path = (char *)fuzz_input_file("partial", data, size);
    char *files[2] = {path, path}, *argv[3] = {"sf-reduce", "--merge", path};
    struct opts o;
    memset(&o, 0, sizeof o);
    o.cli.in = "-"; o.cli.out = "-"; o.cli.progress = 0;   /* not proto_cli_init: it may re-exec for OpenBLAS */
    o.merge = true; o.merge_files = files; o.n_merge = 2; o.argc = 3; o.argv = argv;
    struct acc a;
    struct ckpts ck;
    const char *where = "init";
    cJSON *doc = NULL;
    proto_clear_detail();
    int err = acc_init(&a, 0);
    if (!err) err = ckpts_open(&o, &ck, &where);
    if (!err) err = run_merge(&o, &a, &where);
    if (!err) err = finalize(&a, &o, &ck, provenance(&a, &o), &doc);
    if (err && err != PROTO_E_NOMEM && !proto_detail()[0]) abort();   /* every refusal says why */
    if (!err) {
        cJSON *p = acc_partial(&a);
        char *text = p ? cJSON_PrintUnformatted(p) : NULL;
        free(text);
        cJSON_Delete(p);
    }
    cJSON_Delete(doc);
    ckpts_close(&ck);
    acc_destroy(&a);
    return 0;
}
