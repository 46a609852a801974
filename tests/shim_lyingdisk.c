/*
 * Lying-disk shim, loaded with LD_PRELOAD: the page cache of a disk that
 * loses power. Under the directory $QS_LD_DIR it remembers, per file, what
 * was written since the file's last fsync/fdatasync and, per directory, the
 * entries it had at its last fsync; at a simulated power cut it throws all
 * of that away, as a disk without a battery-backed cache would, and the
 * process dies of SIGKILL.
 *
 * What is modelled (the calls RocksDB and qsd make, checked with strace):
 *   write, pwrite, pwrite64, writev, pwritev   data past the file's last
 *       sync is lost; bytes overwritten inside the synced part come back
 *   ftruncate, truncate, open(O_TRUNC)          the synced size and bytes
 *       come back
 *   fallocate, posix_fallocate                  a size grown is lost; punched
 *       or zeroed synced bytes come back; FALLOC_FL_KEEP_SIZE changes nothing
 *   fsync, fdatasync                            on a file: its data is
 *       durable; on a directory: its entries are
 *   syncfs, sync                                everything is durable
 *   open(O_CREAT), creat, rename, renameat, renameat2, link, unlink,
 *   unlinkat, mkdir, rmdir                      a directory's entries go back
 *       to what they were at its last fsync (a removed name comes back with
 *       the file it named, at that file's synced content)
 * Not modelled: writes through mmap (RocksDB's default is off) and stdio
 * streams (fopen/fwrite write through glibc's internal calls).
 *
 * Environment:
 *   QS_LD_DIR=DIR          the tree to model (required; nothing else is touched)
 *   QS_LD_GRAVE=DIR        an empty directory on the same file system, where
 *                          removed files are kept until their removal is
 *                          durable (required)
 *   QS_LD_CUT_FILE=FILE    cut the power as soon as FILE exists (polled every
 *                          millisecond)
 *   QS_LD_CUT_AFTER=N      cut the power just before the Nth modelled call
 *                          counted while armed
 *   QS_LD_ARM_FILE=FILE    calls are counted only once FILE exists (default:
 *                          from the start)
 *   QS_LD_NOSYNC_SUFFIX=S  fsync/fdatasync of files whose name ends with S
 *                          (a directory: "/") succeed without syncing: the
 *                          missing sync a correct writer never has ("" : all)
 *   QS_LD_LOG=FILE         one line appended per cut: what was thrown away
 *
 * The state at process start is taken as durable. Everything runs under one
 * lock, so no modelled call is half done at the cut. Every file opened for
 * writing stays open in the shim until the process ends (its inode must not
 * be reused while the cut may still need it), so the shim suits processes
 * that live for one crash cycle: at most 4096 such files, and the space of
 * deleted files comes back only when the process ends.
 */
#include <dirent.h>
#include <dlfcn.h>
#include <errno.h>
#include <fcntl.h>
#include <limits.h>
#include <pthread.h>
#include <signal.h>
#include <stdarg.h>
#include <stdatomic.h>
#include <stdint.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/stat.h>
#include <sys/uio.h>
#include <time.h>
#include <unistd.h>

#define LD_MAX_FDS   65536
#define LD_MAX_FILES 4096
#define LD_MAX_DIRS  64
#define LD_MAX_NAMES 4096

int open(const char *path, int flags, ...);
int open64(const char *path, int flags, ...);
int openat(int dirfd, const char *path, int flags, ...);
int openat64(int dirfd, const char *path, int flags, ...);
int creat(const char *path, mode_t mode);
int close(int fd);
ssize_t write(int fd, const void *buf, size_t n);
ssize_t pwrite(int fd, const void *buf, size_t n, off_t off);
ssize_t pwrite64(int fd, const void *buf, size_t n, off64_t off);
ssize_t writev(int fd, const struct iovec *iov, int cnt);
ssize_t pwritev(int fd, const struct iovec *iov, int cnt, off_t off);
int fsync(int fd);
int fdatasync(int fd);
int syncfs(int fd);
void sync(void);
int ftruncate(int fd, off_t len);
int ftruncate64(int fd, off64_t len);
int truncate(const char *path, off_t len);
int fallocate(int fd, int mode, off_t off, off_t len);
int fallocate64(int fd, int mode, off64_t off, off64_t len);
int posix_fallocate(int fd, off_t off, off_t len);
int rename(const char *from, const char *to);
int renameat(int fromfd, const char *from, int tofd, const char *to);
int renameat2(int fromfd, const char *from, int tofd, const char *to, unsigned int flags);
int link(const char *from, const char *to);
int unlink(const char *path);
int unlinkat(int dirfd, const char *path, int flags);
int mkdir(const char *path, mode_t mode);
int rmdir(const char *path);

/* The bytes of [off, off + len) before a write changed them. */
struct ld_undo {
	struct ld_undo *next;
	off_t off;
	size_t len;
	unsigned char bytes[];
};

/* One modelled file (an inode), held open by the shim until the cut. */
struct ld_file {
	dev_t dev;
	ino_t ino;
	int fd;               /* the shim's own O_RDWR descriptor */
	off_t synced;         /* size at the last sync */
	struct ld_undo *undo; /* newest first */
	int dirty;
};

/* A name in a directory at the directory's last sync. */
struct ld_name {
	char name[NAME_MAX + 1];
	dev_t dev;
	ino_t ino;
	int is_dir;
};

/* A directory changed since its last sync, with its durable entries. */
struct ld_dir {
	char path[PATH_MAX];
	struct ld_name *names;
	size_t n_names;
};

static struct {
	pthread_mutex_t lock;
	int ready;
	char root[PATH_MAX];
	size_t root_len;
	char grave[PATH_MAX - 64];
	const char *nosync_suffix;
	unsigned long cut_after;
	unsigned long ops;
	unsigned long armed_ops;
	atomic_int armed;
	struct ld_file *by_fd[LD_MAX_FDS];
	int fd_is_dir[LD_MAX_FDS];
	struct ld_file files[LD_MAX_FILES];
	size_t n_files;
	struct ld_dir dirs[LD_MAX_DIRS];
	size_t n_dirs;
} ld = {.lock = PTHREAD_MUTEX_INITIALIZER};

static struct {
	int (*open)(const char *, int, ...);
	int (*openat)(int, const char *, int, ...);
	int (*close)(int);
	ssize_t (*write)(int, const void *, size_t);
	ssize_t (*pwrite)(int, const void *, size_t, off_t);
	ssize_t (*pwrite64)(int, const void *, size_t, off64_t);
	ssize_t (*writev)(int, const struct iovec *, int);
	ssize_t (*pwritev)(int, const struct iovec *, int, off_t);
	int (*fsync)(int);
	int (*fdatasync)(int);
	int (*syncfs)(int);
	void (*sync)(void);
	int (*ftruncate)(int, off_t);
	int (*ftruncate64)(int, off64_t);
	int (*truncate)(const char *, off_t);
	int (*fallocate)(int, int, off_t, off_t);
	int (*fallocate64)(int, int, off64_t, off64_t);
	int (*posix_fallocate)(int, off_t, off_t);
	int (*renameat2)(int, const char *, int, const char *, unsigned int);
	int (*link)(const char *, const char *);
	int (*unlinkat)(int, const char *, int);
	int (*mkdir)(const char *, mode_t);
	int (*rmdir)(const char *);
} real;

static void *
sym(const char *name)
{
	void *p = dlsym(RTLD_NEXT, name);

	if (!p) {
		fprintf(stderr, "shim_lyingdisk: no %s\n", name);
		abort();
	}
	return p;
}

static void
die(const char *what)
{
	fprintf(stderr, "shim_lyingdisk: %s: %s\n", what, strerror(errno));
	abort();
}

/* Drop empty and "." components and a trailing slash, so that one directory
 * has one name ("d//f" and "d/./f" are "d/f"). */
static void
normalize(char *p)
{
	char *r = p, *w = p;

	while (*r) {
		if (r[0] == '/' && (r[1] == '/' || r[1] == '\0')) {
			r++;
			continue;
		}
		if (r[0] == '/' && r[1] == '.' && (r[2] == '/' || r[2] == '\0')) {
			r += 2;
			continue;
		}
		*w++ = *r++;
	}
	if (w == p)
		*w++ = '/';
	*w = '\0';
}

/* The absolute path of (dirfd, path), or "" when it cannot be told. */
static void
abs_path(int dirfd, const char *path, char *out)
{
	char base[PATH_MAX], link[64];
	ssize_t n;

	out[0] = '\0';
	if (path[0] == '/') {
		snprintf(out, PATH_MAX, "%s", path);
		normalize(out);
		return;
	}
	if (dirfd == AT_FDCWD) {
		if (!getcwd(base, sizeof(base)))
			return;
	} else {
		snprintf(link, sizeof(link), "/proc/self/fd/%d", dirfd);
		n = readlink(link, base, sizeof(base) - 1);
		if (n < 0)
			return;
		base[n] = '\0';
	}
	if (strlen(base) + 1 + strlen(path) < PATH_MAX) {
		strcpy(out, base);
		strcat(out, "/");
		strcat(out, path);
		normalize(out);
	}
}

static int
under_root(const char *path)
{
	return ld.ready && path[0] && strncmp(path, ld.root, ld.root_len) == 0 &&
	       (path[ld.root_len] == '\0' || path[ld.root_len] == '/');
}

static void
split(const char *path, char *dir, char *name)
{
	const char *slash = strrchr(path, '/');

	snprintf(dir, PATH_MAX, "%.*s", (int)(slash - path), path);
	if (!dir[0])
		snprintf(dir, PATH_MAX, "/");
	snprintf(name, NAME_MAX + 1, "%s", slash + 1);
}

static struct ld_dir *
dir_find(const char *path)
{
	size_t i;

	for (i = 0; i < ld.n_dirs; i++)
		if (strcmp(ld.dirs[i].path, path) == 0)
			return &ld.dirs[i];
	return NULL;
}

/* A directory's entries are about to change: if they were durable until now,
 * remember them as the durable ones. */
static void
dir_touch(const char *path)
{
	struct ld_dir *d;
	struct dirent *e;
	struct stat st;
	DIR *dh;
	char p[PATH_MAX];

	if (!under_root(path) || dir_find(path))
		return;
	if (ld.n_dirs == LD_MAX_DIRS)
		die("too many directories");
	d = &ld.dirs[ld.n_dirs];
	snprintf(d->path, sizeof(d->path), "%s", path);
	d->names = calloc(LD_MAX_NAMES, sizeof(*d->names));
	d->n_names = 0;
	if (!d->names)
		die("calloc");
	dh = opendir(path);
	if (!dh)
		return; /* made since the last sync of its parent */
	while ((e = readdir(dh))) {
		if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
			continue;
		snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
		if (lstat(p, &st) != 0 || d->n_names == LD_MAX_NAMES)
			continue;
		snprintf(d->names[d->n_names].name, NAME_MAX + 1, "%s", e->d_name);
		d->names[d->n_names].dev = st.st_dev;
		d->names[d->n_names].ino = st.st_ino;
		d->names[d->n_names].is_dir = S_ISDIR(st.st_mode);
		d->n_names++;
	}
	closedir(dh);
	ld.n_dirs++;
}

static void
dir_synced(const char *path)
{
	struct ld_dir *d = dir_find(path);

	if (!d)
		return;
	free(d->names);
	*d = ld.dirs[--ld.n_dirs];
}

static void
grave_path(dev_t dev, ino_t ino, char *out)
{
	snprintf(out, PATH_MAX, "%s/%lu.%lu", ld.grave, (unsigned long)dev, (unsigned long)ino);
}

/* Whether (dev, ino) is named by a durable entry of a changed directory. */
static int
durably_named(dev_t dev, ino_t ino)
{
	size_t i, j;

	for (i = 0; i < ld.n_dirs; i++)
		for (j = 0; j < ld.dirs[i].n_names; j++)
			if (ld.dirs[i].names[j].dev == dev && ld.dirs[i].names[j].ino == ino)
				return 1;
	return 0;
}

/* A name is about to go: keep its file where the cut can find it. */
static void
keep_before_removal(const char *path)
{
	char g[PATH_MAX];
	struct stat st;

	if (lstat(path, &st) != 0 || S_ISDIR(st.st_mode) || !durably_named(st.st_dev, st.st_ino))
		return;
	grave_path(st.st_dev, st.st_ino, g);
	if (real.link(path, g) != 0 && errno != EEXIST)
		die("link to the grave");
}

static struct ld_file *
file_of_stat(const struct stat *st, const char *path_for_open, int existed)
{
	struct ld_file *f;
	size_t i;

	for (i = 0; i < ld.n_files; i++)
		if (ld.files[i].dev == st->st_dev && ld.files[i].ino == st->st_ino)
			return &ld.files[i];
	if (ld.n_files == LD_MAX_FILES)
		die("too many files");
	f = &ld.files[ld.n_files];
	f->fd = real.open(path_for_open, O_RDWR | O_CLOEXEC);
	if (f->fd < 0)
		die("open a modelled file");
	f->dev = st->st_dev;
	f->ino = st->st_ino;
	f->synced = existed ? st->st_size : 0;
	f->undo = NULL;
	f->dirty = 0;
	ld.n_files++;
	return f;
}

static struct ld_file *
file_of_fd(int fd)
{
	if (fd < 0 || fd >= LD_MAX_FDS || ld.fd_is_dir[fd])
		return NULL;
	return ld.by_fd[fd];
}

/* Save the synced bytes of [off, off + len) that a change is about to touch. */
static void
save_undo(struct ld_file *f, off_t off, off_t len)
{
	struct ld_undo *u;
	off_t end = off + len;
	ssize_t got;

	f->dirty = 1;
	if (end > f->synced)
		end = f->synced;
	if (off >= end)
		return;
	u = malloc(sizeof(*u) + (size_t)(end - off));
	if (!u)
		die("malloc");
	got = pread(f->fd, u->bytes, (size_t)(end - off), off);
	if (got < 0)
		die("pread");
	u->off = off;
	u->len = (size_t)got;
	u->next = f->undo;
	f->undo = u;
}

static void
file_synced(struct ld_file *f)
{
	struct ld_undo *u;
	struct stat st;

	while ((u = f->undo)) {
		f->undo = u->next;
		free(u);
	}
	if (fstat(f->fd, &st) == 0)
		f->synced = st.st_size;
	f->dirty = 0;
}

static void
log_line(const char *fmt, ...)
{
	const char *path = getenv("QS_LD_LOG");
	char line[512];
	va_list ap;
	int fd, n;

	if (!path)
		return;
	va_start(ap, fmt);
	n = vsnprintf(line, sizeof(line), fmt, ap);
	va_end(ap);
	fd = real.open(path, O_WRONLY | O_APPEND | O_CREAT | O_CLOEXEC, 0644);
	if (fd < 0)
		return;
	if (real.write(fd, line, (size_t)n) < 0) {
		/* the count line is best effort; the cut itself happened */
	}
	real.close(fd);
}

static int
rm_tree(const char *path)
{
	struct dirent *e;
	struct stat st;
	char p[PATH_MAX];
	DIR *dh;

	if (lstat(path, &st) != 0)
		return 0;
	if (!S_ISDIR(st.st_mode))
		return real.unlinkat(AT_FDCWD, path, 0);
	dh = opendir(path);
	if (dh) {
		while ((e = readdir(dh))) {
			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			snprintf(p, sizeof(p), "%s/%s", path, e->d_name);
			rm_tree(p);
		}
		closedir(dh);
	}
	return real.rmdir(path);
}

/* The power cut: every file back to its synced bytes, every changed
 * directory back to its synced entries; then SIGKILL. Called with the lock
 * held; never returns. */
static void
power_cut(const char *why)
{
	unsigned long files_reverted = 0, names_removed = 0, names_restored = 0;
	unsigned long long bytes_lost = 0;
	struct ld_undo *u;
	struct dirent *e;
	struct stat st;
	char p[PATH_MAX], g[PATH_MAX];
	size_t i, j;
	DIR *dh;

	for (i = 0; i < ld.n_files; i++) {
		struct ld_file *f = &ld.files[i];

		if (!f->dirty)
			continue;
		files_reverted++;
		for (u = f->undo; u; u = u->next) {
			bytes_lost += u->len;
			if (pwrite(f->fd, u->bytes, u->len, u->off) != (ssize_t)u->len)
				die("restore synced bytes");
		}
		if (fstat(f->fd, &st) == 0 && st.st_size > f->synced)
			bytes_lost += (unsigned long long)(st.st_size - f->synced);
		if (real.ftruncate(f->fd, f->synced) != 0)
			die("truncate to the synced size");
	}
	for (i = 0; i < ld.n_dirs; i++) {
		struct ld_dir *d = &ld.dirs[i];

		dh = opendir(d->path);
		while (dh && (e = readdir(dh))) {
			int keep = 0;

			if (!strcmp(e->d_name, ".") || !strcmp(e->d_name, ".."))
				continue;
			snprintf(p, sizeof(p), "%s/%s", d->path, e->d_name);
			if (lstat(p, &st) != 0)
				continue;
			for (j = 0; j < d->n_names; j++)
				if (!strcmp(d->names[j].name, e->d_name) &&
				    d->names[j].dev == st.st_dev && d->names[j].ino == st.st_ino)
					keep = 1;
			if (!keep) {
				rm_tree(p);
				names_removed++;
			}
		}
		if (dh)
			closedir(dh);
		for (j = 0; j < d->n_names; j++) {
			if (d->names[j].is_dir)
				continue;
			snprintf(p, sizeof(p), "%s/%s", d->path, d->names[j].name);
			if (lstat(p, &st) == 0)
				continue;
			grave_path(d->names[j].dev, d->names[j].ino, g);
			if (real.link(g, p) != 0)
				die("bring a removed name back");
			names_restored++;
		}
	}
	log_line("cut why=%s files_reverted=%lu bytes_lost=%llu names_removed=%lu "
	         "names_restored=%lu ops=%lu\n",
	         why, files_reverted, bytes_lost, names_removed, names_restored, ld.ops);
	kill(getpid(), SIGKILL);
	for (;;)
		pause();
}

/* One modelled call: count it, and cut first when its number is up. */
static void
op_begin(void)
{
	pthread_mutex_lock(&ld.lock);
	ld.ops++;
	if (ld.cut_after && atomic_load(&ld.armed) && ++ld.armed_ops >= ld.cut_after)
		power_cut("count");
}

static void
op_end(void)
{
	pthread_mutex_unlock(&ld.lock);
}

static void *
watch_files(void *arg)
{
	const char *cut = getenv("QS_LD_CUT_FILE");
	const char *arm = getenv("QS_LD_ARM_FILE");
	struct timespec ms = {0, 1000000};
	struct stat st;

	(void)arg;
	for (;;) {
		if (arm && arm[0] && !atomic_load(&ld.armed) && stat(arm, &st) == 0)
			atomic_store(&ld.armed, 1);
		if (cut && cut[0] && stat(cut, &st) == 0) {
			pthread_mutex_lock(&ld.lock);
			power_cut("file");
		}
		nanosleep(&ms, NULL);
	}
	return NULL;
}

static int
nosync(int fd)
{
	char link[64], path[PATH_MAX];
	size_t n, s;
	ssize_t r;

	if (!ld.nosync_suffix)
		return 0;
	s = strlen(ld.nosync_suffix);
	if (s == 0)
		return 1;
	snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
	r = readlink(link, path, sizeof(path) - 1);
	if (r < 0)
		return 0;
	path[r] = '\0';
	if (ld.fd_is_dir[fd])
		return strcmp(ld.nosync_suffix, "/") == 0;
	n = (size_t)r;
	return n >= s && strcmp(path + n - s, ld.nosync_suffix) == 0;
}

static int
tracked_fd(int fd)
{
	return ld.ready && fd >= 0 && fd < LD_MAX_FDS && (ld.by_fd[fd] || ld.fd_is_dir[fd]);
}

/* After a successful open of a path under the root. */
static void
opened(int fd, const char *path, int flags, int existed, int truncated_from_synced)
{
	struct stat st;
	struct ld_file *f;

	if (fd < 0 || fd >= LD_MAX_FDS || fstat(fd, &st) != 0)
		return;
	if (S_ISDIR(st.st_mode)) {
		ld.fd_is_dir[fd] = 1;
		return;
	}
	if (!S_ISREG(st.st_mode) || (flags & O_ACCMODE) == O_RDONLY)
		return;
	f = file_of_stat(&st, path, existed);
	if (truncated_from_synced)
		f->dirty = 1;
	ld.by_fd[fd] = f;
}

static int
do_open(int dirfd, const char *path, int flags, mode_t mode)
{
	char abs[PATH_MAX], dir[PATH_MAX], name[NAME_MAX + 1];
	struct ld_file *f = NULL;
	struct stat st;
	int existed, fd;

	abs_path(dirfd, path, abs);
	if (!under_root(abs))
		return real.openat(dirfd, path, flags, mode);
	op_begin();
	existed = lstat(abs, &st) == 0;
	if (!existed && (flags & O_CREAT)) {
		split(abs, dir, name);
		dir_touch(dir);
	}
	if (existed && S_ISREG(st.st_mode) && (flags & O_TRUNC) &&
	    (flags & O_ACCMODE) != O_RDONLY) {
		f = file_of_stat(&st, abs, 1);
		save_undo(f, 0, st.st_size);
	}
	fd = real.openat(dirfd, path, flags, mode);
	if (fd >= 0)
		opened(fd, abs, flags, existed, f != NULL);
	op_end();
	return fd;
}

static mode_t
mode_arg(int flags, va_list ap)
{
	return (flags & (O_CREAT | O_TMPFILE)) ? (mode_t)va_arg(ap, int) : 0;
}

int
open(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return do_open(AT_FDCWD, path, flags, mode);
}

int
open64(const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return do_open(AT_FDCWD, path, flags, mode);
}

int
openat(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return do_open(dirfd, path, flags, mode);
}

int
openat64(int dirfd, const char *path, int flags, ...)
{
	va_list ap;
	mode_t mode;

	va_start(ap, flags);
	mode = mode_arg(flags, ap);
	va_end(ap);
	return do_open(dirfd, path, flags, mode);
}

int
creat(const char *path, mode_t mode)
{
	return do_open(AT_FDCWD, path, O_CREAT | O_WRONLY | O_TRUNC, mode);
}

int
close(int fd)
{
	int r;

	if (!tracked_fd(fd))
		return real.close(fd);
	pthread_mutex_lock(&ld.lock);
	ld.by_fd[fd] = NULL;
	ld.fd_is_dir[fd] = 0;
	r = real.close(fd);
	pthread_mutex_unlock(&ld.lock);
	return r;
}

/* Before a write of len bytes at off (-1: the file position). */
static void
before_write(int fd, off_t off, size_t len)
{
	struct ld_file *f = file_of_fd(fd);

	if (!f)
		return;
	if (off < 0) {
		if (fcntl(fd, F_GETFL) & O_APPEND)
			return (void)(f->dirty = 1);
		off = lseek(fd, 0, SEEK_CUR);
		if (off < 0)
			return (void)(f->dirty = 1);
	}
	save_undo(f, off, (off_t)len);
}

static size_t
iov_len(const struct iovec *iov, int cnt)
{
	size_t n = 0;
	int i;

	for (i = 0; i < cnt; i++)
		n += iov[i].iov_len;
	return n;
}

/* A write as the process called it: which call, and its arguments. */
struct ld_write {
	enum {
		LD_WRITE,
		LD_PWRITE,
		LD_PWRITE64,
		LD_WRITEV,
		LD_PWRITEV
	} call;
	int fd;
	off64_t off; /* -1 for write and writev: the file position */
	const void *buf;
	size_t n;
	const struct iovec *iov;
	int cnt;
};

static ssize_t
real_write(const struct ld_write *w)
{
	switch (w->call) {
	case LD_WRITE:
		return real.write(w->fd, w->buf, w->n);
	case LD_PWRITE:
		return real.pwrite(w->fd, w->buf, w->n, (off_t)w->off);
	case LD_PWRITE64:
		return real.pwrite64(w->fd, w->buf, w->n, w->off);
	case LD_WRITEV:
		return real.writev(w->fd, w->iov, w->cnt);
	case LD_PWRITEV:
		return real.pwritev(w->fd, w->iov, w->cnt, (off_t)w->off);
	}
	fprintf(stderr, "shim_lyingdisk: unknown write call %d\n", (int)w->call);
	abort();
}

/* Every write call: on a tracked descriptor it is one modelled call, and
 * the synced bytes it is about to overwrite are saved first. */
static ssize_t
do_write(const struct ld_write *w)
{
	int vector = w->call == LD_WRITEV || w->call == LD_PWRITEV;
	ssize_t r;

	if (!tracked_fd(w->fd))
		return real_write(w);
	op_begin();
	before_write(w->fd, (off_t)w->off, vector ? iov_len(w->iov, w->cnt) : w->n);
	r = real_write(w);
	op_end();
	return r;
}

ssize_t
write(int fd, const void *buf, size_t n)
{
	return do_write(
	    &(struct ld_write){.call = LD_WRITE, .fd = fd, .off = -1, .buf = buf, .n = n});
}

ssize_t
pwrite(int fd, const void *buf, size_t n, off_t off)
{
	return do_write(
	    &(struct ld_write){.call = LD_PWRITE, .fd = fd, .off = off, .buf = buf, .n = n});
}

ssize_t
pwrite64(int fd, const void *buf, size_t n, off64_t off)
{
	return do_write(
	    &(struct ld_write){.call = LD_PWRITE64, .fd = fd, .off = off, .buf = buf, .n = n});
}

ssize_t
writev(int fd, const struct iovec *iov, int cnt)
{
	return do_write(
	    &(struct ld_write){.call = LD_WRITEV, .fd = fd, .off = -1, .iov = iov, .cnt = cnt});
}

ssize_t
pwritev(int fd, const struct iovec *iov, int cnt, off_t off)
{
	return do_write(
	    &(struct ld_write){.call = LD_PWRITEV, .fd = fd, .off = off, .iov = iov, .cnt = cnt});
}

static int
do_sync(int fd, int (*fn)(int))
{
	char link[64], path[PATH_MAX];
	ssize_t n;
	int r;

	if (!tracked_fd(fd))
		return fn(fd);
	op_begin();
	if (nosync(fd)) {
		op_end();
		return 0;
	}
	r = fn(fd);
	if (r == 0) {
		if (ld.fd_is_dir[fd]) {
			snprintf(link, sizeof(link), "/proc/self/fd/%d", fd);
			n = readlink(link, path, sizeof(path) - 1);
			if (n >= 0) {
				path[n] = '\0';
				dir_synced(path);
			}
		} else if (ld.by_fd[fd]) {
			file_synced(ld.by_fd[fd]);
		}
	}
	op_end();
	return r;
}

int
fsync(int fd)
{
	return do_sync(fd, real.fsync);
}

int
fdatasync(int fd)
{
	return do_sync(fd, real.fdatasync);
}

static void
all_synced(void)
{
	size_t i;

	for (i = 0; i < ld.n_files; i++)
		file_synced(&ld.files[i]);
	while (ld.n_dirs)
		dir_synced(ld.dirs[0].path);
}

int
syncfs(int fd)
{
	int r;

	if (!ld.ready)
		return real.syncfs(fd);
	op_begin();
	r = real.syncfs(fd);
	if (r == 0)
		all_synced();
	op_end();
	return r;
}

void
sync(void)
{
	if (!ld.ready)
		return real.sync();
	op_begin();
	real.sync();
	all_synced();
	op_end();
}

static void
before_truncate(struct ld_file *f, off_t len)
{
	struct stat st;

	if (fstat(f->fd, &st) == 0 && len < st.st_size)
		save_undo(f, len, st.st_size - len);
	f->dirty = 1;
}

int
ftruncate(int fd, off_t len)
{
	int r;

	if (!tracked_fd(fd) || !ld.by_fd[fd])
		return real.ftruncate(fd, len);
	op_begin();
	before_truncate(ld.by_fd[fd], len);
	r = real.ftruncate(fd, len);
	op_end();
	return r;
}

int
ftruncate64(int fd, off64_t len)
{
	return ftruncate(fd, (off_t)len);
}

int
truncate(const char *path, off_t len)
{
	char abs[PATH_MAX];
	struct stat st;
	int r;

	abs_path(AT_FDCWD, path, abs);
	if (!under_root(abs))
		return real.truncate(path, len);
	op_begin();
	if (stat(abs, &st) == 0 && S_ISREG(st.st_mode))
		before_truncate(file_of_stat(&st, abs, 1), len);
	r = real.truncate(path, len);
	op_end();
	return r;
}

static void
before_fallocate(int fd, int mode, off_t off, off_t len)
{
	struct ld_file *f = file_of_fd(fd);

	if (!f)
		return;
	if (mode & (FALLOC_FL_PUNCH_HOLE | FALLOC_FL_ZERO_RANGE | FALLOC_FL_COLLAPSE_RANGE |
	            FALLOC_FL_INSERT_RANGE))
		save_undo(f, off,
		          (mode & (FALLOC_FL_COLLAPSE_RANGE | FALLOC_FL_INSERT_RANGE))
		              ? f->synced - off
		              : len);
	else if (!(mode & FALLOC_FL_KEEP_SIZE))
		f->dirty = 1;
}

int
fallocate(int fd, int mode, off_t off, off_t len)
{
	int r;

	if (!tracked_fd(fd))
		return real.fallocate(fd, mode, off, len);
	op_begin();
	before_fallocate(fd, mode, off, len);
	r = real.fallocate(fd, mode, off, len);
	op_end();
	return r;
}

int
fallocate64(int fd, int mode, off64_t off, off64_t len)
{
	return fallocate(fd, mode, (off_t)off, (off_t)len);
}

int
posix_fallocate(int fd, off_t off, off_t len)
{
	int r;

	if (!tracked_fd(fd))
		return real.posix_fallocate(fd, off, len);
	op_begin();
	before_fallocate(fd, 0, off, len);
	r = real.posix_fallocate(fd, off, len);
	op_end();
	return r;
}

/* Before a name is made or removed: its directory changes. */
static void
entry_changes(const char *abs, int removed)
{
	char dir[PATH_MAX], name[NAME_MAX + 1];

	split(abs, dir, name);
	dir_touch(dir);
	if (removed)
		keep_before_removal(abs);
}

int
renameat2(int fromfd, const char *from, int tofd, const char *to, unsigned int flags)
{
	char a[PATH_MAX], b[PATH_MAX];
	int r;

	abs_path(fromfd, from, a);
	abs_path(tofd, to, b);
	if (!under_root(a) && !under_root(b))
		return real.renameat2(fromfd, from, tofd, to, flags);
	op_begin();
	entry_changes(a, 1);
	entry_changes(b, 1);
	r = real.renameat2(fromfd, from, tofd, to, flags);
	op_end();
	return r;
}

int
renameat(int fromfd, const char *from, int tofd, const char *to)
{
	return renameat2(fromfd, from, tofd, to, 0);
}

int
rename(const char *from, const char *to)
{
	return renameat2(AT_FDCWD, from, AT_FDCWD, to, 0);
}

int
link(const char *from, const char *to)
{
	char b[PATH_MAX];
	int r;

	abs_path(AT_FDCWD, to, b);
	if (!under_root(b))
		return real.link(from, to);
	op_begin();
	entry_changes(b, 0);
	r = real.link(from, to);
	op_end();
	return r;
}

int
unlinkat(int dirfd, const char *path, int flags)
{
	char a[PATH_MAX];
	int r;

	abs_path(dirfd, path, a);
	if (!under_root(a))
		return real.unlinkat(dirfd, path, flags);
	op_begin();
	entry_changes(a, 1);
	r = real.unlinkat(dirfd, path, flags);
	op_end();
	return r;
}

int
unlink(const char *path)
{
	return unlinkat(AT_FDCWD, path, 0);
}

int
mkdir(const char *path, mode_t mode)
{
	char a[PATH_MAX];
	int r;

	abs_path(AT_FDCWD, path, a);
	if (!under_root(a) || strcmp(a, ld.root) == 0)
		return real.mkdir(path, mode);
	op_begin();
	entry_changes(a, 0);
	r = real.mkdir(path, mode);
	op_end();
	return r;
}

int
rmdir(const char *path)
{
	char a[PATH_MAX];
	int r;

	abs_path(AT_FDCWD, path, a);
	if (!under_root(a))
		return real.rmdir(path);
	op_begin();
	entry_changes(a, 0);
	r = real.rmdir(path);
	op_end();
	return r;
}

__attribute__((constructor)) static void
shim_start(void)
{
	const char *root = getenv("QS_LD_DIR");
	const char *grave = getenv("QS_LD_GRAVE");
	const char *arm_file = getenv("QS_LD_ARM_FILE");
	const char *after = getenv("QS_LD_CUT_AFTER");
	char path[PATH_MAX];
	pthread_t t;

	real.open = sym("open");
	real.openat = sym("openat");
	real.close = sym("close");
	real.write = sym("write");
	real.pwrite = sym("pwrite");
	real.pwrite64 = sym("pwrite64");
	real.writev = sym("writev");
	real.pwritev = sym("pwritev");
	real.fsync = sym("fsync");
	real.fdatasync = sym("fdatasync");
	real.syncfs = sym("syncfs");
	real.sync = sym("sync");
	real.ftruncate = sym("ftruncate");
	real.ftruncate64 = sym("ftruncate64");
	real.truncate = sym("truncate");
	real.fallocate = sym("fallocate");
	real.fallocate64 = sym("fallocate64");
	real.posix_fallocate = sym("posix_fallocate");
	real.renameat2 = sym("renameat2");
	real.link = sym("link");
	real.unlinkat = sym("unlinkat");
	real.mkdir = sym("mkdir");
	real.rmdir = sym("rmdir");
	setenv("QS_SHIM_LOADED", "1", 1);
	if (!root || !root[0] || !grave || !grave[0] || !realpath(root, ld.root) ||
	    !realpath(grave, path) || strlen(path) >= sizeof(ld.grave))
		return;
	snprintf(ld.grave, sizeof(ld.grave), "%s", path);
	ld.root_len = strlen(ld.root);
	ld.nosync_suffix = getenv("QS_LD_NOSYNC_SUFFIX");
	ld.cut_after = after ? strtoul(after, NULL, 10) : 0;
	atomic_store(&ld.armed, !arm_file || !arm_file[0]);
	ld.ready = 1;
	if (pthread_create(&t, NULL, watch_files, NULL) != 0)
		die("pthread_create");
	pthread_detach(t);
}
