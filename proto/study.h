/* study.h - metrics of the study (proto/PROTOCOL.md §6) that more
 * than one stage computes, kept in one place so every stage measures the same thing. */
#ifndef SAEFLOW_STUDY_H
#define SAEFLOW_STUDY_H

#include <stdint.h>

/* Per-token similarity of two activation tensors, STUDY.md's definition (sums in double, norms
 * floored at 1e-12): a, b: (n_tok, d) -> cos, l2: (n_tok). Used by sf-compare and sf-reduce. */
void proto_sim_tokens(const float *a, const float *b, uint64_t n_tok, uint64_t d, float *cos, float *l2);

#endif
