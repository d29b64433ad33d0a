/* log.h: one line per event on stderr, prefixed with time, program and level.
 * Processes started by `quorumfs --local` have stderr redirected to a file
 * in DATADIR, so this is also the daemons' log. */
#ifndef QUORUM_LOG_H
#define QUORUM_LOG_H

void log_set_program(const char *name);

void log_info(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_warn(const char *fmt, ...) __attribute__((format(printf, 1, 2)));
void log_error(const char *fmt, ...) __attribute__((format(printf, 1, 2)));

#endif
