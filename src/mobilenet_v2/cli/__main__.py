"""`python -m mobilenet_v2.cli …`: the same as the `mobilenet-v2` command."""

import sys

from mobilenet_v2.cli import main

if __name__ == "__main__":
    sys.exit(main())
