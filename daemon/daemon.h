/*
 * The daemon's lifecycle: load keys, open storage, start the listeners, run
 * the event loop until SIGTERM/SIGINT, then stop cleanly.
 */
#ifndef QS_DAEMON_DAEMON_H
#define QS_DAEMON_DAEMON_H

#include "config/config.h"

/* Exit codes (sysexits.h values where one fits). */
#define QS_EXIT_OK      0
#define QS_EXIT_FAILURE 1
#define QS_EXIT_USAGE   64
#define QS_EXIT_CONFIG  78
/* Fail-stop after a storage I/O error or corruption, or a database that
 * cannot be opened or recovered (EX_IOERR): systemd restarts qsd, and
 * recovery re-reads what is really on disk. */
#define QS_EXIT_STORAGE 74

/*
 * Check what `qsd -t` checks beyond the config file itself: the key files
 * load, and the node's own keys are a validator of the configured set.
 * Returns 0 and sets *self to the node's index in cfg->validators, or
 * QS_ECONFIG / QS_EKEY / -errno with one line in err.
 */
int qs_daemon_check_identity(const struct qs_config *cfg, int *self, char *err, size_t errlen);

/* Run the daemon with `cfg` (borrowed; SIGHUP reloads its run-time keys in
 * place) in the foreground; returns an exit code. */
int qs_daemon_run(struct qs_config *cfg);

#endif
