/* rng.c - deterministic random numbers (splitmix64): the same seed gives the same values on
 * every host, so sampled features and synthetic weights are reproducible. */
#include <math.h>
#include "proto.h"

uint64_t proto_rng_next(uint64_t *s)
{
    uint64_t z = (*s += 0x9e3779b97f4a7c15ULL);
    z = (z ^ (z >> 30)) * 0xbf58476d1ce4e5b9ULL;
    z = (z ^ (z >> 27)) * 0x94d049bb133111ebULL;
    return z ^ (z >> 31);
}
double proto_rng_uniform(uint64_t *s) { return ((proto_rng_next(s) >> 11) + 0.5) * (1.0 / 9007199254740992.0); }
double proto_rng_normal(uint64_t *s)
{
    double u = proto_rng_uniform(s), v = proto_rng_uniform(s);
    return sqrt(-2 * log(u)) * cos(2 * M_PI * v);
}
