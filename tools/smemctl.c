/* SPDX-License-Identifier: MIT */
/*
 * smemctl: look at and manage the names a broker holds (man smemctl).
 *
 *   smemctl [options] list | stat NAME | rm NAME | stop | top | bridges
 *
 * Options go anywhere on the line (`smemctl list --json` as well as `smemctl --json list`);
 * `--` ends them, for a name that starts with '-'. With --json every command prints exactly
 * one JSON document on stdout, an error included ({"error": {...}}); `top` prints one per
 * refresh. It never starts a broker, and it only looks: regions are mapped read-only and
 * nothing in them is written.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <math.h>
#include <pwd.h>
#include <stdlib.h>
#include <string.h>
#include <unistd.h>

#include "smemctl.h"

struct ctl {
	const char *broker;	/* --broker, or NULL for the library's default */
	char addr[128];		/* the address it resolves to, for messages */
	const char *cmd;
	bool json;
	double interval_s;	/* top */
	long iterations;	/* top: 0 = until interrupted */
};

static void usage(FILE *f)
{
	fprintf(f,
		"usage: smemctl [options] COMMAND [NAME]\n"
		"  list        every name: kind, size, owner, mode, holders, age\n"
		"  stat NAME   the broker's record, the validated header and what the object holds\n"
		"              (ring fill and counters, lock state and holders, RPC ends, topic\n"
		"              subscribers with their lag and losses, service clients: liveness,\n"
		"              state and calls)\n"
		"  rm NAME     remove the name (mappings stay valid)\n"
		"  stop        stop the broker (its own user or root)\n"
		"  top         every name and its state, refreshed\n"
		"  bridges     the running smem-bridge daemons: routes and their counters\n"
		"options (anywhere on the line):\n"
		"  -b, --broker ADDR    socket path or @name (default: $SMEM_BROKER, then the\n"
		"                       per-user default)\n"
		"  -j, --json           one JSON document per command (top: per refresh)\n"
		"  -n, --interval SEC   top: seconds between refreshes (default 1)\n"
		"  -i, --iterations N   top: stop after N refreshes (default: until interrupted)\n"
		"  -h, --help           this text\n"
		"  -V, --version        the version of smem it belongs to\n");
}

/* A failure: one JSON document on stdout with --json, else a line on stderr. */
static int fail(const struct ctl *c, int err, const char *detail)
{
	struct json_object *doc, *e;

	if (c->json) {
		doc = json_object_new_object();
		e = sc_errno_json(err);
		if (c->cmd)
			sc_add_str(e, "command", c->cmd);
		if (c->addr[0])
			sc_add_str(e, "broker", c->addr);
		if (detail)
			sc_add_name(e, "detail", detail);
		/* What the library says happened at that broker, in a sentence. */
		if (c->addr[0] && *smem_last_error())
			sc_add_name(e, "explanation", smem_last_error());
		json_object_object_add(doc, "error", e);
		sc_print_json(stdout, doc);
		json_object_put(doc);
	} else {
		fprintf(stderr, "smemctl%s%s: ", c->cmd ? " " : "", c->cmd ? c->cmd : "");
		if (c->addr[0] && *smem_last_error()) {
			/* It names the address, the name and the reason. */
			sc_print_str(stderr, smem_last_error());
			fputc('\n', stderr);
			return 1;
		}
		if (detail) {
			sc_print_str(stderr, detail);
			fputs(": ", stderr);
		}
		fprintf(stderr, "%s", smem_strerror(err));
		if (c->addr[0])
			fprintf(stderr, " (broker %s)", c->addr);
		fputc('\n', stderr);
	}
	return 1;
}

/* A usage error: the text on stderr, and with --json also a document on stdout. */
static int bad_usage(struct ctl *c, const char *why)
{
	c->addr[0] = 0;
	if (c->json)
		fail(c, -EINVAL, why);
	fprintf(stderr, "smemctl: %s\n", why);
	usage(stderr);
	return 2;
}

/* ---- list ------------------------------------------------------------------------------- */

static void owner_text(uint32_t uid, uint32_t gid, char *buf, size_t len)
{
	struct passwd *pw = getpwuid(uid);
	struct group *gr = getgrgid(gid);
	char u[32], g[32];

	if (pw)
		snprintf(u, sizeof(u), "%s", pw->pw_name);
	else
		snprintf(u, sizeof(u), "%u", uid);
	if (gr)
		snprintf(g, sizeof(g), "%s", gr->gr_name);
	else
		snprintf(g, sizeof(g), "%u", gid);
	snprintf(buf, len, "%s:%s", u, g);
}

static void size_text(uint64_t v, char *buf, size_t len)
{
	static const char units[] = "BKMGT";
	double d = (double)v;
	int u = 0;

	while (d >= 1024 && u < 4) {
		d /= 1024;
		u++;
	}
	if (u == 0)
		snprintf(buf, len, "%lluB", (unsigned long long)v);
	else
		snprintf(buf, len, "%.1f%c", d, units[u]);
}

/* A name in a column of @width: escaped for the terminal, padded. */
static void name_cell(const char *name, int width)
{
	int n = sc_print_str(stdout, name);

	for (; n < width; n++)
		putchar(' ');
}

struct entries {
	struct smem__entry_info *v;
	size_t n, cap;
};

static int collect(const struct smem__entry_info *e, void *arg)
{
	struct entries *es = arg;
	struct smem__entry_info *nv;

	if (es->n == es->cap) {
		es->cap = es->cap ? 2 * es->cap : 64;
		nv = realloc(es->v, es->cap * sizeof(*nv));
		if (!nv)
			return -ENOMEM;
		es->v = nv;
	}
	es->v[es->n++] = *e;
	return 0;
}

static int cmd_list(struct ctl *c)
{
	struct entries es = { 0 };
	struct json_object *doc, *arr;
	char owner[80], size[32];
	size_t i;
	int err;

	err = smem__broker_list(c->broker, collect, &es);
	if (err) {
		free(es.v);
		return fail(c, err, NULL);
	}
	if (c->json) {
		doc = json_object_new_object();
		arr = json_object_new_array();
		sc_add_str(doc, "broker", c->addr);
		for (i = 0; i < es.n; i++)
			json_object_array_add(arr, sc_entry_json(&es.v[i]));
		json_object_object_add(doc, "names", arr);
		sc_print_json(stdout, doc);
		json_object_put(doc);
	} else if (!es.n) {
		printf("no names\n");
	} else {
		printf("%-32s %-7s %9s %-20s %5s %7s %9s\n", "NAME", "KIND", "SIZE", "OWNER",
		       "MODE", "HOLDERS", "AGE");
		for (i = 0; i < es.n; i++) {
			const struct smem__entry_info *e = &es.v[i];
			struct timespec now;
			double age;

			clock_gettime(CLOCK_REALTIME, &now);
			age = ((double)now.tv_sec * 1e9 + (double)now.tv_nsec - (double)e->ctime_ns) / 1e9;
			owner_text(e->uid, e->gid, owner, sizeof(owner));
			size_text(e->size, size, sizeof(size));
			name_cell(e->name, 32);
			printf(" %-7s %9s %-20s %04o %7u %8.0fs\n", smem__kind_name(e->kind), size,
			       owner, e->mode & 07777, e->holders, age > 0 ? age : 0);
		}
	}
	free(es.v);
	return 0;
}

/* ---- stat, rm, stop ----------------------------------------------------------------------- */

static int cmd_stat(struct ctl *c, const char *name)
{
	struct smem__entry_info e;
	struct json_object *doc;
	int err;

	err = smem__broker_stat(c->broker, name, &e);
	if (err)
		return fail(c, err, name);
	doc = sc_inspect(c->broker, &e);
	if (c->json)
		sc_print_json(stdout, doc);
	else
		sc_print_human(stdout, doc, 0);
	json_object_put(doc);
	return 0;
}

static int cmd_rm(struct ctl *c, const char *name)
{
	struct smem_opts opts = { .broker = c->broker };
	struct json_object *doc;
	int err;

	err = smem_unlink(name, &opts);
	if (err)
		return fail(c, err, name);
	if (c->json) {
		doc = json_object_new_object();
		sc_add_bool(doc, "removed", true);
		sc_add_name(doc, "name", name);
		sc_print_json(stdout, doc);
		json_object_put(doc);
	} else {
		printf("removed\n");
	}
	return 0;
}

static int cmd_stop(struct ctl *c)
{
	struct json_object *doc;
	int err;

	err = smem__broker_stop(c->broker);
	if (err)
		return fail(c, err, NULL);
	if (c->json) {
		doc = json_object_new_object();
		sc_add_bool(doc, "stopped", true);
		sc_add_str(doc, "broker", c->addr);
		sc_print_json(stdout, doc);
		json_object_put(doc);
	} else {
		printf("stopped\n");
	}
	return 0;
}

/* ---- top -------------------------------------------------------------------------------- */

static uint64_t get_u64(struct json_object *o, const char *path1, const char *path2)
{
	struct json_object *v = json_object_object_get(o, path1);

	if (v && path2)
		v = json_object_object_get(v, path2);
	return v ? (uint64_t)json_object_get_uint64(v) : 0;
}

static bool get_bool(struct json_object *o, const char *k1, const char *k2)
{
	struct json_object *v = json_object_object_get(o, k1);

	if (v && k2)
		v = json_object_object_get(v, k2);
	return v && json_object_get_boolean(v);
}

/* A ring's fill as "3/16", or "?/16" when its positions did not add up. */
static void fill_text(struct json_object *ring, char *buf, size_t len)
{
	struct json_object *f = json_object_object_get(ring, "fill");

	if (!ring || !get_bool(ring, "valid", NULL))
		snprintf(buf, len, "invalid");
	else if (f)
		snprintf(buf, len, "%llu/%llu", (unsigned long long)json_object_get_uint64(f),
			 (unsigned long long)get_u64(ring, "node_count", NULL));
	else
		snprintf(buf, len, "?/%llu", (unsigned long long)get_u64(ring, "node_count", NULL));
}

/* Messages written since the previous refresh, per second, or -1 when unknown. */
static double ring_rate(struct json_object *prev, struct json_object *cur, const char *ring_key,
			double dt)
{
	uint64_t a, b;

	if (!prev || dt <= 0)
		return -1;
	a = get_u64(prev, ring_key, "written");
	b = get_u64(cur, ring_key, "written");
	return b >= a ? (double)(b - a) / dt : -1;
}

static void end_text(struct json_object *end, char *buf, size_t len)
{
	if (!end)
		snprintf(buf, len, "none");
	else
		snprintf(buf, len, "%s%s", get_bool(end, "alive", NULL) ? "alive" : "dead",
			 get_bool(end, "closed", NULL) ? ",closed" : "");
}

/* The DETAIL column of one name: what its kind holds, in a line. */
static void top_detail(struct json_object *doc, struct json_object *prev, double dt)
{
	struct json_object *ring = json_object_object_get(doc, "ring");
	struct json_object *lock = json_object_object_get(doc, "lock");
	struct json_object *rpc = json_object_object_get(doc, "rpc"), *he;
	struct json_object *svc = json_object_object_get(doc, "service");
	char f1[32], f2[32], e1[24], e2[24];
	double rate;

	if ((he = json_object_object_get(doc, "header_error"))) {
		printf("header: %s", json_object_get_string(json_object_object_get(he, "message")));
	} else if (ring) {
		fill_text(ring, f1, sizeof(f1));
		rate = ring_rate(prev, doc, "ring", dt);
		printf("fill %s", f1);
		if (rate >= 0)
			printf(" %.0f msg/s", rate);
		printf(" waiters r%llu w%llu dropped %llu reclaimed %llu",
		       (unsigned long long)get_u64(ring, "waiters", "readers"),
		       (unsigned long long)get_u64(ring, "waiters", "writers"),
		       (unsigned long long)get_u64(ring, "dropped", NULL),
		       (unsigned long long)get_u64(ring, "reclaimed", NULL));
	} else if (lock) {
		struct json_object *w = json_object_object_get(lock, "writer");

		printf("lock %s", json_object_get_string(json_object_object_get(lock, "state")));
		if (w)
			printf(" by pid %llu (%s)", (unsigned long long)get_u64(w, "pid_hint", NULL),
			       get_bool(w, "alive", NULL) ? "alive" : "dead");
		else if (get_u64(lock, "readers", NULL))
			printf(" x%llu", (unsigned long long)get_u64(lock, "readers", NULL));
		if (get_bool(lock, "inconsistent", NULL))
			printf(" INCONSISTENT");
		printf(" recoveries %llu", (unsigned long long)get_u64(lock, "recoveries", NULL));
	} else if (rpc) {
		end_text(json_object_object_get(rpc, "master"), e1, sizeof(e1));
		end_text(json_object_object_get(rpc, "slave"), e2, sizeof(e2));
		fill_text(json_object_object_get(rpc, "m2s"), f1, sizeof(f1));
		fill_text(json_object_object_get(rpc, "s2m"), f2, sizeof(f2));
		printf("master %s slave %s m2s %s s2m %s", e1, e2, f1, f2);
	} else if (svc) {
		struct json_object *srv = json_object_object_get(svc, "server");

		end_text(srv, e1, sizeof(e1));
		printf("server %s clients %llu/%llu", e1,
		       (unsigned long long)get_u64(svc, "connected", NULL),
		       (unsigned long long)get_u64(svc, "max_clients", NULL));
	} else if (get_bool(doc, "header", "shutdown")) {
		printf("owner closed");
	}
}

static struct json_object *find_by_id(struct json_object *arr, uint64_t id)
{
	size_t i, n = arr ? json_object_array_length(arr) : 0;

	for (i = 0; i < n; i++) {
		struct json_object *d = json_object_array_get_idx(arr, i);

		if (get_u64(d, "broker", "id") == id)
			return d;
	}
	return NULL;
}

static int cmd_top(struct ctl *c)
{
	struct json_object *prev = NULL, *cur, *doc;
	struct timespec t0, t1;
	bool tty = isatty(STDOUT_FILENO);
	double dt = 0;
	long it;
	size_t i;
	int err;

	for (it = 0; !c->iterations || it < c->iterations; it++) {
		struct entries es = { 0 };

		if (it) {
			struct timespec d = { .tv_sec = (time_t)c->interval_s,
					      .tv_nsec = (long)(fmod(c->interval_s, 1.0) * 1e9) };

			while (nanosleep(&d, &d) < 0 && errno == EINTR)
				;
		}
		clock_gettime(CLOCK_MONOTONIC, &t1);
		if (it)
			dt = (double)(t1.tv_sec - t0.tv_sec) + (double)(t1.tv_nsec - t0.tv_nsec) / 1e9;
		t0 = t1;
		err = smem__broker_list(c->broker, collect, &es);
		if (err) {
			free(es.v);
			json_object_put(prev);
			return fail(c, err, NULL);
		}
		cur = json_object_new_array();
		for (i = 0; i < es.n; i++)
			json_object_array_add(cur, sc_inspect(c->broker, &es.v[i]));
		free(es.v);
		if (c->json) {
			doc = json_object_new_object();
			sc_add_str(doc, "broker", c->addr);
			sc_add_u64(doc, "iteration", (uint64_t)it);
			json_object_object_add(doc, "names", json_object_get(cur));
			sc_print_json(stdout, doc);
			json_object_put(doc);
		} else {
			if (tty)
				fputs("\033[H\033[2J", stdout);	/* home, clear */
			printf("smemctl top: broker %s, %zu names, refresh %d\n", c->addr,
			       json_object_array_length(cur), (int)it + 1);
			printf("%-32s %-6s %7s %5s  %s\n", "NAME", "KIND", "HOLDERS", "ALIVE",
			       "DETAIL");
			for (i = 0; i < json_object_array_length(cur); i++) {
				struct json_object *d = json_object_array_get_idx(cur, i);
				struct json_object *b = json_object_object_get(d, "broker");

				name_cell(json_object_get_string(json_object_object_get(b, "name")),
					  32);
				printf(" %-6s %7llu %5llu  ",
				       json_object_get_string(json_object_object_get(b, "kind")),
				       (unsigned long long)get_u64(b, "holders", NULL),
				       (unsigned long long)get_u64(d, "participants", "alive"));
				top_detail(d, find_by_id(prev, get_u64(b, "id", NULL)), dt);
				putchar('\n');
			}
		}
		fflush(stdout);
		json_object_put(prev);
		prev = cur;
	}
	json_object_put(prev);
	return 0;
}

/* ---- bridges --------------------------------------------------------------------------- */

static int cmd_bridges(struct ctl *c)
{
	struct json_object *doc, *arr;
	int err = sc_bridges(c->broker, &arr);

	if (err)
		return fail(c, err, NULL);
	if (c->json) {
		doc = json_object_new_object();
		sc_add_str(doc, "broker", c->addr);
		json_object_object_add(doc, "bridges", arr);
		sc_print_json(stdout, doc);
		json_object_put(doc);
		return 0;
	}
	if (json_object_array_length(arr) == 0)
		printf("no bridges\n");
	for (size_t i = 0; i < json_object_array_length(arr); i++) {
		struct json_object *br = json_object_array_get_idx(arr, i), *routes, *v;

		printf("bridge ");
		sc_print_str(stdout, json_object_get_string(json_object_object_get(br, "name")));
		if (json_object_object_get_ex(br, "error", &v)) {
			printf(": %s\n", json_object_get_string(json_object_object_get(v,
										    "message")));
			continue;
		}
		printf("  pid %d  reconnects %llu\n",
		       json_object_get_int(json_object_object_get(br, "pid")),
		       (unsigned long long)get_u64(br, "reconnects", NULL));
		printf("  %-12s %-24s %-24s %10s %12s %8s %8s %8s\n", "ROUTE", "LOCAL", "SUBJECT",
		       "MESSAGES", "BYTES", "LOST", "ERRORS", "DUPS");
		routes = json_object_object_get(br, "routes");
		for (size_t k = 0; k < json_object_array_length(routes); k++) {
			struct json_object *r = json_object_array_get_idx(routes, k);
			int w;

			printf("  %-12s ", json_object_get_string(json_object_object_get(r, "kind")));
			w = sc_print_str(stdout, json_object_get_string(json_object_object_get(r,
											   "local")));
			printf("%*s ", w < 24 ? 24 - w : 0, "");
			w = sc_print_str(stdout, json_object_get_string(json_object_object_get(r,
											   "subject")));
			printf("%*s %10llu %12llu %8llu %8llu %8llu%s\n", w < 24 ? 24 - w : 0, "",
			       (unsigned long long)get_u64(r, "messages", NULL),
			       (unsigned long long)get_u64(r, "bytes", NULL),
			       (unsigned long long)get_u64(r, "lost", NULL),
			       (unsigned long long)get_u64(r, "errors", NULL),
			       (unsigned long long)get_u64(r, "duplicates", NULL),
			       get_bool(r, "jetstream", NULL) ? "  jetstream" : "");
		}
	}
	json_object_put(arr);
	return 0;
}

/* ---- the command line ------------------------------------------------------------------- */

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "broker", required_argument, NULL, 'b' },
		{ "json", no_argument, NULL, 'j' },
		{ "interval", required_argument, NULL, 'n' },
		{ "iterations", required_argument, NULL, 'i' },
		{ "help", no_argument, NULL, 'h' },
		{ "version", no_argument, NULL, 'V' },
		{ NULL, 0, NULL, 0 },
	};
	struct ctl c = { .interval_s = 1.0 };
	struct smem__addr a;
	bool top_opts = false;
	char *end;
	int o, nargs;

	opterr = 0;	/* our own messages, and a JSON document with --json */
	/* A first pass for --json only, so that an error in any option is reported in JSON. */
	for (o = 1; o < argc && strcmp(argv[o], "--"); o++)
		if (!strcmp(argv[o], "--json") || !strcmp(argv[o], "-j"))
			c.json = true;
	/* GNU getopt permutes: options may follow the command and its name. */
	while ((o = getopt_long(argc, argv, "b:jn:i:hV", longopts, NULL)) != -1) {
		switch (o) {
		case 'b': c.broker = optarg; break;
		case 'j': c.json = true; break;
		case 'n':
			errno = 0;
			c.interval_s = strtod(optarg, &end);
			if (errno || end == optarg || *end || !(c.interval_s >= 0.01) ||
			    c.interval_s > 86400)
				return bad_usage(&c, "--interval wants seconds, 0.01 to 86400");
			top_opts = true;
			break;
		case 'i':
			errno = 0;
			c.iterations = strtol(optarg, &end, 10);
			if (errno || end == optarg || *end || c.iterations < 1)
				return bad_usage(&c, "--iterations wants a count >= 1");
			top_opts = true;
			break;
		case 'h': usage(stdout); return 0;
		case 'V': printf("smemctl (smem) %s\n", SMEM_TOOLS_VERSION); return 0;
		default: return bad_usage(&c, "unknown option or missing value");
		}
	}
	if (optind >= argc)
		return bad_usage(&c, "no command");
	c.cmd = argv[optind++];
	nargs = argc - optind;
	if (top_opts && strcmp(c.cmd, "top"))
		return bad_usage(&c, "--interval and --iterations are for top");
	/* Looking at a broker must not start one. */
	setenv("SMEM_NO_AUTOSTART", "1", 1);
	if (smem__addr_resolve(c.broker, &a) == 0)
		snprintf(c.addr, sizeof(c.addr), "%s", a.text);
	else
		return fail(&c, -EINVAL, c.broker ? c.broker : "$SMEM_BROKER");

	if (!strcmp(c.cmd, "list") && nargs == 0)
		return cmd_list(&c) ? 1 : 0;
	if (!strcmp(c.cmd, "stat") && nargs == 1)
		return cmd_stat(&c, argv[optind]) ? 1 : 0;
	if (!strcmp(c.cmd, "rm") && nargs == 1)
		return cmd_rm(&c, argv[optind]) ? 1 : 0;
	if (!strcmp(c.cmd, "stop") && nargs == 0)
		return cmd_stop(&c) ? 1 : 0;
	if (!strcmp(c.cmd, "top") && nargs == 0)
		return cmd_top(&c) ? 1 : 0;
	if (!strcmp(c.cmd, "bridges") && nargs == 0)
		return cmd_bridges(&c) ? 1 : 0;
	return bad_usage(&c, "unknown command, or wrong number of arguments");
}
