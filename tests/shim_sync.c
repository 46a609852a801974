/*
 * Fault shim, loaded with LD_PRELOAD. It makes storage calls fail with EIO,
 * as a dying disk does, in three ways (any combination):
 *
 *   QS_SHIM_FAIL_SYNC=FILE         fsync and fdatasync fail while FILE exists
 *   QS_SHIM_SYNC_FAIL_AFTER=N      the Nth and every later fsync/fdatasync
 *                                  fails
 *   QS_SHIM_FAIL_RANGE=FILE        sync_file_range fails while FILE exists
 *                                  (Debian's RocksDB asserts that this never
 *                                  fails when it opens a file: the way to make
 *                                  RocksDB abort inside its own code)
 *   QS_SHIM_WRITE_FAIL_AFTER=N     the Nth and every later write/pwrite to a
 *                                  regular file fails
 *
 * Only files whose path starts with $QS_SHIM_PATH (if set) and ends with
 * $QS_SHIM_SUFFIX (if set, e.g. ".sst") are affected, and only those count
 * towards N. A failed call does nothing. Every injected failure is appended
 * to the file named by $QS_SHIM_COUNT (if set), one line each, so that a test
 * can tell the fault really happened.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fsync(int fd);
int fdatasync(int fd);
int sync_file_range(int fd, off64_t offset, off64_t nbytes, unsigned int flags);
ssize_t write(int fd, const void *buf, size_t n);
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off);
ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off);

static atomic_ulong sync_calls;
static atomic_ulong write_calls;
static __thread int in_shim; /* our own writes (the count file) pass */

static unsigned long
env_ulong(const char *name)
{
	const char *v = getenv(name);

	return v && *v ? strtoul(v, NULL, 10) : 0;
}

/* Whether fd is a regular file this shim is told to affect. */
static int
targeted(int fd)
{
	const char *prefix = getenv("QS_SHIM_PATH");
	const char *suffix = getenv("QS_SHIM_SUFFIX");
	char link[64], path[PATH_MAX];
	struct stat st;
	ssize_t n;

	if (fstat(fd, &st) != 0 || !S_ISREG(st.st_mode))
		return 0;
	if (!prefix && !suffix)
		return 1;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	n = readlink(link, path, sizeof(path) - 1);
	if (n < 0)
		return 0;
	path[n] = '\0';
	if (prefix && strncmp(path, prefix, strlen(prefix)) != 0)
		return 0;
	if (suffix &&
	    ((size_t)n < strlen(suffix) || strcmp(path + n - strlen(suffix), suffix) != 0))
		return 0;
	return 1;
}

static void
record(const char *what)
{
	const char *count = getenv("QS_SHIM_COUNT");
	int fd;

	if (!count)
		return;
	in_shim = 1;
	fd = open(count, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd >= 0) {
		if (write(fd, what, strlen(what)) < 0) {
			/* best effort: the failure is injected anyway */
		}
		close(fd);
	}
	in_shim = 0;
}

static int
sync_fails(int fd)
{
	const char *trigger = getenv("QS_SHIM_FAIL_SYNC");
	unsigned long after = env_ulong("QS_SHIM_SYNC_FAIL_AFTER");
	struct stat st;
	int fail = 0;

	if (!targeted(fd))
		return 0;
	if (trigger && stat(trigger, &st) == 0)
		fail = 1;
	if (after && atomic_fetch_add(&sync_calls, 1) + 1 >= after)
		fail = 1;
	if (fail)
		record("sync\n");
	return fail;
}

static int
range_fails(int fd)
{
	const char *trigger = getenv("QS_SHIM_FAIL_RANGE");
	struct stat st;

	if (!trigger || stat(trigger, &st) != 0 || !targeted(fd))
		return 0;
	record("sync_file_range\n");
	return 1;
}

static int
write_fails(int fd)
{
	unsigned long after;

	if (in_shim)
		return 0;
	after = env_ulong("QS_SHIM_WRITE_FAIL_AFTER");
	if (!after || !targeted(fd))
		return 0;
	if (atomic_fetch_add(&write_calls, 1) + 1 < after)
		return 0;
	record("write\n");
	return 1;
}

#define REAL(name) ((__typeof__(&name))real_symbol(#name))

static void *
real_symbol(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	if (!p)
		abort();
	return p;
}

int
fsync(int fd)
{
	if (sync_fails(fd)) {
		errno = EIO;
		return -1;
	}
	return REAL(fsync)(fd);
}

int
fdatasync(int fd)
{
	if (sync_fails(fd)) {
		errno = EIO;
		return -1;
	}
	return REAL(fdatasync)(fd);
}

int
sync_file_range(int fd, off64_t offset, off64_t nbytes, unsigned int flags)
{
	if (range_fails(fd)) {
		errno = EIO;
		return -1;
	}
	return REAL(sync_file_range)(fd, offset, nbytes, flags);
}

ssize_t
write(int fd, const void *buf, size_t n)
{
	if (write_fails(fd)) {
		errno = EIO;
		return -1;
	}
	return REAL(write)(fd, buf, n);
}

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
	if (write_fails(fd)) {
		errno = EIO;
		return -1;
	}
	return REAL(pwrite)(fd, buf, n, off);
}

ssize_t
pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
	if (write_fails(fd)) {
		errno = EIO;
		return -1;
	}
	return REAL(pwrite64)(fd, buf, n, off);
}

/* Lets a test tell that the shim is in place. */
__attribute__((constructor)) static void
shim_loaded(void)
{
	setenv("QS_SHIM_LOADED", "1", 1);
}
