#include "daemon/fetch.h"

#include <errno.h>
#include <inttypes.h>
#include <stdatomic.h>
#include <stdlib.h>
#include <string.h>
#include <sys/random.h>

#include <event2/event.h>

#include "config/config.h"
#include "core/batch.h"
#include "core/error.h"
#include "core/hex.h"
#include "daemon/clock.h"
#include "daemon/log.h"
#include "daemon/metrics.h"
#include "net/frame.h"

/* A fetch re-evaluates itself at least this often, so that no timer is
 * armed with an interval libevent's clock arithmetic could overflow. */
#define QS_FETCH_MAX_SLEEP_US (3600u * 1000000u)

#define QS_NACK(name) QUORUMSTORE__V1__NACK_REASON__NACK_REASON_##name

enum {
	RES_OK,
	RES_NOT_FOUND,
	RES_BAD_DIGEST,
	RES_MALFORMED,
	RES_LATE,
	RES_UNSOLICITED,
	RES_COUNT
};
static const char *const res_names[RES_COUNT] = {"ok",        "not_found", "bad_digest",
                                                 "malformed", "late",      "unsolicited"};

/* Where a validator stands in one fetch. */
enum {
	SIG_NONE,      /* not a signer of this fetch */
	SIG_IDLE,      /* not asked, or its request was lost with its connection */
	SIG_ASKED,     /* asked in the running try */
	SIG_TIMED_OUT, /* asked in an earlier try, no answer yet; still taken */
	SIG_NOT_FOUND, /* final */
	SIG_BAD,       /* answered something invalid; final */
	SIG_WON,       /* sent the winning answer */
};

struct sig {
	uint32_t round; /* the round it was last due in; 0: never */
	uint8_t state;
	uint8_t sent; /* a request was queued for it at least once */
};

/* The winning message, shared by the fetch and every result made from it. */
struct shared {
	atomic_uint refs;
	Quorumstore__V1__PeerMessage *msg;
};

struct result {
	struct qs_fetch_result pub; /* first: handed out */
	struct shared *sh;
};

struct qs_fetch_waiter {
	struct fetch *x;
	struct qs_fetch_waiter *prev, *next;
	uint64_t seq;
	uint64_t deadline_us;
	uint64_t expiration_us; /* the proof's, or 0 */
	uint64_t gas_bucket_start;
	void (*done)(void *arg, int result, struct qs_fetch_result *res);
	void *arg;
	struct result *res; /* allocated at start, so completion cannot fail */
};

/* One network fetch of a (digest, epoch). */
struct fetch {
	struct qs_fetch *f;
	struct fetch *prev, *next; /* every running fetch */
	uint8_t digest[QS_DIGEST_BYTES];
	uint64_t epoch;
	uint64_t request_id;
	struct event *timer;
	struct shared *sh;
	struct qs_fetch_waiter *waiters, *waiters_tail;
	size_t n_waiters;
	uint64_t next_seq;
	uint64_t try_end_us; /* 0: no try running */
	uint32_t round;      /* from 1 */
	size_t cursor;       /* next position in order[] to consider */
	size_t n_order;      /* signers */
	size_t n_asked;      /* in SIG_ASKED */
	size_t n_final;      /* in SIG_NOT_FOUND or SIG_BAD */
	int in_run;          /* fetch_run() is on the stack */
	int rekick;          /* run again at once after the current run */
	int busy;            /* callers are being completed by fetch_run() */
	int ended;           /* out of the tables; being completed and freed */
	uint16_t *order;     /* validator indexes, in the order to ask them */
	struct sig sig[];    /* by validator index */
};

/* An ended fetch's id and the validators whose answers were outstanding. */
struct recent {
	uint64_t id; /* 0: unused */
	uint8_t *outstanding;
};

struct qs_fetch {
	struct qs_fetch_options opt;
	struct fetch **by_digest; /* open addressing, never more than half full */
	struct fetch **by_id;
	size_t mask;
	struct fetch *all;
	size_t n_fetches;
	struct recent recent[QS_FETCH_RECENT];
	uint8_t *recent_bits;
	size_t bitmap_bytes;
	size_t recent_next;
	int closing;
	struct qs_metric *m_sent;
	struct qs_metric *m_responses;
};

/* ---- the two tables of running fetches ---- */

static size_t
digest_home(const struct qs_fetch *f, const uint8_t *digest, uint64_t epoch)
{
	/* Digests are SHA-256 outputs: their first bytes are a fine hash. */
	return (size_t)(qs_get_be64(digest) ^ epoch) & f->mask;
}

static size_t
id_home(const struct qs_fetch *f, uint64_t id)
{
	return (size_t)(id ^ (id >> 32)) & f->mask;
}

static size_t
home_by_digest(const struct qs_fetch *f, const struct fetch *x)
{
	return digest_home(f, x->digest, x->epoch);
}

static size_t
home_by_id(const struct qs_fetch *f, const struct fetch *x)
{
	return id_home(f, x->request_id);
}

static void
tab_insert(const struct qs_fetch *f, struct fetch **tab, size_t home, struct fetch *x)
{
	size_t i;

	for (i = home; tab[i]; i = (i + 1) & f->mask)
		;
	tab[i] = x;
}

/* Remove x, shifting the probe chain behind it back. */
static void
tab_remove(const struct qs_fetch *f, struct fetch **tab,
           size_t (*home_of)(const struct qs_fetch *, const struct fetch *), struct fetch *x)
{
	size_t i, j;

	for (i = home_of(f, x); tab[i] != x; i = (i + 1) & f->mask) {
		if (!tab[i]) {
			qs_log_crit("fetch_table_corrupt", "detail=\"a running fetch is missing\"");
			abort();
		}
	}
	tab[i] = NULL;
	for (j = i;;) {
		size_t home;

		j = (j + 1) & f->mask;
		if (!tab[j])
			return;
		home = home_of(f, tab[j]);
		/* Leave j in place if its home lies cyclically in (i, j]. */
		if ((i <= j) ? (i < home && home <= j) : (i < home || home <= j))
			continue;
		tab[i] = tab[j];
		tab[j] = NULL;
		i = j;
	}
}

static struct fetch *
find_by_digest(const struct qs_fetch *f, const uint8_t *digest, uint64_t epoch)
{
	for (size_t i = digest_home(f, digest, epoch); f->by_digest[i]; i = (i + 1) & f->mask) {
		struct fetch *x = f->by_digest[i];

		if (x->epoch == epoch && memcmp(x->digest, digest, QS_DIGEST_BYTES) == 0)
			return x;
	}
	return NULL;
}

static struct fetch *
find_by_id(const struct qs_fetch *f, uint64_t id)
{
	for (size_t i = id_home(f, id); f->by_id[i]; i = (i + 1) & f->mask) {
		if (f->by_id[i]->request_id == id)
			return f->by_id[i];
	}
	return NULL;
}

/* ---- ended fetches, to tell late answers from unsolicited ones ---- */

static void
recent_add(struct qs_fetch *f, const struct fetch *x)
{
	struct recent *r = &f->recent[f->recent_next];
	int any = 0;

	for (size_t k = 0; k < x->n_order; k++) {
		uint8_t st = x->sig[x->order[k]].state;

		any |= st == SIG_ASKED || st == SIG_TIMED_OUT;
	}
	if (!any)
		return;
	memset(r->outstanding, 0, f->bitmap_bytes);
	for (size_t k = 0; k < x->n_order; k++) {
		unsigned v = x->order[k];
		uint8_t st = x->sig[v].state;

		if (st == SIG_ASKED || st == SIG_TIMED_OUT)
			r->outstanding[v / 8] |= (uint8_t)(1u << (v % 8));
	}
	r->id = x->request_id;
	f->recent_next = (f->recent_next + 1) % QS_FETCH_RECENT;
}

/* 1 (and forget it) when `peer` owed an answer to the ended fetch `id`. */
static int
recent_take(struct qs_fetch *f, uint64_t id, int peer)
{
	if (id == 0 || peer < 0 || (size_t)peer >= f->opt.n_validators)
		return 0;
	for (size_t i = 0; i < QS_FETCH_RECENT; i++) {
		struct recent *r = &f->recent[i];
		uint8_t bit = (uint8_t)(1u << (peer % 8));

		if (r->id != id)
			continue;
		if (!(r->outstanding[peer / 8] & bit))
			return 0;
		r->outstanding[peer / 8] &= (uint8_t)~bit;
		return 1;
	}
	return 0;
}

/* ---- results ---- */

static void
shared_put(struct shared *sh)
{
	if (!sh || atomic_fetch_sub(&sh->refs, 1) != 1)
		return;
	if (sh->msg)
		qs_frame_msg_free(&sh->msg->base);
	free(sh);
}

void
qs_fetch_result_free(struct qs_fetch_result *r)
{
	struct result *res = (struct result *)r;

	if (!res)
		return;
	shared_put(res->sh);
	free(res);
}

/* ---- fetch lifetime ---- */

static void
set_state(struct fetch *x, int v, uint8_t state)
{
	struct sig *s = &x->sig[v];

	if (s->state == SIG_ASKED)
		x->n_asked--;
	if (s->state == SIG_NOT_FOUND || s->state == SIG_BAD)
		x->n_final--;
	s->state = state;
	if (state == SIG_ASKED)
		x->n_asked++;
	if (state == SIG_NOT_FOUND || state == SIG_BAD)
		x->n_final++;
}

static void
kick(struct fetch *x)
{
	struct timeval now = {0, 0};

	if (x->in_run)
		x->rekick = 1;
	else
		evtimer_add(x->timer, &now);
}

static void
waiter_unlink(struct fetch *x, struct qs_fetch_waiter *w)
{
	if (w->prev)
		w->prev->next = w->next;
	else
		x->waiters = w->next;
	if (w->next)
		w->next->prev = w->prev;
	else
		x->waiters_tail = w->prev;
	x->n_waiters--;
}

static void
waiter_free(struct qs_fetch_waiter *w)
{
	free(w->res);
	free(w);
}

/* Take x out of the tables: no caller can join it and no answer reaches
 * it from here on. */
static void
fetch_end(struct fetch *x)
{
	struct qs_fetch *f = x->f;

	x->ended = 1;
	tab_remove(f, f->by_digest, home_by_digest, x);
	tab_remove(f, f->by_id, home_by_id, x);
	if (x->prev)
		x->prev->next = x->next;
	else
		f->all = x->next;
	if (x->next)
		x->next->prev = x->prev;
	f->n_fetches--;
	recent_add(f, x);
}

static void
fetch_destroy(struct fetch *x)
{
	struct qs_fetch_waiter *w;

	while ((w = x->waiters)) {
		waiter_unlink(x, w);
		waiter_free(w);
	}
	if (x->timer)
		event_free(x->timer);
	shared_put(x->sh);
	free(x);
}

/* End x and complete every caller with `code` (not 0). */
static void
fetch_complete_all(struct fetch *x, int code)
{
	struct qs_fetch_waiter *w;

	fetch_end(x);
	/* A done() may cancel callers further down the list, so take them
	 * from the head one at a time. */
	while ((w = x->waiters)) {
		void (*done)(void *, int, struct qs_fetch_result *) = w->done;
		void *arg = w->arg;

		waiter_unlink(x, w);
		waiter_free(w);
		done(arg, code, NULL);
	}
	fetch_destroy(x);
}

/* What a caller whose deadline passed is told. */
static int
deadline_code(const struct fetch *x)
{
	for (size_t k = 0; k < x->n_order; k++) {
		const struct sig *s = &x->sig[x->order[k]];

		if (s->sent &&
		    (s->state == SIG_IDLE || s->state == SIG_ASKED || s->state == SIG_TIMED_OUT))
			return -ETIMEDOUT;
	}
	return QS_ENOTFOUND;
}

static int
due(const struct fetch *x, int v)
{
	const struct sig *s = &x->sig[v];

	return (s->state == SIG_IDLE || s->state == SIG_TIMED_OUT) && s->round < x->round;
}

/* Some signer asked in this round, or skipped, could be asked in the next. */
static int
due_next_round(const struct fetch *x)
{
	const struct qs_fetch *f = x->f;

	for (size_t k = 0; k < x->n_order; k++) {
		int v = x->order[k];
		const struct sig *s = &x->sig[v];

		if ((s->state == SIG_IDLE || s->state == SIG_TIMED_OUT) &&
		    f->opt.connected(f->opt.transport_arg, v))
			return 1;
	}
	return 0;
}

static int
send_request(struct fetch *x, int v)
{
	struct qs_fetch *f = x->f;
	Quorumstore__V1__PeerMessage pm = QUORUMSTORE__V1__PEER_MESSAGE__INIT;
	Quorumstore__V1__BatchRequest req = QUORUMSTORE__V1__BATCH_REQUEST__INIT;

	req.request_id = x->request_id;
	req.digest.data = x->digest;
	req.digest.len = QS_DIGEST_BYTES;
	pm.msg_case = QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_REQUEST;
	pm.batch_request = &req;
	return f->opt.send(f->opt.transport_arg, v, &pm);
}

/* Ask up to `max` signers due in the current round, from the cursor on.
 * Returns how many requests were queued. */
static uint32_t
ask_round(struct fetch *x, uint32_t max)
{
	struct qs_fetch *f = x->f;
	size_t start = x->cursor;
	uint32_t sent = 0;

	for (size_t k = 0; k < x->n_order && sent < max; k++) {
		size_t i = (start + k) % x->n_order;
		int v = x->order[i];

		if (!due(x, v) || !f->opt.connected(f->opt.transport_arg, v))
			continue;
		x->cursor = (i + 1) % x->n_order;
		x->sig[v].round = x->round;
		set_state(x, v, SIG_ASKED);
		if (send_request(x, v) != 0) {
			/* Not queued: due again in the next round. The send
			 * may also have reported the connection gone. */
			if (x->sig[v].state == SIG_ASKED)
				set_state(x, v, SIG_IDLE);
			continue;
		}
		x->sig[v].sent = 1;
		qs_metric_add(f->m_sent, 0, 1);
		sent++;
	}
	return sent;
}

static void
try_start(struct fetch *x, uint64_t now_us)
{
	const struct qs_fetch *f = x->f;
	uint32_t sent = ask_round(x, f->opt.parallel);

	if (!sent && due_next_round(x)) {
		x->round++;
		sent = ask_round(x, f->opt.parallel);
	}
	if (sent)
		x->try_end_us = now_us + f->opt.try_timeout_us;
}

static void
try_end(struct fetch *x)
{
	for (size_t k = 0; k < x->n_order; k++) {
		int v = x->order[k];

		if (x->sig[v].state == SIG_ASKED)
			set_state(x, v, SIG_TIMED_OUT);
	}
	x->try_end_us = 0;
}

/* Complete the callers that were waiting when the run began and whose
 * deadline passed. */
static void
complete_expired(struct fetch *x, uint64_t now_us)
{
	uint64_t seq_limit = x->next_seq;

	x->busy = 1;
	for (;;) {
		struct qs_fetch_waiter *w;
		void (*done)(void *, int, struct qs_fetch_result *);
		void *arg;

		for (w = x->waiters; w; w = w->next) {
			if (w->seq < seq_limit && w->deadline_us <= now_us)
				break;
		}
		if (!w)
			break;
		done = w->done;
		arg = w->arg;
		waiter_unlink(x, w);
		waiter_free(w);
		done(arg, deadline_code(x), NULL);
	}
	x->busy = 0;
}

static void
fetch_run(evutil_socket_t fd, short what, void *arg)
{
	struct fetch *x = arg;
	uint64_t now_us = qs_clock_mono_us();
	uint64_t next_us = UINT64_MAX;
	struct timeval tv;

	x->in_run = 1;
	complete_expired(x, now_us);
	if (!x->waiters) {
		fetch_end(x);
		fetch_destroy(x);
		return;
	}
	if (x->try_end_us && (now_us >= x->try_end_us || x->n_asked == 0))
		try_end(x);
	if (x->n_final == x->n_order) {
		/* Nobody left who could have it. */
		x->in_run = 0;
		fetch_complete_all(x, QS_ENOTFOUND);
		return;
	}
	if (!x->try_end_us)
		try_start(x, now_us);

	for (const struct qs_fetch_waiter *w = x->waiters; w; w = w->next) {
		if (w->deadline_us < next_us)
			next_us = w->deadline_us;
	}
	if (x->try_end_us && x->try_end_us < next_us)
		next_us = x->try_end_us;
	if (x->rekick || next_us <= now_us)
		next_us = now_us;
	else if (next_us - now_us > QS_FETCH_MAX_SLEEP_US)
		next_us = now_us + QS_FETCH_MAX_SLEEP_US;
	x->rekick = 0;
	x->in_run = 0;
	tv = qs_clock_tv_us(next_us - now_us);
	evtimer_add(x->timer, &tv);
}

/* 64 random bits, so that a peer cannot guess the id of a request it was
 * not sent; 0 and the ids of running fetches are drawn again. */
static int
new_request_id(const struct qs_fetch *f, uint64_t *id)
{
	for (;;) {
		uint64_t v;
		ssize_t n = getrandom(&v, sizeof(v), 0);

		if (n < 0 && errno == EINTR)
			continue;
		if (n < 0)
			return -errno;
		if (n != (ssize_t)sizeof(v))
			return -EIO;
		if (v != 0 && !find_by_id(f, v)) {
			*id = v;
			return 0;
		}
	}
}

static void
add_signers(struct fetch *x, const int *signers, size_t n_signers)
{
	const struct qs_fetch *f = x->f;

	for (size_t k = 0; k < n_signers; k++) {
		int v = signers[k];

		if (v == f->opt.self || x->sig[v].state != SIG_NONE)
			continue;
		x->sig[v].state = SIG_IDLE;
		x->sig[v].round = 0;
		x->order[x->n_order++] = (uint16_t)v;
	}
}

static int
fetch_new(struct qs_fetch *f, const struct qs_batch_info *want, struct fetch **out)
{
	size_t n = f->opt.n_validators;
	struct fetch *x;
	int rc;

	x = calloc(1, sizeof(*x) + n * sizeof(struct sig) + n * sizeof(uint16_t));
	if (!x)
		return -ENOMEM;
	x->f = f;
	x->order = (uint16_t *)(void *)&x->sig[n];
	memcpy(x->digest, want->digest, QS_DIGEST_BYTES);
	x->epoch = want->epoch;
	x->round = 1;
	rc = new_request_id(f, &x->request_id);
	if (rc)
		goto out;
	rc = -ENOMEM;
	x->sh = calloc(1, sizeof(*x->sh));
	if (!x->sh)
		goto out;
	atomic_init(&x->sh->refs, 1);
	x->timer = evtimer_new(f->opt.base, fetch_run, x);
	if (!x->timer)
		goto out;
	tab_insert(f, f->by_digest, home_by_digest(f, x), x);
	tab_insert(f, f->by_id, home_by_id(f, x), x);
	x->next = f->all;
	if (f->all)
		f->all->prev = x;
	f->all = x;
	f->n_fetches++;
	*out = x;
	rc = 0;
out:
	if (rc)
		fetch_destroy(x);
	return rc;
}

int
qs_fetch_start(struct qs_fetch *f, const struct qs_batch_info *want, const int *signers,
               size_t n_signers, uint64_t deadline_mono_us,
               void (*done)(void *arg, int result, struct qs_fetch_result *res), void *arg,
               struct qs_fetch_waiter **handle)
{
	struct qs_fetch_waiter *w = NULL;
	struct fetch *x;
	int rc;

	if (!f || !want || !done || !signers || n_signers == 0 || n_signers > f->opt.n_validators)
		return -EINVAL;
	for (size_t k = 0; k < n_signers; k++) {
		if (signers[k] < 0 || (size_t)signers[k] >= f->opt.n_validators)
			return -EINVAL;
	}
	if (f->closing)
		return QS_ESHUTDOWN;

	rc = -ENOMEM;
	w = calloc(1, sizeof(*w));
	if (!w)
		goto out;
	w->res = calloc(1, sizeof(*w->res));
	if (!w->res)
		goto out;
	x = find_by_digest(f, want->digest, want->epoch);
	if (x && x->n_waiters >= QS_FETCH_MAX_WAITERS) {
		rc = QS_EQUEUEFULL;
		goto out;
	}
	if (!x) {
		if (f->n_fetches >= f->opt.max_fetches) {
			rc = QS_EQUEUEFULL;
			goto out;
		}
		rc = fetch_new(f, want, &x);
		if (rc)
			goto out;
	}
	add_signers(x, signers, n_signers);

	w->x = x;
	w->seq = x->next_seq++;
	w->deadline_us = deadline_mono_us;
	w->expiration_us = want->expiration_us;
	w->gas_bucket_start = want->gas_bucket_start;
	w->done = done;
	w->arg = arg;
	w->prev = x->waiters_tail;
	if (x->waiters_tail)
		x->waiters_tail->next = w;
	else
		x->waiters = w;
	x->waiters_tail = w;
	x->n_waiters++;
	kick(x);
	if (handle)
		*handle = w;
	return 0;
out:
	if (w)
		waiter_free(w);
	return rc;
}

void
qs_fetch_cancel(struct qs_fetch_waiter *w)
{
	struct fetch *x;

	if (!w)
		return;
	x = w->x;
	waiter_unlink(x, w);
	waiter_free(w);
	/* A fetch being completed or running its callers' deadlines is freed
	 * by the code doing that. */
	if (!x->waiters && !x->ended && !x->busy) {
		fetch_end(x);
		fetch_destroy(x);
	}
}

/* The winning answer: every caller gets its result, then x is freed. */
static void
fetch_win(struct fetch *x, int peer, Quorumstore__V1__PeerMessage *msg,
          const struct qs_batch_info *info)
{
	const Quorumstore__V1__Batch *b = msg->batch_response->batch;
	uint64_t wall_us = qs_clock_wall_us();
	uint64_t latest_us = wall_us + x->f->opt.max_lifetime_us;
	struct qs_fetch_waiter *w;

	if (latest_us < wall_us)
		latest_us = UINT64_MAX;
	x->sh->msg = msg;
	set_state(x, peer, SIG_WON);
	fetch_end(x);
	while ((w = x->waiters)) {
		void (*done)(void *, int, struct qs_fetch_result *) = w->done;
		void *cb_arg = w->arg;
		struct result *r = w->res;

		w->res = NULL;
		r->pub.info = *info;
		if (w->expiration_us) {
			r->pub.info.expiration_us = w->expiration_us;
			r->pub.info.gas_bucket_start = w->gas_bucket_start;
		} else if (info->expiration_us < wall_us) {
			r->pub.info.expiration_us = wall_us;
		} else if (info->expiration_us > latest_us) {
			r->pub.info.expiration_us = latest_us;
		}
		r->pub.msg = msg;
		r->pub.txns = b->transactions;
		r->pub.n_txns = b->n_transactions;
		r->pub.from_peer = peer;
		r->sh = x->sh;
		atomic_fetch_add(&x->sh->refs, 1);
		waiter_unlink(x, w);
		waiter_free(w);
		done(cb_arg, 0, &r->pub);
	}
	fetch_destroy(x);
}

/* Check a batch answered to x. Returns RES_OK and fills *info, the
 * response label it is refused under, or -1 when its digest could not be
 * computed here (out of memory); *detail says why. */
static int
check_batch(const struct fetch *x, const Quorumstore__V1__Batch *b, struct qs_batch_info *info,
            const char **detail)
{
	const struct qs_fetch *f = x->f;
	struct qs_validate_ctx ctx = {
	    .chain_id = f->opt.chain_id,
	    .epoch = x->epoch,
	    .now_us = qs_clock_wall_us(),
	    .max_lifetime_us = f->opt.max_lifetime_us,
	    .limits = f->opt.limits,
	};
	int reason;

	/* Another batch is told apart before its transactions are hashed. */
	if (b && b->info && b->info->digest.len == QS_DIGEST_BYTES &&
	    memcmp(b->info->digest.data, x->digest, QS_DIGEST_BYTES) != 0) {
		*detail = "batch of another digest";
		return RES_BAD_DIGEST;
	}
	reason = qs_batch_validate(&ctx, NULL, b, info, detail);
	if (reason == QS_NACK(UNSPECIFIED)) {
		if (memcmp(info->digest, x->digest, QS_DIGEST_BYTES) != 0) {
			*detail = "batch of another digest";
			return RES_BAD_DIGEST;
		}
		return RES_OK;
	}
	if (reason == QS_NACK(BAD_DIGEST))
		return RES_BAD_DIGEST;
	if (reason == QS_NACK(OVERLOADED))
		return -1;
	return RES_MALFORMED;
}

static void
log_refused(const struct fetch *x, int peer, int res, const char *detail)
{
	char hex[2 * QS_DIGEST_BYTES + 1];

	qs_hex_encode(x->digest, QS_DIGEST_BYTES, hex);
	qs_log_warn("fetch_answer_refused", "peer=%d digest=%s result=%s detail=\"%s\"", peer, hex,
	            res_names[res], detail ? detail : "");
}

void
qs_fetch_on_response(struct qs_fetch *f, int peer, Quorumstore__V1__PeerMessage *msg)
{
	const Quorumstore__V1__BatchResponse *resp;
	struct qs_batch_info info;
	const char *detail = NULL;
	struct fetch *x;
	int res;

	if (!msg)
		return;
	if (!f) {
		qs_frame_msg_free(&msg->base);
		return;
	}
	if (msg->msg_case != QUORUMSTORE__V1__PEER_MESSAGE__MSG_BATCH_RESPONSE ||
	    !msg->batch_response) {
		qs_metric_add(f->m_responses, RES_UNSOLICITED, 1);
		goto out;
	}
	resp = msg->batch_response;
	x = resp->request_id ? find_by_id(f, resp->request_id) : NULL;
	if (!x) {
		res = recent_take(f, resp->request_id, peer) ? RES_LATE : RES_UNSOLICITED;
		qs_metric_add(f->m_responses, (size_t)res, 1);
		goto out;
	}
	if (peer < 0 || (size_t)peer >= f->opt.n_validators ||
	    (x->sig[peer].state != SIG_ASKED && x->sig[peer].state != SIG_TIMED_OUT)) {
		qs_metric_add(f->m_responses, RES_UNSOLICITED, 1);
		goto out;
	}

	switch (resp->result_case) {
	case QUORUMSTORE__V1__BATCH_RESPONSE__RESULT_NOT_FOUND:
		if (resp->not_found && resp->not_found->digest.len &&
		    (resp->not_found->digest.len != QS_DIGEST_BYTES ||
		     memcmp(resp->not_found->digest.data, x->digest, QS_DIGEST_BYTES) != 0)) {
			res = RES_MALFORMED;
			detail = "not_found names another digest";
		} else {
			res = RES_NOT_FOUND;
		}
		break;
	case QUORUMSTORE__V1__BATCH_RESPONSE__RESULT_BATCH:
		res = check_batch(x, resp->batch, &info, &detail);
		break;
	default:
		res = RES_MALFORMED;
		detail = "neither a batch nor not_found";
		break;
	}

	if (res == RES_OK) {
		qs_metric_add(f->m_responses, RES_OK, 1);
		fetch_win(x, peer, msg, &info);
		return; /* msg is the results' now */
	}
	if (res < 0) {
		/* Hashing failed here, not the answer: ask that signer again
		 * in a later round. */
		qs_log_err("fetch_digest_failed", "peer=%d detail=\"%s\"", peer, detail);
		set_state(x, peer, SIG_TIMED_OUT);
	} else {
		qs_metric_add(f->m_responses, (size_t)res, 1);
		if (res != RES_NOT_FOUND)
			log_refused(x, peer, res, detail);
		set_state(x, peer, res == RES_NOT_FOUND ? SIG_NOT_FOUND : SIG_BAD);
	}
	kick(x);
out:
	qs_frame_msg_free(&msg->base);
}

void
qs_fetch_on_state(struct qs_fetch *f, int peer, int connected)
{
	uint8_t bit;

	if (!f || peer < 0 || (size_t)peer >= f->opt.n_validators)
		return;
	bit = (uint8_t)(1u << (peer % 8));
	if (!connected) {
		/* Answers owed on that connection will not come. */
		for (size_t i = 0; i < QS_FETCH_RECENT; i++) {
			if (f->recent[i].id)
				f->recent[i].outstanding[peer / 8] &= (uint8_t)~bit;
		}
	}
	for (struct fetch *x = f->all; x; x = x->next) {
		uint8_t st = x->sig[peer].state;

		if (!connected && (st == SIG_ASKED || st == SIG_TIMED_OUT)) {
			set_state(x, peer, SIG_IDLE);
			if (st == SIG_ASKED)
				kick(x);
		} else if (connected && (st == SIG_IDLE || st == SIG_TIMED_OUT) && !x->try_end_us) {
			kick(x);
		}
	}
}

int
qs_fetch_set_tries(struct qs_fetch *f, uint64_t try_timeout_us, uint32_t parallel)
{
	if (!f || try_timeout_us == 0 || parallel == 0)
		return -EINVAL;
	f->opt.try_timeout_us = try_timeout_us;
	f->opt.parallel = parallel;
	return 0;
}

size_t
qs_fetch_in_flight(const struct qs_fetch *f)
{
	return f ? f->n_fetches : 0;
}

static int
register_metrics(struct qs_fetch *f)
{
	struct qs_metrics *m = f->opt.metrics;

	if (!m)
		return 0;
	f->m_sent = qs_metrics_counter(m, "qsd_fetch_requests_sent_total",
	                               "BatchRequests sent to fetch batches this node lacks.", NULL,
	                               NULL, 0);
	if (!f->m_sent) {
		qs_log_err("metric_register_failed", "name=qsd_fetch_requests_sent_total");
		return QS_ECONFIG;
	}
	f->m_responses =
	    qs_metrics_counter(m, "qsd_fetch_responses_total",
	                       "BatchResponses to this node's fetches, by what became of them.",
	                       "result", res_names, RES_COUNT);
	if (!f->m_responses) {
		qs_log_err("metric_register_failed", "name=qsd_fetch_responses_total");
		return QS_ECONFIG;
	}
	return 0;
}

int
qs_fetch_new(const struct qs_fetch_options *opt, struct qs_fetch **out)
{
	struct qs_fetch *f;
	size_t cap = 8;
	int rc;

	if (!opt || !out || !opt->base || !opt->limits || !opt->send || !opt->connected ||
	    opt->n_validators == 0 || opt->n_validators > QS_MAX_VALIDATORS || opt->self < -1 ||
	    (opt->self >= 0 && (size_t)opt->self >= opt->n_validators) ||
	    opt->try_timeout_us == 0 || opt->parallel == 0 || opt->max_fetches == 0 ||
	    opt->max_fetches > QS_FETCH_MAX_FETCHES || opt->max_lifetime_us == 0)
		return -EINVAL;
	while (cap < 2 * opt->max_fetches)
		cap *= 2;

	f = calloc(1, sizeof(*f));
	if (!f)
		return -ENOMEM;
	f->opt = *opt;
	f->mask = cap - 1;
	f->bitmap_bytes = (opt->n_validators + 7) / 8;
	rc = -ENOMEM;
	f->by_digest = calloc(cap, sizeof(*f->by_digest));
	f->by_id = calloc(cap, sizeof(*f->by_id));
	f->recent_bits = calloc(QS_FETCH_RECENT, f->bitmap_bytes);
	if (!f->by_digest || !f->by_id || !f->recent_bits)
		goto out;
	for (size_t i = 0; i < QS_FETCH_RECENT; i++)
		f->recent[i].outstanding = f->recent_bits + i * f->bitmap_bytes;
	rc = register_metrics(f);
	if (rc)
		goto out;
	*out = f;
out:
	if (rc) {
		free(f->by_digest);
		free(f->by_id);
		free(f->recent_bits);
		free(f);
	}
	return rc;
}

void
qs_fetch_free(struct qs_fetch *f)
{
	if (!f)
		return;
	f->closing = 1;
	while (f->all)
		fetch_complete_all(f->all, QS_ESHUTDOWN);
	free(f->by_digest);
	free(f->by_id);
	free(f->recent_bits);
	free(f);
}
