/* parallel.c - proto_parallel_run / proto_parallel_for (parallel.h). */
#include <pthread.h>
#include <stdbool.h>
#include "parallel.h"

struct worker { void (*fn)(void *, int, int); void *arg; int ith, nth; };

static void *worker_main(void *p)
{
    struct worker *w = p;
    w->fn(w->arg, w->ith, w->nth);
    return NULL;
}

void proto_parallel_run(int nth, void (*fn)(void *arg, int ith, int nth), void *arg)
{
    if (nth < 1) nth = 1;
    if (nth > PROTO_MAX_THREADS) nth = PROTO_MAX_THREADS;
    if (nth == 1) { fn(arg, 0, 1); return; }
    pthread_t th[PROTO_MAX_THREADS];
    struct worker w[PROTO_MAX_THREADS];
    bool started[PROTO_MAX_THREADS] = {false};
    for (int i = 0; i < nth; i++) w[i] = (struct worker){fn, arg, i, nth};
    for (int i = 1; i < nth; i++) started[i] = pthread_create(&th[i], NULL, worker_main, &w[i]) == 0;
    worker_main(&w[0]);
    for (int i = 1; i < nth; i++) {
        if (started[i]) pthread_join(th[i], NULL);
        else worker_main(&w[i]);   /* could not start: run its share here */
    }
}

struct ranges { void (*fn)(void *, size_t, size_t); void *arg; size_t n; };

static void range_worker(void *p, int ith, int nth)
{
    const struct ranges *r = p;
    size_t lo, hi;
    proto_par_range(r->n, ith, nth, &lo, &hi);
    if (lo < hi) r->fn(r->arg, lo, hi);
}

void proto_parallel_for(int n_threads, size_t n, size_t grain, void (*fn)(void *arg, size_t lo, size_t hi),
                        void *arg)
{
    if (n == 0) return;
    if (grain == 0) grain = 1;
    size_t nt = n_threads < 1 ? 1 : (size_t)n_threads;
    if (nt > n / grain) nt = n / grain;
    if (nt <= 1) { fn(arg, 0, n); return; }
    struct ranges r = {fn, arg, n};
    proto_parallel_run((int)nt, range_worker, &r);
}
