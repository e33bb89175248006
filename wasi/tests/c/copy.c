// File system tour inside a sandbox preopened as "." (or "/"). The runner
// creates `in.txt` in the sandbox and `escape.txt` in the sandbox's parent
// directory (see README.md). The program copies in.txt to out.txt, makes
// and removes a directory and a temporary file, tries to leave the
// sandbox in several ways, lists the directory, and exits with the number
// of results that differed from what a correct sandbox gives (0).
#include <dirent.h>
#include <errno.h>
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>
#include <wasi/api.h>

static int failures = 0;

static const char *errname(int e) {
    switch (e) {
    case 0: return "OK";
    case EEXIST: return "EEXIST";
    case ENOENT: return "ENOENT";
    case ENOTCAPABLE: return "ENOTCAPABLE";
    case EPERM: return "EPERM";
    case ELOOP: return "ELOOP";
    case ENOTDIR: return "ENOTDIR";
    case ENOTEMPTY: return "ENOTEMPTY";
    case EACCES: return "EACCES";
    default: return "other";
    }
}

// Prints `what: NAME` for result errno `got` and counts a failure unless
// it equals `want`.
static void expect(const char *what, int got, int want) {
    printf("%s: %s%s\n", what, errname(got), got == want ? "" : " (UNEXPECTED)");
    if (got != want) {
        failures++;
    }
}

static int rc(int r) { return r == 0 ? 0 : errno; }

// open(path) for reading: 0 or errno. Closes what it opened.
static int try_open(const char *path) {
    int fd = open(path, O_RDONLY);
    if (fd < 0) {
        return errno;
    }
    close(fd);
    return 0;
}

static int cmp(const void *a, const void *b) {
    return strcmp(*(const char *const *)a, *(const char *const *)b);
}

int main(void) {
    // Copy in.txt to out.txt.
    FILE *in = fopen("in.txt", "rb");
    if (!in) {
        printf("open in.txt: %s\n", errname(errno));
        return 100;
    }
    char buf[4096];
    size_t n = fread(buf, 1, sizeof buf, in);
    fclose(in);
    printf("read in.txt: %zu bytes\n", n);
    FILE *out = fopen("out.txt", "wb");
    if (!out || fwrite(buf, 1, n, out) != n || fclose(out) != 0) {
        printf("write out.txt failed: %s\n", errname(errno));
        return 101;
    }
    char back[4096];
    FILE *check = fopen("out.txt", "rb");
    size_t m = check ? fread(back, 1, sizeof back, check) : 0;
    if (check) {
        fclose(check);
    }
    int same = m == n && memcmp(buf, back, n) == 0;
    printf("copied out.txt: %zu bytes, %s\n", m, same ? "identical" : "DIFFERENT");
    failures += !same;
    struct stat st;
    expect("stat out.txt", rc(stat("out.txt", &st)), 0);
    printf("out.txt size: %lld, regular: %d\n", (long long)st.st_size, S_ISREG(st.st_mode) ? 1 : 0);

    // Seek and pread on the copy.
    int fd = open("out.txt", O_RDONLY);
    off_t end = lseek(fd, 0, SEEK_END);
    char two[2] = {0, 0};
    ssize_t got = pread(fd, two, 2, 1);
    close(fd);
    printf("lseek end: %lld, pread at 1: %zd bytes \"%c%c\"\n", (long long)end, got, two[0], two[1]);

    // Directories, a temporary file, rename and unlink.
    expect("mkdir subdir", rc(mkdir("subdir", 0755)), 0);
    expect("mkdir subdir again", rc(mkdir("subdir", 0755)), EEXIST);
    FILE *tmp = fopen("subdir/tmp.txt", "w");
    if (tmp) {
        fputs("temporary\n", tmp);
        fclose(tmp);
    }
    expect("create subdir/tmp.txt", tmp ? 0 : errno, 0);
    expect("rename to subdir/renamed.txt", rc(rename("subdir/tmp.txt", "subdir/renamed.txt")), 0);
    expect("stat subdir/tmp.txt", rc(stat("subdir/tmp.txt", &st)), ENOENT);
    expect("stat subdir/renamed.txt", rc(stat("subdir/renamed.txt", &st)), 0);
    printf("renamed.txt size: %lld\n", (long long)st.st_size);
    expect("rmdir non-empty subdir", rc(rmdir("subdir")), ENOTEMPTY);
    expect("unlink subdir/renamed.txt", rc(unlink("subdir/renamed.txt")), 0);
    expect("stat after unlink", rc(stat("subdir/renamed.txt", &st)), ENOENT);

    // Ways out of the sandbox: all must fail.
    expect("open ../escape.txt", try_open("../escape.txt"), ENOTCAPABLE);
    expect("open subdir/../../escape.txt", try_open("subdir/../../escape.txt"), ENOTCAPABLE);
    // wasi-libc maps absolute paths onto the preopen named "." (or "/"),
    // so this looks for etc/passwd inside the sandbox.
    expect("open /etc/passwd", try_open("/etc/passwd"), ENOENT);
    // The host itself refuses an absolute path.
    __wasi_fd_t raw;
    __wasi_errno_t werr = __wasi_path_open(3, __WASI_LOOKUPFLAGS_SYMLINK_FOLLOW, "/etc/passwd", 0,
                                           __WASI_RIGHTS_FD_READ, 0, 0, &raw);
    expect("path_open(3, \"/etc/passwd\")", werr, ENOTCAPABLE);
    // A symlink with an absolute target is refused (it could only ever
    // point outside); a relative one may point outside, but following it
    // is confined.
    expect("symlink link_abs -> /etc/passwd", rc(symlink("/etc/passwd", "link_abs")), ENOTCAPABLE);
    expect("lstat link_abs", rc(lstat("link_abs", &st)), ENOENT);
    expect("symlink link_out -> ../escape.txt", rc(symlink("../escape.txt", "link_out")), 0);
    expect("open link_out", try_open("link_out"), ENOTCAPABLE);
    expect("stat link_out", rc(stat("link_out", &st)), ENOTCAPABLE);
    expect("lstat link_out", rc(lstat("link_out", &st)), 0);
    printf("link_out is a symlink: %d\n", S_ISLNK(st.st_mode) ? 1 : 0);
    char target[64] = {0};
    ssize_t tl = readlink("link_out", target, sizeof target - 1);
    printf("readlink link_out: %s\n", tl >= 0 ? target : errname(errno));
    expect("symlink link_up -> ..", rc(symlink("..", "link_up")), 0);
    expect("open link_up/escape.txt", try_open("link_up/escape.txt"), ENOTCAPABLE);
    expect("mkdir ../made_outside", rc(mkdir("../made_outside", 0755)), ENOTCAPABLE);
    expect("unlink ../escape.txt", rc(unlink("../escape.txt")), ENOTCAPABLE);
    expect("rename out.txt to link_up/stolen.txt", rc(rename("out.txt", "link_up/stolen.txt")), ENOTCAPABLE);

    expect("rmdir subdir", rc(rmdir("subdir")), 0);

    // List the directory, sorted, without "." and "..".
    DIR *d = opendir(".");
    if (!d) {
        printf("opendir .: %s\n", errname(errno));
        return 102;
    }
    char *names[64];
    int count = 0;
    struct dirent *e;
    while ((e = readdir(d)) && count < 64) {
        if (strcmp(e->d_name, ".") == 0 || strcmp(e->d_name, "..") == 0) {
            continue;
        }
        const char *kind = e->d_type == DT_REG ? "file" : e->d_type == DT_DIR ? "dir" : e->d_type == DT_LNK ? "symlink" : "other";
        char *line = malloc(strlen(e->d_name) + 16);
        sprintf(line, "%s (%s)", e->d_name, kind);
        names[count++] = line;
    }
    closedir(d);
    qsort(names, count, sizeof names[0], cmp);
    printf("listing: %d entries\n", count);
    for (int i = 0; i < count; i++) {
        printf("  %s\n", names[i]);
        free(names[i]);
    }
    printf("failures: %d\n", failures);
    return failures;
}
