/* SPDX-License-Identifier: MIT */
/*
 * smemctl: look at and manage the names a broker holds.
 *
 *   smemctl [--broker ADDR] [--json] list
 *   smemctl [--broker ADDR] [--json] stat NAME
 *   smemctl [--broker ADDR] [--json] rm NAME
 *   smemctl [--broker ADDR] [--json] stop
 *
 * It never starts a broker. `stat` also opens the region read-only through the broker and
 * prints its validated header.
 */
#include <errno.h>
#include <getopt.h>
#include <grp.h>
#include <pwd.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>

#include "internal.h"
#include "proto.h"

static bool json;

static const char *kind_name(uint32_t kind)
{
	switch (kind) {
	case SMEM_KIND_REGION:	return "region";
	case SMEM_KIND_BUFFER:	return "buffer";
	case SMEM_KIND_ARRAY:	return "array";
	case SMEM_KIND_RING:	return "ring";
	case SMEM_KIND_RPC:	return "rpc";
	default:		return "unknown";
	}
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: smemctl [--broker ADDR] [--json] COMMAND\n"
		"  list        every name: kind, size, owner, mode, holders, age\n"
		"  stat NAME   the broker's record and the region's header\n"
		"  rm NAME     remove the name (mappings stay valid)\n"
		"  stop        stop the broker (its own user or root)\n"
		"ADDR is a socket path or @name; default $SMEM_BROKER, then the per-user default.\n");
}

/* A JSON string: quotes, backslashes and every byte outside printable ASCII escaped. */
static void json_str(const char *s)
{
	putchar('"');
	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		if (ch == '"' || ch == '\\')
			printf("\\%c", ch);
		else if (ch < 0x20 || ch >= 0x7f)
			printf("\\u%04x", ch);
		else
			putchar(ch);
	}
	putchar('"');
}

/* A name for people: non-printable bytes as \xNN. */
static void human_str(const char *s, int width)
{
	int n = 0;

	for (; *s; s++) {
		unsigned char ch = (unsigned char)*s;

		n += ch < 0x20 || ch >= 0x7f ? printf("\\x%02x", ch) : printf("%c", ch);
	}
	for (; n < width; n++)
		putchar(' ');
}

static void user_group(uint32_t uid, uint32_t gid, char *buf, size_t len)
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

static void human_size(uint64_t v, char *buf, size_t len)
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

static double age_s(uint64_t ctime_ns)
{
	struct timespec now;
	uint64_t n;

	clock_gettime(CLOCK_REALTIME, &now);
	n = (uint64_t)now.tv_sec * 1000000000ull + (uint64_t)now.tv_nsec;
	return n > ctime_ns ? (double)(n - ctime_ns) / 1e9 : 0.0;
}

static void json_entry(const struct smem__entry_info *e)
{
	printf("{\"name\":");
	json_str(e->name);
	printf(",\"id\":%llu,\"kind\":\"%s\",\"size\":%llu,\"uid\":%u,\"gid\":%u,"
	       "\"mode\":\"%04o\",\"holders\":%u,\"persist\":%s,\"age_s\":%.3f}",
	       (unsigned long long)e->id, kind_name(e->kind), (unsigned long long)e->size, e->uid,
	       e->gid, e->mode, e->holders, (e->flags & SMEM_ENTRY_PERSIST) ? "true" : "false",
	       age_s(e->ctime_ns));
}

struct list_state {
	unsigned n;
};

static int list_one(const struct smem__entry_info *e, void *arg)
{
	struct list_state *st = arg;
	char owner[80], size[32], mode[8];

	if (json) {
		printf("%s\n  ", st->n ? "," : "");
		json_entry(e);
	} else {
		if (!st->n)
			printf("%-32s %-7s %9s %-20s %5s %7s %9s\n", "NAME", "KIND", "SIZE", "OWNER",
			       "MODE", "HOLDERS", "AGE");
		user_group(e->uid, e->gid, owner, sizeof(owner));
		human_size(e->size, size, sizeof(size));
		snprintf(mode, sizeof(mode), "%04o", e->mode);
		human_str(e->name, 32);
		printf(" %-7s %9s %-20s %5s %7u %8.0fs\n", kind_name(e->kind), size, owner,
		       mode, e->holders, age_s(e->ctime_ns));
	}
	st->n++;
	return 0;
}

static int cmd_list(const char *broker)
{
	struct list_state st = { 0 };
	int err;

	if (json)
		printf("[");
	err = smem__broker_list(broker, list_one, &st);
	if (json)
		printf("%s]\n", st.n ? "\n" : "");
	else if (!err && !st.n)
		printf("no names\n");
	return err;
}

static int cmd_stat(const char *broker, const char *name)
{
	struct smem_opts opts = { .broker = broker, .flags = SMEM_RDONLY };
	const struct smem_region_hdr *h = NULL;
	struct smem__entry_info e;
	struct smem_region *r = NULL;
	char owner[80];
	unsigned live = 0, i;
	int err, herr;

	err = smem__broker_stat(broker, name, &e);
	if (err)
		return err;
	/* The header as an opener sees it, validated like any open. */
	herr = smem__region_open(name, e.kind, &opts, &r);
	if (!herr) {
		h = r->hdr;
		for (i = 0; i < SMEM_LIVE_SLOTS; i++)
			if (atomic_load_explicit(&h->live[i].gen, memory_order_relaxed))
				live++;
	}
	if (json) {
		printf("{\"broker\":");
		json_entry(&e);
		if (h)
			printf(",\"header\":{\"layout\":\"%u.%u\",\"kind\":\"%s\",\"total_size\":%llu,"
			       "\"data_off\":%llu,\"data_size\":%llu,\"flags\":%u,\"shutdown\":%u,"
			       "\"create_time_ns\":%llu,\"creator_uid\":%u,\"creator_pid\":%u,"
			       "\"slots_used\":%u}}\n",
			       h->layout_major, h->layout_minor, kind_name(h->kind),
			       (unsigned long long)h->total_size, (unsigned long long)h->data_off,
			       (unsigned long long)h->data_size, h->flags,
			       atomic_load(&h->shutdown), (unsigned long long)h->create_time_ns,
			       h->creator_uid, h->creator_pid, live);
		else
			printf(",\"header\":null,\"header_error\":\"%s\"}\n", smem_strerror(herr));
	} else {
		user_group(e.uid, e.gid, owner, sizeof(owner));
		printf("name:          ");
		human_str(e.name, 0);
		printf("\nid:            %llu\n", (unsigned long long)e.id);
		printf("kind:          %s\n", kind_name(e.kind));
		printf("size:          %llu bytes (memfd, header page included)\n",
		       (unsigned long long)e.size);
		printf("owner:         %s (%u:%u)\n", owner, e.uid, e.gid);
		printf("mode:          %04o\n", e.mode);
		printf("holders:       %u\n", e.holders);
		printf("persistent:    %s\n", (e.flags & SMEM_ENTRY_PERSIST) ? "yes" : "no");
		printf("age:           %.1f s\n", age_s(e.ctime_ns));
		if (h) {
			printf("header:        layout %u.%u, kind %s\n", h->layout_major,
			       h->layout_minor, kind_name(h->kind));
			printf("  total_size:  %llu\n", (unsigned long long)h->total_size);
			printf("  data:        %llu bytes at offset %llu\n",
			       (unsigned long long)h->data_size, (unsigned long long)h->data_off);
			printf("  shutdown:    %u\n", atomic_load(&h->shutdown));
			printf("  creator:     uid %u, pid %u (in its namespace)\n", h->creator_uid,
			       h->creator_pid);
			printf("  slots used:  %u of %u\n", live, SMEM_LIVE_SLOTS);
		} else {
			printf("header:        cannot be read: %s\n", smem_strerror(herr));
		}
	}
	if (r)
		smem_region_close(r);
	return 0;
}

int main(int argc, char **argv)
{
	static const struct option longopts[] = {
		{ "broker", required_argument, NULL, 'b' },
		{ "json", no_argument, NULL, 'j' },
		{ "help", no_argument, NULL, 'h' },
		{ NULL, 0, NULL, 0 },
	};
	const char *broker = NULL, *cmd;
	int c, err;

	while ((c = getopt_long(argc, argv, "+b:jh", longopts, NULL)) != -1) {
		switch (c) {
		case 'b': broker = optarg; break;
		case 'j': json = true; break;
		case 'h': usage(stdout); return 0;
		default: usage(stderr); return 2;
		}
	}
	if (optind >= argc) {
		usage(stderr);
		return 2;
	}
	/* Looking at a broker must not start one. */
	setenv("SMEM_NO_AUTOSTART", "1", 1);
	cmd = argv[optind++];
	if (strcmp(cmd, "list") == 0 && optind == argc) {
		err = cmd_list(broker);
	} else if (strcmp(cmd, "stat") == 0 && optind + 1 == argc) {
		err = cmd_stat(broker, argv[optind]);
	} else if (strcmp(cmd, "rm") == 0 && optind + 1 == argc) {
		struct smem_opts opts = { .broker = broker };

		err = smem_unlink(argv[optind], &opts);
		if (!err)
			printf(json ? "{\"removed\":true}\n" : "removed\n");
	} else if (strcmp(cmd, "stop") == 0 && optind == argc) {
		err = smem__broker_stop(broker);
		if (!err)
			printf(json ? "{\"stopped\":true}\n" : "stopped\n");
	} else {
		usage(stderr);
		return 2;
	}
	if (err) {
		if (json)
			printf("{\"error\":\"%s\",\"errno\":%d}\n", smem_strerror(err), -err);
		else
			fprintf(stderr, "smemctl %s: %s\n", cmd, smem_strerror(err));
		return 1;
	}
	return 0;
}
