"""The seed's four README examples in Python, printing what the C examples print
(examples/*.c): ``python3 -m smem.examples`` runs them all in the seed's order, ``python3 -m
smem.examples.NAME`` one of them."""

ORDER = ("shared_array", "buffer_read_write", "circular_buffer", "rpc")
