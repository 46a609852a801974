/* Helpers shared by the Check tests: temporary directories. */
#ifndef QS_TESTS_TMPDIR_H
#define QS_TESTS_TMPDIR_H

#include <check.h>
#include <stdio.h>
#include <stdlib.h>

/* Create a fresh temporary directory into buf (at least 64 bytes). */
static inline void
qs_test_mkdtemp(char *buf, size_t len)
{
	const char *base = getenv("TMPDIR");

	snprintf(buf, len, "%s/qsd-test-XXXXXX", base ? base : "/tmp");
	ck_assert_ptr_nonnull(mkdtemp(buf));
}

/* Remove a directory tree made by qs_test_mkdtemp(). */
static inline void
qs_test_rmtree(const char *dir)
{
	char cmd[4200];

	snprintf(cmd, sizeof(cmd), "rm -rf '%s'", dir);
	if (system(cmd) != 0)
		fprintf(stderr, "could not remove %s\n", dir);
}

#endif
