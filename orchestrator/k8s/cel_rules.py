"""The CRDs' CEL rules (`x-kubernetes-validations`), evaluated as the API server does on create.

Evaluated with `common-expression-language` (Rust's cel-interpreter with Python bindings),
a main dependency: small, a wheel with no native build. Rules that name `oldSelf` are
transition rules and, as on the API server, are not evaluated when an object is created.
A rule is checked at every place in the object where its schema node has a value.
"""

from __future__ import annotations

from collections.abc import Iterator
from functools import cache
from typing import Any

from orchestrator.errors import OrchestratorError


class CheckUnavailable(OrchestratorError):
    """A check cannot run here (a library or the CRDs are missing): say so, never pass."""


def cel_findings(value: Any, schema: dict[str, Any], where: str = "") -> Iterator[tuple[str, str]]:
    """(path, message) for each rule that is false at its place in `value`."""
    for rule in schema.get("x-kubernetes-validations", []):
        yield from _rule_findings(value, rule, where)
    if isinstance(value, dict):
        properties = schema.get("properties", {})
        extra = schema.get("additionalProperties")
        for key, item in value.items():
            sub = properties.get(key, extra if isinstance(extra, dict) else None)
            if sub is not None:
                yield from cel_findings(item, sub, f"{where}.{key}" if where else str(key))
    elif isinstance(value, list) and isinstance(schema.get("items"), dict):
        for index, item in enumerate(value):
            yield from cel_findings(item, schema["items"], f"{where}[{index}]")


def _rule_findings(value: Any, rule: dict[str, Any], where: str) -> Iterator[tuple[str, str]]:
    program = _compiled(rule["rule"])
    if "oldSelf" in program.variables():
        return  # a transition rule: there is no old object on create
    try:
        passed = program.execute({"self": value})
    except Exception as exc:  # noqa: BLE001 - the interpreter's errors have no common base
        yield where or "(root)", f"rule {rule['rule']!r} could not be evaluated: {exc}"
        return
    if passed is not True:
        message = rule.get("message") or f"failed rule {rule['rule']!r}"
        yield where or "(root)", " ".join(str(message).split())


@cache
def _compiled(expression: str) -> Any:
    try:
        import cel
    except ImportError as exc:
        raise CheckUnavailable(
            "the CRDs' CEL rules cannot be evaluated: the package common-expression-language "
            f"is not installed ({exc}); `pip install common-expression-language`"
        ) from exc
    return cel.compile(expression)
