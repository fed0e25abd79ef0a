/* SPDX-License-Identifier: MIT */
/*
 * Camera frames over a topic: one publisher writes 1 MiB frames straight into loaned pool
 * buffers (no copy), three subscriber processes receive read-only views of every frame. The
 * display and the recorder keep up; the analyzer is slow (10 ms per frame), and the topic's
 * OVERWRITE policy lets the camera run on: the analyzer skips the oldest frames it had not
 * read and counts each one it lost. Nothing is copied; the subscribers could not write a
 * frame if they tried (the pool is sealed read-only for everyone but the camera).
 */
#include <errno.h>
#include <stdint.h>
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <time.h>
#include <unistd.h>

#include <smem.h>

/* The broker's failures come with a sentence naming its address (smem_last_error). */
static const char *why(int err)
{
	return *smem_last_error() ? smem_last_error() : smem_strerror(err);
}

#define FRAMES		30
#define FRAME_BYTES	(1u << 20)

static void sleep_ms(long ms)
{
	struct timespec ts = { ms / 1000, (ms % 1000) * 1000000 };

	nanosleep(&ts, NULL);
}

/* A frame carries its number at both ends: a torn frame would show. */
static int check_frame(const struct smem_topic_sample *v)
{
	uint64_t head, tail;

	memcpy(&head, v->view, 8);
	memcpy(&tail, (const char *)v->view + v->len - 8, 8);
	return v->len == FRAME_BYTES && head == v->seq && tail == v->seq ? 0 : -1;
}

static int viewer(const char *name, const char *who, long ms_per_frame, int ready_fd,
		  int out_fd)
{
	char line[128];
	struct smem_topic_sub_stats st;
	struct smem_topic_sample v;
	struct smem_topic_sub *s;
	int err = smem_topic_subscribe(name, 0, NULL, &s), bad = 0;

	if (err) {
		fprintf(stderr, "%s: subscribe: %s\n", who, why(err));
		return 1;
	}
	if (write(ready_fd, "r", 1) != 1)
		return 1;
	close(ready_fd);
	while ((err = smem_topic_receive(s, &v, 5000)) == 0) {
		bad |= check_frame(&v);
		if (ms_per_frame)
			sleep_ms(ms_per_frame);	/* "analysing" while holding the view */
		smem_topic_release(s, &v);
	}
	smem_topic_sub_stats(s, &st);
	smem_topic_sub_close(s);
	if (err != -ESHUTDOWN || bad) {
		fprintf(stderr, "%s: %s\n", who, bad ? "torn frame" : smem_strerror(err));
		return 1;
	}
	/* The parent prints the lines in a fixed order. */
	snprintf(line, sizeof(line), "%-9s received %2llu frames, lost %2llu%s\n", who,
		 (unsigned long long)st.received, (unsigned long long)st.lost,
		 st.received + st.lost == FRAMES ? " (every frame accounted for)" : " (MISSING)");
	if (write(out_fd, line, strlen(line)) < 0)
		return 1;
	return st.received + st.lost == FRAMES ? 0 : 1;
}

int main(void)
{
	static const struct { const char *who; long ms; } subs[] = {
		{ "display", 0 }, { "recorder", 0 }, { "analyzer", 10 },
	};
	struct smem_topic_config cfg = {
		.sample_size = FRAME_BYTES, .depth = 4, .policy = SMEM_TOPIC_OVERWRITE,
		.max_subscribers = 3,
	};
	struct smem_topic_pub *cam;
	pid_t kids[3];
	char name[64], c, line[128];
	int fds[2], out[3][2], err, i, failed = 0, status;
	ssize_t n;

	snprintf(name, sizeof(name), "camera-%d", (int)getpid());
	err = smem_topic_create(name, &cfg, NULL, &cam);
	if (err) {
		fprintf(stderr, "create %s: %s\n", name, why(err));
		return 1;
	}
	printf("camera: %d frames of %u KiB to 3 subscribers, the analyzer slow\n", FRAMES,
	       FRAME_BYTES >> 10);
	fflush(stdout);
	if (pipe(fds))
		return 1;
	for (i = 0; i < 3; i++) {
		if (pipe(out[i]))
			return 1;
		kids[i] = fork();
		if (kids[i] == 0) {
			close(fds[0]);
			close(out[i][0]);
			_exit(viewer(name, subs[i].who, subs[i].ms, fds[1], out[i][1]));
		}
		close(out[i][1]);
	}
	close(fds[1]);
	for (i = 0; i < 3; i++)
		if (read(fds[0], &c, 1) != 1)
			return 1;
	close(fds[0]);
	for (i = 0; i < FRAMES; i++) {
		struct smem_topic_sample f;
		uint64_t k = (uint64_t)i;

		err = smem_topic_loan(cam, &f, 1000);
		if (err) {
			fprintf(stderr, "loan: %s\n", smem_strerror(err));
			return 1;
		}
		memset(f.data, (int)(k & 0xff), FRAME_BYTES);	/* "expose" the frame in place */
		memcpy(f.data, &k, 8);
		memcpy((char *)f.data + FRAME_BYTES - 8, &k, 8);
		err = smem_topic_publish(cam, &f, FRAME_BYTES, 1000);
		if (err) {
			fprintf(stderr, "publish: %s\n", smem_strerror(err));
			return 1;
		}
		sleep_ms(2);	/* 500 frames per second */
	}
	sleep_ms(50);		/* let the fast ones drain before the camera goes away */
	smem_topic_pub_close(cam);
	for (i = 0; i < 3; i++) {
		if (waitpid(kids[i], &status, 0) != kids[i] || !WIFEXITED(status) ||
		    WEXITSTATUS(status))
			failed = 1;
		n = read(out[i][0], line, sizeof(line) - 1);
		if (n > 0)
			fwrite(line, 1, (size_t)n, stdout);
		close(out[i][0]);
	}
	return failed;
}
