"""The built-in collectors. Add a new one by importing its module here."""

from collectors import node  # noqa: F401
