// Large reads and writes. The host moves at most 256 KiB per read or write
// call (a short read or write, as POSIX allows), and libc's stdio loops
// until everything is moved. Setup: an empty sandbox preopened as ".".
// Writes big.bin (3 MiB + 17 bytes) with one fwrite, reads it back with one
// fread, shows what one raw write() and one raw read() of the whole buffer
// moved, then writes 1 MiB to stderr with one fwrite (stderr is
// unbuffered, so that is one large write the host cuts short). Exits with
// the number of failures.
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#define SIZE (3 * 1024 * 1024 + 17)
#define ERR_SIZE (1024 * 1024)

int main(void) {
    unsigned char *buf = malloc(SIZE);
    unsigned char *back = malloc(SIZE);
    if (!buf || !back) {
        printf("malloc failed\n");
        return 100;
    }
    unsigned x = 12345;
    for (size_t i = 0; i < SIZE; i++) {
        x = x * 1103515245u + 12345u;
        buf[i] = (unsigned char)(x >> 24);
    }
    int failures = 0;

    FILE *f = fopen("big.bin", "wb");
    size_t w = f ? fwrite(buf, 1, SIZE, f) : 0;
    if (!f || fclose(f) != 0) {
        failures++;
    }
    printf("fwrite big.bin: %zu of %d bytes\n", w, SIZE);
    failures += w != SIZE;

    memset(back, 0, SIZE);
    f = fopen("big.bin", "rb");
    size_t r = f ? fread(back, 1, SIZE, f) : 0;
    if (f) {
        fclose(f);
    }
    int same = r == SIZE && memcmp(buf, back, SIZE) == 0;
    printf("fread big.bin: %zu bytes, %s\n", r, same ? "identical" : "DIFFERENT");
    failures += !same;

    int fd = open("raw.bin", O_WRONLY | O_CREAT | O_TRUNC, 0644);
    ssize_t n = write(fd, buf, SIZE);
    close(fd);
    printf("one write() of %d bytes wrote %zd\n", SIZE, n);
    failures += n <= 0 || n > SIZE;

    fd = open("big.bin", O_RDONLY);
    n = read(fd, back, SIZE);
    close(fd);
    printf("one read() of %d bytes read %zd\n", SIZE, n);
    failures += n <= 0 || n > SIZE;

    for (size_t i = 0; i < ERR_SIZE; i++) {
        buf[i] = (i % 64 == 63) ? '\n' : (unsigned char)('a' + i % 26);
    }
    size_t e = fwrite(buf, 1, ERR_SIZE, stderr);
    printf("fwrite stderr: %zu of %d bytes\n", e, ERR_SIZE);
    failures += e != ERR_SIZE;

    printf("failures: %d\n", failures);
    return failures;
}
