"""Sign-in and registration, the account (profile, avatar, alert) and security (sessions, password, audit)."""
