"""The money a person spends: charges, batches and holds (internal API), the summary, usage pages and reports."""
