"""The user-facing error.

Anything a user can cause (a bad flag value, missing data, an unknown
environment, a corrupt checkpoint) raises :class:`DojoError`. The CLI prints it
as one line on stderr and exits with ``exit_code`` (2 unless said otherwise);
``KERASDOJO_DEBUG=1`` shows the traceback too.
"""

from __future__ import annotations


class DojoError(Exception):
    """An error the user can fix: a message naming the bad value and a hint."""

    def __init__(self, message: str, hint: str | None = None, exit_code: int = 2) -> None:
        super().__init__(message)
        self.message = message
        self.hint = hint
        self.exit_code = exit_code

    def __str__(self) -> str:
        return self.message

    def one_line(self) -> str:
        """The message and hint as the single line the CLI prints."""
        text = f"Error: {self.message}"
        if self.hint:
            text += f" ({self.hint})"
        return text.replace("\n", " ")


class Interrupted(DojoError):
    """Training stopped by Ctrl-C after a checkpoint was written."""

    def __init__(self, message: str, hint: str | None = None) -> None:
        super().__init__(message, hint, exit_code=130)
