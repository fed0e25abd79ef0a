/* SPDX-License-Identifier: MIT */
/*
 * The seed's SharedMemory.BufferReadWrite README example: a producer creates a 1024-byte
 * buffer by name and writes an int at offset 0 and another at offset 1000; a consumer opens
 * the buffer by name and reads them back.
 * Output: "SharedMemory.BufferReadWrite:", "123", "456".
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
	struct smem_buffer *producer, *consumer;
	int data, read_data, err;

	puts("SharedMemory.BufferReadWrite:");
	err = smem_buffer_create("MySharedBuffer", 1024, NULL, &producer);
	if (err) {
		fprintf(stderr, "create: %s\n", why(err));
		return 1;
	}
	err = smem_buffer_open("MySharedBuffer", NULL, &consumer);
	if (err) {
		fprintf(stderr, "open: %s\n", why(err));
		smem_buffer_close(producer);
		return 1;
	}

	data = 123;
	SMEM_BUFFER_WRITE_VALUE(producer, 0, data);
	data = 456;
	SMEM_BUFFER_WRITE_VALUE(producer, 1000, data);

	if (SMEM_BUFFER_READ_VALUE(consumer, 0, read_data) == 0)
		printf("%d\n", read_data);
	if (SMEM_BUFFER_READ_VALUE(consumer, 1000, read_data) == 0)
		printf("%d\n", read_data);

	smem_buffer_close(consumer);
	smem_buffer_close(producer);
	return 0;
}
