/* SPDX-License-Identifier: MIT */
/*
 * lockbench: the smem buffer lock against a process-shared pthread_rwlock_t, in the same run.
 *
 *   uncontended write lock+unlock, read lock+unlock, and a locked 8-byte read
 *   (smem_buffer_read of 8 bytes vs rdlock + memcpy + unlock), in ns per operation;
 *   contended throughput: 2 processes taking the write lock and incrementing a shared counter,
 *   and 2 processes taking read locks, in operations per second.
 *
 * Each figure is the median of several runs; the ratio is smem / pthread (lower is better for
 * ns, higher is better for throughput). Not a test.
 *
 *   cc -O2 -Iinclude -Isrc -pthread bench/lockbench.c build/default/libsmem.a -luring \
 *      -o /tmp/lockbench
 *   SMEM_BROKER=/tmp/lb/broker.sock /tmp/lockbench [iterations] [runs] [contended ms]
 */
#include <pthread.h>
#include <signal.h>
#include <stdio.h>
#include <stdlib.h>
#include <string.h>
#include <sys/mman.h>
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
	return v[n / 2];
}

struct shared {
	pthread_rwlock_t rw;
	_Atomic int go;
	_Atomic int stop;
	uint64_t counter;
	char pad[64];
	uint64_t data;
};

static struct shared *sh;
static struct smem_buffer *buf;

enum op { WRITE, READ, READ8 };

static double run_smem(enum op op, long n)
{
	uint64_t t0 = smem__now_ns(), v = 0;
	long i;

	for (i = 0; i < n; i++) {
		switch (op) {
		case WRITE:
			smem_buffer_lock_write(buf, -1);
			smem_buffer_unlock(buf);
			break;
		case READ:
			smem_buffer_lock_read(buf, -1);
			smem_buffer_unlock(buf);
			break;
		case READ8:
			smem_buffer_read(buf, 0, &v, sizeof(v));
			break;
		}
	}
	__asm__ __volatile__("" : : "r"(v) : "memory");
	return (double)(smem__now_ns() - t0) / (double)n;
}

static double run_pthread(enum op op, long n)
{
	uint64_t t0 = smem__now_ns(), v = 0;
	long i;

	for (i = 0; i < n; i++) {
		switch (op) {
		case WRITE:
			pthread_rwlock_wrlock(&sh->rw);
			pthread_rwlock_unlock(&sh->rw);
			break;
		case READ:
			pthread_rwlock_rdlock(&sh->rw);
			pthread_rwlock_unlock(&sh->rw);
			break;
		case READ8:
			pthread_rwlock_rdlock(&sh->rw);
			memcpy(&v, (void *)&sh->data, sizeof(v));
			pthread_rwlock_unlock(&sh->rw);
			break;
		}
	}
	__asm__ __volatile__("" : : "r"(v) : "memory");
	return (double)(smem__now_ns() - t0) / (double)n;
}

/* Contended: two processes hammer the lock for @ms; returns operations per second. */
static double contended(bool use_smem, bool write, int ms)
{
	pid_t pids[2];
	_Atomic long *counts = mmap(NULL, 4096, PROT_READ | PROT_WRITE,
				     MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	double total;
	int i;

	atomic_store(&sh->go, 0);
	atomic_store(&sh->stop, 0);
	for (i = 0; i < 2; i++) {
		pids[i] = fork();
		if (pids[i] == 0) {
			struct smem_buffer *b = NULL;
			long k = 0;

			if (use_smem && smem_buffer_open("lockbench", NULL, &b) != 0)
				_exit(1);
			while (!atomic_load(&sh->go))
				;
			while (!atomic_load_explicit(&sh->stop, memory_order_relaxed)) {
				if (use_smem) {
					if (write) {
						smem_buffer_lock_write(b, -1);
						((uint64_t *)smem_buffer_data(b))[1]++;
					} else {
						smem_buffer_lock_read(b, -1);
					}
					smem_buffer_unlock(b);
				} else {
					if (write) {
						pthread_rwlock_wrlock(&sh->rw);
						sh->counter++;
					} else {
						pthread_rwlock_rdlock(&sh->rw);
					}
					pthread_rwlock_unlock(&sh->rw);
				}
				k++;
			}
			counts[i] = k;
			smem_buffer_close(b);
			_exit(0);
		}
	}
	usleep(50000);
	atomic_store(&sh->go, 1);
	usleep((useconds_t)ms * 1000);
	atomic_store(&sh->stop, 1);
	for (i = 0; i < 2; i++)
		waitpid(pids[i], NULL, 0);
	total = (double)(counts[0] + counts[1]) * 1000.0 / ms;
	munmap((void *)counts, 4096);
	return total;
}

int main(int argc, char **argv)
{
	long n = argc > 1 ? atol(argv[1]) : 5000000;
	int runs = argc > 2 ? atoi(argv[2]) : 5;
	int ms = argc > 3 ? atoi(argv[3]) : 300;
	static const char *names[] = { "write lock+unlock", "read lock+unlock",
				       "locked 8-byte read" };
	pthread_rwlockattr_t attr;
	double a[32], b[32];
	int err, op, r;

	if (runs < 1 || runs > 32 || n < 1)
		return 2;
	sh = mmap(NULL, sizeof(*sh), PROT_READ | PROT_WRITE, MAP_SHARED | MAP_ANONYMOUS, -1, 0);
	pthread_rwlockattr_init(&attr);
	pthread_rwlockattr_setpshared(&attr, PTHREAD_PROCESS_SHARED);
	pthread_rwlock_init(&sh->rw, &attr);
	err = smem_buffer_create("lockbench", 4096, NULL, &buf);
	if (err) {
		fprintf(stderr, "lockbench: create: %s\n", smem_strerror(err));
		return 1;
	}

	printf("uncontended, ns per operation (median of %d runs of %ld)\n", runs, n);
	printf("%-22s %10s %10s %8s\n", "", "smem", "pthread", "ratio");
	for (op = WRITE; op <= READ8; op++) {
		run_smem(op, n / 10);	/* warm up */
		run_pthread(op, n / 10);
		for (r = 0; r < runs; r++) {
			a[r] = run_smem(op, n);
			b[r] = run_pthread(op, n);
		}
		double ma = median(a, runs), mb = median(b, runs);

		printf("%-22s %10.1f %10.1f %8.2f\n", names[op], ma, mb, ma / mb);
	}

	if (ms <= 0)
		goto out;
	printf("contended, 2 processes, operations per second (median of %d runs of %d ms)\n",
	       runs, ms);
	printf("%-22s %10s %10s %8s\n", "", "smem", "pthread", "ratio");
	for (int w = 1; w >= 0; w--) {
		for (r = 0; r < runs; r++) {
			a[r] = contended(true, w, ms);
			b[r] = contended(false, w, ms);
		}
		double ma = median(a, runs), mb = median(b, runs);

		printf("%-22s %10.3g %10.3g %8.2f\n", w ? "write lock, counter++" : "read lock",
		       ma, mb, ma / mb);
	}
out:
	smem_buffer_close(buf);
	return 0;
}
