"""``repnext_bench.records``, the typed report records as docs/report-contract.md documents
them: the same module as repnext_bench/core/records.py."""
import sys

from .core import records

sys.modules[__name__] = records
