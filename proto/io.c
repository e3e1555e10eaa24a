/* io.c - endpoints: readers and writers of frame streams over fds, files, .zst files and
 * ZeroMQ links (DEALER -> ROUTER, heartbeats, an acknowledged end, CURVE keys), abort frames
 * (a failing stage tells its neighbours), and fan-out writers (several endpoints, each gets
 * every frame). The reader enforces the stream grammar: header first, seq 0,1,2,... with no
 * gap, end last with the right frame and row counts, nothing after it on a file or pipe (EOF);
 * EOF before end is PROTO_E_TRUNCATED. A frame may hold at most READ_MAX_OBJECTS msgpack
 * objects, checked before msgpack-c unpacks it. A writer to a plain file writes a temp file that
 * close renames over it only for a complete stream (whole or nothing); data frames carry a
 * CRC32C "crc" on files, .zst files and tcp:// (frame.c packs and checks it). */
#include <dirent.h>
#include <errno.h>
#include <pthread.h>
#include <signal.h>
#include <fcntl.h>
#include <limits.h>
#include <malloc.h>
#include <sys/stat.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>
#include <zmq.h>
#include <zstd.h>
#include "proto.h"

enum ep_type { EP_FD, EP_ZSTD, EP_ZMQ, EP_FAN };   /* EP_FAN: several endpoints (fan-out) */
#define READ_CHUNK (1u << 20)
#define STAGE_CAP (1u << 18)
#define DIRECT_MIN (1u << 16)

/* ---- endpoint strings ---- */
static bool has_prefix(const char *s, const char *p) { return strncmp(s, p, strlen(p)) == 0; }
static bool ends_with(const char *s, const char *x) { size_t a = strlen(s), b = strlen(x); return a >= b && strcmp(s + a - b, x) == 0; }

/* ---- abort frames (PROTOCOL.md §2 "Abort frames") ----
 * The first failure this process met or heard of: its own (proto_abort_note, which proto_fail
 * calls), an abort frame that arrived, or an upstream writer gone. A writer closed incomplete
 * sends it on as {"sf":1,"kind":"abort","stage","reason","frames"}, so every stage downstream
 * names the stage that failed first; a ZeroMQ reader closed before the end sends it upstream. */
#define ABORT_REASON 640
static pthread_mutex_t g_abort_mu = PTHREAD_MUTEX_INITIALIZER;
static char g_stage[64];
static struct { bool set; char stage[64]; char reason[ABORT_REASON]; } g_abort;
void proto_set_stage(const char *name) { snprintf(g_stage, sizeof g_stage, "%s", name ? name : ""); }
static const char *own_stage(void) { return g_stage[0] ? g_stage : "a stage"; }
void proto_abort_note(const char *stage, const char *reason)
{
    pthread_mutex_lock(&g_abort_mu);
    if (!g_abort.set) {
        g_abort.set = true;
        snprintf(g_abort.stage, sizeof g_abort.stage, "%s", stage && *stage ? stage : own_stage());
        snprintf(g_abort.reason, sizeof g_abort.reason, "%s", reason ? reason : "");
    }
    pthread_mutex_unlock(&g_abort_mu);
}
/* A control frame (ack, abort): packed like an end frame under its own kind name, so no seq. */
static void control_frame(struct proto_frame *f, const char *kind)
{
    proto_frame_init(f, PROTO_KIND_END);
    snprintf(f->kind_name, sizeof f->kind_name, "%s", kind);
}
/* The abort frame: the noted failure, else this stage with the reason dflt. */
static int pack_abort(msgpack_packer *pk, uint64_t frames, const char *dflt)
{
    char stage[64], reason[ABORT_REASON];
    pthread_mutex_lock(&g_abort_mu);
    snprintf(stage, sizeof stage, "%s", g_abort.set ? g_abort.stage : own_stage());
    snprintf(reason, sizeof reason, "%s", g_abort.set ? g_abort.reason : dflt);
    pthread_mutex_unlock(&g_abort_mu);
    struct proto_frame f;
    control_frame(&f, "abort");
    proto_frame_set_str(&f, "stage", stage);
    proto_frame_set_str(&f, "reason", reason);
    proto_frame_set_uint(&f, "frames", frames);
    return proto_frame_pack(pk, &f, false, 0);
}
static bool mp_is_kind(const msgpack_object *o, const char *want)
{
    const msgpack_object *k = o && o->type == MSGPACK_OBJECT_MAP ? proto_meta_get(o, "kind") : NULL;
    return k && k->type == MSGPACK_OBJECT_STR && k->via.str.size == strlen(want) && memcmp(k->via.str.ptr, want, k->via.str.size) == 0;
}
static void mp_str(const msgpack_object *map, const char *key, char *dst, size_t cap)
{
    const msgpack_object *o = proto_meta_get(map, key);
    if (!o || o->type != MSGPACK_OBJECT_STR) return;
    size_t n = o->via.str.size < cap - 1 ? o->via.str.size : cap - 1;
    memcpy(dst, o->via.str.ptr, n); dst[n] = 0;
}
/* An abort frame as the detail "upstream STAGE failed after N frames: REASON" (a reader's) or
 * "peer gone: downstream STAGE left after N frames: REASON" (a writer's), noted as the failure.
 * False when obj is not an abort frame. */
static bool abort_detail(const msgpack_object *obj, bool upstream)
{
    if (!mp_is_kind(obj, "abort")) return false;
    char stage[64] = "a stage", reason[ABORT_REASON] = "no reason given";
    uint64_t frames = 0;
    mp_str(obj, "stage", stage, sizeof stage);
    mp_str(obj, "reason", reason, sizeof reason);
    proto_meta_uint(obj, "frames", &frames);
    if (upstream) proto_set_detail("upstream %s failed after %llu frames: %s", stage, (unsigned long long)frames, reason);
    else proto_set_detail("peer gone: downstream %s left after %llu frames: %s", stage, (unsigned long long)frames, reason);
    proto_abort_note(stage, reason);
    return true;
}
/* ---- ZeroMQ links ----
 * Data travels writer DEALER -> reader ROUTER, one frame per message; the reader answers the end
 * frame with an "ack" frame back to the peer that sent it (PROTOCOL.md §2), and the writer's
 * close waits for it. Liveness: ZMTP heartbeats (SAEFLOW_ZMQ_HEARTBEAT s, default 10) drop a
 * dead or unreachable peer; a socket monitor counts the peers that completed a handshake, so a
 * wait never times out while one is connected (a slow producer is alive) and fails as soon as the
 * last one leaves ("peer gone"). SAEFLOW_ZMQ_TIMEOUT bounds only a wait with no peer at all. */
#define ZAP_MAX_KEYS 64
struct zap { void *sock; int n; uint8_t key[ZAP_MAX_KEYS][32]; pthread_t th; bool live; };
#define ZLINK_FDS 32
struct zlink {
    void *ctx, *sock, *mon;
    struct zap *zap;
    int pend[ZLINK_FDS], npend;   /* connections (fds) still in their handshake */
    int live[ZLINK_FDS], nlive;   /* connections that completed it: the peers */
    bool seen, gone;              /* a peer connected; the last one left after that */
    bool binds, refused;          /* refused: (connecting side) the peer refused our CURVE key */
    double idle_since;            /* since when no peer is connected */
    int timeout_s, hb_s, rcvhwm;  /* SAEFLOW_ZMQ_TIMEOUT, _HEARTBEAT, _RCVHWM, read once at open */
    bool reader;                  /* a reader's waits also watch this thread's ZeroMQ writers */
};
/* A stage waiting for input learns at once that a ZeroMQ output of its thread failed (its reader
 * left, or sent an abort frame), instead of at its next write: a reader's waits also poll these
 * writers' sockets. watch_items adds them to a poll set (2 items each, at most WATCH_MAX
 * writers); watch_check says, after a poll, whether one failed (PROTO_E_ZMQ, its detail). */
#define WATCH_MAX 8
static int watch_items(zmq_pollitem_t *it);
static int watch_check(void);
static char g_zmq_keys[4096];
static bool g_zmq_keys_set, g_zmq_insecure;
void proto_zmq_set_keys(const char *dir) { snprintf(g_zmq_keys, sizeof g_zmq_keys, "%s", dir ? dir : ""); g_zmq_keys_set = dir != NULL; }
void proto_zmq_set_insecure(bool on) { g_zmq_insecure = on; }
const char *proto_zmq_keys(void)
{
    const char *e = getenv("SAEFLOW_ZMQ_KEYS");
    const char *d = g_zmq_keys_set ? g_zmq_keys : e;
    return d && *d ? d : NULL;
}
static double now_s(void)
{
    struct timespec ts;
    clock_gettime(CLOCK_MONOTONIC, &ts);
    return (double)ts.tv_sec + ts.tv_nsec * 1e-9;
}
static int env_seconds(const char *name, int dflt)
{
    const char *e = getenv(name);
    long s = e ? strtol(e, NULL, 10) : dflt;
    return s <= 0 || s > 86400 ? dflt : (int)s;
}
static void zlink_env(struct zlink *l, bool writer)
{
    const char *e = getenv("SAEFLOW_ZMQ_RCVHWM");
    l->timeout_s = env_seconds("SAEFLOW_ZMQ_TIMEOUT", 600);
    l->hb_s = env_seconds("SAEFLOW_ZMQ_HEARTBEAT", 10);
    l->rcvhwm = writer ? 4 : e ? atoi(e) : 16;
}

/* An endpoint as ZeroMQ takes it: "tcp://@ADDR:P" binds ADDR, a host of "*" binds every
 * interface, any other tcp host connects; ipc:// binds on the writer side. */
struct zep { char addr[300]; bool tcp, bind, loopback; };
static int zep_parse(const char *ep, bool writer, struct zep *z)
{
    memset(z, 0, sizeof *z);
    if (has_prefix(ep, "ipc://")) { snprintf(z->addr, sizeof z->addr, "%s", ep); z->bind = writer; z->loopback = true; return PROTO_OK; }
    if (!has_prefix(ep, "tcp://")) { proto_set_detail("%s: unsupported endpoint", ep); return PROTO_E_ENDPOINT; }
    const char *host = ep + 6;
    z->tcp = true;
    if (*host == '@') { host++; z->bind = true; }
    else z->bind = *host == '*';
    const char *colon = strrchr(host, ':');
    if (!colon || colon == host || !colon[1] || strlen(host) >= sizeof z->addr - 8) { proto_set_detail("%s: expected tcp://HOST:PORT, tcp://@ADDR:PORT or tcp://*:PORT", ep); return PROTO_E_ENDPOINT; }
    snprintf(z->addr, sizeof z->addr, "tcp://%s", host);
    size_t hl = (size_t)(colon - host);
    z->loopback = has_prefix(host, "127.") || (hl == 5 && has_prefix(host, "[::1]")) || (hl == 2 && has_prefix(host, "lo"))
                  || (hl == 9 && has_prefix(host, "localhost"));
    return PROTO_OK;
}
int proto_zmq_check_exposure(const char *ep)
{
    struct zep z;
    if (!ep || (!has_prefix(ep, "tcp://") && !has_prefix(ep, "ipc://"))) return PROTO_OK;
    int err = zep_parse(ep, false, &z);
    if (err) return err;
    if (!z.tcp || !z.bind || z.loopback || proto_zmq_keys() || g_zmq_insecure) return PROTO_OK;
    proto_set_detail("%s: binds a non-loopback address without keys (give --keys DIR, or --insecure to expose an unauthenticated stream)", ep);
    return PROTO_E_ENDPOINT;
}

/* ---- CURVE keys (Z85 text files, one key a line) and the ZAP handler ---- */
static int read_key(const char *dir, const char *file, char out[41])
{
    char path[4200], *text = NULL;
    size_t n = 0;
    snprintf(path, sizeof path, "%s/%s", dir, file);
    int err = proto_read_file(path, &text, &n);
    if (err) { proto_prefix_detail("cannot read key"); return err; }   /* keeps its "PATH: why" */
    while (n && (text[n - 1] == '\n' || text[n - 1] == '\r' || text[n - 1] == ' ')) text[--n] = 0;
    uint8_t bin[32];
    bool ok = n == 40 && zmq_z85_decode(bin, text) != NULL;
    if (ok) memcpy(out, text, 41);
    free(text);
    if (!ok) { proto_set_detail("%s: not a Z85 CURVE key (40 characters)", path); return PROTO_E_FORMAT; }
    return PROTO_OK;
}
static int zap_load(struct zap *z, const char *dir)
{
    DIR *d = opendir(dir);
    if (!d) { proto_set_detail("%s: %s", dir, strerror(errno)); return PROTO_E_IO; }
    struct dirent *e;
    int err = PROTO_OK;
    while (!err && (e = readdir(d))) {
        if (!has_prefix(e->d_name, "client") || !ends_with(e->d_name, ".pub")) continue;
        char k[41];
        if ((err = read_key(dir, e->d_name, k))) break;
        if (z->n == ZAP_MAX_KEYS) { proto_set_detail("%s: more than %d client keys", dir, ZAP_MAX_KEYS); err = PROTO_E_FORMAT; break; }
        zmq_z85_decode(z->key[z->n++], k);
    }
    closedir(d);
    if (!err && z->n == 0) { proto_set_detail("%s: no client*.pub key (sf-cat --keygen makes one)", dir); err = PROTO_E_FORMAT; }
    return err;
}
static bool zap_allowed(const struct zap *z, zmq_msg_t *part, int n)
{
    if (n < 7 || zmq_msg_size(&part[5]) != 5 || memcmp(zmq_msg_data(&part[5]), "CURVE", 5) != 0) return false;
    if (zmq_msg_size(&part[6]) != 32) return false;
    for (int i = 0; i < z->n; i++) if (memcmp(z->key[i], zmq_msg_data(&part[6]), 32) == 0) return true;
    return false;
}
/* ZAP (RFC 27): a request of 6+ parts (version, id, domain, address, identity, mechanism,
 * credentials); the reply is version, id, status, text, user id, metadata. Ends when the
 * context is terminated. */
static void *zap_main(void *arg)
{
    struct zap *z = arg;
    for (;;) {
        zmq_msg_t part[8];
        int n = 0, more = 1;
        while (more) {
            zmq_msg_t *m = &part[n < 8 ? n : 7];
            if (n >= 8) zmq_msg_close(m);
            zmq_msg_init(m);
            if (zmq_msg_recv(m, z->sock, 0) < 0) { zmq_msg_close(m); for (int i = 0; i < n && i < 7; i++) zmq_msg_close(&part[i]); goto out; }
            more = zmq_msg_more(m);
            if (n < 8) n++;
        }
        bool ok = n >= 2 && zap_allowed(z, part, n);
        zmq_send(z->sock, "1.0", 3, ZMQ_SNDMORE);
        zmq_send(z->sock, zmq_msg_data(&part[1]), zmq_msg_size(&part[1]), ZMQ_SNDMORE);
        zmq_send(z->sock, ok ? "200" : "400", 3, ZMQ_SNDMORE);
        zmq_send(z->sock, ok ? "OK" : "unknown client key", ok ? 2 : 18, ZMQ_SNDMORE);
        zmq_send(z->sock, "", 0, ZMQ_SNDMORE);
        zmq_send(z->sock, "", 0, 0);
        for (int i = 0; i < n; i++) zmq_msg_close(&part[i]);
    }
out:
    zmq_close(z->sock);
    return NULL;
}
static int zap_start(struct zlink *l, const char *dir)
{
    if (!(l->zap = calloc(1, sizeof *l->zap))) return PROTO_E_NOMEM;
    int err = zap_load(l->zap, dir);
    if (err) return err;
    if (!(l->zap->sock = zmq_socket(l->ctx, ZMQ_REP)) || zmq_bind(l->zap->sock, "inproc://zeromq.zap.01") != 0) {
        proto_set_detail("ZAP handler: %s", zmq_strerror(errno));
        return PROTO_E_ZMQ;
    }
    if (pthread_create(&l->zap->th, NULL, zap_main, l->zap) != 0) { zmq_close(l->zap->sock); l->zap->sock = NULL; proto_set_detail("ZAP handler: cannot start a thread"); return PROTO_E_ZMQ; }
    l->zap->live = true;
    return PROTO_OK;
}
/* The binding side is the CURVE server (server.secret; clients from client*.pub, checked by the
 * ZAP handler), the connecting side its client (server.pub, client.pub, client.secret). */
static int zlink_curve(struct zlink *l, const struct zep *z, const char *dir)
{
    char a[41], b[41], c[41];
    int err, one = 1;
    if (z->bind) {
        if ((err = read_key(dir, "server.secret", a)) || (err = zap_start(l, dir))) return err;
        zmq_setsockopt(l->sock, ZMQ_CURVE_SERVER, &one, sizeof one);
        zmq_setsockopt(l->sock, ZMQ_CURVE_SECRETKEY, a, 40);
        return PROTO_OK;
    }
    if ((err = read_key(dir, "server.pub", a)) || (err = read_key(dir, "client.pub", b)) || (err = read_key(dir, "client.secret", c))) return err;
    zmq_setsockopt(l->sock, ZMQ_CURVE_SERVERKEY, a, 40);
    zmq_setsockopt(l->sock, ZMQ_CURVE_PUBLICKEY, b, 40);
    zmq_setsockopt(l->sock, ZMQ_CURVE_SECRETKEY, c, 40);
    return PROTO_OK;
}

/* Socket options: heartbeats, high-water marks, linger, and a ZAP domain, which also makes
 * libzmq refuse ZMTP 1.0/2.0 peers (handshake-less bytes on the port). */
static void zlink_options(struct zlink *l, bool writer)
{
    int hb = l->hb_s * 1000, ivl = hb / 5 > 100 ? hb / 5 : 100;
    int hwm = l->rcvhwm, linger = writer ? 1000 : 5000;
    zmq_setsockopt(l->sock, ZMQ_HEARTBEAT_IVL, &ivl, sizeof ivl);
    zmq_setsockopt(l->sock, ZMQ_HEARTBEAT_TIMEOUT, &hb, sizeof hb);
    zmq_setsockopt(l->sock, ZMQ_HEARTBEAT_TTL, &hb, sizeof hb);
    zmq_setsockopt(l->sock, writer ? ZMQ_SNDHWM : ZMQ_RCVHWM, &hwm, sizeof hwm);
    zmq_setsockopt(l->sock, ZMQ_LINGER, &linger, sizeof linger);
    zmq_setsockopt(l->sock, ZMQ_ZAP_DOMAIN, "saeflow", 7);
    if (!writer) { int one = 1; zmq_setsockopt(l->sock, ZMQ_ROUTER_MANDATORY, &one, sizeof one); }
}
static int zlink_monitor(struct zlink *l)
{
    char name[64];
    snprintf(name, sizeof name, "inproc://saeflow-mon-%p", (void *)l);
    int ev = ZMQ_EVENT_CONNECTED | ZMQ_EVENT_ACCEPTED | ZMQ_EVENT_HANDSHAKE_SUCCEEDED | ZMQ_EVENT_DISCONNECTED
             | ZMQ_EVENT_HANDSHAKE_FAILED_AUTH;
    if (zmq_socket_monitor(l->sock, name, ev) != 0 || !(l->mon = zmq_socket(l->ctx, ZMQ_PAIR)) || zmq_connect(l->mon, name) != 0) {
        proto_set_detail("zmq_socket_monitor: %s", zmq_strerror(errno));
        return PROTO_E_ZMQ;
    }
    return PROTO_OK;
}
static int zlink_open(struct zlink *l, const char *ep, bool writer)
{
    struct zep z;
    int err = zep_parse(ep, writer, &z);
    if (err) return err;
    if ((err = proto_zmq_check_exposure(ep))) return err;
    l->idle_since = now_s();
    l->binds = z.bind;
    l->reader = !writer;
    zlink_env(l, writer);
    if (!(l->ctx = zmq_ctx_new())) { proto_set_detail("zmq_ctx_new: %s", zmq_strerror(errno)); return PROTO_E_ZMQ; }
    if (!(l->sock = zmq_socket(l->ctx, writer ? ZMQ_DEALER : ZMQ_ROUTER))) { proto_set_detail("zmq_socket: %s", zmq_strerror(errno)); return PROTO_E_ZMQ; }
    zlink_options(l, writer);
    const char *keys = proto_zmq_keys();
    if (z.tcp && keys && (err = zlink_curve(l, &z, keys))) return err;
    if ((err = zlink_monitor(l))) return err;
    if ((z.bind ? zmq_bind(l->sock, z.addr) : zmq_connect(l->sock, z.addr)) != 0) { proto_set_detail("%s: %s", ep, zmq_strerror(errno)); return PROTO_E_ZMQ; }
    return PROTO_OK;
}
static void zlink_close(struct zlink *l)
{
    if (l->mon) zmq_close(l->mon);
    if (l->sock) zmq_close(l->sock);
    if (l->ctx) zmq_ctx_term(l->ctx);
    if (l->zap && l->zap->live) pthread_join(l->zap->th, NULL);
    else if (l->zap && l->zap->sock) zmq_close(l->zap->sock);
    free(l->zap);
    memset(l, 0, sizeof *l);
}
/* Peers by connection (fd): CONNECTED/ACCEPTED put the fd in pend, HANDSHAKE_SUCCEEDED (which
 * names no fd) moves the oldest pending one to live, DISCONNECTED removes the fd. A connection
 * that never completes a handshake (garbage, a ZMTP 1.0 peer, a refused key) never becomes a
 * peer; a reader also marks live the fd each message came from (ZMQ_SRCFD). */
static bool fd_del(int *set, int *n, int fd)
{
    for (int i = 0; i < *n; i++)
        if (set[i] == fd) { memmove(set + i, set + i + 1, (size_t)(*n - i - 1) * sizeof *set); (*n)--; return true; }
    return false;
}
static void fd_add(int *set, int *n, int fd)
{
    fd_del(set, n, fd);
    if (*n == ZLINK_FDS) fd_del(set, n, set[0]);
    set[(*n)++] = fd;
}
static void zlink_mark_live(struct zlink *l, int fd)
{
    fd_del(l->pend, &l->npend, fd);
    for (int i = 0; i < l->nlive; i++) if (l->live[i] == fd) return;
    fd_add(l->live, &l->nlive, fd);
    l->seen = true;
}
static void zlink_event(struct zlink *l, unsigned ev, int fd)
{
    if (ev == ZMQ_EVENT_CONNECTED || ev == ZMQ_EVENT_ACCEPTED) fd_add(l->pend, &l->npend, fd);
    else if (ev == ZMQ_EVENT_HANDSHAKE_SUCCEEDED && l->npend) zlink_mark_live(l, l->pend[0]);
    else if (ev == ZMQ_EVENT_HANDSHAKE_FAILED_AUTH && !l->binds) l->refused = true;
    else if (ev == ZMQ_EVENT_DISCONNECTED) {
        fd_del(l->pend, &l->npend, fd);
        if (fd_del(l->live, &l->nlive, fd) && l->nlive == 0) { l->idle_since = now_s(); l->gone = true; }
    }
}
static void zlink_events(struct zlink *l)
{
    for (;;) {
        zmq_msg_t m;
        zmq_msg_init(&m);
        if (zmq_msg_recv(&m, l->mon, ZMQ_DONTWAIT) < 0) { zmq_msg_close(&m); return; }
        uint16_t ev = 0;
        uint32_t val = 0;
        if (zmq_msg_size(&m) >= 6) { memcpy(&ev, zmq_msg_data(&m), 2); memcpy(&val, (char *)zmq_msg_data(&m) + 2, 4); }
        while (zmq_msg_more(&m)) { zmq_msg_close(&m); zmq_msg_init(&m); if (zmq_msg_recv(&m, l->mon, 0) < 0) break; }
        zmq_msg_close(&m);
        zlink_event(l, ev, (int)val);
    }
}
/* After an abort frame: waits up to `seconds` for the peer to leave (it does once it has read the
 * frame), so closing does not race the frame: libzmq drops what a departed peer's connection
 * still holds unread. */
static void zlink_await_departure(struct zlink *l, double seconds)
{
    double t_end = now_s() + seconds;
    for (zlink_events(l); l->nlive > 0 && now_s() < t_end; zlink_events(l)) {
        zmq_pollitem_t it = {l->mon, 0, ZMQ_POLLIN, 0};
        zmq_poll(&it, 1, 50);
    }
}
static const char zw_refused[] = "refused: the binding side does not know this client key (its DIR/client*.pub)";
enum { ZW_READY = 0, ZW_GONE = 1, ZW_TIMEOUT = 2, ZW_REFUSED = 3 };
/* Waits until the socket can take (ZMQ_POLLOUT) or give (ZMQ_POLLIN) a message: for ever while a
 * peer is connected, SAEFLOW_ZMQ_TIMEOUT seconds while none is. What is already queued is
 * received before a departed peer is reported; a writer stops sending at once. */
static int zlink_wait(struct zlink *l, short ev)
{
    for (;;) {
        zlink_events(l);
        bool gone = l->gone, none = l->nlive == 0;
        if (gone && ev == ZMQ_POLLOUT) return ZW_GONE;
        if (l->refused && l->nlive == 0) return ZW_REFUSED;
        long left = (long)((l->idle_since + l->timeout_s - now_s()) * 1000);
        long wait = gone ? 0 : !none ? -1 : left < 0 ? 0 : left;
        zmq_pollitem_t it[2 + 2 * WATCH_MAX] = {{l->sock, 0, ev, 0}, {l->mon, 0, ZMQ_POLLIN, 0}};
        int n = 2 + (l->reader ? watch_items(it + 2) : 0);
        int rc = zmq_poll(it, n, wait);
        if (rc < 0 && errno != EINTR) { proto_set_detail("zmq_poll: %s", zmq_strerror(errno)); return PROTO_E_ZMQ; }
        if (rc > 0 && (it[0].revents & ev)) return ZW_READY;
        if (n > 2 && (rc = watch_check()) < 0) return rc;   /* an output failed while we waited */
        if (gone) return ZW_GONE;
        if (none && left <= 0 && !(it[1].revents & ZMQ_POLLIN)) return ZW_TIMEOUT;
    }
}
/* The error of a wait that did not end ready (r: zlink_wait's result): a refused key, a timeout
 * with no peer (waiting: for what), or a departed peer: the error gone_err with the detail
 * "peer gone: <gone>" (gone NULL: the caller has set the detail). */
static int zwait_fail(const struct zlink *l, int r, const char *waiting, const char *gone, int gone_err)
{
    if (r < 0) return r;
    if (r == ZW_REFUSED) { proto_set_detail("%s", zw_refused); return PROTO_E_ZMQ; }
    if (r == ZW_TIMEOUT) { proto_set_detail("%s: none connected for %d s (SAEFLOW_ZMQ_TIMEOUT)", waiting, l->timeout_s); return PROTO_E_TIMEOUT; }
    if (gone) proto_set_detail("peer gone: %s", gone);
    return gone_err;
}

/* ================= reader ================= */
struct proto_reader {
    char name[256];
    enum ep_type type;
    int fd; bool own_fd;
    ZSTD_DStream *zd;
    unsigned char *zin; size_t zin_len, zin_pos; bool zin_eof; size_t zlast;
    struct zlink z; zmq_msg_t msg; bool msg_live;
    unsigned char peer[256]; size_t peer_len;   /* zmq: the routing id of the last message's sender */
    uint64_t total_rows, first_rows;            /* zmq: header meta total_rows, rows of frame 0 (messages) */
    char upstream[64];                          /* the writing stage: the last of the header's meta.stages */
    bool aborted;                               /* an abort frame arrived (its writer has failed) */
    char *buf; size_t start, len, cap;   /* fd/zstd: bytes [start, len) not yet parsed */
    msgpack_unpacked res;
    struct proto_slots slots;
    int state;               /* 0: expect header, 1: data, 2: after end */
    uint64_t frames, rows;
};

static struct proto_reader *reader_new(const char *name)
{
    struct proto_reader *r = calloc(1, sizeof *r);
    if (!r) return NULL;
    snprintf(r->name, sizeof r->name, "%s", name);
    r->fd = -1;
    msgpack_unpacked_init(&r->res);
    return r;
}

static void grow_pipe(int fd)
{
#ifdef F_SETPIPE_SZ
    fcntl(fd, F_SETPIPE_SZ, 1 << 20);   /* fewer, larger reads and writes; best effort */
#else
    (void)fd;
#endif
}

static int reader_stream_init(struct proto_reader *r)
{
    r->cap = 2 * READ_CHUNK;
    if (!(r->buf = proto_aligned_alloc(r->cap))) return PROTO_E_NOMEM;
    grow_pipe(r->fd);
    if (r->type == EP_ZSTD) {
        if (!(r->zd = ZSTD_createDStream()) || !(r->zin = malloc(ZSTD_DStreamInSize()))) return PROTO_E_NOMEM;
        ZSTD_initDStream(r->zd);
    }
    return PROTO_OK;
}

struct proto_reader *proto_reader_open_fd(int fd, const char *name, int *err)
{
    struct proto_reader *r = reader_new(name);
    if (!r) { *err = PROTO_E_NOMEM; return NULL; }
    r->type = EP_FD; r->fd = fd;
    if ((*err = reader_stream_init(r)) != PROTO_OK) { proto_reader_close(r); return NULL; }
    return r;
}

struct proto_reader *proto_reader_open(const char *ep, int *err)
{
    proto_clear_detail();
    if (!ep || !*ep) { *err = PROTO_E_ENDPOINT; proto_set_detail("empty endpoint"); return NULL; }
    if (strcmp(ep, "-") == 0) { struct proto_reader *r = proto_reader_open_fd(0, "stdin", err); return r; }
    struct proto_reader *r = reader_new(ep);
    if (!r) { *err = PROTO_E_NOMEM; return NULL; }
    if (has_prefix(ep, "tcp://") || has_prefix(ep, "ipc://")) {
        r->type = EP_ZMQ;
        if ((*err = zlink_open(&r->z, ep, false)) != PROTO_OK) { proto_reader_close(r); return NULL; }
        return r;
    }
    r->type = ends_with(ep, ".zst") ? EP_ZSTD : EP_FD;
    r->fd = open(ep, O_RDONLY | O_CLOEXEC);
    if (r->fd < 0) { proto_set_detail("%s", strerror(errno)); *err = PROTO_E_IO; proto_reader_close(r); return NULL; }
    r->own_fd = true;
    if ((*err = reader_stream_init(r)) != PROTO_OK) { proto_reader_close(r); return NULL; }
    return r;
}

static ssize_t read_some(int fd, void *buf, size_t n)
{
    for (;;) {
        ssize_t k = read(fd, buf, n);
        if (k >= 0 || errno != EINTR) return k;
    }
}

/* Size of the msgpack object at p[0..n): > 0 when it is all there, 0 when more bytes are
 * needed, PROTO_E_PARSE for a byte that starts no msgpack object. Only headers are looked at
 * (bins and strings are skipped by length), so rescanning a partial frame is cheap. */
#define ALIGN_MIN_BIN (1u << 16)   /* bins this large are received 64-byte aligned */
/* At most this many msgpack objects (every value, key, array and map counts one) in one frame:
 * msgpack-c's unpacker takes 24 bytes per object (a 20 MB frame of nils took 490 MB), so a frame
 * costs at most ~1.6 MB beyond its own bytes. Real frames hold a few dozen (tensors are bins). */
#define READ_MAX_OBJECTS (1u << 16)
#define MP_TOO_MANY (-1000)         /* mp_size: over READ_MAX_OBJECTS (no proto error code) */
static long long mp_size(const unsigned char *p, size_t n, size_t *big_body)
{
    *big_body = 0;
    size_t pos = 0;
    uint64_t pending = 1, objs = 0;
    while (pending) {
        if (++objs > READ_MAX_OBJECTS) return MP_TOO_MANY;
        if (pos >= n) return 0;
        unsigned b = p[pos];
        uint64_t hs = 1, body = 0, add = 0;
        int lenbytes = 0;
        if (b <= 0x7f || b >= 0xe0 || (b >= 0xc0 && b <= 0xc3 && b != 0xc1)) hs = 1;
        else if (b >= 0x80 && b <= 0x8f) add = 2 * (b & 0x0f);
        else if (b >= 0x90 && b <= 0x9f) add = b & 0x0f;
        else if (b >= 0xa0 && b <= 0xbf) body = b & 0x1f;
        else switch (b) {
            case 0xc4: case 0xd9: lenbytes = 1; break;          /* bin8 / str8 */
            case 0xc5: case 0xda: lenbytes = 2; break;
            case 0xc6: case 0xdb: lenbytes = 4; break;
            case 0xc7: lenbytes = 1; body = 1; break;           /* ext: + type byte */
            case 0xc8: lenbytes = 2; body = 1; break;
            case 0xc9: lenbytes = 4; body = 1; break;
            case 0xca: case 0xce: case 0xd2: hs = 5; break;
            case 0xcb: case 0xcf: case 0xd3: hs = 9; break;
            case 0xcc: case 0xd0: hs = 2; break;
            case 0xcd: case 0xd1: hs = 3; break;
            case 0xd4: hs = 3; break; case 0xd5: hs = 4; break; case 0xd6: hs = 6; break;
            case 0xd7: hs = 10; break; case 0xd8: hs = 18; break;
            case 0xdc: case 0xde: lenbytes = 2; break;
            case 0xdd: case 0xdf: lenbytes = 4; break;
            default: return PROTO_E_PARSE;                      /* 0xc1 */
        }
        if (lenbytes) {
            if (pos + 1 + lenbytes > n) return 0;
            uint64_t v = 0;
            for (int i = 0; i < lenbytes; i++) v = v << 8 | p[pos + 1 + i];
            hs = 1 + (uint64_t)lenbytes;
            if (b == 0xdc || b == 0xdd) add = v;
            else if (b == 0xde || b == 0xdf) add = 2 * v;
            else body += v;
        }
        if (body >= ALIGN_MIN_BIN && pos + hs + body > n && pos + hs <= n && !*big_body) *big_body = pos + hs;
        pos += hs + body;
        pending += add;
        pending--;
        if (pos > n && pending == 0) return 0;
    }
    return pos <= n ? (long long)pos : 0;
}

/* Waits for fd to be readable while this thread has ZeroMQ writers to watch (watch_items). */
static int watch_fd(int fd)
{
    for (;;) {
        zmq_pollitem_t it[1 + 2 * WATCH_MAX] = {{NULL, fd, ZMQ_POLLIN, 0}};
        int n = 1 + watch_items(it + 1);
        if (n == 1) return PROTO_OK;
        int rc = zmq_poll(it, n, -1), err = watch_check();
        if (err < 0) return err;
        if ((rc < 0 && errno != EINTR) || (rc > 0 && it[0].revents)) return PROTO_OK;   /* read() says the rest */
    }
}
/* more bytes into r->buf: >0 bytes, 0 EOF, <0 error code. The buffer is 64-byte aligned and
 * compaction keeps r->start modulo 64, so a bin body placed on a 64-byte boundary stays there. */
static long read_more(struct proto_reader *r)
{
    if (r->start >= 64 && (r->start == r->len || r->cap - r->len < READ_CHUNK)) {
        size_t keep = r->start % 64;
        memmove(r->buf + keep, r->buf + r->start, r->len - r->start);
        r->len -= r->start - keep; r->start = keep;
    }
    if (r->cap - r->len < READ_CHUNK) {
        size_t cap = r->cap * 2;
        char *nb = proto_aligned_alloc(cap);
        if (!nb) return PROTO_E_NOMEM;
        memcpy(nb, r->buf, r->len);
        free(r->buf);
        r->buf = nb; r->cap = cap;
    }
    char *dst = r->buf + r->len;
    size_t cap = r->cap - r->len;
    int werr = watch_fd(r->fd);
    if (werr) return werr;
    if (r->type == EP_FD) {
        ssize_t k = read_some(r->fd, dst, cap);
        if (k < 0) { proto_set_detail("read: %s", strerror(errno)); return PROTO_E_IO; }
        r->len += (size_t)k;
        return (long)k;
    }
    /* zstd: decompress until some output or EOF */
    ZSTD_outBuffer out = {dst, cap, 0};
    while (out.pos == 0) {
        if (r->zin_pos == r->zin_len) {
            if (r->zin_eof) {
                if (r->zlast != 0) { proto_set_detail("zstd stream is truncated"); return PROTO_E_TRUNCATED; }
                return 0;
            }
            ssize_t k = read_some(r->fd, r->zin, ZSTD_DStreamInSize());
            if (k < 0) { proto_set_detail("read: %s", strerror(errno)); return PROTO_E_IO; }
            if (k == 0) { r->zin_eof = true; continue; }
            r->zin_len = (size_t)k; r->zin_pos = 0;
        }
        ZSTD_inBuffer in = {r->zin, r->zin_len, r->zin_pos};
        size_t z = ZSTD_decompressStream(r->zd, &out, &in);
        r->zin_pos = in.pos;
        if (ZSTD_isError(z)) { proto_set_detail("zstd: %s", ZSTD_getErrorName(z)); return PROTO_E_ZSTD; }
        r->zlast = z;
    }
    r->len += out.pos;
    return (long)out.pos;
}

/* mp_size's failures and msgpack_unpack_next's, with a detail. */
static int mp_fail(const struct proto_reader *r, long long code)
{
    unsigned long long k = (unsigned long long)r->frames;
    if (code == MP_TOO_MANY) {
        proto_set_detail("after %llu data frames: a frame of more than %u msgpack objects (the bound per frame)", k, READ_MAX_OBJECTS);
        return PROTO_E_SCHEMA;
    }
    if (code == MSGPACK_UNPACK_NOMEM_ERROR) {   /* msgpack-c says so for nesting over 32 levels too */
        proto_set_detail("after %llu data frames: msgpack nested deeper than 32 levels, or out of memory", k);
        return PROTO_E_PARSE;
    }
    proto_set_detail("after %llu data frames: bytes are not msgpack", k);
    return PROTO_E_PARSE;
}

/* "after 29 of 64 frames" when the header's total_rows and frame 0's rows tell the total; noted
 * as the failure of the upstream stage (named by the header), which abort frames carry on. */
static void reader_gone_detail(const struct proto_reader *r)
{
    unsigned long long k = (unsigned long long)r->frames;
    char what[160], of[48] = "";
    if (r->total_rows && r->first_rows) snprintf(of, sizeof of, " of %llu", (unsigned long long)((r->total_rows + r->first_rows - 1) / r->first_rows));
    if (r->state == 0) snprintf(what, sizeof what, "disconnected (or missed heartbeats for %d s) before the header", r->z.hb_s);
    else snprintf(what, sizeof what, "disconnected (or missed heartbeats for %d s) after %llu%s frames", r->z.hb_s, k, of);
    char stage[96];
    if (r->upstream[0]) snprintf(stage, sizeof stage, "%s", r->upstream);
    else snprintf(stage, sizeof stage, "the writer of %.60s", r->name);
    proto_abort_note(stage, what);
    if (r->upstream[0]) proto_set_detail("peer gone: the writer (%s) %s", r->upstream, what);
    else proto_set_detail("peer gone: the writer %s", what);
}
/* one message [routing id, frame] from the ROUTER into r->msg */
static int zmq_next_msg(struct proto_reader *r)
{
    if (r->msg_live) zmq_msg_close(&r->msg);
    zmq_msg_init(&r->msg); r->msg_live = true;
    for (;;) {
        int w = zlink_wait(&r->z, ZMQ_POLLIN);
        if (w != ZW_READY) {
            if (w == ZW_GONE) reader_gone_detail(r);
            return zwait_fail(&r->z, w, "waiting for a writer", NULL, PROTO_E_TRUNCATED);
        }
        zmq_msg_t id;
        zmq_msg_init(&id);
        if (zmq_msg_recv(&id, r->z.sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&id);
            if (errno == EAGAIN || errno == EINTR) continue;
            proto_set_detail("zmq_msg_recv: %s", zmq_strerror(errno)); return PROTO_E_ZMQ;
        }
        bool more = zmq_msg_more(&id);
        r->peer_len = zmq_msg_size(&id) < sizeof r->peer ? zmq_msg_size(&id) : 0;
        memcpy(r->peer, zmq_msg_data(&id), r->peer_len);
        zmq_msg_close(&id);
        if (!more || zmq_msg_recv(&r->msg, r->z.sock, 0) < 0) { proto_set_detail("a message without a frame"); return PROTO_E_PARSE; }
        int fd = zmq_msg_get(&r->msg, ZMQ_SRCFD);
        if (fd >= 0) zlink_mark_live(&r->z, fd);
        if (zmq_msg_more(&r->msg)) { proto_set_detail("after %llu data frames: a message of several parts", (unsigned long long)r->frames); return PROTO_E_PARSE; }
        return PROTO_OK;
    }
}
/* A control frame to the sender of the last message: the close handshake's
 * {"sf":1,"kind":"ack","frames":N} after the end frame, or an abort frame when the reader is
 * closed before it. Never waits: a writer gone by now fails on its side. */
static void reader_send_control(struct proto_reader *r, bool ack)
{
    zlink_events(&r->z);
    if (!r->peer_len || r->z.nlive == 0) return;   /* the writer is gone: nothing to tell, no linger */
    msgpack_sbuffer sb; msgpack_sbuffer_init(&sb);
    msgpack_packer pk; msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    struct proto_frame f;
    control_frame(&f, "ack");
    proto_frame_set_uint(&f, "frames", r->frames);
    int err = ack ? proto_frame_pack(&pk, &f, false, 0) : pack_abort(&pk, r->frames, "it stopped reading before the end frame");
    int linger = 1000;   /* an abort is news, not a duty: a writer leaving just now does not hold us 5 s */
    if (!ack) zmq_setsockopt(r->z.sock, ZMQ_LINGER, &linger, sizeof linger);
    if (!err && zmq_send(r->z.sock, r->peer, r->peer_len, ZMQ_SNDMORE | ZMQ_DONTWAIT) >= 0
        && zmq_send(r->z.sock, sb.data, sb.size, ZMQ_DONTWAIT) >= 0 && !ack)
        zlink_await_departure(&r->z, 1);   /* a writer busy computing hears it at its next frame */
    msgpack_sbuffer_destroy(&sb);
}

static int next_object(struct proto_reader *r, const msgpack_object **obj)
{
    if (r->type == EP_ZMQ) {
        int err = zmq_next_msg(r);
        if (err) return err;
        size_t off = 0, size = zmq_msg_size(&r->msg), big;
        long long need = mp_size(zmq_msg_data(&r->msg), size, &big);   /* the object bound, before unpacking */
        if (need == MP_TOO_MANY) return mp_fail(r, need);
        msgpack_unpack_return ret = need <= 0 ? MSGPACK_UNPACK_PARSE_ERROR : msgpack_unpack_next(&r->res, zmq_msg_data(&r->msg), size, &off);
        if (ret == MSGPACK_UNPACK_NOMEM_ERROR) return mp_fail(r, ret);
        if (ret != MSGPACK_UNPACK_SUCCESS || off != size) { proto_set_detail("message of %zu bytes is not one msgpack frame", size); return PROTO_E_PARSE; }
        *obj = &r->res.data;
        return PROTO_OK;
    }
    for (;;) {
        size_t big = 0;
        long long size = mp_size((const unsigned char *)r->buf + r->start, r->len - r->start, &big);
        if (size == 0 && big && (r->start + big) % 64 != 0) {
            /* a large bin is arriving: move the partial frame so its body lands 64-byte aligned
             * and the frame parser can use it in place instead of copying it */
            size_t to = (64 - big % 64) % 64, n = r->len - r->start;
            if (to + n + READ_CHUNK > r->cap) { /* read_more grows it; align next time round */ }
            else { memmove(r->buf + to, r->buf + r->start, n); r->start = to; r->len = to + n; }
        }
        if (size < 0) return mp_fail(r, size);
        if (size > 0) {
            size_t off = 0;
            msgpack_unpack_return ret = msgpack_unpack_next(&r->res, r->buf + r->start, (size_t)size, &off);
            if (ret != MSGPACK_UNPACK_SUCCESS || off != (size_t)size) return mp_fail(r, ret);
            r->start += (size_t)size;   /* the objects point into buf until the next read_more */
            *obj = &r->res.data;
            return PROTO_OK;
        }
        long k = read_more(r);
        if (k < 0) return (int)k;
        if (k == 0) {
            bool mid = r->len > r->start;
            proto_set_detail("stream ended %safter %llu data frames without an end frame",
                             mid ? "in the middle of a frame " : "", (unsigned long long)r->frames);
            return PROTO_E_TRUNCATED;
        }
    }
}

/* After the end frame a file or pipe must be at EOF: one more byte is a second stream or garbage
 * that would otherwise be dropped unseen (ZeroMQ is not checked: a message after the end could
 * only be seen by waiting for it). */
static int check_eof_after_end(struct proto_reader *r)
{
    if (r->type == EP_ZMQ) return PROTO_OK;
    for (;;) {
        if (r->len > r->start) {
            proto_set_detail("data after the end frame (at least %zu bytes after %llu data frames)",
                             r->len - r->start, (unsigned long long)r->frames);
            return PROTO_E_SEQ;
        }
        long k = read_more(r);
        if (k <= 0) return (int)k;
    }
}

/* The end frame's counts against what arrived; then nothing may follow it. */
static int check_end(struct proto_reader *r, struct proto_frame *end)
{
    const struct proto_value *fr = proto_frame_get(end, "frames"), *rows = proto_frame_get(end, "rows");
    if (fr->u != r->frames) {
        proto_set_detail("end frame counts %llu frames, %llu arrived", (unsigned long long)fr->u, (unsigned long long)r->frames);
        return PROTO_E_SEQ;
    }
    if (rows && (rows->type != PROTO_V_UINT || rows->u != r->rows)) {
        if (rows->type != PROTO_V_UINT) proto_set_detail("end frame 'rows' is not a uint");
        else proto_set_detail("end frame counts %llu rows, %llu arrived in %llu data frames", (unsigned long long)rows->u,
                              (unsigned long long)r->rows, (unsigned long long)r->frames);
        return PROTO_E_SEQ;
    }
    return check_eof_after_end(r);
}

/* What a reader keeps of the header: total_rows, and the writing stage's name (meta.stages). */
static void reader_header_meta(struct proto_reader *r, const msgpack_object *meta)
{
    proto_meta_uint(meta, "total_rows", &r->total_rows);
    const msgpack_object *st = proto_meta_get(meta, "stages");
    if (st && st->type == MSGPACK_OBJECT_ARRAY && st->via.array.size)
        mp_str(&st->via.array.ptr[st->via.array.size - 1], "name", r->upstream, sizeof r->upstream);
}

int proto_reader_next(struct proto_reader *r, struct proto_frame *out)
{
    proto_clear_detail();
    if (r->state == 2) { proto_frame_init(out, PROTO_KIND_END); return PROTO_END; }
    const msgpack_object *obj = NULL;
    int err = next_object(r, &obj);
    if (err) return err;
    if (abort_detail(obj, true)) { r->aborted = true; return PROTO_E_TRUNCATED; }   /* upstream failed: it says who and why */
    err = proto_frame_from_obj(obj, out, &r->slots);
    if (err) {
        if (r->state == 0 && err == PROTO_E_SCHEMA && obj->type != MSGPACK_OBJECT_MAP) {
            proto_set_detail("first bytes are not a frame (msgpack type %d)", obj->type);
            return PROTO_E_PARSE;
        }
        return err;
    }
    if (r->state == 0) {
        if (out->kind != PROTO_KIND_HEADER) { proto_set_detail("first frame is '%s', expected 'header'", out->kind_name); return PROTO_E_SEQ; }
        r->state = 1;
        const struct proto_value *mv = proto_frame_get(out, "meta");
        if (mv && mv->type == PROTO_V_OBJ) reader_header_meta(r, &mv->obj);
        return PROTO_OK;
    }
    if (out->kind == PROTO_KIND_HEADER) { proto_set_detail("second header frame after %llu data frames", (unsigned long long)r->frames); return PROTO_E_SEQ; }
    if (out->kind == PROTO_KIND_END) {
        if ((err = check_end(r, out))) return err;
        if (r->type == EP_ZMQ) reader_send_control(r, true);
        r->state = 2;
        return PROTO_END;
    }
    if (out->seq != r->frames) {
        proto_set_detail("frame seq %llu, expected %llu (gap or reorder)", (unsigned long long)out->seq, (unsigned long long)r->frames);
        return PROTO_E_SEQ;
    }
    const struct proto_tensor *tok = proto_frame_tensor(out, "tokens");
    if (tok) r->rows += tok->shape[0];
    if (tok && r->frames == 0) r->first_rows = tok->shape[0];
    r->frames++;
    return PROTO_OK;
}

const char *proto_reader_name(const struct proto_reader *r) { return r->name; }
uint64_t proto_reader_frames(const struct proto_reader *r) { return r->frames; }

void proto_reader_close(struct proto_reader *r)
{
    if (!r) return;
    if (r->type == EP_ZMQ && r->state != 2 && !r->aborted && r->z.sock) reader_send_control(r, false);   /* tell the writer */
    msgpack_unpacked_destroy(&r->res);
    free(r->buf);
    if (r->msg_live) zmq_msg_close(&r->msg);
    zlink_close(&r->z);
    if (r->zd) ZSTD_freeDStream(r->zd);
    free(r->zin);
    if (r->own_fd && r->fd >= 0) close(r->fd);
    proto_slots_destroy(&r->slots);
    free(r);
}

/* ================= writer ================= */
struct end_item { char key[48]; double v; };
struct proto_writer {
    char name[256];
    enum ep_type type;
    int fd; bool own_fd;
    ZSTD_CStream *zc; unsigned char *zout; size_t zout_cap;
    struct zlink z; uint64_t sent; bool end_sent;   /* zmq: messages sent; an end frame not yet acknowledged */
    struct proto_writer **fan; int nfan;      /* fan-out: the endpoints' writers (each gets every frame) */
    struct zpool *pool;                       /* zmq: packed buffers libzmq has sent, for reuse */
    bool ended;                               /* an end frame was written (no abort after it) */
    bool in_fan;                              /* one endpoint of a fan-out (its messages name it) */
    unsigned char *stage; size_t stage_len;   /* fd: small writes gathered here */
    msgpack_sbuffer sbuf;                     /* zmq: one message */
    msgpack_packer pk;
    struct proto_writer_opts o;
    int err;
    bool header_done, raw, crc;               /* raw: proto_writer_raw was used; crc: frames carry "crc" */
    bool atomic, anon;                        /* a file written to a temp, renamed over path at close */
    char path[4200], tmp[4200];
    uint64_t frames, rows;
    int n_end; struct end_item end[32];
};

static int write_all(struct proto_writer *w, const void *buf, size_t n)
{
    const char *p = buf;
    while (n) {
        ssize_t k = write(w->fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k < 0) { proto_set_detail("writing output failed: %s", strerror(errno)); return PROTO_E_IO; }
        p += k; n -= (size_t)k;
    }
    return PROTO_OK;
}
static int stage_flush(struct proto_writer *w)
{
    int err = w->stage_len ? write_all(w, w->stage, w->stage_len) : PROTO_OK;
    w->stage_len = 0;
    return err;
}
static int zstd_feed(struct proto_writer *w, const void *buf, size_t n, ZSTD_EndDirective mode)
{
    ZSTD_inBuffer in = {buf, n, 0};
    for (;;) {
        ZSTD_outBuffer out = {w->zout, w->zout_cap, 0};
        size_t left = ZSTD_compressStream2(w->zc, &out, &in, mode);
        if (ZSTD_isError(left)) { proto_set_detail("zstd: %s", ZSTD_getErrorName(left)); return PROTO_E_ZSTD; }
        if (out.pos) { int err = write_all(w, w->zout, out.pos); if (err) return err; }
        if (mode == ZSTD_e_continue ? in.pos == in.size : left == 0) return PROTO_OK;
    }
}
/* msgpack packer callback */
static int writer_cb(void *data, const char *buf, size_t len)
{
    struct proto_writer *w = data;
    if (w->err) return -1;
    if (len == 0) return 0;   /* empty bins come with a NULL pointer */
    switch (w->type) {
    case EP_ZMQ: case EP_FAN: return msgpack_sbuffer_write(&w->sbuf, buf, len);
    case EP_ZSTD: w->err = zstd_feed(w, buf, len, ZSTD_e_continue); break;
    case EP_FD:
        if (len >= DIRECT_MIN) { if (!(w->err = stage_flush(w))) w->err = write_all(w, buf, len); }
        else {
            if (w->stage_len + len > STAGE_CAP) w->err = stage_flush(w);
            memcpy(w->stage + w->stage_len, buf, len); w->stage_len += len;
        }
        break;
    }
    return w->err ? -1 : 0;
}

/* A message from the reader: 1 for an ack, PROTO_E_ZMQ with the detail for an abort frame (the
 * reader's stage failed or stopped reading), 0 for anything else. */
static int writer_msg(const void *bytes, size_t n)
{
    msgpack_unpacked u; msgpack_unpacked_init(&u);
    size_t off = 0;
    int r = 0;
    if (msgpack_unpack_next(&u, bytes, n, &off) == MSGPACK_UNPACK_SUCCESS)
        r = abort_detail(&u.data, false) ? PROTO_E_ZMQ : mp_is_kind(&u.data, "ack");
    msgpack_unpacked_destroy(&u);
    return r;
}
/* The reader left: did it say why (an abort frame queued before it went)? PROTO_E_ZMQ if so. */
static int writer_abort_heard(struct proto_writer *w)
{
    for (;;) {
        zmq_msg_t m; zmq_msg_init(&m);
        int got = zmq_msg_recv(&m, w->z.sock, ZMQ_DONTWAIT) >= 0, r = got ? writer_msg(zmq_msg_data(&m), zmq_msg_size(&m)) : 0;
        zmq_msg_close(&m);
        if (!got || r < 0) return r;
    }
}
static __thread struct proto_writer *t_watch[WATCH_MAX];
static __thread int t_nwatch;
static void watch_add(struct proto_writer *w) { if (t_nwatch < WATCH_MAX) t_watch[t_nwatch++] = w; }
static void watch_del(struct proto_writer *w)
{
    for (int i = 0; i < t_nwatch; i++)
        if (t_watch[i] == w) { memmove(t_watch + i, t_watch + i + 1, (size_t)(t_nwatch - i - 1) * sizeof *t_watch); t_nwatch--; return; }
}
static int watch_items(zmq_pollitem_t *it)
{
    int n = 0;
    for (int i = 0; i < t_nwatch; i++) {
        if (t_watch[i]->err || t_watch[i]->ended) continue;
        it[n++] = (zmq_pollitem_t){t_watch[i]->z.sock, 0, ZMQ_POLLIN, 0};
        it[n++] = (zmq_pollitem_t){t_watch[i]->z.mon, 0, ZMQ_POLLIN, 0};
    }
    return n;
}
static int watch_check(void)
{
    for (int i = 0; i < t_nwatch; i++) {
        struct proto_writer *w = t_watch[i];
        if (w->err || w->ended) continue;
        zlink_events(&w->z);
        int err = writer_abort_heard(w);
        if (!err && w->z.gone && w->z.nlive == 0) {
            proto_set_detail("peer gone: the reader disconnected (or missed heartbeats) after %llu messages (header, frames) were sent", (unsigned long long)w->sent);
            err = PROTO_E_ZMQ;
        }
        if (err && w->in_fan) proto_prefix_detail("%s", w->name);
        if (err) return w->err = err;
    }
    return PROTO_OK;
}
/* One message (p[0..n), or the message m when not NULL), waiting while the reader is connected
 * and slow (heartbeats watch it). */
static int zmq_send_frame(struct proto_writer *w, const void *p, size_t n, zmq_msg_t *m)
{
    for (;;) {
        int r = zlink_wait(&w->z, ZMQ_POLLOUT);
        if (r == ZW_GONE && writer_abort_heard(w)) return PROTO_E_ZMQ;
        if (r != ZW_READY) {
            char gone[160];
            snprintf(gone, sizeof gone, "the reader disconnected (or missed heartbeats) after %llu messages (header, frames) were sent", (unsigned long long)w->sent);
            return zwait_fail(&w->z, r, "waiting for a reader", gone, PROTO_E_ZMQ);
        }
        if ((m ? zmq_msg_send(m, w->z.sock, ZMQ_DONTWAIT) : zmq_send(w->z.sock, p, n, ZMQ_DONTWAIT)) >= 0) { w->sent++; return PROTO_OK; }
        if (errno == EAGAIN || errno == EINTR) continue;
        proto_set_detail("zmq_send: %s", zmq_strerror(errno));
        return PROTO_E_ZMQ;
    }
}
/* The string value of key "kind" in a msgpack map, compared with want. */
static bool mp_kind_is(const void *bytes, size_t n, const char *want)
{
    msgpack_unpacked u; msgpack_unpacked_init(&u);
    size_t off = 0;
    bool yes = msgpack_unpack_next(&u, bytes, n, &off) == MSGPACK_UNPACK_SUCCESS && mp_is_kind(&u.data, want);
    msgpack_unpacked_destroy(&u);
    return yes;
}
/* The close handshake: after the end frame, wait for the reader's ack (PROTOCOL.md §2). */
static int zmq_wait_ack(struct proto_writer *w)
{
    for (;;) {
        int r = zlink_wait(&w->z, ZMQ_POLLIN);
        if (r == ZW_GONE && writer_abort_heard(w)) return PROTO_E_ZMQ;
        if (r != ZW_READY) {
            char gone[160];
            snprintf(gone, sizeof gone, "the reader left before acknowledging the end frame (%llu messages sent)", (unsigned long long)w->sent);
            return zwait_fail(&w->z, r, "waiting for a reader to acknowledge the end frame", gone, PROTO_E_ZMQ);
        }
        zmq_msg_t m; zmq_msg_init(&m);
        if (zmq_msg_recv(&m, w->z.sock, ZMQ_DONTWAIT) < 0) {
            zmq_msg_close(&m);
            if (errno == EAGAIN || errno == EINTR) continue;
            proto_set_detail("zmq_msg_recv: %s", zmq_strerror(errno)); return PROTO_E_ZMQ;
        }
        int got = writer_msg(zmq_msg_data(&m), zmq_msg_size(&m));
        zmq_msg_close(&m);
        if (got) return got > 0 ? PROTO_OK : got;
    }
}
/* The abort frame on a ZeroMQ link: sent when there is room within 2 s while a reader is
 * connected (one held at its queue bound takes it later or not at all: its writer's departure
 * says the same, later). */
static void zmq_send_abort(struct proto_writer *w)
{
    double t_end = now_s() + 2;
    zlink_events(&w->z);
    if (w->z.nlive == 0) return;   /* no reader (or it is gone): nothing to tell, no linger */
    for (;;) {
        if (zmq_send(w->z.sock, w->sbuf.data, w->sbuf.size, ZMQ_DONTWAIT) >= 0) { zlink_await_departure(&w->z, 2); return; }
        if ((errno != EAGAIN && errno != EINTR) || w->z.nlive == 0 || now_s() >= t_end) return;
        zmq_pollitem_t it = {w->z.sock, 0, ZMQ_POLLOUT, 0};
        zmq_poll(&it, 1, 100);
        zlink_events(&w->z);
    }
}
/* Zero copy: libzmq sends the packed buffer itself and hands it back when done (from its I/O
 * thread) to a pool the packer takes its next buffer from, so a large frame is neither copied
 * again nor its memory faulted in afresh. Small frames are copied (libzmq keeps those inline). */
struct zpool { pthread_mutex_t mu; void *buf[4]; int n; };
static void zpool_put(void *data, void *hint)
{
    struct zpool *p = hint;
    pthread_mutex_lock(&p->mu);
    if (p->n < 4) { p->buf[p->n++] = data; data = NULL; }
    pthread_mutex_unlock(&p->mu);
    free(data);
}
static void zpool_free(struct zpool *p)
{
    if (!p) return;
    for (int i = 0; i < p->n; i++) free(p->buf[i]);
    pthread_mutex_destroy(&p->mu);
    free(p);
}
#define ZERO_COPY_MIN (1u << 20)
static int zmq_send_packed(struct proto_writer *w)
{
    if (w->sbuf.size >= ZERO_COPY_MIN && !w->pool && (w->pool = calloc(1, sizeof *w->pool))) pthread_mutex_init(&w->pool->mu, NULL);
    if (w->sbuf.size < ZERO_COPY_MIN || !w->pool) {
        int err = zmq_send_frame(w, w->sbuf.data, w->sbuf.size, NULL);
        msgpack_sbuffer_clear(&w->sbuf);
        return err;
    }
    zmq_msg_t m;
    if (zmq_msg_init_data(&m, w->sbuf.data, w->sbuf.size, zpool_put, w->pool) != 0) { proto_set_detail("zmq_msg_init_data: %s", zmq_strerror(errno)); return PROTO_E_ZMQ; }
    pthread_mutex_lock(&w->pool->mu);   /* the sbuf's next buffer: one libzmq is done with, or none */
    void *next = w->pool->n ? w->pool->buf[--w->pool->n] : NULL;
    pthread_mutex_unlock(&w->pool->mu);
    w->sbuf.data = next; w->sbuf.alloc = next ? malloc_usable_size(next) : 0; w->sbuf.size = 0;
    int err = zmq_send_frame(w, NULL, 0, &m);
    zmq_msg_close(&m);   /* after a send, a no-op; otherwise the buffer goes to the pool */
    return err;
}
static int writer_boundary(struct proto_writer *w);
/* Fan-out: one packed frame to every endpoint, in turn; the first endpoint that fails fails the
 * writer (its detail names it). end: the frame is the end frame (each endpoint's close then
 * waits for its ack, and sends no abort). */
static int fan_send(struct proto_writer *w, const void *p, size_t n, bool end)
{
    for (int i = 0; i < w->nfan; i++) {
        struct proto_writer *c = w->fan[i];
        int err = c->err;
        if (!err && c->type == EP_ZMQ) err = c->err = zmq_send_frame(c, p, n, NULL);
        else if (!err) err = writer_cb(c, p, n) ? (c->err ? c->err : PROTO_E_NOMEM) : writer_boundary(c);
        if (err) { proto_prefix_detail("%s", c->name); return err; }
        c->header_done = c->raw = true;
        if (end) c->ended = c->end_sent = true;
    }
    return PROTO_OK;
}
/* frame boundary: make the frame visible downstream */
static int writer_boundary(struct proto_writer *w)
{
    if (w->err) return w->err;
    switch (w->type) {
    case EP_FD: w->err = stage_flush(w); break;
    case EP_ZSTD: w->err = zstd_feed(w, NULL, 0, ZSTD_e_flush); break;
    case EP_ZMQ:
        w->err = zmq_send_packed(w);
        break;
    case EP_FAN:
        w->err = fan_send(w, w->sbuf.data, w->sbuf.size, w->ended);
        msgpack_sbuffer_clear(&w->sbuf);
        break;
    }
    return w->err;
}

/* --checksum / --no-checksum: 1 on, 0 off, -1 by endpoint (files and tcp:// on, pipes off) */
static int g_checksum = -1;
void proto_checksum_set(int mode) { g_checksum = mode < 0 ? -1 : mode > 0; }
static bool checksum_for(bool dflt) { return g_checksum < 0 ? dflt : g_checksum == 1; }

static struct proto_writer *writer_new(const char *name, const struct proto_writer_opts *o)
{
    struct proto_writer *w = calloc(1, sizeof *w);
    if (!w) return NULL;
    snprintf(w->name, sizeof w->name, "%s", name);
    w->fd = -1;
    if (o) w->o = *o;
    if (w->o.zstd_level == 0) w->o.zstd_level = 3;
    msgpack_sbuffer_init(&w->sbuf);
    msgpack_packer_init(&w->pk, w, writer_cb);
    return w;
}
static int writer_stream_init(struct proto_writer *w)
{
    if (!(w->stage = malloc(STAGE_CAP))) return PROTO_E_NOMEM;
    grow_pipe(w->fd);
    if (w->type == EP_ZSTD) {
        w->zout_cap = ZSTD_CStreamOutSize();
        if (!(w->zc = ZSTD_createCStream()) || !(w->zout = malloc(w->zout_cap))) return PROTO_E_NOMEM;
        ZSTD_CCtx_setParameter(w->zc, ZSTD_c_compressionLevel, w->o.zstd_level);
        ZSTD_CCtx_setParameter(w->zc, ZSTD_c_checksumFlag, w->crc);   /* zstd's content checksum (XXH64) */
    }
    return PROTO_OK;
}

struct proto_writer *proto_writer_open_fd(int fd, const char *name, const struct proto_writer_opts *o, int *err)
{
    struct proto_writer *w = writer_new(name, o);
    if (!w) { *err = PROTO_E_NOMEM; return NULL; }
    w->type = EP_FD; w->fd = fd;
    struct stat st;
    w->crc = checksum_for(fstat(fd, &st) == 0 && S_ISREG(st.st_mode));   /* stdout into a file: a file */
    if ((*err = writer_stream_init(w)) != PROTO_OK) { proto_writer_close(w, false); return NULL; }
    return w;
}

/* A plain file (or one a symlink names) is written to a temp file that close renames over it
 * (whole or nothing); a fifo or a device is written in place. */
static int writer_open_file(struct proto_writer *w, const char *ep)
{
    struct stat st;
    w->crc = checksum_for(stat(ep, &st) != 0 || S_ISREG(st.st_mode));
    int fd = proto_out_open(ep, w->path, w->tmp, sizeof w->tmp, &w->anon);
    if (fd < 0) { proto_set_detail("%s", strerror(errno)); return fd; }   /* as an open of ep says it */
    w->fd = fd;
    w->atomic = w->anon || w->tmp[0];
    return PROTO_OK;
}

/* Fan-out (-o repeated): the name proto_writer_open knows as several endpoints. */
static struct { char *name; char **eps; int n; } g_fan;
void proto_writer_fanout(const char *name, const char *const *eps, int n)
{
    for (int i = 0; i < g_fan.n; i++) free(g_fan.eps[i]);
    free(g_fan.eps); free(g_fan.name);
    memset(&g_fan, 0, sizeof g_fan);
    if (!name || n < 2 || !(g_fan.eps = calloc((size_t)n, sizeof *g_fan.eps)) || !(g_fan.name = strdup(name))) return;
    for (int i = 0; i < n; i++) if ((g_fan.eps[g_fan.n] = strdup(eps[i]))) g_fan.n++;
}
int proto_writer_fanout_list(const char *name, const char *const **eps)
{
    if (!name || !g_fan.name || strcmp(name, g_fan.name) != 0) return 0;
    *eps = (const char *const *)g_fan.eps;
    return g_fan.n;
}
struct proto_writer *proto_writer_open_many(const char *name, const char *const *eps, int n, const struct proto_writer_opts *o, int *err)
{
    if (n == 1) return proto_writer_open(eps[0], o, err);
    struct proto_writer *w = n > 1 ? writer_new(name, o) : NULL;
    if (!w || !(w->fan = calloc((size_t)n, sizeof *w->fan))) {
        *err = n > 1 ? PROTO_E_NOMEM : PROTO_E_ENDPOINT; proto_set_detail("%s", n > 1 ? "out of memory" : "no endpoint");
        proto_writer_close(w, false); return NULL;
    }
    w->type = EP_FAN;
    for (int i = 0; i < n; i++) {
        if (!(w->fan[i] = proto_writer_open(eps[i], o, err))) {
            if (strncmp(proto_detail(), eps[i], strlen(eps[i])) != 0) proto_prefix_detail("%s", eps[i]);
            proto_writer_close(w, false);
            return NULL;
        }
        w->nfan++;
        w->fan[i]->in_fan = true;
        w->crc |= w->fan[i]->crc;   /* packed once for all: with a crc when any endpoint takes one */
    }
    return w;
}

struct proto_writer *proto_writer_open(const char *ep, const struct proto_writer_opts *o, int *err)
{
    const char *const *many;
    int n = proto_writer_fanout_list(ep, &many);
    if (n > 1) return proto_writer_open_many(ep, many, n, o, err);
    proto_clear_detail();
    if (!ep || !*ep) { *err = PROTO_E_ENDPOINT; proto_set_detail("empty endpoint"); return NULL; }
    if (strcmp(ep, "-") == 0) return proto_writer_open_fd(1, "stdout", o, err);
    struct proto_writer *w = writer_new(ep, o);
    if (!w) { *err = PROTO_E_NOMEM; return NULL; }
    if (has_prefix(ep, "tcp://") || has_prefix(ep, "ipc://")) {
        w->type = EP_ZMQ;
        w->crc = checksum_for(has_prefix(ep, "tcp://"));
        if ((*err = zlink_open(&w->z, ep, true)) != PROTO_OK) { proto_writer_close(w, false); return NULL; }
        watch_add(w);
        return w;
    }
    w->type = ends_with(ep, ".zst") ? EP_ZSTD : EP_FD;
    if ((*err = writer_open_file(w, ep)) != PROTO_OK) { proto_writer_close(w, false); return NULL; }
    w->own_fd = true;
    if ((*err = writer_stream_init(w)) != PROTO_OK) { proto_writer_close(w, false); return NULL; }
    return w;
}

static void pack_cstr(msgpack_packer *pk, const char *s)
{
    size_t n = strlen(s);
    msgpack_pack_str(pk, n); msgpack_pack_str_body(pk, s, n);
}

int proto_writer_header(struct proto_writer *w, const struct proto_meta *m)
{
    if (w->err) return w->err;
    if (w->header_done) { proto_set_detail("header written twice"); return PROTO_E_INVAL; }
    msgpack_pack_map(&w->pk, 3);
    pack_cstr(&w->pk, "sf"); msgpack_pack_uint32(&w->pk, PROTO_VERSION);
    pack_cstr(&w->pk, "kind"); pack_cstr(&w->pk, "header");
    pack_cstr(&w->pk, "meta");
    if (m) proto_meta_pack(m, &w->pk); else msgpack_pack_map(&w->pk, 0);
    w->header_done = true;
    return writer_boundary(w);
}

int proto_writer_put(struct proto_writer *w, const struct proto_frame *f)
{
    if (w->err) return w->err;
    if (f->kind == PROTO_KIND_HEADER || f->kind == PROTO_KIND_END) { proto_set_detail("put of a %s frame", f->kind_name); return PROTO_E_INVAL; }
    if (!w->header_done) { int err = proto_writer_header(w, NULL); if (err) return err; }
    struct proto_frame c = *f;
    c.seq = w->frames;
    int err = proto_frame_validate(&c);
    if (err) return err;
    err = proto_frame_pack_crc(&w->pk, &c, w->o.zstd_tensors, w->o.zstd_level, w->crc);
    if (err && !w->err) w->err = err;
    if ((err = writer_boundary(w))) return err;
    const struct proto_tensor *tok = proto_frame_tensor(&c, "tokens");
    if (tok && tok->ndim >= 1) w->rows += tok->shape[0];
    w->frames++;
    return PROTO_OK;
}

int proto_writer_raw(struct proto_writer *w, const void *bytes, size_t n)
{
    if (w->err) return w->err;
    if (writer_cb(w, bytes, n) != 0) return w->err ? w->err : PROTO_E_NOMEM;
    w->header_done = w->raw = true;
    if (mp_kind_is(bytes, n, "end")) w->ended = w->end_sent = true;   /* zmq: close waits for its ack */
    return writer_boundary(w);
}

int proto_writer_carry_end_meta(struct proto_writer *w, const struct proto_frame *end)
{
    const struct proto_value *mv = proto_frame_get((struct proto_frame *)end, "meta");
    if (!mv || mv->type != PROTO_V_OBJ || mv->obj.type != MSGPACK_OBJECT_MAP) return PROTO_OK;
    const msgpack_object_map *m = &mv->obj.via.map;
    for (uint32_t i = 0; i < m->size; i++) {
        const msgpack_object *k = &m->ptr[i].key, *v = &m->ptr[i].val;
        char key[48];
        double d;
        if (k->type != MSGPACK_OBJECT_STR || k->via.str.size >= sizeof key) continue;
        if (v->type == MSGPACK_OBJECT_POSITIVE_INTEGER) d = (double)v->via.u64;
        else if (v->type == MSGPACK_OBJECT_NEGATIVE_INTEGER) d = (double)v->via.i64;
        else if (v->type == MSGPACK_OBJECT_FLOAT32 || v->type == MSGPACK_OBJECT_FLOAT64) d = v->via.f64;
        else continue;
        memcpy(key, k->via.str.ptr, k->via.str.size);
        key[k->via.str.size] = 0;
        int err = proto_writer_end_meta(w, key, d);
        if (err) return err;
    }
    return PROTO_OK;
}

int proto_writer_end_meta(struct proto_writer *w, const char *key, double value)
{
    for (int i = 0; i < w->n_end; i++)
        if (strcmp(w->end[i].key, key) == 0) { w->end[i].v = value; return PROTO_OK; }
    if (w->n_end >= 32 || strlen(key) >= sizeof w->end[0].key) return PROTO_E_INVAL;
    snprintf(w->end[w->n_end].key, sizeof w->end[0].key, "%s", key);
    w->end[w->n_end++].v = value;
    return PROTO_OK;
}

static int write_end(struct proto_writer *w)
{
    if (!w->header_done) { int err = proto_writer_header(w, NULL); if (err) return err; }
    w->ended = true;
    msgpack_pack_map(&w->pk, w->n_end ? 5 : 4);
    pack_cstr(&w->pk, "sf"); msgpack_pack_uint32(&w->pk, PROTO_VERSION);
    pack_cstr(&w->pk, "kind"); pack_cstr(&w->pk, "end");
    pack_cstr(&w->pk, "frames"); msgpack_pack_uint64(&w->pk, w->frames);
    pack_cstr(&w->pk, "rows"); msgpack_pack_uint64(&w->pk, w->rows);
    if (w->n_end) {
        pack_cstr(&w->pk, "meta");
        msgpack_pack_map(&w->pk, (size_t)w->n_end);
        for (int i = 0; i < w->n_end; i++) {
            pack_cstr(&w->pk, w->end[i].key);
            double v = w->end[i].v;
            if (v >= 0 && v < 1.8e19 && v == (double)(uint64_t)v) msgpack_pack_uint64(&w->pk, (uint64_t)v);
            else msgpack_pack_double(&w->pk, v);
        }
    }
    return writer_boundary(w);
}

/* A pipe or fifo whose reader is gone: the abort frame's write fails with EPIPE, not SIGPIPE. */
static void boundary_without_sigpipe(struct proto_writer *w)
{
    sigset_t pipe, old, pending;
    sigemptyset(&pipe); sigaddset(&pipe, SIGPIPE);
    pthread_sigmask(SIG_BLOCK, &pipe, &old);
    bool was = sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE);
    writer_boundary(w);
    if (!was && sigpending(&pending) == 0 && sigismember(&pending, SIGPIPE)) {
        struct timespec zero = {0, 0};
        sigtimedwait(&pipe, NULL, &zero);
    }
    pthread_sigmask(SIG_SETMASK, &old, NULL);
}
/* An incomplete close tells the readers why (PROTOCOL.md §2 "Abort frames"): an abort frame on a
 * pipe, fifo, stdout or ZeroMQ link that is healthy and had no end frame. A file is removed
 * instead; a fan-out's endpoints each send their own. Failures here are not reported. */
static void writer_abort(struct proto_writer *w)
{
    if (w->err || w->ended || w->atomic || w->type == EP_FAN) return;
    if (w->type == EP_ZMQ ? !w->z.sock : (w->fd < 0 || !w->stage || (w->type == EP_ZSTD && !w->zc))) return;
    msgpack_sbuffer_clear(&w->sbuf);
    int err = pack_abort(&w->pk, w->frames, "it failed");
    if (!err && !w->err && w->type == EP_ZMQ) zmq_send_abort(w);
    else if (!err && !w->err) boundary_without_sigpipe(w);
    msgpack_sbuffer_clear(&w->sbuf);
}
/* Fan-out: every endpoint's ack first, then each endpoint closed complete only when all of them
 * acknowledged (a file is renamed into place only then); a failed writer's healthy endpoints
 * each get an abort frame. */
static int fan_close(struct proto_writer *w, bool complete, int err)
{
    for (int i = 0; i < w->nfan && complete && !err; i++) {
        struct proto_writer *c = w->fan[i];
        if (c->type == EP_ZMQ && c->end_sent && (err = c->err = zmq_wait_ack(c))) proto_prefix_detail("%s", c->name);
        c->end_sent = false;
    }
    for (int i = 0; i < w->nfan; i++) {
        struct proto_writer *c = w->fan[i];
        char name[sizeof c->name];
        memcpy(name, c->name, sizeof name);
        c->frames = w->frames; c->rows = w->rows;
        int e = proto_writer_close(c, complete && !err);   /* frees c */
        if (e && !err) { err = e; proto_prefix_detail("%s", name); }
    }
    free(w->fan);
    w->fan = NULL; w->nfan = 0;
    return err;
}

int proto_writer_close(struct proto_writer *w, bool complete)
{
    if (!w) return PROTO_OK;
    watch_del(w);
    int err = w->err;
    if (!err && complete && !w->raw) { err = write_end(w); w->end_sent = true; }
    if (!complete) writer_abort(w);
    if (!err && complete && w->type == EP_ZMQ && w->end_sent) err = zmq_wait_ack(w);
    if (w->type == EP_FAN) err = fan_close(w, complete, err);
    if (!err && w->type == EP_ZSTD && w->zc) err = zstd_feed(w, NULL, 0, ZSTD_e_end);
    if (!err && w->type != EP_ZMQ && w->type != EP_FAN && w->stage) err = stage_flush(w);
    if (w->atomic) {   /* whole or nothing: rename the temp over the path only for a complete stream */
        int e = proto_tmp_finish(w->fd, w->anon, w->tmp, sizeof w->tmp, w->path, !err && complete);
        if (!err) err = e;
    }
    if (w->own_fd && w->fd >= 0 && close(w->fd) != 0 && !err) { proto_set_detail("writing output failed: %s", strerror(errno)); err = PROTO_E_IO; }
    zlink_close(&w->z);   /* libzmq hands every buffer back by the time it returns */
    zpool_free(w->pool);
    if (w->zc) ZSTD_freeCStream(w->zc);
    free(w->zout); free(w->stage);
    msgpack_sbuffer_destroy(&w->sbuf);
    free(w);
    return err;
}

const char *proto_writer_name(const struct proto_writer *w) { return w->name; }
int proto_writer_error(const struct proto_writer *w)
{
    for (int i = 0; w && !w->err && i < w->nfan; i++) if (w->fan[i]->err) return w->fan[i]->err;   /* noticed while reading */
    return w ? w->err : 0;
}
uint64_t proto_writer_frames(const struct proto_writer *w) { return w->frames; }
uint64_t proto_writer_rows(const struct proto_writer *w) { return w->rows; }
