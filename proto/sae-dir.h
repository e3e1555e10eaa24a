/* sae-dir.h - the one SAELens directory loader: DIR/cfg.json + DIR/sae_weights.safetensors ->
 * struct proto_sae, for every architecture sf-encode runs (sf-encode, sf-train --init-from,
 * sf-reduce's decoder rows). Semantics: proto/PROTOCOL.md §6 and SAELens 3.22.
 *
 * cfg.json, with SAELens's defaults and legacy names (absent and null are the same):
 *   architecture               standard | topk (= standard with topk) | jumprelu | gated
 *                              (default standard)
 *   activation_fn_str          relu | tanh-relu | topk (legacy activation_fn; default relu)
 *   activation_fn_kwargs.k     topk: features kept (else cfg k); must be >= 1, clamped to d_sae
 *   hook_name                  else legacy hook_point, else metadata.hook_name (SAELens >= 6);
 *                              "" when none
 *   apply_b_dec_to_input       default true
 *   normalize_activations      none | constant_norm_rescale | expected_average_only_in |
 *                              layer_norm, or a legacy bool (true = expected_average_only_in)
 *   norm_scaling_factor        expected_average_only_in's factor (a caller's factor wins)
 *   finetuning_scaling_factor  true: the weights must hold a non-trivial scaling factor
 *   d_in, d_sae                default: the shape of W_enc (given: every tensor must agree);
 *                              at most 2^30 - 1 each. Nothing is reserved from them alone: each
 *                              tensor's shape is checked against them before it is copied, so
 *                              memory follows the size of sae_weights.safetensors
 * sae_weights.safetensors, f32/f16/bf16: W_enc (d_in, d_sae), W_dec (d_sae, d_in), b_dec (d_in),
 * b_enc (d_sae) (gated: b_gate, r_mag, b_mag instead), threshold (d_sae, jumprelu), and an
 * optional finetuning_scaling_factor or scaling_factor (d_sae; all ones counts as absent).
 *
 * TWO WAYS IN, one struct, one proto_sae_destroy:
 *   proto_sae_load(dir, norm_scale, &sae)  the cfg and every weight as 64-byte-aligned f32
 *                                          arrays owned by sae (sf-encode, sf-train).
 *   proto_sae_open(dir, &sae)              the cfg, with sae_weights.safetensors mapped and only
 *                                          W_dec checked (shape (d_sae, d_in), float dtype);
 *                                          every weight pointer stays NULL. Read chosen decoder
 *                                          rows with proto_sae_dec_rows: a Mistral-scale SAE
 *                                          (65,536 x 4096) is 1 GB of f32 per matrix, and
 *                                          sf-reduce needs a few hundred rows.
 * proto_sae_dec_rows works on either. Errors are PROTO_E_* codes with a detail naming the file
 * ("DIR/cfg.json: ...", "DIR/sae_weights.safetensors: ..."); nothing is printed. With
 * expected_average_only_in and no factor known the loader uses 1 and leaves norm_scale_known
 * false, for the stage to warn (SAELens load_from_pretrained also runs unscaled).
 *
 * Example (sf-reduce: logit similarity of k chosen features):
 *   struct proto_sae sae;
 *   int err = proto_sae_open(dir, &sae);
 *   if (err) return err;                                         // the detail names the file
 *   float *rows = malloc(k * (size_t)sae.d_in * sizeof *rows);   // (k, d_in)
 *   err = rows ? proto_sae_dec_rows(&sae, idx, k, rows) : PROTO_E_NOMEM;   // idx[q] < sae.d_sae
 *   proto_sae_destroy(&sae);
 */
#ifndef SAEFLOW_SAE_DIR_H
#define SAEFLOW_SAE_DIR_H

#include <stdbool.h>
#include <stddef.h>
#include <stdint.h>

#include "proto.h"

struct cJSON;

enum proto_sae_arch { PROTO_SAE_ARCH_STANDARD, PROTO_SAE_ARCH_JUMPRELU, PROTO_SAE_ARCH_GATED };
enum proto_sae_act { PROTO_SAE_ACT_RELU, PROTO_SAE_ACT_TANH_RELU, PROTO_SAE_ACT_TOPK };
enum proto_sae_norm {
    PROTO_SAE_NORM_NONE,
    PROTO_SAE_NORM_CONSTANT_RESCALE,   /* x' = x·sqrt(d_in)/‖x‖, x̂ = x̂'/c */
    PROTO_SAE_NORM_EXPECTED_AVG,       /* expected_average_only_in: x' = s·x, x̂ = x̂'/s */
    PROTO_SAE_NORM_LAYER,              /* x' = (x − μ)/(σ + 1e-5), x̂ = x̂'·σ + μ */
};
/* The cfg.json spelling: "standard" "jumprelu" "gated"; "relu" "tanh-relu" "topk"; "none"
 * "constant_norm_rescale" "expected_average_only_in" "layer_norm". */
const char *proto_sae_arch_name(enum proto_sae_arch a);
const char *proto_sae_act_name(enum proto_sae_act a);
const char *proto_sae_norm_name(enum proto_sae_norm n);

struct proto_sae {
    char name[256];               /* the directory's basename */
    char hook[256];               /* cfg hook_name, "" when absent */
    int d_in, d_sae;
    enum proto_sae_arch arch;
    enum proto_sae_act act;
    int k;                        /* topk: features kept per token, in [1, d_sae]; else 0 */
    bool apply_b_dec;             /* apply_b_dec_to_input */
    enum proto_sae_norm norm;
    float norm_scale;             /* expected_average_only_in's s; 1 otherwise */
    bool norm_scale_known;        /* expected_average_only_in: s came from the caller or cfg */
    /* proto_sae_load only (NULL after proto_sae_open); owned, free()-able */
    float *W_enc;                 // (d_in, d_sae)
    float *b_enc;                 // (d_sae) standard/jumprelu: b_enc; gated: b_gate
    float *mag_scale;             // (d_sae) gated: exp(r_mag), else NULL
    float *b_mag;                 // (d_sae) gated, else NULL
    float *threshold;             // (d_sae) jumprelu, else NULL
    float *W_dec;                 // (d_sae, d_in)
    float *b_dec;                 // (d_in)
    float *ft_scale;              // (d_sae) finetuning scaling factor, NULL when absent or all ones
    struct cJSON *cfg;            /* the parsed cfg.json (owned), for keys beyond these */
    struct proto_st *weights;     /* proto_sae_open: the mapped weights file; NULL after load */
};

/* Loads DIR: the cfg and every weight the architecture uses, as f32. norm_scale: the factor of
 * expected_average_only_in given by the user, or NAN for cfg norm_scaling_factor (else 1).
 * On failure *sae is left empty (proto_sae_destroy is still safe). */
int proto_sae_load(const char *dir, double norm_scale, struct proto_sae *sae);

/* Opens DIR without copying weights: the cfg (as proto_sae_load with norm_scale NAN) and the
 * mapped sae_weights.safetensors, whose W_dec must be (d_sae, d_in) in a float dtype. */
int proto_sae_open(const char *dir, struct proto_sae *sae);

/* Copies decoder rows W_dec[idx[q]] (as stored, without the finetuning scale) into out
 * (k, d_in) as f32. PROTO_E_INVAL when an index is >= d_sae; PROTO_E_FORMAT (naming the entry)
 * when a row holds a NaN or an infinity (after open nothing else scans the mapped rows). Works
 * after load or open. */
int proto_sae_dec_rows(const struct proto_sae *sae, const uint32_t *idx, size_t k, float *out);

/* Frees what load or open made (weights, cfg, mapping) and zeroes *sae. NULL-safe. */
void proto_sae_destroy(struct proto_sae *sae);

#endif
