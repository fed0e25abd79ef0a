"""The seed's RpcBuffer example: a master that only calls, a slave whose handler adds the two
bytes of the request, and one call with 123 and 10. Prints the seed's heading, then 133."""
import errno
import os
import struct
import sys

import smem


def add_bytes(request: bytes) -> bytes:
    if len(request) != 2:
        raise OSError(errno.EINVAL, "expected two bytes")
    return struct.pack("i", request[0] + request[1])


def main() -> int:
    name = f"RpcTest-{os.getpid()}"
    with smem.Rpc.open(name) as master, smem.Rpc.open(name, add_bytes) as slave:
        (total,) = struct.unpack("i", master.call(bytes([123, 10]), timeout=5.0))
        print(f"SharedMemory.RpcBuffer:\n{total}")
    return 0


if __name__ == "__main__":
    sys.exit(main())
