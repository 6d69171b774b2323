"""The only code that runs SQL. Each module holds one family of named queries."""

from billpay.store.engine import Database, connect

__all__ = ["Database", "connect"]
