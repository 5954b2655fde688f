"""Why a request's credentials were not accepted."""

from __future__ import annotations


class Unauthenticated(Exception):
    """Missing or bad credentials: answered 401."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message


class ProviderUnavailable(Exception):
    """An identity provider's keys could not be had: answered 503, retryable."""

    def __init__(self, message: str) -> None:
        super().__init__(message)
        self.message = message
