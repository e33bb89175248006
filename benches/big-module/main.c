/*
 * A small driver for the SQLite amalgamation: reads SQL from standard
 * input (all of it), runs it on an in-memory database with
 * sqlite3_exec and prints each result row as `col = value` pairs
 * separated by `|`. Exits 1 on an SQL error.
 */
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include "sqlite3.h"

static int print_row(void *unused, int n, char **values, char **names) {
    (void)unused;
    for (int i = 0; i < n; i++) {
        printf("%s%s = %s", i ? " | " : "", names[i], values[i] ? values[i] : "NULL");
    }
    printf("\n");
    return 0;
}

int main(void) {
    size_t cap = 1 << 16, len = 0;
    char *sql = malloc(cap);
    size_t got;
    while (sql && (got = fread(sql + len, 1, cap - len - 1, stdin)) > 0) {
        len += got;
        if (cap - len < 2) {
            cap *= 2;
            sql = realloc(sql, cap);
        }
    }
    if (!sql) {
        fprintf(stderr, "out of memory\n");
        return 1;
    }
    sql[len] = 0;
    sqlite3 *db;
    if (sqlite3_open(":memory:", &db) != SQLITE_OK) {
        fprintf(stderr, "open: %s\n", sqlite3_errmsg(db));
        return 1;
    }
    char *err = NULL;
    int rc = sqlite3_exec(db, sql, print_row, NULL, &err);
    if (rc != SQLITE_OK) {
        fprintf(stderr, "error: %s\n", err ? err : sqlite3_errstr(rc));
        sqlite3_free(err);
        sqlite3_close(db);
        return 1;
    }
    sqlite3_close(db);
    free(sql);
    return 0;
}
