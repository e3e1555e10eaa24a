/* json.h - typed getters over cJSON with clear errors, for every JSON file a stage reads
 * (config.json, cfg.json, tokenizer.json, index files, sf-reduce partials and results).
 *
 * One rule for every getter: absent and JSON null are the same. A getter returns
 *   1                present and valid: the value is in *out;
 *   0                absent or null: *out is left alone (set the default before the call);
 *   PROTO_E_FORMAT   present but of the wrong type or out of range, with a detail naming the key
 *                    and the value ("head_dim = 3.5 is not an integer in [1, 1048576]").
 * proto_json_need() turns a 0 into PROTO_E_FORMAT "KEY is missing" and a 1 into PROTO_OK, so a
 * required key reads: if ((err = proto_json_need(proto_json_int(o, "k", 1, 64, &v), "k"))) ...
 * Details do not name the file: the loader adds it with proto_prefix_detail(path).
 */
#ifndef SAEFLOW_JSON_H
#define SAEFLOW_JSON_H

#include <stdbool.h>
#include <stddef.h>
#include <cjson/cJSON.h>

/* The value of key in object o; NULL when o is not an object, or the key is absent or null. */
const cJSON *proto_json_get(const cJSON *o, const char *key);
/* A finite number. */
int proto_json_num(const cJSON *o, const char *key, double *out);
/* An integral number in [lo, hi]. */
int proto_json_int(const cJSON *o, const char *key, long long lo, long long hi, long long *out);
/* A string: *out borrows from o. */
int proto_json_str(const cJSON *o, const char *key, const char **out);
/* true or false. */
int proto_json_bool(const cJSON *o, const char *key, bool *out);
/* An array of exactly n finite numbers, copied into dst (n doubles). */
int proto_json_doubles(const cJSON *o, const char *key, double *dst, size_t n);
/* An array of exactly n integers in [0, 2^53], copied into dst. */
int proto_json_uints(const cJSON *o, const char *key, unsigned long long *dst, size_t n);
/* r from a getter -> PROTO_OK (r == 1), PROTO_E_FORMAT "KEY is missing" (r == 0), or r. */
int proto_json_need(int r, const char *key);

/* Reads and parses a JSON file whose top level must be an object. NULL with *err set and a
 * detail naming the file (and the place a parse stopped) on failure. cJSON_Delete() it.
 * A file over PROTO_JSON_MAX_BYTES (1 GiB) is refused before it is read (config.json, cfg.json, an index,
 * a shard result with its drill-down contexts: ~200 MB at d_sae 65,536; cJSON takes ~10x the text in memory). */
#define PROTO_JSON_MAX_BYTES ((size_t)1 << 30)
cJSON *proto_json_load(const char *path, int *err);

#endif
