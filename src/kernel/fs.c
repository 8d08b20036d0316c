/* fs.c: file-system helpers (see fs.h). */
#include "fs.h"

#include <errno.h>
#include <limits.h>
#include <stdio.h>
#include <string.h>
#include <sys/stat.h>

int px_fs_make_parent(const char *path, mode_t mode)
{
    char dir[PATH_MAX];
    int n = snprintf(dir, sizeof(dir), "%s", path);
    if (n < 0 || (size_t)n >= sizeof(dir))
        return ENAMETOOLONG;
    char *slash = strrchr(dir, '/');
    if (!slash || slash == dir)
        return 0;
    *slash = '\0';
    /* Each prefix in turn, then the whole directory: an existing one is fine
     * (EEXIST), so "a/b/c" and "/abs/a/b" both work from any depth. */
    for (char *p = dir + 1; *p; p++) {
        if (*p != '/')
            continue;
        *p = '\0';
        if (mkdir(dir, mode) != 0 && errno != EEXIST)
            return errno;
        *p = '/';
    }
    if (mkdir(dir, mode) != 0 && errno != EEXIST)
        return errno;
    return 0;
}
