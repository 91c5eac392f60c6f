"""Finance: the quarter-hour energy ledger (ledger.py), where it is stored (store.py) and
the monthly reports built from it (report.py)."""
