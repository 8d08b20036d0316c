# scripts/glibc-names.sh: sourced by package.sh and check-artifact.sh, so the
# bundler and the checker agree on what belongs to the image.
# shellcheck shell=bash

# Libraries that belong to glibc (and the loader): never bundled, always taken
# from the image, and the only dependencies allowed outside lib/.
is_glibc_name() {
  case "$1" in
    ld-linux*.so*|ld64.so*|ld.so*|libc.so*|libm.so*|libpthread.so*|libdl.so*|librt.so*| \
    libresolv.so*|libutil.so*|libanl.so*|libmvec.so*|libnsl.so*|libnss_*.so*| \
    libBrokenLocale.so*|libthread_db.so*|libc_malloc_debug.so*|libmemusage.so*| \
    libpcprofile.so*|libcidn.so*|libSegFault.so*)
      return 0 ;;
  esac
  return 1
}
