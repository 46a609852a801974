/*
 * Clock readings and timer intervals, shared by the daemon's stages, the
 * transports and the tools. client/qsclient.c, the library other programs
 * link, keeps its own reading and does not include this header.
 *
 * Wall-clock time (CLOCK_REALTIME) is what crosses the wire and the disk:
 * batch expirations, the `now_us` of a Hello. Everything that measures an
 * interval on this host (latencies, rate limits, backoff) uses the monotonic
 * clock, which no clock step moves. clock_gettime() cannot fail for these
 * two clocks, so the readings return no error.
 */
#ifndef QS_DAEMON_CLOCK_H
#define QS_DAEMON_CLOCK_H

#include <stdint.h>
#include <sys/time.h>
#include <time.h>

/* Nanoseconds on clock `id` (CLOCK_REALTIME or CLOCK_MONOTONIC). */
static inline uint64_t
qs_clock_ns(clockid_t id)
{
	struct timespec ts;

	clock_gettime(id, &ts);
	return (uint64_t)ts.tv_sec * 1000000000u + (uint64_t)ts.tv_nsec;
}

/* Microseconds since the Unix epoch (CLOCK_REALTIME). */
static inline uint64_t
qs_clock_wall_us(void)
{
	return qs_clock_ns(CLOCK_REALTIME) / 1000u;
}

/* Microseconds on the monotonic clock, from an arbitrary origin. */
static inline uint64_t
qs_clock_mono_us(void)
{
	return qs_clock_ns(CLOCK_MONOTONIC) / 1000u;
}

/* Milliseconds on the monotonic clock, from an arbitrary origin. */
static inline uint64_t
qs_clock_mono_ms(void)
{
	return qs_clock_ns(CLOCK_MONOTONIC) / 1000000u;
}

/* Nanoseconds on the monotonic clock, from an arbitrary origin. */
static inline uint64_t
qs_clock_mono_ns(void)
{
	return qs_clock_ns(CLOCK_MONOTONIC);
}

/* `ms` milliseconds as the interval libevent's timers take. */
static inline struct timeval
qs_clock_tv_ms(uint64_t ms)
{
	struct timeval tv = {.tv_sec = (time_t)(ms / 1000),
	                     .tv_usec = (suseconds_t)(ms % 1000 * 1000)};

	return tv;
}

/* `us` microseconds as the interval libevent's timers take. */
static inline struct timeval
qs_clock_tv_us(uint64_t us)
{
	struct timeval tv = {.tv_sec = (time_t)(us / 1000000),
	                     .tv_usec = (suseconds_t)(us % 1000000)};

	return tv;
}

#endif
