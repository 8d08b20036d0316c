/* fs.h: small file-system helpers shared by the commands and the embedded stores. */
#ifndef PX_FS_H
#define PX_FS_H

#include <sys/types.h>

/* `mkdir -p` of the directory part of path (nothing when path has no '/'):
 * every missing directory is created with mode. 0, or the errno of the
 * first directory that could not be created (ENAMETOOLONG past PATH_MAX). */
int px_fs_make_parent(const char *path, mode_t mode);

#endif
