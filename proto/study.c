/* study.c - metrics of the study (proto/PROTOCOL.md §6) that more than one stage computes. */
#include <math.h>
#include "study.h"

void proto_sim_tokens(const float *a, const float *b, uint64_t n_tok, uint64_t d, float *cos, float *l2)
{
    const double floor = 1e-12;
    for (uint64_t t = 0; t < n_tok; t++) {
        const float *at = a + t * d, *bt = b + t * d;
        double aa4[4] = {0}, bb4[4] = {0}, ab4[4] = {0}, dd4[4] = {0};   /* 4 lanes */
        uint64_t k = 0;
        for (; k + 4 <= d; k += 4)
            for (int l = 0; l < 4; l++) {
                double x = at[k + l], y = bt[k + l], e = x - y;
                aa4[l] += x * x; bb4[l] += y * y; ab4[l] += x * y; dd4[l] += e * e;
            }
        for (; k < d; k++) {
            double x = at[k], y = bt[k], e = x - y;
            aa4[0] += x * x; bb4[0] += y * y; ab4[0] += x * y; dd4[0] += e * e;
        }
        double aa = (aa4[0] + aa4[1]) + (aa4[2] + aa4[3]), bb = (bb4[0] + bb4[1]) + (bb4[2] + bb4[3]);
        double ab = (ab4[0] + ab4[1]) + (ab4[2] + ab4[3]), dd = (dd4[0] + dd4[1]) + (dd4[2] + dd4[3]);
        cos[t] = (float)(ab / (fmax(sqrt(aa), floor) * fmax(sqrt(bb), floor)));
        l2[t] = (float)sqrt(dd);
    }
}
