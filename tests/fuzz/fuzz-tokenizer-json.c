/* fuzz-tokenizer-json - libFuzzer target for the Hugging Face tokenizer.json loader (hf-bpe.c):
 * each input is written to a file and loaded; a tokenizer that loads must encode a fixed text
 * into ids inside its vocabulary; anything else is an error message; never a crash or a leak.
 * Seeds: small tokenizer.json files (the fixtures' real ones are large: run with -max_len). */
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "proto.h"
#include "../../stages/sf-tokenize/tokenizer.h"
#include "fuzz-file.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    const char *path = fuzz_input_file("tok", data, size);
    char err[256];
    struct hf_bpe *t = hf_bpe_load(path, err, sizeof err);
    if (!t) return 0;
    static const char text[] = "Once upon a time, def f(x): return x ** 2  \xc3\xa9\xe2\x82\xac \t\n";
    struct ids ids = {0};
    if (hf_bpe_encode(t, text, sizeof text - 1, &ids) == 0) {
        int v = hf_bpe_vocab_size(t);
        for (size_t i = 0; i < ids.n; i++)
            if (ids.v[i] < 0 || (v > 0 && ids.v[i] >= v)) abort();
    }
    ids_destroy(&ids);
    hf_bpe_free(t);
    return 0;
}
