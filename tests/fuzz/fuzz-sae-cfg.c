/* fuzz-sae-cfg - libFuzzer target for SAELens cfg.json parsing: each input is written as the
 * cfg.json of a directory whose sae_weights.safetensors is a small valid SAE (d_in 8, d_sae 16,
 * every tensor any architecture may ask for), then proto_sae_load must give an SAE whose sizes
 * match the weights, or an error code; never a crash or a leak. Seeds: the fixtures' cfg.json. */
#include <math.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "proto.h"
#include "sae-dir.h"

enum { D_IN = 8, D_SAE = 16 };
static char g_dir[64];

static void make_dir(void)
{
    static float w[D_IN * D_SAE], v_sae[D_SAE], v_in[D_IN];
    for (int i = 0; i < D_IN * D_SAE; i++) w[i] = (float)((i * 37) % 11) / 11.0f - 0.5f;
    for (int i = 0; i < D_SAE; i++) v_sae[i] = 0.1f * (float)(i % 3);
    for (int i = 0; i < D_IN; i++) v_in[i] = 0.01f * (float)i;
    struct proto_st_entry e[] = {
        {"W_enc", w, 2, {D_IN, D_SAE}}, {"W_dec", w, 2, {D_SAE, D_IN}}, {"b_enc", v_sae, 1, {D_SAE}},
        {"b_dec", v_in, 1, {D_IN}}, {"threshold", v_sae, 1, {D_SAE}}, {"b_gate", v_sae, 1, {D_SAE}},
        {"r_mag", v_sae, 1, {D_SAE}}, {"b_mag", v_sae, 1, {D_SAE}}, {"scaling_factor", v_sae, 1, {D_SAE}},
    };
    snprintf(g_dir, sizeof g_dir, "/tmp/fuzz-sae-XXXXXX");
    if (!mkdtemp(g_dir)) abort();
    char path[128];
    snprintf(path, sizeof path, "%s/sae_weights.safetensors", g_dir);
    if (proto_st_write(path, e, (int)(sizeof e / sizeof e[0]), PROTO_F32) != PROTO_OK) abort();
}

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    if (!g_dir[0]) make_dir();
    char path[128];
    snprintf(path, sizeof path, "%s/cfg.json", g_dir);
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size) fwrite(data, 1, size, f);
    fclose(f);
    struct proto_sae s;
    if (proto_sae_load(g_dir, NAN, &s) == PROTO_OK) {
        if (s.d_in != D_IN || s.d_sae != D_SAE || !s.W_enc || !s.W_dec || !s.b_dec) abort();
        if (s.k < 0 || s.k > s.d_sae) abort();
        float row[D_IN];
        uint32_t j = D_SAE - 1;
        if (proto_sae_dec_rows(&s, &j, 1, row) != PROTO_OK || row[0] != s.W_dec[j * D_IN]) abort();
    }
    proto_sae_destroy(&s);
    return 0;
}
