"""The seed's CircularBuffer example: a producer creates a ring of 3 nodes of 4 bytes by name
and writes two ints, 123 and 456; a consumer opens it by name and reads them back in order.
Output: "SharedMemory.CircularBuffer:", "123", "456"."""
import struct
import sys

import smem


def main() -> int:
    print("SharedMemory.CircularBuffer:")
    with smem.Ring.create("MySharedMemory", 3, 4) as producer, \
            smem.Ring.open("MySharedMemory") as consumer:
        producer.write(struct.pack("i", 123), timeout=1.0)
        producer.write(struct.pack("i", 456), timeout=1.0)
        while True:
            try:
                msg = consumer.read(timeout=0)
            except smem.TimeoutExpired:
                break
            print(struct.unpack("i", msg)[0])
    return 0


if __name__ == "__main__":
    sys.exit(main())
