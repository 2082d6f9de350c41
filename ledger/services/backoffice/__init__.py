"""The admin's operations on people (search, adjust, disable, sign out) and the back office's overview."""
