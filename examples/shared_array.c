/* SPDX-License-Identifier: MIT */
/*
 * The seed's SharedMemory.SharedArray README example: a producer creates an array of ten ints
 * by name, a consumer opens it by name, and sees what the producer wrote.
 * Output: "SharedMemory.SharedArray:", "123", "456".
 */
#include <stdio.h>

#include <smem.h>

/* The broker's failures come with a sentence naming its address (smem_last_error). */
static const char *why(int err)
{
	return *smem_last_error() ? smem_last_error() : smem_strerror(err);
}

SMEM_ARRAY_DECLARE(int_array, int)

int main(void)
{
	struct smem_array *producer, *consumer;
	int v, err;

	puts("SharedMemory.SharedArray:");
	err = int_array_create("MySharedArray", 10, NULL, &producer);
	if (err) {
		fprintf(stderr, "create: %s\n", why(err));
		return 1;
	}
	err = int_array_open("MySharedArray", NULL, &consumer);
	if (err) {
		fprintf(stderr, "open: %s\n", why(err));
		smem_array_close(producer);
		return 1;
	}

	int_array_set(producer, 0, 123);
	int_array_set(producer, smem_array_length(producer) - 1, 456);

	if (int_array_get(consumer, 0, &v) == 0)
		printf("%d\n", v);
	if (int_array_get(consumer, smem_array_length(consumer) - 1, &v) == 0)
		printf("%d\n", v);

	smem_array_close(consumer);
	smem_array_close(producer);
	return 0;
}
