/*
 * Replays every input under fuzz/corpus/<harness>/ and fuzz/regress/<harness>/
 * through the fuzz harnesses' entry points, built as ordinary code: each
 * seed still decodes and checks, and each crash the fuzzers found stays
 * fixed. One test per file; a crash names the file on stderr.
 */
#define QS_FUZZ_NO_ENTRY
#include "fuzz/fuzz_config.c"
#include "fuzz/fuzz_peer_frame.c"
#include "fuzz/fuzz_rpc_request.c"

#include <check.h>
#include <dirent.h>
#include <limits.h>
#include <signal.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <unistd.h>

#define MAX_FILES     4096
#define MAX_FILE_SIZE (1024 * 1024 + 4096)

struct harness {
	const char *name;
	int (*entry)(const uint8_t *data, size_t size);
	char *files[MAX_FILES];
	int n_files;
	int n_corpus; /* of which from fuzz/corpus/ */
};

static struct harness harnesses[] = {
    {.name = "peer_frame", .entry = qs_fuzz_peer_frame},
    {.name = "rpc_request", .entry = qs_fuzz_rpc_request},
    {.name = "config", .entry = qs_fuzz_config},
};

static const char *replaying;

static void
on_abort(int sig)
{
	static const char what[] = "check_fuzz_regress: crashed replaying ";

	if (replaying) {
		(void)!write(STDERR_FILENO, what, sizeof(what) - 1);
		(void)!write(STDERR_FILENO, replaying, strlen(replaying));
		(void)!write(STDERR_FILENO, "\n", 1);
	}
	signal(sig, SIG_DFL);
	raise(sig);
}

static int
cmp_str(const void *a, const void *b)
{
	return strcmp(*(char *const *)a, *(char *const *)b);
}

/* Add the regular files of `dir` (missing is fine) to h, sorted. */
static int
collect(struct harness *h, const char *dir)
{
	DIR *d = opendir(dir);
	struct dirent *e;
	int first = h->n_files, n = 0;

	if (!d)
		return 0;
	while ((e = readdir(d)) != NULL && h->n_files < MAX_FILES) {
		char path[PATH_MAX];
		struct stat st;

		if (e->d_name[0] == '.')
			continue;
		snprintf(path, sizeof(path), "%s/%s", dir, e->d_name);
		if (stat(path, &st) != 0 || !S_ISREG(st.st_mode))
			continue;
		h->files[h->n_files] = strdup(path);
		if (!h->files[h->n_files])
			break;
		h->n_files++;
		n++;
	}
	closedir(d);
	qsort(h->files + first, (size_t)n, sizeof(char *), cmp_str);
	return n;
}

static void
replay(struct harness *h, int i)
{
	FILE *f = fopen(h->files[i], "rb");
	uint8_t *buf = malloc(MAX_FILE_SIZE);
	size_t len;

	ck_assert_msg(f != NULL, "open %s", h->files[i]);
	ck_assert(buf != NULL);
	len = fread(buf, 1, MAX_FILE_SIZE, f);
	ck_assert_msg(!ferror(f), "read %s", h->files[i]);
	fclose(f);
	/* libFuzzer hands the harness exactly `len` bytes: so do we. */
	buf = realloc(buf, len ? len : 1);
	ck_assert(buf != NULL);
	replaying = h->files[i];
	signal(SIGABRT, on_abort);
	signal(SIGSEGV, on_abort);
	ck_assert_int_eq(h->entry(buf, len), 0);
	replaying = NULL;
	free(buf);
}

START_TEST(peer_frame_inputs_replay_clean)
{
	replay(&harnesses[0], _i);
}
END_TEST

START_TEST(rpc_request_inputs_replay_clean)
{
	replay(&harnesses[1], _i);
}
END_TEST

START_TEST(config_inputs_replay_clean)
{
	replay(&harnesses[2], _i);
}
END_TEST

START_TEST(every_harness_has_a_seed_corpus)
{
	for (size_t i = 0; i < sizeof(harnesses) / sizeof(harnesses[0]); i++)
		ck_assert_msg(harnesses[i].n_corpus > 0, "fuzz/corpus/%s is empty or missing",
		              harnesses[i].name);
}
END_TEST

static Suite *
fuzz_regress_suite(void)
{
	const TTest *tests[] = {peer_frame_inputs_replay_clean, rpc_request_inputs_replay_clean,
	                        config_inputs_replay_clean};
	Suite *s = suite_create("fuzz_regress");
	TCase *tc = tcase_create("replay");

	tcase_set_timeout(tc, 60);
	tcase_add_test(tc, every_harness_has_a_seed_corpus);
	for (size_t i = 0; i < sizeof(harnesses) / sizeof(harnesses[0]); i++)
		tcase_add_loop_test(tc, tests[i], 0, harnesses[i].n_files);
	suite_add_tcase(s, tc);
	return s;
}

int
main(void)
{
	SRunner *sr;
	int failed;

	for (size_t i = 0; i < sizeof(harnesses) / sizeof(harnesses[0]); i++) {
		struct harness *h = &harnesses[i];
		char dir[PATH_MAX];

		snprintf(dir, sizeof(dir), "fuzz/corpus/%s", h->name);
		h->n_corpus = collect(h, dir);
		snprintf(dir, sizeof(dir), "fuzz/regress/%s", h->name);
		collect(h, dir);
	}
	sr = srunner_create(fuzz_regress_suite());
	srunner_set_fork_status(sr, CK_FORK);
	srunner_run_all(sr, CK_NORMAL);
	failed = srunner_ntests_failed(sr);
	srunner_free(sr);
	for (size_t i = 0; i < sizeof(harnesses) / sizeof(harnesses[0]); i++)
		for (int f = 0; f < harnesses[i].n_files; f++)
			free(harnesses[i].files[f]);
	return failed ? EXIT_FAILURE : EXIT_SUCCESS;
}
