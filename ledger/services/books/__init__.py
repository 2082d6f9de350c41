"""The money itself: billing accounts, the charge engine (deducts, batches, holds), low balance,
what a person reads of it (summary, usage reports) and the invariants `ledger verify` checks."""
