/* test-vexp.c - sf-forward's vector exp (exp8: double, the loss's log-sum-exp; exp16f: f32, the
 * softmax and the SiLU/GELU gates) against libm: within 2 ulp over random arguments across their
 * ranges, the documented flushes (0 below -708 / -87, +inf above 709 / 88) and NaN. */
#pragma GCC diagnostic ignored "-Wunused-function"
#pragma GCC diagnostic ignored "-Wpsabi"
#define SF_FORWARD_NO_MAIN
#include "../../stages/sf-forward.c"
#include <float.h>
#include "check.h"

static double ulps(double got, double want, double ulp) { return fabs(got - want) / ulp; }

int main(void)
{
    uint64_t s = 12345;
    double worst8 = 0, worst16 = 0;
    for (int i = 0; i < 200000; i++) {
        v8d x;
        v16f y;
        for (int l = 0; l < 8; l++) {   /* uniform in [-708, 0] and [-30, 30] */
            s = s * 6364136223846793005u + 1442695040888963407u;
            double u = (double)(s >> 11) / 9007199254740992.0;
            x[l] = l % 2 ? -708 * u : 60 * u - 30;
        }
        for (int l = 0; l < 16; l++) {   /* uniform in [-87, 88] */
            s = s * 6364136223846793005u + 1442695040888963407u;
            y[l] = (float)(175 * ((double)(s >> 11) / 9007199254740992.0) - 87);
        }
        v8d e = exp8(x);
        v16f f = exp16f(y);
        for (int l = 0; l < 8; l++) {
            double w = exp(x[l]), u = ulps(e[l], w, nextafter(w, INFINITY) - w);
            if (u > worst8) worst8 = u;
        }
        for (int l = 0; l < 16; l++) {
            float w = expf(y[l]);
            double u = ulps(f[l], w, (double)nextafterf(w, INFINITY) - w);
            if (u > worst16) worst16 = u;
        }
    }
    CHECK(worst8 <= 2, "exp8: %.2f ulp", worst8);
    CHECK(worst16 <= 2, "exp16f: %.2f ulp", worst16);
    v8d sp = {-INFINITY, -708.5, -0.0, 709.5, INFINITY, NAN, 1, -1};
    v8d e = exp8(sp);
    CHECK(e[0] == 0 && e[1] == 0 && e[2] == 1 && isinf(e[3]) && isinf(e[4]) && isnan(e[5]), "exp8 specials");
    CHECK(e[6] == exp(1.0) && fabs(e[7] - exp(-1.0)) <= 2 * DBL_EPSILON, "exp8(±1): %a %a", e[6], e[7]);
    v16f sf = {-INFINITY, -87.5f, 0, 88.5f, INFINITY, NAN, 10, -10};
    v16f f = exp16f(sf);
    CHECK(f[0] == 0 && f[1] == 0 && f[2] == 1 && isinf(f[3]) && isinf(f[4]) && isnan(f[5]), "exp16f specials");
    /* the softmax row: e^(s - max) and their sum, with a tail of 5 past the 16-lane blocks */
    float row[37], want[37];
    double sum_want = 0;
    for (int j = 0; j < 37; j++) { row[j] = (float)(0.25 * j - 9); want[j] = expf(row[j] - 0.0f); }
    for (int j = 0; j < 37; j++) sum_want += want[j];
    double sum = exp_row(row, 37, 0.0f);
    for (int j = 0; j < 37; j++) CHECK(fabs(row[j] - want[j]) <= 2 * FLT_EPSILON * want[j], "exp_row[%d]: %g vs %g", j, row[j], want[j]);
    CHECK(fabs(sum - sum_want) <= 1e-6 * sum_want, "exp_row sum %.9g vs %.9g", sum, sum_want);
    printf("exp8 worst %.2f ulp, exp16f worst %.2f ulp over %d arguments each\n", worst8, worst16, 200000 * 8);
    return g_failed ? 1 : 0;
}
