/* SPDX-License-Identifier: MIT */
/*
 * The seed's SharedMemory.CircularBuffer README example: a producer creates a ring of 3 nodes
 * of 4 bytes by name and writes two ints, 123 and 456; a consumer opens the ring by name and
 * reads them back in order.
 * Output: "SharedMemory.CircularBuffer:", "123", "456".
 */
#include <stdio.h>

#include <smem.h>

/* The broker's failures come with a sentence naming its address (smem_last_error). */
static const char *why(int err)
{
	return *smem_last_error() ? smem_last_error() : smem_strerror(err);
}

int main(void)
{
	struct smem_ring *producer, *consumer;
	int data, read_data, err;
	ssize_t n;

	puts("SharedMemory.CircularBuffer:");
	err = smem_ring_create("MySharedMemory", 3, 4, NULL, &producer);
	if (err) {
		fprintf(stderr, "create: %s\n", why(err));
		return 1;
	}
	err = smem_ring_open("MySharedMemory", NULL, &consumer);
	if (err) {
		fprintf(stderr, "open: %s\n", why(err));
		smem_ring_close(producer);
		return 1;
	}

	data = 123;
	err = smem_ring_write(producer, &data, sizeof(data), 1000);
	data = 456;
	if (!err)
		err = smem_ring_write(producer, &data, sizeof(data), 1000);
	if (err)
		fprintf(stderr, "write: %s\n", smem_strerror(err));

	while (!err && (n = smem_ring_read(consumer, &read_data, sizeof(read_data), 0)) >= 0)
		printf("%d\n", read_data);

	smem_ring_close(consumer);
	smem_ring_close(producer);
	return err ? 1 : 0;
}
