/* file.c - small file helpers: whole-file reads, same-file test, temp + rename outputs. */
#include <errno.h>
#include <fcntl.h>
#include <stdbool.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <time.h>
#include <unistd.h>
#include "proto.h"

int proto_read_file(const char *path, char **out, size_t *len)
{
    *out = NULL; if (len) *len = 0;
    FILE *f = fopen(path, "rb");
    if (!f) { proto_set_detail("%s: %s", path, strerror(errno)); return PROTO_E_IO; }
    size_t cap = 1 << 16, n = 0; char *b = malloc(cap);
    int rc = PROTO_OK;
    for (;;) {
        if (!b) { rc = PROTO_E_NOMEM; break; }
        size_t k = fread(b + n, 1, cap - n - 1, f);
        n += k;
        if (k == 0) { if (ferror(f)) { proto_set_detail("%s: %s", path, strerror(errno)); rc = PROTO_E_IO; } break; }
        if (n + 1 >= cap) { char *nb = realloc(b, cap *= 2); if (!nb) { free(b); b = NULL; } else b = nb; }
    }
    fclose(f);
    if (rc != PROTO_OK) { free(b); return rc; }
    b[n] = 0; *out = b; if (len) *len = n;
    return PROTO_OK;
}

/* ---- same file, whole-or-nothing output ---- */

/* True for endpoints that are not files in the file system: "-", tcp://, ipc://, inproc://. */
static bool not_a_file(const char *ep)
{
    return !ep || !*ep || strcmp(ep, "-") == 0 || strncmp(ep, "tcp://", 6) == 0 ||
           strncmp(ep, "ipc://", 6) == 0 || strncmp(ep, "inproc://", 9) == 0;
}

bool proto_same_file(const char *a, const char *b)
{
    if (not_a_file(a) || not_a_file(b)) return false;
    struct stat sa, sb;
    if (stat(a, &sa) == 0 && stat(b, &sb) == 0)   /* /dev/null, a fifo or a tty read and written is no overwrite */
        return sa.st_dev == sb.st_dev && sa.st_ino == sb.st_ino && (S_ISREG(sa.st_mode) || S_ISDIR(sa.st_mode));
    return strcmp(a, b) == 0;
}

/* A fresh name PATH.tmp-XXXXXX into tmp. */
static int tmp_name(const char *path, char *tmp, size_t cap)
{
    static unsigned counter;
    unsigned r = (unsigned)getpid() * 2654435761u ^ (unsigned)time(NULL) ^
                 (__atomic_add_fetch(&counter, 1, __ATOMIC_RELAXED) * 40503u);
    if ((size_t)snprintf(tmp, cap, "%s.tmp-%06x", path, r & 0xffffff) >= cap) {
        proto_set_detail("%s: path too long", path);
        tmp[0] = 0;   /* never a truncated name that an unlink could hit */
        return PROTO_E_IO;
    }
    return PROTO_OK;
}

/* Creates PATH.tmp-XXXXXX (named in tmp) exclusively: its fd, open for writing, or an error < 0. */
static int tmp_create_fd(const char *path, char *tmp, size_t cap)
{
    for (int tries = 0; tries < 100; tries++) {
        int err = tmp_name(path, tmp, cap);
        if (err) return err;
        int fd = open(tmp, O_WRONLY | O_CREAT | O_EXCL | O_CLOEXEC, 0666);
        if (fd >= 0) return fd;
        if (errno != EEXIST) { proto_set_detail("%s: %s", path, strerror(errno)); return PROTO_E_IO; }
    }
    proto_set_detail("%s: no free temporary name", path);
    return PROTO_E_IO;
}

int proto_tmp_create(const char *path, char *tmp, size_t cap)
{
    int fd = tmp_create_fd(path, tmp, cap);
    if (fd < 0) return fd;
    close(fd);
    return PROTO_OK;
}

/* fsync of a written file p (by name; messages say name), so a rename never publishes data
 * still in flight. */
static int sync_path(const char *p, const char *name)
{
    int fd = open(p, O_RDONLY | O_CLOEXEC);
    if (fd < 0) { proto_set_detail("%s: %s", name, strerror(errno)); return PROTO_E_IO; }
    int bad = fsync(fd) != 0 && errno != EINVAL && errno != EROFS;
    int e = errno;
    close(fd);
    if (bad) { proto_set_detail("%s: %s", name, strerror(e)); return PROTO_E_IO; }
    return PROTO_OK;
}

int proto_tmp_commit(const char *tmp, const char *path)
{
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {   /* never rename over a device, fifo or folder */
        proto_set_detail("%s: not a regular file", path);
        unlink(tmp);
        return PROTO_E_IO;
    }
    int err = sync_path(tmp, path);
    if (!err && rename(tmp, path) != 0) { proto_set_detail("%s: %s", path, strerror(errno)); err = PROTO_E_IO; }
    if (err) unlink(tmp);
    return err;
}

/* An unnamed file in path's folder (O_TMPFILE: nothing is left behind when the process dies)
 * or, where the file system has none, a named PATH.tmp-XXXXXX. */
int proto_tmp_open(const char *path, char *tmp, size_t cap, bool *anon)
{
    *anon = false; tmp[0] = 0;
    struct stat st;
    if (stat(path, &st) == 0 && !S_ISREG(st.st_mode)) {
        /* a device (/dev/null) or a fifo is written in place: renaming a file over it would
         * replace it (as root, /dev/null itself); a folder fails here (EISDIR), not at the
         * rename. tmp "" and not anon: finish renames nothing. */
        int fd = open(path, O_WRONLY | O_TRUNC | O_CLOEXEC);
        if (fd < 0) { int e = errno; proto_set_detail("%s: %s", path, strerror(e)); errno = e; }
        return fd < 0 ? PROTO_E_IO : fd;
    }
#ifdef O_TMPFILE
    char dir[4200];
    const char *slash = strrchr(path, '/');
    if (!slash) snprintf(dir, sizeof dir, ".");
    else if (slash == path) snprintf(dir, sizeof dir, "/");
    else snprintf(dir, sizeof dir, "%.*s", (int)(slash - path), path);
    int fd = open(dir, O_TMPFILE | O_WRONLY | O_CLOEXEC, 0666);
    if (fd >= 0) { *anon = true; return fd; }
#endif
    int fd2 = tmp_create_fd(path, tmp, cap);   /* opened once, kept open */
    if (fd2 < 0) tmp[0] = 0;
    return fd2;
}

int proto_out_open(const char *ep, char *path, char *tmp, size_t cap, bool *anon)
{
    struct stat st, lst;
    bool file = stat(ep, &st) == 0 && S_ISREG(st.st_mode);
    if (!(file && lstat(ep, &lst) == 0 && S_ISLNK(lst.st_mode) && realpath(ep, path))) snprintf(path, cap, "%s", ep);
    int fd = proto_tmp_open(path, tmp, cap, anon);
    if (fd >= 0 && file) (void)fchmod(fd, st.st_mode & 07777);
    return fd;
}

/* Gives an unnamed file (proto_tmp_open's anon) a name PATH.tmp-XXXXXX. */
static int tmp_link(int fd, const char *path, char *tmp, size_t cap)
{
    char proc[64];
    snprintf(proc, sizeof proc, "/proc/self/fd/%d", fd);
    for (int tries = 0; tries < 100; tries++) {
        int err = tmp_name(path, tmp, cap);
        if (err) return err;
        if (linkat(AT_FDCWD, proc, AT_FDCWD, tmp, AT_SYMLINK_FOLLOW) == 0) return PROTO_OK;
        if (errno != EEXIST) { proto_set_detail("%s: %s", path, strerror(errno)); tmp[0] = 0; return PROTO_E_IO; }
    }
    proto_set_detail("%s: no free temporary name", path);
    tmp[0] = 0;
    return PROTO_E_IO;
}

int proto_tmp_finish(int fd, bool anon, char *tmp, size_t cap, const char *path, bool commit)
{
    if (!anon && !tmp[0]) return PROTO_OK;   /* written in place (a device or fifo) or never opened */
    if (!commit) { if (!anon && tmp[0]) unlink(tmp); return PROTO_OK; }
    int err = PROTO_OK;
    if (fsync(fd) != 0 && errno != EINVAL && errno != EROFS) { proto_set_detail("%s: %s", path, strerror(errno)); err = PROTO_E_IO; }
    if (!err && anon) err = tmp_link(fd, path, tmp, cap);
    if (!err && rename(tmp, path) != 0) { proto_set_detail("%s: %s", path, strerror(errno)); err = PROTO_E_IO; }
    if (err && tmp[0]) unlink(tmp);
    return err;
}

static int write_all(int fd, const void *data, size_t n, const char *path)
{
    const char *p = data;
    while (n) {
        ssize_t k = write(fd, p, n);
        if (k < 0 && errno == EINTR) continue;
        if (k <= 0) { proto_set_detail("%s: %s", path, strerror(k < 0 ? errno : EIO)); return PROTO_E_IO; }
        p += k;
        n -= (size_t)k;
    }
    return PROTO_OK;
}

/* The temp file is opened once (proto_tmp_open), written, fsynced, named and renamed by fd. */
int proto_write_atomic(const char *path, const void *data, size_t n)
{
    char tmp[4200];
    bool anon;
    int fd = proto_tmp_open(path, tmp, sizeof tmp, &anon);
    if (fd < 0) return fd;
    int err = write_all(fd, data, n, path);
    if (err) proto_tmp_finish(fd, anon, tmp, sizeof tmp, path, false);
    else err = proto_tmp_finish(fd, anon, tmp, sizeof tmp, path, true);
    if (close(fd) != 0 && !err) {   /* after the rename: the data is fsynced, but say it */
        proto_set_detail("%s: %s", path, strerror(errno));
        err = PROTO_E_IO;
    }
    return err;
}

/* The last path component, trailing slashes dropped ("/" gives ""). */
void proto_dir_basename(const char *dir, char *dst, size_t cap)
{
    const char *end = dir + strlen(dir);
    while (end > dir + 1 && end[-1] == '/') end--;
    const char *base = end;
    while (base > dir && base[-1] != '/') base--;
    snprintf(dst, cap, "%.*s", (int)(end - base), base);
}
