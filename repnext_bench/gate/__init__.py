"""CI gating: the paired A/B gate, comparing stored reports, and their shared statistics."""
