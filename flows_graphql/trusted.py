"""Trusted documents (docs/trusted-documents.md): the operations a first-party client
ships are registered ahead of time in a manifest, by the sha256 of their text, and the
client sends the hash instead of the text — as `documentId` (GraphQL over HTTP's
persisted documents) or as Apollo's `extensions.persistedQuery.sha256Hash`.

What a document needs before it runs — parsing, validation, the limits and its
estimated cost, the checks by role — is worked out once per document (per operation and
per value of the variables the cost depends on) and kept with it, not redone on every
request. Production may refuse free text from the app's users (OWASP's advice for a
first-party API): then only the manifest's operations run for them.
"""

from __future__ import annotations

import contextvars
import hashlib
import json
import re
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, TypeVar, cast

import orjson
from graphql import DocumentNode, GraphQLError, GraphQLSchema, parse
from strawberry.extensions import SchemaExtension
from strawberry.schema.schema import validate_document

from .caches import Bounded
from .limits import Limits, TooComplex, Verdict, check, document

PREFIX = "sha256:"
_HEX = re.compile(r"[0-9a-fA-F]{64}")
# The roles whose tokens the app's users hold: with `require_trusted_documents` they run
# the manifest's operations only. Operators, admins and partners may still send text.
APP_ROLES = frozenset({"customer", "unlinked"})
# Distinct cost-relevant variable values kept per operation of a document (page sizes:
# a handful in practice); refilled from scratch when reached.
VERDICTS_PER_DOCUMENT = 64
APOLLO_FORMAT = "apollo-persisted-query-manifest"
# The largest cost-relevant variable values (as JSON) a verdict is kept by: page sizes
# and id lists fit; a whole import does not, and would be kept 64 times a document.
MAX_VERDICT_KEY = 1024

T = TypeVar("T")


class ManifestError(ValueError):
    """The manifest cannot be served: the server refuses to start with it."""


class DocumentRefused(Exception):
    """A request naming a document that cannot be run: answered with this status."""

    def __init__(self, status: int, code: str, message: str) -> None:
        super().__init__(message)
        self.status, self.code, self.message = status, code, message


NOT_FOUND = DocumentRefused(404, "PERSISTED_QUERY_NOT_FOUND", "PersistedQueryNotFound")
REQUIRED = DocumentRefused(
    400,
    "PERSISTED_QUERY_ID_REQUIRED",
    "This API accepts only the app's registered operations from this token: send "
    "`documentId` (docs/trusted-documents.md).",
)


def sha256_hex(text: str) -> str:
    # surrogatepass: hostile text with a lone surrogate hashes (to nothing registered)
    # instead of raising.
    return hashlib.sha256(text.encode("utf-8", "surrogatepass")).hexdigest()


_MISSING = object()


@dataclass
class Trusted:
    """A registered document and what has been worked out about it."""

    id: str
    text: str
    # The limits' verdict by (operation name, values of the variables the cost walk
    # read), or the TooComplex it raised; which variables those are, by operation name.
    _verdicts: Bounded[Any, Verdict | TooComplex] = field(
        default_factory=lambda: Bounded(VERDICTS_PER_DOCUMENT)
    )
    _reads: dict[str | None, frozenset[str] | None] = field(default_factory=dict)
    # Facts that depend only on the document (and a few viewer traits): memo().
    _facts: dict[Any, Any] = field(default_factory=dict)
    # Its syntax tree and validation (the Documents extension).
    parsed: Parsed | None = None

    def verdict(
        self,
        variables: Mapping[str, Any] | None,
        operation_name: str | None,
        limits: Limits,
        schema: GraphQLSchema,
    ) -> Verdict | None:
        """limits.check of this document, from the cache when the variables its cost
        depends on (page sizes, id lists) have been seen before."""
        reads = self._reads.get(operation_name, _MISSING)
        key = None
        if reads is not _MISSING and reads is not None:
            key = _verdict_key(operation_name, variables, reads)  # type: ignore[arg-type]
            found = self._verdicts.get(key) if key is not None else None
            if isinstance(found, TooComplex):
                # A fresh one: raising the kept one again would lengthen its traceback.
                raise TooComplex(found.message)
            if found is not None:
                return found
        try:
            verdict = check(self.text, variables, operation_name, limits, schema)
        except TooComplex as exc:
            if key is not None:
                self._verdicts[key] = exc
            raise
        if verdict is None:
            return None  # does not parse: GraphQL's own error answers, every time
        self._reads[operation_name] = verdict.reads
        if verdict.reads is not None:
            key = _verdict_key(operation_name, variables, verdict.reads)
            if key is not None:
                self._verdicts[key] = verdict
        return verdict

    def memo(self, key: Any, compute: Callable[[], T]) -> T:
        """`compute()` once for this document."""
        try:
            return cast(T, self._facts[key])
        except KeyError:
            value = self._facts[key] = compute()
            return value


def _verdict_key(
    operation_name: str | None, variables: Mapping[str, Any] | None, reads: frozenset[str]
) -> Any:
    if not reads:
        return (operation_name,)
    values = variables or {}
    try:
        frozen = orjson.dumps([[n in values, values.get(n)] for n in sorted(reads)])
    except (orjson.JSONEncodeError, TypeError):  # an integer past 64 bits: not cached
        return None
    if len(frozen) > MAX_VERDICT_KEY:
        # A mutation's input rows (an import of 10,000): worked out afresh, not kept.
        return None
    return (operation_name, frozen)


class TrustedDocuments:
    """The registered documents by the hex of their sha256."""

    def __init__(self, documents: Mapping[str, str] | None = None) -> None:
        self._documents = {h: Trusted(h, text) for h, text in (documents or {}).items()}

    @classmethod
    def from_manifest(cls, path: Path | None) -> TrustedDocuments:
        return cls(load_manifest(path) if path is not None else None)

    def __len__(self) -> int:
        return len(self._documents)

    def get(self, hex_id: str) -> Trusted | None:
        return self._documents.get(hex_id)

    def of_text(self, text: str) -> Trusted | None:
        """The registered document with exactly this text, if any."""
        if not self._documents:
            return None
        return self._documents.get(sha256_hex(text))


def load_manifest(path: Path) -> dict[str, str]:
    """hex sha256 -> document, from GraphQL Codegen's `persisted-documents.json` (an
    object of hash -> document) or Apollo's persisted query manifest. Every hash must be
    its document's sha256: a manifest built with another algorithm is refused."""
    try:
        raw = json.loads(path.read_text("utf-8"))
    except (OSError, ValueError) as exc:
        raise ManifestError(f"{path}: not a readable JSON manifest ({exc})") from exc
    entries: list[tuple[Any, Any]]
    if isinstance(raw, dict) and raw.get("format") == APOLLO_FORMAT:
        operations = raw.get("operations")
        if raw.get("version") != 1 or not isinstance(operations, list):
            raise ManifestError(f"{path}: an Apollo manifest of version 1 with `operations`")
        entries = [
            (op.get("id"), op.get("body")) if isinstance(op, dict) else (None, None)
            for op in operations
        ]
    elif isinstance(raw, dict):
        entries = list(raw.items())
    else:
        raise ManifestError(f"{path}: a JSON object of sha256 -> document")
    documents: dict[str, str] = {}
    for key, body in entries:
        if not isinstance(key, str) or not isinstance(body, str):
            raise ManifestError(f"{path}: every entry is a hash and a document (strings)")
        hex_id = key.removeprefix(PREFIX)
        if not _HEX.fullmatch(hex_id):
            raise ManifestError(
                f"{path}: {key[:80]!r} is not a sha256 (64 hex digits); generate the "
                "manifest with sha256 (docs/trusted-documents.md)"
            )
        hex_id = hex_id.lower()
        if sha256_hex(body) != hex_id:
            raise ManifestError(f"{path}: {key} is not the sha256 of its document")
        documents[hex_id] = body
    return documents


def requested_id(fields: Mapping[str, Any], query: str | None) -> str | None:
    """The hex id a request names by `documentId` or `extensions.persistedQuery`
    (None: it names none); DocumentRefused when it is malformed, names two different
    documents, or comes with a query whose hash is another."""
    ids: list[str] = []
    document_id = fields.get("documentId")
    if document_id is not None:
        if not isinstance(document_id, str) or not _HEX.fullmatch(document_id.removeprefix(PREFIX)):
            raise DocumentRefused(
                400, "BAD_REQUEST", "`documentId` is `sha256:` and 64 hex digits."
            )
        ids.append(document_id.removeprefix(PREFIX).lower())
    extensions = fields.get("extensions")
    persisted = extensions.get("persistedQuery") if isinstance(extensions, dict) else None
    if persisted is not None:
        sha = persisted.get("sha256Hash") if isinstance(persisted, dict) else None
        if (
            not isinstance(persisted, dict)
            or persisted.get("version") != 1
            or not isinstance(sha, str)
            or not _HEX.fullmatch(sha)
        ):
            raise DocumentRefused(
                400,
                "BAD_REQUEST",
                "`extensions.persistedQuery` is `{version: 1, sha256Hash: <64 hex digits>}`.",
            )
        ids.append(sha.lower())
    if not ids:
        return None
    if len(set(ids)) > 1:
        raise DocumentRefused(400, "BAD_REQUEST", "`documentId` and `sha256Hash` differ.")
    if query is not None and sha256_hex(query) != ids[0]:
        raise DocumentRefused(400, "BAD_REQUEST", "provided sha does not match query")
    return ids[0]


# The trusted document of the request being answered (None: free text), set by the
# view for the schema extension below, which Strawberry calls without the request.
current: contextvars.ContextVar[Trusted | None] = contextvars.ContextVar(
    "flows_trusted_document", default=None
)


@dataclass
class Parsed:
    """A document's syntax tree and its validation errors (None: not validated yet)."""

    document: DocumentNode
    errors: list[GraphQLError] | None = None


# Free text, by its text. Strawberry's ParserCache and ValidationCache did this in two
# lookups, the second keyed by the syntax tree, which hashes every node of it per
# request (graphql-core's nodes are frozen dataclasses).
_BY_TEXT: Bounded[str, Parsed] = Bounded(512)
_DEFAULT_LIMITS = Limits()


def parsed(query: str) -> Parsed:
    """The document of `query`: a trusted document keeps its own (never evicted by
    free text), free text is cached by its text (bounded). A syntax error raises."""
    trusted = current.get()
    if trusted is not None and trusted.text == query:
        if trusted.parsed is None:
            trusted.parsed = Parsed(_parse(query))
        return trusted.parsed
    found = _BY_TEXT.get(query)
    if found is None:
        found = _BY_TEXT[query] = Parsed(_parse(query))
    return found


def validated(found: Parsed, schema: GraphQLSchema, rules: Any) -> list[GraphQLError]:
    """The document's validation errors, worked out on its first use."""
    if found.errors is None:
        # The schema adds no validation rules of its own: the default ones, always.
        found.errors = validate_document(schema, found.document, rules)
    return found.errors


class Documents(SchemaExtension):
    """Parsing and validation, once per document (`parsed`), where Strawberry runs an
    operation (the HTTP view's own path runs it without Strawberry: graphql_view.py)."""

    def on_parse(self) -> Iterator[None]:
        self.execution_context.graphql_document = parsed(
            self.execution_context.query or ""
        ).document
        yield

    def on_validate(self) -> Iterator[None]:
        context = self.execution_context
        found = parsed(context.query or "")
        context.pre_execution_errors = validated(
            found, context.schema._schema, context.validation_rules
        )
        yield


def _parse(query: str) -> DocumentNode:
    """The limits' parse (already made for their check), or GraphQL's syntax error."""
    found = document(query, _DEFAULT_LIMITS)
    return found if found is not None else parse(query)
