"""The seed's SharedArray example: a producer creates an array of ten int32 by name, a
consumer opens it by name (dtype and shape checked) and sees what the producer wrote.
Output: "SharedMemory.SharedArray:", "123", "456"."""
import sys

import numpy as np

import smem


def main() -> int:
    print("SharedMemory.SharedArray:")
    with smem.Array.create("MySharedArray", 10, np.int32) as producer, \
            smem.Array.open("MySharedArray", np.int32, (10,)) as consumer:
        values = producer.array
        values[0] = 123
        values[len(producer) - 1] = 456
        del values  # views go before the handle closes
        seen = consumer.read()
        print(seen[0])
        print(seen[len(consumer) - 1])
    return 0


if __name__ == "__main__":
    sys.exit(main())
