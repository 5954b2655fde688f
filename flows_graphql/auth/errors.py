"""Why a request's credentials were not accepted."""

from __future__ import annotations

import jwt


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


def refusal(exc: jwt.InvalidTokenError) -> Unauthenticated:
    """What PyJWT's verdict on a token tells the client (the server's own tokens and a
    provider's alike)."""
    if isinstance(exc, jwt.ExpiredSignatureError):
        return Unauthenticated("The token has expired.")
    if isinstance(exc, jwt.ImmatureSignatureError):
        which = "iat" if "iat" in str(exc) else "nbf"
        return Unauthenticated(f"The token is not valid yet (`{which}` is in the future).")
    if isinstance(exc, jwt.InvalidAudienceError):
        return Unauthenticated("The token is not meant for this API (`aud`).")
    if isinstance(exc, jwt.InvalidIssuerError):
        return Unauthenticated("The token's issuer is not one this server trusts.")
    if isinstance(exc, jwt.InvalidSignatureError):
        return Unauthenticated("The token's signature is not valid.")
    if isinstance(exc, jwt.MissingRequiredClaimError):
        return Unauthenticated(f"The token lacks the `{exc.claim}` claim.")
    if isinstance(exc, jwt.InvalidAlgorithmError):
        return Unauthenticated("The token's algorithm is not allowed for its issuer.")
    return Unauthenticated("The token is malformed.")
