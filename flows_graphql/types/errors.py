"""User errors in mutation payloads."""

from __future__ import annotations

import strawberry

from ..services.problems import ErrorCode as ErrorCodeModel
from ..services.problems import Problem

ErrorCode = strawberry.enum(
    ErrorCodeModel, description="Why a mutation refused its input (see rules.md)."
)


@strawberry.type(description="A problem with a mutation's input; nothing was written.")
class UserError:
    field: list[str] | None = strawberry.field(
        description="Path of the input field at fault (list positions as numbers in "
        "strings); null when the whole input is at fault."
    )
    message: str = strawberry.field(description="What is wrong, for people.")
    code: ErrorCodeModel = strawberry.field(description="What is wrong, for programs.")

    @classmethod
    def of(cls, problem: Problem) -> UserError:
        return cls(field=list(problem.field) or None, message=problem.message, code=problem.code)
