from ledger.blueprints.people.account.routes import bp

__all__ = ["bp"]
