/* SPDX-License-Identifier: MIT */
/*
 * Two processes share a region by name: the parent creates it and writes a greeting, a child
 * (a separate process, as another program would be) opens it by name, reads the greeting and
 * answers in the same memory. The broker is started automatically if none runs (at the
 * per-user default address, or any path in a directory that is the user's alone).
 */
#include <stdio.h>
#include <string.h>
#include <sys/wait.h>
#include <unistd.h>

#include <smem.h>

#define GREETING "hello from the creator"

/*
 * A failure that involves the broker comes with a sentence naming its address
 * (smem_last_error): it is the first thing to check.
 */
static void report(const char *what, const char *name, int err)
{
	if (*smem_last_error())
		fprintf(stderr, "%s %s: %s\n", what, name, smem_last_error());
	else
		fprintf(stderr, "%s %s: %s\n", what, name, smem_strerror(err));
}
#define ANSWER "hello back from the opener"

static int opener(const char *name)
{
	struct smem_region *r;
	char *p;
	int err = smem_region_open(name, NULL, &r);

	if (err) {
		report("open", name, err);
		return 1;
	}
	p = smem_region_data(r);
	printf("opener read:  %s\n", p);
	fflush(stdout);
	snprintf(p + 512, 512, "%s", ANSWER);
	smem_region_close(r);
	return 0;
}

int main(void)
{
	struct smem_region *r;
	char name[64];
	int err, status;
	pid_t pid;
	char *p;

	snprintf(name, sizeof(name), "region-demo-%d", (int)getpid());
	err = smem_region_create(name, 1024, NULL, &r);
	if (err) {
		report("create", name, err);
		return 1;
	}
	p = smem_region_data(r);
	snprintf(p, 512, "%s", GREETING);

	printf("smem.Region (two processes):\n");
	fflush(stdout);
	pid = fork();
	if (pid < 0)
		return 1;
	if (pid == 0)
		_exit(opener(name));
	if (waitpid(pid, &status, 0) < 0 || !WIFEXITED(status) || WEXITSTATUS(status) != 0) {
		fprintf(stderr, "opener failed\n");
		return 1;
	}
	printf("creator read: %s\n", p + 512);
	err = strcmp(p + 512, ANSWER) != 0;
	smem_region_close(r);
	return err;
}
