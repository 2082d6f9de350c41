"""The console's sample models: their page, runs and video jobs, and the price quote API."""
