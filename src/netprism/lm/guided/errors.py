"""The error raised for a schema outside the supported subset.

Part of the guided generation of arXiv 2507.13575.
"""


class UnsupportedSchemaError(ValueError):
    """A schema uses a keyword (or value) outside the supported subset; the message names the
    keyword and its JSON path (``$.properties.name``)."""
