"""``python -m repnext_bench.crosscheck``, as docs/cli.md documents it: the module lives in
repnext_bench/devtools/crosscheck.py."""
import sys

from .devtools.crosscheck import main

if __name__ == "__main__":
    sys.exit(main())
