"""Exceptions of the on-disk stores (re-exported by ``fastsampled``)."""

__all__ = ["StoreError", "StoreLockedError"]


class StoreError(ValueError):
    """A file or directory that is not a valid, consistent fastsampled store or model file."""


class StoreLockedError(RuntimeError):
    """The store is already open for writing (mode ``"r+"``) in this or another process."""
