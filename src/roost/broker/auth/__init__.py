"""Identity and access: users, logins, access rules.

Inside: ``acl`` (path patterns, permissions, each user's compiled grants), ``users`` (argon2id
password hashes, the users file), ``settings`` (the ``[users]``, ``users_file``, ``[groups]``
and ``[[acl]]`` sections), ``gate`` (what the router asks of the access layer) and ``access``
(logins, admission at hello, id takeover, reload, the lease checks), installed by the server
with :func:`roost.broker.auth.access.install_access`. This package imports none of them itself:
the session and router import ``acl`` and ``gate`` from below the router.
"""

__all__: tuple[str, ...] = ()
