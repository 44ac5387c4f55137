"""Who may use the service: TLS, bearer tokens, roles and the principal of each call.

- :mod:`~sidra.server.security.roles`: the roles and the role each RPC needs;
- :mod:`~sidra.server.security.tokens`: principals and hashed tokens in a TOML file;
- :mod:`~sidra.server.security.access`: the interceptor that checks them, and
  :func:`current_principal` for code running under an RPC;
- :mod:`~sidra.server.security.tls`: server TLS and mutual-TLS credentials;
- :mod:`~sidra.server.security.certificates`: what their certificates say (dates,
  purpose, a client CA a CA), checked at start.
"""

from sidra.server.security.access import (
    AccessControl,
    current_principal,
    principal_name,
    principal_of,
)
from sidra.server.security.roles import (
    RPC_ROLES,
    SESSION_ROLES,
    STREAM_ROLES,
    Role,
    required_role,
)
from sidra.server.security.tls import server_credentials
from sidra.server.security.tokens import (
    LOCAL,
    Principal,
    TokensFile,
    add_principal,
    hash_token,
    read_tokens,
    remove_principal,
)

__all__ = [
    "LOCAL",
    "RPC_ROLES",
    "SESSION_ROLES",
    "STREAM_ROLES",
    "AccessControl",
    "Principal",
    "Role",
    "TokensFile",
    "add_principal",
    "current_principal",
    "hash_token",
    "principal_name",
    "principal_of",
    "read_tokens",
    "remove_principal",
    "required_role",
    "server_credentials",
]
