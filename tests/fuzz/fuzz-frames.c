/* fuzz-frames - libFuzzer target for the frame reader: any bytes through a pipe-less reader
 * (a memfd) must give frames or an error code, never a crash or a leak. `make fuzz`. */
#define _GNU_SOURCE
#include <stdint.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <unistd.h>
#include "proto.h"

int LLVMFuzzerTestOneInput(const uint8_t *data, size_t size)
{
    int fd = memfd_create("fuzz", 0), err;
    if (fd < 0) return 0;
    if (size && write(fd, data, size) != (ssize_t)size) { close(fd); return 0; }
    lseek(fd, 0, SEEK_SET);
    struct proto_reader *r = proto_reader_open_fd(fd, "fuzz", &err);
    if (r) {
        struct proto_frame f;
        for (int i = 0; i < 1000 && proto_reader_next(r, &f) == PROTO_OK; i++) {
            const struct proto_tensor *t = proto_frame_tensor(&f, "acts");
            struct proto_buf b = {0};
            if (t) { const float *x = proto_tensor_f32(t, &b, &err); (void)x; }
            proto_buf_destroy(&b);
        }
        proto_reader_close(r);
    }
    close(fd);
    return 0;
}
