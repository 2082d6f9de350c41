"""Invitations (/invites and its API) and redemption codes (the API)."""
