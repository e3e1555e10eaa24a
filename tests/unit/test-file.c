/* test-file.c - the small shared helpers of issue 15's review: proto_write_atomic (one temp
 * file, whole or nothing), proto_dir_basename, proto_shape_str, proto_st_check, and the bounds
 * proto_st_parse puts on a safetensors header before parsing it. */
#include <dirent.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include "proto.h"
#include "check.h"

/* Files in dir (".", ".." not counted). */
static int count_files(const char *dir)
{
    DIR *d = opendir(dir);
    int n = 0;
    struct dirent *e;
    if (!d) return -1;
    while ((e = readdir(d))) n += strcmp(e->d_name, ".") != 0 && strcmp(e->d_name, "..") != 0;
    closedir(d);
    return n;
}

static void test_write_atomic(const char *dir)
{
    char path[512], bad[512];
    snprintf(path, sizeof path, "%s/out.html", dir);
    umask(022);
    CHECK(proto_write_atomic(path, "first", 5) == PROTO_OK, "write: %s", proto_detail());
    size_t n = 0;
    char *b = NULL;
    CHECK(proto_read_file(path, &b, &n) == PROTO_OK && n == 5 && memcmp(b, "first", 5) == 0, "content");
    free(b);
    struct stat sb;
    CHECK(stat(path, &sb) == 0 && (sb.st_mode & 0777) == 0644, "mode %o (0666 less the umask)", sb.st_mode & 0777);
    CHECK(proto_write_atomic(path, "second, longer", 14) == PROTO_OK, "replace: %s", proto_detail());
    CHECK(proto_read_file(path, &b, &n) == PROTO_OK && n == 14 && memcmp(b, "second, longer", 14) == 0, "replaced");
    free(b);
    CHECK(proto_write_atomic(path, "", 0) == PROTO_OK && proto_read_file(path, &b, &n) == PROTO_OK && n == 0, "empty");
    free(b);
    CHECK(count_files(dir) == 1, "no temporary file left: %d files", count_files(dir));
    snprintf(bad, sizeof bad, "%s/no/such/dir/x", dir);
    CHECK(proto_write_atomic(bad, "x", 1) == PROTO_E_IO && strstr(proto_detail(), bad), "missing dir: %s", proto_detail());
    CHECK(count_files(dir) == 1, "a failure leaves nothing");
    unlink(path);

    /* an output given up (commit false) leaves nothing either */
    char tmp[600];
    bool anon;
    int fd = proto_tmp_open(path, tmp, sizeof tmp, &anon);
    CHECK(fd >= 0 && write(fd, "abc", 3) == 3, "tmp_open");
    CHECK(proto_tmp_finish(fd, anon, tmp, sizeof tmp, path, false) == PROTO_OK, "finish(false)");
    close(fd);
    CHECK(count_files(dir) == 0, "given up: %d files", count_files(dir));
}

static void test_basename_shape(void)
{
    static const char *const cases[][2] = {
        {"runs/m1/", "m1"}, {"m", "m"}, {"/", ""}, {"a//", "a"}, {"/x/y", "y"}, {"./sae", "sae"}, {"", ""},
    };
    char buf[64];
    for (size_t i = 0; i < sizeof cases / sizeof cases[0]; i++) {
        proto_dir_basename(cases[i][0], buf, sizeof buf);
        CHECK(strcmp(buf, cases[i][1]) == 0, "basename '%s' = '%s'", cases[i][0], buf);
    }
    proto_dir_basename("a/longname", buf, 5);
    CHECK(strcmp(buf, "long") == 0, "truncated basename '%s'", buf);

    const uint64_t s[4] = {2, 3, 4, 18446744073709551615ull};
    CHECK(strcmp(proto_shape_str(s, 3, buf, sizeof buf), "2 3 4") == 0, "shape '%s'", buf);
    CHECK(strcmp(proto_shape_str(s, 0, buf, sizeof buf), "") == 0, "scalar '%s'", buf);
    CHECK(strcmp(proto_shape_str(s, 4, buf, sizeof buf), "2 3 4 18446744073709551615") == 0, "4 dims '%s'", buf);
    CHECK(strcmp(proto_shape_str(s, 4, buf, 6), "2 3 4") == 0, "truncated '%s'", buf);
}

static void test_st_check(void)
{
    struct proto_st_tensor t = {.dtype = PROTO_F16, .ndim = 2, .shape = {2, 3}};
    const uint64_t ok[2] = {2, 3}, other[2] = {2, 4};
    CHECK(proto_st_check(&t, "W_dec", 2, ok, "expected") == PROTO_OK, "match");
    CHECK(proto_st_check(&t, "W_dec", 2, other, "expected") == PROTO_E_MISMATCH &&
          strcmp(proto_detail(), "W_dec has shape [2 3], expected [2 4]") == 0, "%s", proto_detail());
    CHECK(proto_st_check(&t, "tensor b", 1, ok, "config.json implies") == PROTO_E_MISMATCH &&
          strcmp(proto_detail(), "tensor b has shape [2 3], config.json implies [2]") == 0, "%s", proto_detail());
    t.dtype = PROTO_I32;
    CHECK(proto_st_check(&t, "b_enc", 2, ok, "expected") == PROTO_E_FORMAT &&
          strcmp(proto_detail(), "b_enc has dtype i32 (f32, f16 or bf16 expected)") == 0, "%s", proto_detail());
}

/* a safetensors file in memory: 8-byte length, header (padded to 8), no data */
static size_t st_file(char *buf, const char *hdr, size_t hl)
{
    size_t padded = (hl + 7) & ~(size_t)7;
    for (int i = 0; i < 8; i++) buf[i] = (char)((uint64_t)padded >> (8 * i));
    memcpy(buf + 8, hdr, hl);
    memset(buf + 8 + hl, ' ', padded - hl);
    return 8 + padded;
}

static void test_st_bounds(void)
{
    struct proto_st st;
    char big[16] = {0};
    big[5] = 1;   /* 2^40 */
    CHECK(proto_st_parse(&st, big, sizeof big) == PROTO_E_FORMAT &&
          strstr(proto_detail(), "header length 1099511627776 is over the bound of 100000000 bytes"), "%s", proto_detail());

    size_t n = (size_t)1 << 21;   /* 2^21 commas: in a string they are no values; as array items they are */
    char *hdr = malloc(n + 64), *file = malloc(n + 128);
    CHECK(hdr && file, "malloc");
    if (!hdr || !file) { free(hdr); free(file); return; }
    size_t k = (size_t)sprintf(hdr, "{\"__metadata__\":{\"a\":\"\\\"");
    memset(hdr + k, ',', n); k += n;
    k += (size_t)sprintf(hdr + k, "\"}}");
    CHECK(proto_st_parse(&st, file, st_file(file, hdr, k)) == PROTO_OK && st.n == 0, "commas in a string: %s", proto_detail());
    proto_st_close(&st);
    k = (size_t)sprintf(hdr, "{\"__metadata__\":{\"a\":[");
    for (size_t i = 0; i < ((size_t)1 << 20); i++) { hdr[k++] = '0'; hdr[k++] = ','; }
    k += (size_t)sprintf(hdr + k, "0]}}");
    CHECK(proto_st_parse(&st, file, st_file(file, hdr, k)) == PROTO_E_FORMAT &&
          strstr(proto_detail(), "holds more than 1048576 JSON values (the bound)"), "%s", proto_detail());
    free(hdr); free(file);
}

int main(void)
{
    char dir[] = "/tmp/sffile.XXXXXX";
    CHECK(mkdtemp(dir) != NULL, "mkdtemp");
    test_write_atomic(dir);
    rmdir(dir);
    test_basename_shape();
    test_st_check();
    test_st_bounds();
    if (g_failed) fprintf(stderr, "%d checks failed\n", g_failed);
    return g_failed ? 1 : 0;
}
