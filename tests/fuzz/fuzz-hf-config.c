/* fuzz-hf-config - libFuzzer target for config.json parsing (proto_hf_config): any bytes either
 * fail to parse as JSON, or give PROTO_OK with dimensions inside the bounds the header promises
 * (every product of two positive, head_dim even, n_heads a multiple of n_kv_heads), or an error
 * code with a detail; never a crash or a leak. Seeds: the fixtures' config.json files. */
#include <stdint.h>
#include <stdlib.h>
#include "proto.h"
#include "hf-model.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    cJSON *cfg = cJSON_ParseWithLength((const char *)data, size);
    if (!cfg) return 0;
    struct proto_hf_config c;
    if (proto_hf_config(cfg, &c) == PROTO_OK) {
        if (c.d_model < 1 || c.n_layers < 1 || c.n_heads < 1 || c.n_kv_heads < 1 || c.d_ff < 1 || c.vocab < 1) abort();
        if (c.head_dim < 2 || c.head_dim % 2 || c.n_heads % c.n_kv_heads) abort();
        if (c.n_layers > PROTO_HF_MAX_LAYERS || !(c.eps > 0) || !(c.theta > 0) || c.window < 0) abort();
        (void)proto_hf_arch_name(c.arch);
    }
    cJSON_Delete(cfg);
    return 0;
}
