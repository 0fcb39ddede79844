"""``roost passwd`` (write a user's password hash) and ``roost reload`` (re-read users and
access rules on a running broker).

Rules of this module:

- A password is never taken from the command line: it is asked twice on the terminal, or read
  from the first line of ``--password-file``, or (``--stdin``) of standard input.
- ``passwd`` edits only the ``[users]`` table of the file it writes (the configuration file or
  a users file), keeping every other line as it was.
"""

from __future__ import annotations

import getpass
import sys

import click

from roost.cli.output import (
    EXIT_OK,
    EXIT_REMOTE,
    EXIT_USAGE,
    Output,
    connected,
    connection_options,
    error,
    run,
    settings_of,
)

__all__ = ("passwd", "reload")


def _read_password(password_file: str | None, stdin: bool) -> str:
    if password_file is not None:
        from roost.client.auth import read_password_file  # noqa: PLC0415

        return read_password_file(password_file)
    if stdin:
        password = sys.stdin.readline().rstrip("\r\n")
        if not password:
            raise ValueError("no password on standard input")
        return password
    first = getpass.getpass("New password: ")
    if not first:
        raise ValueError("an empty password")
    if getpass.getpass("Again: ") != first:
        raise ValueError("the passwords differ")
    return first


@click.command()
@click.argument("user")
@click.option(
    "--file",
    "path",
    metavar="FILE",
    type=click.Path(dir_okay=False),
    required=True,
    help="The configuration file or users file whose [users] table gets the hash.",
)
@click.option("--password-file", metavar="FILE", default=None, help="Read the password from FILE.")
@click.option("--stdin", is_flag=True, help="Read the password from standard input.")
def passwd(user: str, path: str, password_file: str | None, stdin: bool) -> int:
    """Set USER's password: its argon2id hash goes into the [users] table of FILE.

    The password is asked on the terminal (twice), or read from --password-file or --stdin;
    never give it as an argument. A running broker picks it up on reload (SIGHUP or roost
    reload).
    """
    from roost.broker.auth.users import set_password  # noqa: PLC0415

    try:
        password = _read_password(password_file, stdin)
        replaced = set_password(path, user, password)
    except (OSError, ValueError) as exc:
        error(str(exc))
        return EXIT_USAGE
    click.echo(f"{'changed' if replaced else 'added'} user {user} in {path}")
    return EXIT_OK


@click.command()
@connection_options
@click.pass_context
def reload(ctx: click.Context) -> int:
    """Make the broker re-read its users and access rules (needs admin).

    Live connections lose at once what the new rules no longer grant.
    """
    from roost.protocol import messages as m  # noqa: PLC0415
    from roost.protocol.values import Value  # noqa: PLC0415

    settings = settings_of(ctx)
    out = Output(settings)

    async def body() -> int:
        async with connected(settings) as client:
            reply = await client._request(lambda rid: m.AuthReload(rid, Value.of({})))
        obj = reply.value.obj if isinstance(reply, (m.ReplyOk, m.ReplyError)) else None
        if isinstance(reply, m.ReplyOk) and isinstance(obj, dict):
            out.record(obj, f"reloaded: {obj.get('users')} users, {obj.get('rules')} rules")
            return EXIT_OK
        reason = obj.get("reason") or obj.get("status") if isinstance(obj, dict) else obj
        error(f"reload refused: {reason}")
        return EXIT_REMOTE

    return run(settings, body)
