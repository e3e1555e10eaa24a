/* error.c - error strings and the per-thread detail message (library code sets it, main prints it). */
#include <stdarg.h>
#include <stdio.h>
#include <string.h>
#include "proto.h"

const char *proto_strerror(int err)
{
    switch (err) {
    case PROTO_OK: return "ok";
    case PROTO_END: return "end of stream";
    case PROTO_E_IO: return "i/o error";
    case PROTO_E_TRUNCATED: return "stream truncated (ended without an end frame)";
    case PROTO_E_PARSE: return "not a msgpack frame stream";
    case PROTO_E_SCHEMA: return "invalid frame";
    case PROTO_E_VERSION: return "unsupported protocol version";
    case PROTO_E_SEQ: return "frame sequence error";
    case PROTO_E_NOMEM: return "out of memory";
    case PROTO_E_ZSTD: return "zstd error";
    case PROTO_E_ZMQ: return "zeromq error";
    case PROTO_E_TIMEOUT: return "timed out";
    case PROTO_E_ENDPOINT: return "bad endpoint";
    case PROTO_E_FORMAT: return "malformed file";
    case PROTO_E_MISMATCH: return "mismatch";
    case PROTO_E_INVAL: return "invalid argument";
    default: return "unknown error";
    }
}

static _Thread_local char g_detail[1024];
const char *proto_detail(void) { return g_detail; }
void proto_clear_detail(void) { g_detail[0] = 0; }
void proto_set_detail(const char *fmt, ...)
{
    char tmp[1024];
    va_list ap; va_start(ap, fmt);
    vsnprintf(tmp, sizeof tmp, fmt, ap);
    va_end(ap);
    memcpy(g_detail, tmp, sizeof tmp);
}

void proto_prefix_detail(const char *fmt, ...)
{
    char pre[512], tmp[1024];
    va_list ap; va_start(ap, fmt);
    vsnprintf(pre, sizeof pre, fmt, ap);
    va_end(ap);
    if (g_detail[0]) snprintf(tmp, sizeof tmp, "%.500s: %.520s", pre, g_detail);
    else snprintf(tmp, sizeof tmp, "%s", pre);
    memcpy(g_detail, tmp, sizeof tmp);
}
