"""The console's sample models: their prices, runs charged through the books, and video jobs on holds."""
