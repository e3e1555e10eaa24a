/* fuzz-file.h - for fuzz targets whose parser reads a file: writes each input to one temporary
 * file (made once per process, in /dev/shm when it is writable) and returns its path. */
#ifndef SAEFLOW_FUZZ_FILE_H
#define SAEFLOW_FUZZ_FILE_H
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <unistd.h>

static const char *fuzz_input_file(const char *tag, const uint8_t *data, size_t size)
{
    static char path[96];
    if (!path[0]) {
        snprintf(path, sizeof path, "%s/fuzz-%s-XXXXXX", access("/dev/shm", W_OK) == 0 ? "/dev/shm" : "/tmp", tag);
        int fd = mkstemp(path);
        if (fd < 0) abort();
        close(fd);
    }
    FILE *f = fopen(path, "wb");
    if (!f) abort();
    if (size) fwrite(data, 1, size, f);
    fclose(f);
    return path;
}
#endif
