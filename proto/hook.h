/* hook.h - residual-stream hook names and hook lists (proto/PROTOCOL.md §1 "Hooks").
 *
 * TransformerLens names: blocks.L.hook_resid_pre is the input of block L, blocks.L.hook_resid_post
 * its output (before any final norm). A hook's depth is the number of blocks run to reach it: L for
 * resid_pre, L + 1 for resid_post. A hook list is names joined by commas, in the order a multi-hook
 * stream carries them (sf-forward --hook A,B,...: one acts frame per hook per batch, each frame's
 * "hook" key one name, the header's "hook" meta the whole list). Used by sf-forward (emits several),
 * sf-cat --hook (selects one), sf-encode, sf-outliers, sf-forward --from, sf-compare and sf-reduce
 * (work on their hook, carry the others through). */
#ifndef SAEFLOW_HOOK_H
#define SAEFLOW_HOOK_H

#include <stdbool.h>
#include <stddef.h>
#include "proto.h"

#define PROTO_MAX_HOOKS 512     /* hooks in one list */
#define PROTO_HOOK_NAME 64      /* longest hook name, with its NUL */

struct proto_hook { int layer; bool post; };

/* "blocks.L.hook_resid_pre|post" -> h (L < 100000); false when malformed. */
bool proto_hook_parse(const char *s, struct proto_hook *h);
static inline int proto_hook_depth(struct proto_hook h) { return h.layer + (h.post ? 1 : 0); }
/* name is one of list's comma-separated names (exactly). */
bool proto_hook_listed(const char *list, const char *name);
/* The number of names in list (0 for ""). */
int proto_hook_count(const char *list);
/* The header meta's "hook" (a name or a list) into list (cap bytes, "" without one); returns the
 * number of hooks in it (0 without one, 1 for a single-hook stream). */
int proto_meta_hooks(const msgpack_object *meta, char *list, size_t cap);
/* 1: the frame's "hook" is name; 0: another hook; -1: the frame has no "hook" string. */
int proto_frame_hook_is(const struct proto_frame *f, const char *name);

/* A base and a finetune frame of paired streams are at the same hook (or both have none);
 * PROTO_E_MISMATCH naming the seq and both hooks otherwise. */
int proto_frames_same_hook(const struct proto_frame *base, const struct proto_frame *ft);
/* For a stage that works on one hook (want) of its input: *multi is set when the header meta's
 * "hook" lists several hooks (the stage then carries frames at other hooks through untouched);
 * PROTO_E_MISMATCH, with a detail, when the list does not have want. A header without "hook" is
 * a single-hook stream. */
int proto_hook_select(const msgpack_object *meta, const char *want, bool *multi);

#endif
