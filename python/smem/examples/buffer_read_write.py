"""The seed's BufferReadWrite example: a producer creates a 1024-byte buffer by name and
writes an int at offset 0 and another at offset 1000; a consumer opens it and reads them.
Output: "SharedMemory.BufferReadWrite:", "123", "456"."""
import ctypes
import sys

import smem


def main() -> int:
    print("SharedMemory.BufferReadWrite:")
    with smem.Buffer.create("MySharedBuffer", 1024) as producer, \
            smem.Buffer.open("MySharedBuffer") as consumer:
        producer.write(0, ctypes.c_int(123))
        producer.pack(1000, "i", 456)
        print(consumer.read_struct(0, ctypes.c_int).value)
        print(consumer.unpack(1000, "i")[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
