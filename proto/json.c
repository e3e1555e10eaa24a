/* json.c - typed cJSON getters (json.h). */
#include <math.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include "proto.h"
#include "json.h"

const cJSON *proto_json_get(const cJSON *o, const char *key)
{
    if (!cJSON_IsObject(o)) return NULL;
    const cJSON *v = cJSON_GetObjectItemCaseSensitive(o, key);
    return v && !cJSON_IsNull(v) ? v : NULL;
}

int proto_json_num(const cJSON *o, const char *key, double *out)
{
    const cJSON *v = proto_json_get(o, key);
    if (!v) return 0;
    if (!cJSON_IsNumber(v) || !isfinite(v->valuedouble)) {
        proto_set_detail("%s is not a finite number", key);
        return PROTO_E_FORMAT;
    }
    *out = v->valuedouble;
    return 1;
}

int proto_json_int(const cJSON *o, const char *key, long long lo, long long hi, long long *out)
{
    double d;
    int r = proto_json_num(o, key, &d);
    if (r <= 0) return r;
    if (d != floor(d) || d < (double)lo || d > (double)hi) {
        proto_set_detail("%s = %.17g is not an integer in [%lld, %lld]", key, d, lo, hi);
        return PROTO_E_FORMAT;
    }
    *out = (long long)d;
    return 1;
}

int proto_json_str(const cJSON *o, const char *key, const char **out)
{
    const cJSON *v = proto_json_get(o, key);
    if (!v) return 0;
    if (!cJSON_IsString(v)) { proto_set_detail("%s is not a string", key); return PROTO_E_FORMAT; }
    *out = v->valuestring;
    return 1;
}

int proto_json_bool(const cJSON *o, const char *key, bool *out)
{
    const cJSON *v = proto_json_get(o, key);
    if (!v) return 0;
    if (!cJSON_IsBool(v)) { proto_set_detail("%s is not true or false", key); return PROTO_E_FORMAT; }
    *out = cJSON_IsTrue(v);
    return 1;
}

/* The array at key with exactly n items: 1, 0 (absent) or PROTO_E_FORMAT. */
static int array_of(const cJSON *o, const char *key, size_t n, const cJSON **arr)
{
    const cJSON *v = proto_json_get(o, key);
    if (!v) return 0;
    if (!cJSON_IsArray(v)) { proto_set_detail("%s is not an array", key); return PROTO_E_FORMAT; }
    int len = cJSON_GetArraySize(v);
    if (len < 0 || (size_t)len != n) {
        proto_set_detail("%s has %d entries, %zu expected", key, len, n);
        return PROTO_E_FORMAT;
    }
    *arr = v;
    return 1;
}

int proto_json_doubles(const cJSON *o, const char *key, double *dst, size_t n)
{
    const cJSON *arr, *e;
    int r = array_of(o, key, n, &arr);
    if (r <= 0) return r;
    size_t i = 0;
    cJSON_ArrayForEach(e, arr) {
        if (!cJSON_IsNumber(e) || !isfinite(e->valuedouble)) {
            proto_set_detail("%s[%zu] is not a finite number", key, i);
            return PROTO_E_FORMAT;
        }
        dst[i++] = e->valuedouble;
    }
    return 1;
}

int proto_json_uints(const cJSON *o, const char *key, unsigned long long *dst, size_t n)
{
    const cJSON *arr, *e;
    int r = array_of(o, key, n, &arr);
    if (r <= 0) return r;
    size_t i = 0;
    cJSON_ArrayForEach(e, arr) {
        double d = cJSON_IsNumber(e) ? e->valuedouble : -1;
        if (!(d >= 0 && d <= 9007199254740992.0 && d == floor(d))) {
            proto_set_detail("%s[%zu] is not a count", key, i);
            return PROTO_E_FORMAT;
        }
        dst[i++] = (unsigned long long)d;
    }
    return 1;
}

int proto_json_need(int r, const char *key)
{
    if (r == 1) return PROTO_OK;
    if (r == 0) { proto_set_detail("%s is missing", key); return PROTO_E_FORMAT; }
    return r;
}

cJSON *proto_json_load(const char *path, int *err)
{
    char *text = NULL;
    size_t len = 0;
    struct stat sb;
    if (stat(path, &sb) == 0 && S_ISREG(sb.st_mode) && (uint64_t)sb.st_size > PROTO_JSON_MAX_BYTES) {
        proto_set_detail("%s: %llu bytes, over the %zu MiB a JSON file may have", path, (unsigned long long)sb.st_size,
                         PROTO_JSON_MAX_BYTES >> 20);
        *err = PROTO_E_FORMAT;
        return NULL;
    }
    if ((*err = proto_read_file(path, &text, &len)) != PROTO_OK) return NULL;   /* detail names path */
    const char *end = NULL;
    cJSON *doc = cJSON_ParseWithLengthOpts(text, len, &end, 0);
    if (!doc) {
        end = cJSON_GetErrorPtr();
        size_t at = end && end >= text && end <= text + len ? (size_t)(end - text) : 0, line = 1;
        for (size_t i = 0; i < at; i++) line += text[i] == '\n';
        proto_set_detail("%s: line %zu: not valid JSON", path, line);
        *err = PROTO_E_FORMAT;
    } else if (!cJSON_IsObject(doc)) {
        proto_set_detail("%s: not a JSON object", path);
        cJSON_Delete(doc);
        doc = NULL;
        *err = PROTO_E_FORMAT;
    }
    free(text);
    return doc;
}
