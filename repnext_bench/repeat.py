"""``python -m repnext_bench.repeat``, as docs/cli.md documents it: the module lives in
repnext_bench/devtools/repeat.py."""
import sys

from .devtools.repeat import main

if __name__ == "__main__":
    sys.exit(main())
