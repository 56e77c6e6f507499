"""The ledger: exact balances and positions, atomic transactions, a hash-chained log."""
