"""The error the `cafe-tf` commands raise for a problem the user can fix."""


class CliError(Exception):
    """Bad arguments or inputs: `cafe-tf` prints the message and exits with code 2."""
