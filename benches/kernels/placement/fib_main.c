/* Times run() from fib_shapes.py: fib(36), best of 5 (see fib.sh). With
 * WARM=k in the environment, a warm-up call fib(20) with k units of fuel
 * first takes the fuel check's slow branch (once, for k well below the
 * call count), and every timed run after it has fuel to spare. */
#include <stdio.h>
#include <stdlib.h>
#include <time.h>

long run(void *vmctx, long n, long fuel);

static double now_ms(void) {
    struct timespec t;
    clock_gettime(CLOCK_MONOTONIC, &t);
    return t.tv_sec * 1e3 + t.tv_nsec / 1e6;
}

int main(void) {
    /* Myriad's shape reads its stack limit at vmctx + 8, Wasmtime's at
     * (vmctx + 16)->8: both 0, no limit. */
    static long vmctx[4], limits[2];
    vmctx[2] = (long)limits;
    const char *warm = getenv("WARM");
    if (warm && atol(warm) > 0) run(vmctx, 20, atol(warm));
    double best = 1e9;
    long r = 0;
    for (int k = 0; k < 5; k++) {
        double t = now_ms();
        r = run(vmctx, 36, 0x7fffffffffffL);
        t = now_ms() - t;
        if (t < best) best = t;
    }
    if (r != 14930352) {
        fprintf(stderr, "wrong result %ld\n", r);
        return 1;
    }
    printf("%.1f\n", best);
    return 0;
}
