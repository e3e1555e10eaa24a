/* hook.c - residual-stream hook names and hook lists (hook.h). */
#include <string.h>
#include "hook.h"

bool proto_hook_parse(const char *s, struct proto_hook *h)
{
    if (strncmp(s, "blocks.", 7) != 0) return false;
    const char *p = s + 7;
    if (*p < '0' || *p > '9') return false;
    long l = 0;
    while (*p >= '0' && *p <= '9') { l = l * 10 + (*p++ - '0'); if (l >= 100000) return false; }
    if (strcmp(p, ".hook_resid_pre") == 0) h->post = false;
    else if (strcmp(p, ".hook_resid_post") == 0) h->post = true;
    else return false;
    h->layer = (int)l;
    return true;
}

bool proto_hook_listed(const char *list, const char *name)
{
    size_t n = strlen(name);
    for (const char *p = list; *p;) {
        const char *e = strchr(p, ',');
        size_t len = e ? (size_t)(e - p) : strlen(p);
        if (len == n && memcmp(p, name, n) == 0) return true;
        if (!e) break;
        p = e + 1;
    }
    return false;
}

int proto_hook_count(const char *list)
{
    if (!*list) return 0;
    int n = 1;
    for (const char *p = list; *p; p++) n += *p == ',';
    return n;
}

int proto_frame_hook_is(const struct proto_frame *f, const char *name)
{
    const struct proto_value *v = proto_frame_get((struct proto_frame *)f, "hook");
    if (!v || v->type != PROTO_V_STR) return -1;
    return v->len == strlen(name) && memcmp(v->str, name, v->len) == 0;
}

int proto_meta_hooks(const msgpack_object *meta, char *list, size_t cap)
{
    if (!meta || proto_meta_str(meta, "hook", list, cap) != PROTO_OK) { list[0] = 0; return 0; }
    return proto_hook_count(list);
}

int proto_hook_select(const msgpack_object *meta, const char *want, bool *multi)
{
    char list[PROTO_MAX_HOOKS * PROTO_HOOK_NAME];
    *multi = proto_meta_hooks(meta, list, sizeof list) > 1;
    if (*multi && !proto_hook_listed(list, want)) {
        proto_set_detail("header: the stream carries the hooks %s, not %s", list, want);
        return PROTO_E_MISMATCH;
    }
    return PROTO_OK;
}

int proto_frames_same_hook(const struct proto_frame *base, const struct proto_frame *ft)
{
    char hb[PROTO_HOOK_NAME] = "", hf[PROTO_HOOK_NAME] = "";
    proto_frame_str(base, "hook", hb, sizeof hb);
    proto_frame_str(ft, "hook", hf, sizeof hf);
    if (strcmp(hb, hf) == 0) return PROTO_OK;
    proto_set_detail("seq %llu: the base frame is at hook %s, the finetune frame at %s (run both models with the same --hook)",
                     (unsigned long long)base->seq, hb[0] ? hb : "(none)", hf[0] ? hf : "(none)");
    return PROTO_E_MISMATCH;
}
