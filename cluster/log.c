/* log.c: timestamped lines on stderr. One fprintf per line keeps lines whole
 * when several threads log at once (stdio locks the stream per call). */
#include "cluster/log.h"

#include <stdarg.h>
#include <stdio.h>
#include <time.h>

static const char *log_program = "quorum";

void log_set_program(const char *name)
{
	log_program = name;
}

static void log_line(const char *level, const char *fmt, va_list ap)
{
	char message[1024];
	char stamp[32];
	struct timespec now;
	struct tm tm;

	vsnprintf(message, sizeof(message), fmt, ap);
	clock_gettime(CLOCK_REALTIME, &now);
	gmtime_r(&now.tv_sec, &tm);
	strftime(stamp, sizeof(stamp), "%Y-%m-%dT%H:%M:%S", &tm);
	fprintf(stderr, "%s.%03ldZ %s %s: %s\n", stamp, now.tv_nsec / 1000000L,
		log_program, level, message);
}

void log_info(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_line("info", fmt, ap);
	va_end(ap);
}

void log_warn(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_line("warn", fmt, ap);
	va_end(ap);
}

void log_error(const char *fmt, ...)
{
	va_list ap;
	va_start(ap, fmt);
	log_line("error", fmt, ap);
	va_end(ap);
}
