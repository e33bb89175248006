// A compute kernel with no I/O but its result: a sieve of Eratosthenes
// and an FNV-1a/xorshift mix over the primes. Exits with status 0.
#include <stdint.h>
#include <stdio.h>
#include <string.h>

#define N 1000000

static unsigned char composite[N];

int main(void) {
    memset(composite, 0, sizeof composite);
    unsigned count = 0;
    uint64_t h = 0xcbf29ce484222325ull;
    for (unsigned i = 2; i < N; i++) {
        if (composite[i]) {
            continue;
        }
        count++;
        h ^= i;
        h *= 0x100000001b3ull;
        h ^= h >> 29;
        for (uint64_t j = (uint64_t)i * i; j < N; j += i) {
            composite[j] = 1;
        }
    }
    uint32_t x = 2463534242u;
    for (int round = 0; round < 1000000; round++) {
        x ^= x << 13;
        x ^= x >> 17;
        x ^= x << 5;
        h += x;
    }
    printf("primes below %d: %u\n", N, count);
    printf("checksum: %016llx\n", (unsigned long long)h);
    return 0;
}
