// Prints its arguments and a few environment variables, then exits with
// status argc (so the runner can check that arguments arrived).
#include <stdio.h>
#include <stdlib.h>

extern char **environ;

int main(int argc, char **argv) {
    printf("argc=%d\n", argc);
    for (int i = 0; i < argc; i++) {
        printf("argv[%d]=%s\n", i, argv[i]);
    }
    int envc = 0;
    for (char **e = environ; *e; e++) {
        envc++;
    }
    printf("envc=%d\n", envc);
    const char *names[] = {"GREETING", "EMPTY", "MISSING"};
    for (unsigned i = 0; i < sizeof names / sizeof names[0]; i++) {
        const char *v = getenv(names[i]);
        if (v) {
            printf("%s=%s\n", names[i], v);
        } else {
            printf("%s unset\n", names[i]);
        }
    }
    return argc;
}
