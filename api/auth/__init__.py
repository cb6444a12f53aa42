"""Authentication and authorisation: accounts and API keys (SQLite), signed session tokens, login rate limit."""

from api.auth.principal import Principal, Role
from api.auth.store import AuthStore, AuthStoreError

__all__ = ["AuthStore", "AuthStoreError", "Principal", "Role"]
