/* test-checksum.c - the per-frame checksum (PROTOCOL.md §2 "Checksum"): CRC32C's check value;
 * "crc" is the CRC32C of the tensor data bins as written (compressed bytes for zstd tensors) in
 * key order, a sparse map's as indptr, index, value, packed last; a reader checks and drops it;
 * one flipped payload byte is PROTO_E_SCHEMA "frame N: checksum mismatch"; frames without it
 * read as before; a stale "crc" in the frame given to the writer is replaced. */
#include <stdlib.h>
#include <string.h>
#include "proto.h"
#include "check.h"

static int32_t g_tok[6] = {1, 2, 3, 4, 5, 6};
static float g_acts[6 * 80];
static uint32_t g_indptr[7] = {0, 1, 1, 2, 2, 2, 3}, g_index[3] = {0, 4, 2};
static float g_value[3] = {1.f, 2.f, 3.f};

static void frame(struct proto_frame *f)
{
    uint64_t s2[2] = {2, 3}, s3[3] = {2, 3, 80};
    for (int i = 0; i < 480; i++) g_acts[i] = (float)(i % 7);
    proto_frame_init(f, PROTO_KIND_ACTS);
    f->seq = 5;
    proto_frame_set_tensor(f, "tokens", PROTO_I32, 2, s2, g_tok);
    proto_frame_set_tensor(f, "acts", PROTO_F32, 3, s3, g_acts);
    struct proto_sparse sp = {8, 6, 3, g_indptr, g_index, g_value};
    proto_frame_set_sparse(f, "feats", &sp);
    proto_frame_set_uint(f, "crc", 7);   /* stale: the writer replaces it */
}

/* packs f with crc (zstd tensors or not), unpacks it into obj */
static int roundtrip(const struct proto_frame *f, bool zstd, msgpack_sbuffer *sb, msgpack_unpacked *u, struct proto_frame *out, struct proto_slots *sl, int flip)
{
    msgpack_packer pk; msgpack_packer_init(&pk, sb, msgpack_sbuffer_write);
    CHECK(proto_frame_pack_crc(&pk, f, zstd, 3, true) == PROTO_OK, "pack");
    if (flip >= 0) sb->data[sb->size - (size_t)flip] ^= 0x04;
    size_t off = 0;
    CHECK(msgpack_unpack_next(u, sb->data, sb->size, &off) == MSGPACK_UNPACK_SUCCESS, "unpack");
    return proto_frame_from_obj(&u->data, out, sl);
}

int main(void)
{
    CHECK(proto_crc32c(0, "123456789", 9) == 0xE3069283u, "CRC32C check value: %08x", proto_crc32c(0, "123456789", 9));
    CHECK(proto_crc32c(proto_crc32c(0, "1234", 4), "56789", 5) == 0xE3069283u, "CRC32C in two parts");
    struct proto_frame f, out;
    struct proto_slots sl; memset(&sl, 0, sizeof sl);
    frame(&f);
    for (int z = 0; z < 2; z++) {
        msgpack_sbuffer sb; msgpack_sbuffer_init(&sb);
        msgpack_unpacked u; msgpack_unpacked_init(&u);
        int err = roundtrip(&f, z, &sb, &u, &out, &sl, -1);
        CHECK(err == PROTO_OK, "zstd %d: read back: %s", z, proto_detail());
        CHECK(proto_frame_get(&out, "crc") == NULL, "zstd %d: the reader drops crc", z);
        const msgpack_object *c = proto_meta_get(&u.data, "crc");
        const msgpack_object_kv *last = &u.data.via.map.ptr[u.data.via.map.size - 1];
        CHECK(c && last->key.via.str.size == 3 && memcmp(last->key.via.str.ptr, "crc", 3) == 0, "zstd %d: crc is the last key, once", z);
        if (!z && c) {   /* by hand: tokens, acts, then feats' indptr, index, value */
            uint32_t want = proto_crc32c(0, g_tok, sizeof g_tok);
            want = proto_crc32c(want, g_acts, sizeof g_acts);
            want = proto_crc32c(want, g_indptr, sizeof g_indptr);
            want = proto_crc32c(want, g_index, sizeof g_index);
            want = proto_crc32c(want, g_value, sizeof g_value);
            CHECK(c->via.u64 == want, "crc %08llx, by hand %08x", (unsigned long long)c->via.u64, want);
        }
        msgpack_sbuffer_clear(&sb);
        /* a flipped byte inside the acts payload (the value bin ends 5 bytes + "crc" before the end) */
        err = roundtrip(&f, z, &sb, &u, &out, &sl, 200);
        CHECK(err == PROTO_E_SCHEMA && strstr(proto_detail(), "frame 5: checksum mismatch"), "zstd %d: flipped byte: %d %s", z, err, proto_detail());
        msgpack_unpacked_destroy(&u); msgpack_sbuffer_destroy(&sb);
    }
    /* without a checksum: read as before, the stale key is then data like any other */
    msgpack_sbuffer sb; msgpack_sbuffer_init(&sb);
    msgpack_packer pk; msgpack_packer_init(&pk, &sb, msgpack_sbuffer_write);
    proto_frame_del(&f, "crc");
    CHECK(proto_frame_pack(&pk, &f, false, 3) == PROTO_OK, "pack without crc");
    msgpack_unpacked u; msgpack_unpacked_init(&u);
    size_t off = 0;
    CHECK(msgpack_unpack_next(&u, sb.data, sb.size, &off) == MSGPACK_UNPACK_SUCCESS, "unpack");
    CHECK(proto_meta_get(&u.data, "crc") == NULL, "no crc without with_crc");
    CHECK(proto_frame_from_obj(&u.data, &out, &sl) == PROTO_OK, "a frame without crc reads: %s", proto_detail());
    msgpack_unpacked_destroy(&u); msgpack_sbuffer_destroy(&sb);
    proto_slots_destroy(&sl);
    return g_failed ? 1 : 0;
}
