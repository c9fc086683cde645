"""Errors that mean "the user asked for something invalid" (the CLI turns them into exit code 2)."""


class LinsimError(ValueError):
    """Invalid input: one clear, one-line message; the CLI prints it and exits with code 2."""


class DivergenceError(RuntimeError):
    """A run left the finite world (non-finite or exploding state); the CLI exits with code 3."""
