from ledger.blueprints.security.routes import bp

__all__ = ["bp"]
