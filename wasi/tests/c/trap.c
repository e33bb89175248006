// Prints a line, flushes it, then executes `unreachable`: the instance
// must end with a trap, after "about to trap" reached stdout.
#include <stdio.h>

int main(void) {
    printf("about to trap\n");
    fflush(stdout);
    __builtin_trap();
}
