from ledger.blueprints.people.auth.routes import bp

__all__ = ["bp"]
