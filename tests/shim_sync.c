/*
 * Fault shim, loaded with LD_PRELOAD: while the file named by
 * $QS_SHIM_FAIL_SYNC exists, fsync(2), fdatasync(2) and sync_file_range(2)
 * fail with EIO without syncing. Otherwise they pass through. Every failure
 * injected is counted in the file named by $QS_SHIM_COUNT (if set), one line
 * per failure, so a test can tell the fault really happened.
 */
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <stdint.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

int fsync(int fd);
int fdatasync(int fd);
int sync_file_range(int fd, off64_t offset, off64_t nbytes, unsigned int flags);

static int
should_fail(void)
{
	const char *trigger = getenv("QS_SHIM_FAIL_SYNC");
	const char *count = getenv("QS_SHIM_COUNT");
	struct stat st;
	int fd;

	if (!trigger || stat(trigger, &st) != 0)
		return 0;
	if (count) {
		fd = open(count, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
		if (fd >= 0) {
			if (write(fd, "sync\n", 5) < 0) {
				/* The count is best effort; the failure is injected anyway. */
			}
			close(fd);
		}
	}
	return 1;
}

#define PASS_THROUGH(ret, name, params, args)                                                      \
	ret name params                                                                            \
	{                                                                                          \
		static ret(*real) params;                                                          \
		if (should_fail()) {                                                               \
			errno = EIO;                                                               \
			return -1;                                                                 \
		}                                                                                  \
		if (!real)                                                                         \
			*(void **)&real = dlsym(RTLD_NEXT, #name);                                 \
		return real args;                                                                  \
	}

PASS_THROUGH(int, fsync, (int fd), (fd))
PASS_THROUGH(int, fdatasync, (int fd), (fd))
PASS_THROUGH(int, sync_file_range, (int fd, off64_t offset, off64_t nbytes, unsigned int flags),
             (fd, offset, nbytes, flags))

/* Lets a test tell that the shim is in place. */
__attribute__((constructor)) static void
shim_loaded(void)
{
	setenv("QS_SHIM_LOADED", "1", 1);
}
