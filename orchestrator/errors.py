"""The one exception type a user sees as a readable message instead of a stack trace."""


class OrchestratorError(Exception):
    """A user-facing error: what is wrong and how to fix it, in one message.

    The CLI prints it as `error: <message>` and exits with status 2 (the traceback
    only with `--debug`). Raise it for bad input, never for bugs.
    """
