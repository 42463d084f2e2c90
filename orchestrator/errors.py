"""The one exception type a user sees as a readable message instead of a stack trace, and
the scrubbing every message gets before a user sees it."""

import re

# `scheme://user:password@host` (or `scheme://token@host`): the user-info part of a URL.
_URL_USER_INFO = re.compile(r"(\b[a-zA-Z][a-zA-Z0-9+.-]*://)[^/\s@]+@")


def hide_passwords(text: str) -> str:
    """`text` with every URL's user info replaced by `***`: messages echo tracking URIs and
    addresses, and a password or token in one must not travel with them."""
    return _URL_USER_INFO.sub(r"\1***@", text)


class OrchestratorError(Exception):
    """A user-facing error: what is wrong and how to fix it, in one message.

    The CLI prints it as `error: <message>` and exits with status 2 (the traceback
    only with `--debug`). Raise it for bad input, never for bugs.
    """


class Interrupted(KeyboardInterrupt):
    """Ctrl-C (or SIGTERM) stopped a command that left something to continue; the message
    says how (the CLI prints it after `interrupted; ` and exits with 130)."""
