"""The business: each function one operation, shared by pages, APIs, commands and tests."""
