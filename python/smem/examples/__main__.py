"""Run the four examples in the seed's order (as `make run` does for the C ones)."""
import importlib
import sys

from . import ORDER


def main() -> int:
    for name in ORDER:
        rc = importlib.import_module(f"{__package__}.{name}").main()
        if rc:
            return rc
    return 0


if __name__ == "__main__":
    sys.exit(main())
