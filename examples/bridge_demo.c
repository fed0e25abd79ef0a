/* SPDX-License-Identifier: MIT */
/*
 * The two-host bridge example's ends (examples/bridge/two-hosts.sh):
 *
 *   bridge_demo produce RING COUNT   create RING (64 nodes of 1 KiB), give the bridge a moment
 *                                    to open it, write COUNT messages, wait until it has
 *                                    read them all, exit
 *   bridge_demo consume RING COUNT   open RING (waiting for it to exist), print COUNT messages
 *
 * The broker is $SMEM_BROKER: on each "host" its own.
 */
#include <errno.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <time.h>
#include <unistd.h>

#include <smem.h>

/* The broker's failures come with a sentence naming its address (smem_last_error). */
static const char *why(int err)
{
	return *smem_last_error() ? smem_last_error() : smem_strerror(err);
}

static void sleep_ms(int ms)
{
	struct timespec ts = { ms / 1000, (long)(ms % 1000) * 1000000L };

	nanosleep(&ts, NULL);
}

int main(int argc, char **argv)
{
	struct smem_ring *r = NULL;
	char buf[1024];
	int rc, count;

	if (argc != 4 || (strcmp(argv[1], "produce") && strcmp(argv[1], "consume"))) {
		fprintf(stderr, "usage: bridge_demo produce|consume RING COUNT\n");
		return 2;
	}
	count = atoi(argv[3]);
	if (!strcmp(argv[1], "produce")) {
		struct smem_ring_stats st;

		rc = smem_ring_create(argv[2], 64, sizeof(buf), NULL, &r);
		if (rc) {
			fprintf(stderr, "create %s: %s\n", argv[2], why(rc));
			return 1;
		}
		sleep_ms(1000);
		for (int i = 0; i < count; i++) {
			int len = snprintf(buf, sizeof(buf), "message %d from %s", i,
					   getenv("HOSTNAME_DEMO") ? getenv("HOSTNAME_DEMO") : "A");

			rc = smem_ring_write(r, buf, (size_t)len, 10000);
			if (rc) {
				fprintf(stderr, "write: %s\n", smem_strerror(rc));
				return 1;
			}
		}
		/* The creator's close shuts the ring down: wait until the bridge drained it. */
		for (int i = 0; i < 1000 && smem_ring_next_len(r) != -EAGAIN; i++)
			sleep_ms(10);
		smem_ring_stats(r, &st);
		printf("produced %llu messages into ring %s\n", (unsigned long long)st.written, argv[2]);
		sleep_ms(500);
		smem_ring_close(r);
		return 0;
	}
	for (int i = 0; i < 1000 && (rc = smem_ring_open(argv[2], NULL, &r)) == -ENOENT; i++)
		sleep_ms(10);
	if (rc) {
		fprintf(stderr, "open %s: %s\n", argv[2], why(rc));
		return 1;
	}
	for (int i = 0; i < count; i++) {
		ssize_t n = smem_ring_read(r, buf, sizeof(buf) - 1, 10000);

		if (n < 0) {
			fprintf(stderr, "read: %s\n", smem_strerror((int)n));
			smem_ring_close(r);
			return 1;
		}
		buf[n] = 0;
		printf("host B got: %s\n", buf);
	}
	smem_ring_close(r);
	return 0;
}
