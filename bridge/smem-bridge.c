/* SPDX-License-Identifier: MIT */
/*
 * smem-bridge: the NATS bridge daemon (see smem-bridge(1) and bridge/smem_bridge.h).
 *
 *   smem-bridge [-c FILE] [--server URL]... [--broker ADDR] [--state-dir DIR] [--name NAME]
 *               [--route 'LINE']... [--stats FILE] [--stats-interval MS] [--check]
 *
 * Credentials are accepted from the config file only: a command line is world-readable.
 */
#include <errno.h>
#include <getopt.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <smem.h>
#include "smem_bridge.h"
#include "smem_bridge_shm.h"

#ifndef SMEM_TOOLS_VERSION
#define SMEM_TOOLS_VERSION "0"
#endif

static volatile sig_atomic_t quit, dump;

static void on_signal(int sig)
{
	if (sig == SIGUSR1)
		dump = 1;
	else
		quit = 1;
}

static void usage(FILE *f)
{
	fprintf(f,
		"usage: smem-bridge [options]\n"
		"  -c, --config FILE      read directives and routes from FILE (credentials go here)\n"
		"  --server URL           a NATS server (repeatable; default nats://127.0.0.1:4222)\n"
		"  --broker ADDR          the smem broker of the local objects\n"
		"  --state-dir DIR        where JetStream importers keep their cursors\n"
		"  --name NAME            client name shown by the NATS server\n"
		"  --route 'LINE'         a route, as in the file (repeatable), e.g.\n"
		"                         'export ring jobs -> hostA.jobs'\n"
		"  --stats FILE           write the routes' counters to FILE (atomically)\n"
		"  --stats-interval MS    how often (default 1000)\n"
		"  --check                parse the config and exit\n"
		"  --help, --version\n"
		"SIGUSR1 prints the counters to stderr; SIGINT/SIGTERM stop.\n");
}

static void print_stats(FILE *f, const struct smem_bridge *b)
{
	struct smem_bridge_route_stats s;

	fprintf(f, "reconnects %llu\n", (unsigned long long)smem_bridge_reconnects(b));
	for (int i = 0; smem_bridge_route_stats(b, i, &s) == 0; i++)
		fprintf(f, "route %d %s %s %s%s messages %llu bytes %llu lost %llu errors %llu "
			"duplicates %llu retries %llu cursor %llu\n", i, smem_bridge_kind_name(s.kind), s.local,
			s.subject, s.jetstream ? " jetstream" : "",
			(unsigned long long)s.messages, (unsigned long long)s.bytes,
			(unsigned long long)s.lost, (unsigned long long)s.errors,
			(unsigned long long)s.duplicates, (unsigned long long)s.retries,
			(unsigned long long)s.cursor);
}

static void write_stats(const char *path, const struct smem_bridge *b)
{
	char tmp[4200];
	FILE *f;

	snprintf(tmp, sizeof(tmp), "%s.tmp", path);
	f = fopen(tmp, "we");
	if (!f)
		return;
	print_stats(f, b);
	if (fclose(f) == 0)
		rename(tmp, path);
}

static int add(struct smem_bridge_config *cfg, const char *key, const char *val)
{
	char line[2048], err[256];

	snprintf(line, sizeof(line), "%s %s", key, val);
	if (smem_bridge_config_line(cfg, line, err, sizeof(err))) {
		fprintf(stderr, "smem-bridge: --%s: %s\n", key, err);
		return -1;
	}
	return 0;
}

int main(int argc, char **argv)
{
	enum { O_SERVER = 256, O_BROKER, O_STATE, O_NAME, O_ROUTE, O_STATS, O_INTERVAL, O_CHECK,
	       O_HELP, O_VERSION };
	static const struct option longopts[] = {
		{ "config", required_argument, NULL, 'c' },
		{ "server", required_argument, NULL, O_SERVER },
		{ "broker", required_argument, NULL, O_BROKER },
		{ "state-dir", required_argument, NULL, O_STATE },
		{ "name", required_argument, NULL, O_NAME },
		{ "route", required_argument, NULL, O_ROUTE },
		{ "stats", required_argument, NULL, O_STATS },
		{ "stats-interval", required_argument, NULL, O_INTERVAL },
		{ "check", no_argument, NULL, O_CHECK },
		{ "help", no_argument, NULL, O_HELP },
		{ "version", no_argument, NULL, O_VERSION },
		{ NULL, 0, NULL, 0 },
	};
	struct smem_bridge_config *cfg = NULL;
	struct smem_bridge *b = NULL;
	struct smem_bridge_stats_pub *pub = NULL;
	const char *config = NULL, *stats = NULL;
	char err[512] = "";
	int opt, rc, interval = 1000;
	bool check = false;
	struct sigaction sa;

	/* The file first, so that flags given on the line add to (or override) it. */
	for (int i = 1; i < argc - 1; i++)
		if (!strcmp(argv[i], "-c") || !strcmp(argv[i], "--config"))
			config = argv[i + 1];
	rc = config ? smem_bridge_config_load(config, &cfg, err, sizeof(err))
		    : smem_bridge_config_new(&cfg);
	if (rc) {
		fprintf(stderr, "smem-bridge: %s (%s)\n", err[0] ? err : config,
			smem_strerror(rc));
		return 2;
	}
	while ((opt = getopt_long(argc, argv, "c:", longopts, NULL)) != -1) {
		switch (opt) {
		case 'c': break;
		case O_SERVER: rc = add(cfg, "server", optarg); break;
		case O_BROKER: rc = add(cfg, "broker", optarg); break;
		case O_STATE: rc = add(cfg, "state-dir", optarg); break;
		case O_NAME: rc = add(cfg, "name", optarg); break;
		case O_ROUTE:
			if (smem_bridge_config_line(cfg, optarg, err, sizeof(err))) {
				fprintf(stderr, "smem-bridge: --route '%s': %s\n", optarg, err);
				rc = -1;
			}
			break;
		case O_STATS: stats = optarg; break;
		case O_INTERVAL: interval = atoi(optarg); rc = interval > 0 ? 0 : -1; break;
		case O_CHECK: check = true; break;
		case O_HELP: usage(stdout); smem_bridge_config_free(cfg); return 0;
		case O_VERSION:
			printf("smem-bridge %s\n", SMEM_TOOLS_VERSION);
			smem_bridge_config_free(cfg);
			return 0;
		default: usage(stderr); rc = -1; break;
		}
		if (rc) {
			smem_bridge_config_free(cfg);
			return 2;
		}
	}
	if (optind < argc) {
		usage(stderr);
		smem_bridge_config_free(cfg);
		return 2;
	}
	if (check) {
		smem_bridge_config_free(cfg);
		return 0;
	}
	memset(&sa, 0, sizeof(sa));
	sa.sa_handler = on_signal;
	sigaction(SIGINT, &sa, NULL);
	sigaction(SIGTERM, &sa, NULL);
	sigaction(SIGUSR1, &sa, NULL);
	signal(SIGPIPE, SIG_IGN);
	rc = smem_bridge_start(cfg, &b);
	smem_bridge_config_free(cfg);
	if (rc) {
		fprintf(stderr, "smem-bridge: start: %s\n", smem_strerror(rc));
		return 1;
	}
	/* For smemctl bridges; a bridge without a broker to publish in still bridges. */
	rc = smem_bridge_stats_open(b, NULL, &pub);
	if (rc)
		fprintf(stderr, "smem-bridge: counters for smemctl: %s\n", smem_strerror(rc));
	while (!quit) {
		struct timespec ts = { interval / 1000, (long)(interval % 1000) * 1000000L };

		smem_bridge_stats_update(pub, b);
		if (stats)
			write_stats(stats, b);
		if (dump) {
			dump = 0;
			print_stats(stderr, b);
		}
		nanosleep(&ts, NULL);
	}
	if (stats)
		write_stats(stats, b);
	smem_bridge_stats_close(pub);
	smem_bridge_stop(b);
	return 0;
}
