/* Sleeps 5 x 20 ms with usleep (wasi-libc's clock_nanosleep, that is
 * poll_oneoff on a relative monotonic clock) and checks on the monotonic
 * clock that at least 100 ms passed. Exit status 0 when they did. */
#include <stdio.h>
#include <time.h>
#include <unistd.h>

int main(void) {
    struct timespec a, b;
    clock_gettime(CLOCK_MONOTONIC, &a);
    for (int i = 0; i < 5; i++) {
        usleep(20000);
    }
    clock_gettime(CLOCK_MONOTONIC, &b);
    long long ms = (long long)(b.tv_sec - a.tv_sec) * 1000 + (b.tv_nsec - a.tv_nsec) / 1000000;
    int ok = ms >= 100;
    printf("slept 5 x 20 ms: %s\n", ok ? "at least 100 ms passed" : "too short");
    return ok ? 0 : 1;
}
