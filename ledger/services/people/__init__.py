"""People: registration, sign-in, sessions and passwords; profiles and avatars."""
