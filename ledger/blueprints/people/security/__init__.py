from ledger.blueprints.people.security.routes import bp

__all__ = ["bp"]
