/* SPDX-License-Identifier: MIT */
/*
 * open_bench: the cost of opening a 4 KiB region by name through the broker (request, fd
 * receipt, seal and size checks, mmap, header validation, close with its RELEASE) against a
 * plain shm_open + fstat + mmap + munmap + close of a 4 KiB /dev/shm object, measured in the
 * same run. Prints the median of several runs and the ratio. Not a test.
 *
 *   cc -O2 -Iinclude -Isrc -pthread bench/open_bench.c build/default/libsmem.a -o /tmp/open_bench
 *   SMEM_BROKER=/tmp/ob/broker.sock /tmp/open_bench [iterations] [runs]
 */
#include <fcntl.h>
#include <stdio.h>
#include <stdlib.h>
#include <sys/mman.h>
#include <sys/stat.h>
#include <sys/wait.h>
#include <unistd.h>

#include "internal.h"

static int cmp_double(const void *a, const void *b)
{
	double x = *(const double *)a, y = *(const double *)b;

	return x < y ? -1 : x > y;
}

static double median(double *v, int n)
{
	qsort(v, (size_t)n, sizeof(*v), cmp_double);
	return n % 2 ? v[n / 2] : (v[n / 2 - 1] + v[n / 2]) / 2;
}

static double run_smem(const char *name, int iters)
{
	uint64_t t0 = smem__now_ns();
	struct smem_region *r;
	int i;

	for (i = 0; i < iters; i++) {
		if (smem_region_open(name, NULL, &r)) {
			fprintf(stderr, "open failed\n");
			exit(1);
		}
		*(volatile char *)smem_region_data(r);
		smem_region_close(r);
	}
	return (double)(smem__now_ns() - t0) / iters;
}

static double run_shm(const char *name, int iters)
{
	uint64_t t0 = smem__now_ns();
	struct stat st;
	int i, fd;
	void *p;

	for (i = 0; i < iters; i++) {
		fd = shm_open(name, O_RDWR | O_CLOEXEC, 0);
		if (fd < 0 || fstat(fd, &st) < 0) {
			perror("shm_open");
			exit(1);
		}
		p = mmap(NULL, (size_t)st.st_size, PROT_READ | PROT_WRITE, MAP_SHARED, fd, 0);
		if (p == MAP_FAILED) {
			perror("mmap");
			exit(1);
		}
		*(volatile char *)p;
		munmap(p, (size_t)st.st_size);
		close(fd);
	}
	return (double)(smem__now_ns() - t0) / iters;
}

/* A fresh process's first open: connect, HELLO, OPEN, mmap. Measured in children. */
static double run_cold(const char *name, int n)
{
	double v[64];
	int i, p[2];

	if (n > 64)
		n = 64;
	for (i = 0; i < n; i++) {
		pid_t pid;

		if (pipe(p) < 0)
			exit(1);
		pid = fork();
		if (pid == 0) {
			struct smem_region *r;
			uint64_t t0 = smem__now_ns();
			double d;

			if (smem_region_open(name, NULL, &r))
				_exit(1);
			d = (double)(smem__now_ns() - t0);
			smem_region_close(r);
			if (write(p[1], &d, sizeof(d)) != sizeof(d))
				_exit(1);
			_exit(0);
		}
		waitpid(pid, NULL, 0);
		if (read(p[0], &v[i], sizeof(v[i])) != sizeof(v[i]))
			exit(1);
		close(p[0]);
		close(p[1]);
	}
	return median(v, n);
}

int main(int argc, char **argv)
{
	int iters = argc > 1 ? atoi(argv[1]) : 20000;
	int runs = argc > 2 ? atoi(argv[2]) : 7;
	double smem_ns[32], shm_ns[32], ms, mh;
	char shm_name[64];
	struct smem_region *owner;
	int i, fd;

	if (runs > 32)
		runs = 32;
	snprintf(shm_name, sizeof(shm_name), "/open_bench-%d", (int)getpid());
	fd = shm_open(shm_name, O_RDWR | O_CREAT | O_EXCL | O_CLOEXEC, 0600);
	if (fd < 0 || ftruncate(fd, 4096) < 0) {
		perror("shm_open");
		return 1;
	}
	close(fd);
	if (smem_region_create("open_bench", 4096, NULL, &owner)) {
		fprintf(stderr, "smem_region_create failed\n");
		return 1;
	}
	run_smem("open_bench", iters / 10);	/* warm up */
	run_shm(shm_name, iters / 10);
	for (i = 0; i < runs; i++) {
		/* Interleaved, so that noise on a shared machine hits both alike. */
		smem_ns[i] = run_smem("open_bench", iters);
		shm_ns[i] = run_shm(shm_name, iters);
	}
	ms = median(smem_ns, runs);
	mh = median(shm_ns, runs);
	printf("4 KiB open+map+unmap+close, median of %d runs x %d iterations:\n", runs, iters);
	printf("  smem_region_open/close:   %8.2f us  (%.0f opens/s)\n", ms / 1000, 1e9 / ms);
	printf("  shm_open+mmap/munmap:     %8.2f us  (%.0f opens/s)\n", mh / 1000, 1e9 / mh);
	printf("  ratio smem/shm:           %8.2f\n", ms / mh);
	printf("  first open in a new process (connect+HELLO+OPEN+mmap), median of 21: %.2f us\n",
	       run_cold("open_bench", 21) / 1000);
	smem_region_close(owner);
	shm_unlink(shm_name);
	return 0;
}
