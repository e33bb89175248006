// Prints one line and exits with status 0.
#include <stdio.h>

int main(void) {
    printf("hello from wasi\n");
    return 0;
}
