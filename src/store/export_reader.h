/* export_reader.h: reading the data files of an audit export
 * (records-NNNNNN-PPPP.jsonl[.gz|.zst], docs/internals/audit-integrity.md):
 * one record a line, each a JSON object, compressed with gzip or zstd (by the
 * name's .zst ending; anything else goes through zlib, which reads plain files
 * as they are). Apart from the command so that it can be fuzzed
 * (tests/fuzz/fuzz_export_reader.c). Owns nothing past a call. */
#ifndef PX_EXPORT_READER_H
#define PX_EXPORT_READER_H

#include "audit.h"

#include <stdint.h>

/* The longest line (record) an export holds: a change record's before and after. */
#define PX_EXPORT_LINE_MAX (2 * PX_AUDIT_CHANGE_MAX + 8192)

/* Counts the lines of the data file at path, each of which must be a JSON
 * object of at most PX_EXPORT_LINE_MAX bytes, the last one ended by a line
 * feed. False when the file cannot be read, is damaged (compressed data
 * changed or cut short), or a line is not so; err then says which line and why. */
bool px_export_count_lines(const char *path, uint64_t *n, char *err, size_t errlen);

#endif
