/* test-json-parallel.c - proto/json.h getters (present / absent / null / wrong type / range,
 * file loading with the line of a parse error) and proto/parallel.h (every item once, the
 * same split for any thread count, ith/nth shares). */
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>
#include "proto.h"
#include "json.h"
#include "parallel.h"
#include "check.h"

static void test_getters(void)
{
    cJSON *o = cJSON_Parse("{\"n\": 3, \"f\": 2.5, \"s\": \"x\", \"b\": true, \"z\": null, \"big\": 1e300,"
                           " \"arr\": [1, 2.5, 3], \"cnt\": [0, 7], \"neg\": [-1], \"str\": \"3\"}");
    double d = -1;
    long long i = -1;
    const char *s = NULL;
    bool b = false;
    CHECK(proto_json_num(o, "f", &d) == 1 && d == 2.5, "num f = %g", d);
    d = 42;
    CHECK(proto_json_num(o, "absent", &d) == 0 && d == 42, "absent leaves the default");
    CHECK(proto_json_num(o, "z", &d) == 0 && d == 42, "null counts as absent");
    CHECK(proto_json_num(o, "s", &d) == PROTO_E_FORMAT, "string is not a number");
    CHECK(strstr(proto_detail(), "s is not a finite number") != NULL, "detail: %s", proto_detail());
    CHECK(proto_json_int(o, "n", 1, 10, &i) == 1 && i == 3, "int n = %lld", i);
    CHECK(proto_json_int(o, "f", 1, 10, &i) == PROTO_E_FORMAT, "2.5 is not an integer");
    CHECK(strstr(proto_detail(), "f = 2.5 is not an integer in [1, 10]") != NULL, "detail: %s", proto_detail());
    CHECK(proto_json_int(o, "n", 4, 10, &i) == PROTO_E_FORMAT, "3 is below 4");
    CHECK(proto_json_int(o, "big", 0, 1LL << 40, &i) == PROTO_E_FORMAT, "1e300 out of range");
    CHECK(proto_json_str(o, "s", &s) == 1 && strcmp(s, "x") == 0, "str s");
    CHECK(proto_json_str(o, "n", &s) == PROTO_E_FORMAT, "3 is not a string");
    CHECK(proto_json_bool(o, "b", &b) == 1 && b, "bool b");
    CHECK(proto_json_bool(o, "str", &b) == PROTO_E_FORMAT, "\"3\" is not a bool");
    double v[3];
    CHECK(proto_json_doubles(o, "arr", v, 3) == 1 && v[0] == 1 && v[1] == 2.5 && v[2] == 3, "doubles");
    CHECK(proto_json_doubles(o, "arr", v, 2) == PROTO_E_FORMAT, "length 3 is not 2");
    CHECK(strstr(proto_detail(), "arr has 3 entries, 2 expected") != NULL, "detail: %s", proto_detail());
    unsigned long long u[2];
    CHECK(proto_json_uints(o, "cnt", u, 2) == 1 && u[0] == 0 && u[1] == 7, "uints");
    CHECK(proto_json_uints(o, "neg", u, 1) == PROTO_E_FORMAT, "-1 is not a count");
    CHECK(proto_json_need(proto_json_int(o, "gone", 0, 9, &i), "gone") == PROTO_E_FORMAT &&
          strcmp(proto_detail(), "gone is missing") == 0, "need: %s", proto_detail());
    CHECK(proto_json_need(proto_json_int(o, "n", 0, 9, &i), "n") == PROTO_OK, "need present");
    CHECK(proto_json_get(cJSON_GetObjectItem(o, "arr"), "x") == NULL, "get on a non-object");
    cJSON_Delete(o);
}

static void test_load(void)
{
    char dir[] = "/tmp/sf-json-XXXXXX", path[64];
    if (!mkdtemp(dir)) { CHECK(0, "mkdtemp"); return; }
    snprintf(path, sizeof path, "%s/a.json", dir);
    int err = 0;
    FILE *f = fopen(path, "w");
    fputs("{\"a\": 1,\n \"b\": [1, 2,\n oops]}\n", f);
    fclose(f);
    CHECK(proto_json_load(path, &err) == NULL && err == PROTO_E_FORMAT, "parse error");
    CHECK(strstr(proto_detail(), "a.json: line 3: not valid JSON") != NULL, "detail: %s", proto_detail());
    f = fopen(path, "w"); fputs("[1, 2]", f); fclose(f);
    CHECK(proto_json_load(path, &err) == NULL && err == PROTO_E_FORMAT &&
          strstr(proto_detail(), "not a JSON object") != NULL, "array top level: %s", proto_detail());
    f = fopen(path, "w"); fputs("{\"k\": \"v\"}", f); fclose(f);
    cJSON *o = proto_json_load(path, &err);
    const char *s = NULL;
    CHECK(o && proto_json_str(o, "k", &s) == 1 && strcmp(s, "v") == 0, "loaded");
    cJSON_Delete(o);
    unlink(path);
    snprintf(path, sizeof path, "%s/missing.json", dir);
    CHECK(proto_json_load(path, &err) == NULL && err == PROTO_E_IO && strstr(proto_detail(), "missing.json") != NULL,
          "missing file: %s", proto_detail());
    rmdir(dir);
}

struct count_arg { atomic_int *hits; size_t n; size_t *owner; };

static void count_range(void *p, size_t lo, size_t hi)
{
    struct count_arg *a = p;
    for (size_t i = lo; i < hi; i++) { atomic_fetch_add(&a->hits[i], 1); a->owner[i] = lo; }
}

struct share_arg { atomic_int seen[8]; int nth_seen; };

static void share(void *p, int ith, int nth)
{
    struct share_arg *a = p;
    atomic_fetch_add(&a->seen[ith], 1);
    a->nth_seen = nth;   /* every worker writes the same value */
}

static void test_parallel(void)
{
    enum { N = 1000 };
    static atomic_int hits[N];
    static size_t owner[N], owner1[N];
    for (int nt = 1; nt <= 7; nt++) {
        for (int i = 0; i < N; i++) atomic_store(&hits[i], 0);
        struct count_arg a = {hits, N, owner};
        proto_parallel_for(nt, N, 10, count_range, &a);
        int bad = 0;
        for (int i = 0; i < N; i++) bad += atomic_load(&hits[i]) != 1;
        CHECK(bad == 0, "%d threads: %d items not done exactly once", nt, bad);
        /* the split is the documented one: range i of nt starts at N*i/nt */
        for (int i = 0; i < N; i++) {
            size_t lo, hi, want = 0;
            for (int t = 0; t < nt; t++) { proto_par_range(N, t, nt, &lo, &hi); if ((size_t)i >= lo && (size_t)i < hi) want = lo; }
            if (owner[i] != want) { CHECK(0, "%d threads: item %d ran in range from %zu, not %zu", nt, i, owner[i], want); break; }
        }
        if (nt == 1) memcpy(owner1, owner, sizeof owner);
    }
    /* grain: 1000 items with grain 400 -> at most 2 ranges */
    struct count_arg a = {hits, N, owner};
    proto_parallel_for(8, N, 400, count_range, &a);
    CHECK(owner[0] == 0 && owner[N - 1] == N / 2, "grain 400 gives 2 ranges (last starts at %zu)", owner[N - 1]);
    proto_parallel_for(4, 0, 1, count_range, &a);   /* nothing to do: no call */
    struct share_arg s = {0};
    proto_parallel_run(5, share, &s);
    int ok = s.nth_seen == 5;
    for (int i = 0; i < 5; i++) ok &= atomic_load(&s.seen[i]) == 1;
    CHECK(ok, "parallel_run: every ith once, nth %d", s.nth_seen);
}

int main(void)
{
    test_getters();
    test_load();
    test_parallel();
    if (g_failed) fprintf(stderr, "%d checks failed\n", g_failed);
    return g_failed ? 1 : 0;
}
