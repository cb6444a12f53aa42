"""Alert rules: the shipped defaults and each park's versioned override, read by callers, edited by admins.

A park's override lives in `{rules dir}/{park}.yaml` (`analytics.alerts.rules.rules_dir_of`); a PUT validates
it merged into the defaults (errors name the key, 422), stores it atomically as the park's next revision
(every version kept with who and when, `analytics.alerts.rule_files`), and the running alert engines pick
it up within a second (they watch the folder), without a restart.
"""

from __future__ import annotations

import asyncio
import json
from dataclasses import asdict
from typing import Annotated, Any

import yaml
from fastapi import APIRouter, Path, Query, Request

from analytics.alerts.rule_files import RevisionConflict, RuleFiles, RuleVersion
from analytics.alerts.rules import RulesError, RuleSet, rules_dir_of
from api.access import Access
from api.deps import AdminDep, CallerDep, IdPath, ParkDep
from api.errors import ApiError, ErrorCode, invalid, not_found

router = APIRouter(prefix="/rules", tags=["alert rules"])

MAX_BODY_BYTES = 256 * 1024
BODY_DOC = {
    "requestBody": {
        "required": True,
        "description": "the park's override: `{version: 1, rules: [{id, ...keys to change}], quotas: {enterprise: "
                       "kWh}}`, as JSON or YAML text (`revision` is assigned by the server)",
        "content": {
            "application/json": {"schema": {"type": "object"}},
            "application/yaml": {"schema": {"type": "string"}},
            "text/plain": {"schema": {"type": "string"}},
        },
    }
}
BaseRevision = Annotated[int | None, Query(ge=0, le=1_000_000_000,
                                           description="refuse (409) unless this is the revision in force")]


def _files(request: Request) -> RuleFiles:
    return RuleFiles(rules_dir_of(request.app.state.settings))


def _rules_json(ruleset: RuleSet) -> list[dict[str, Any]]:
    return [r.model_dump(mode="json", by_alias=True, exclude_none=True) for r in ruleset.rules]


def _version(v: RuleVersion) -> dict[str, Any]:
    return asdict(v) | {"changed": list(v.changed)}


def _own_quotas(access: Access, quotas: Any) -> dict[str, Any]:
    """The quotas a caller may see: all for operations and admins, its own for an enterprise, none otherwise."""
    if not isinstance(quotas, dict):
        return {}
    if access.sees_all:
        return dict(quotas)
    own = access.principal.enterprise
    return {own: quotas[own]} if own is not None and own in quotas else {}


def _scoped_override(access: Access, override: dict[str, Any] | None) -> dict[str, Any] | None:
    if override is None or access.sees_all:
        return override
    return override | {"quotas": _own_quotas(access, override.get("quotas"))}


def _park_view(files: RuleFiles, access: Access, park_id: str) -> dict[str, Any]:
    """A park's rules; a hand-edited file that does not validate is shown with its error (engines skip it).

    Callers that do not see everything (enterprise, emergency) get their own quota only (in the override and
    the effective rules) and neither who changed the rules nor the history.
    """
    history = files.history(park_id)
    last = history[-1] if history else None
    view: dict[str, Any] = {
        "park": park_id,
        "revision": files.revision(park_id),
        "updated_by": last.by if last else None,
        "updated_at": last.at_ms if last else None,
        "override": None,
        "effective": None,
        "error": None,
        "history": [_version(v) for v in history],
    }
    try:
        view["override"] = _scoped_override(access, files.override(park_id))
        effective = files.effective(access.registry, park_id)
        view["effective"] = {"revision": effective.revision, "rules": _rules_json(effective),
                             "quotas": _own_quotas(access, effective.quotas)}
    except RulesError as exc:
        view["error"] = str(exc)
    if not access.sees_all:
        del view["updated_by"], view["history"]
    return view


async def _blocking(fn: Any, *args: Any, **kwargs: Any) -> Any:
    """File work off the event loop; rule errors become 422s that quote the file's key."""
    try:
        return await asyncio.to_thread(fn, *args, **kwargs)
    except RulesError as exc:
        raise invalid(str(exc), "body") from None
    except RevisionConflict as exc:
        raise ApiError(ErrorCode.CONFLICT, str(exc)) from None


@router.get("")
async def list_rules(access: CallerDep, request: Request) -> dict[str, Any]:
    """The default rules (with their revision) and the override in force of each park the caller sees."""
    files = _files(request)
    defaults = await _blocking(files.defaults)

    def parks() -> list[dict[str, Any]]:
        out = []
        for park_id in files.parks():
            park = access.registry.park(park_id)
            if park is None or not access.can_see_park(park):
                continue
            view = _park_view(files, access, park_id)
            keys = ("park", "revision", "updated_by", "updated_at", "override", "error")
            out.append({k: view[k] for k in keys if k in view})
        return out

    return {"defaults": {"revision": defaults.get("revision", ""), "rules": defaults["rules"]},
            "parks": await _blocking(parks)}


@router.get("/{park_id}")
async def get_park_rules(park: ParkDep, access: CallerDep, request: Request) -> dict[str, Any]:
    """A park's override, its effective rules (defaults merged with it) and its version history."""
    return await _blocking(_park_view, _files(request), access, park.id)  # type: ignore[no-any-return]


@router.get("/{park_id}/revisions/{revision}")
async def get_park_rules_revision(park: ParkDep, access: CallerDep,
                                  revision: Annotated[int, Path(ge=1, le=1_000_000_000)],
                                  request: Request) -> dict[str, Any]:
    """A kept earlier version of a park's override (an enterprise caller sees its own quota only)."""
    try:
        version = await asyncio.to_thread(_files(request).version, park.id, revision)
        return _scoped_override(access, version) or {}
    except RulesError:
        raise ApiError(ErrorCode.NOT_FOUND, f"park {park.id!r} has no rules revision {revision}") from None


def _parse_body(raw: bytes, content_type: str) -> Any:
    if len(raw) > MAX_BODY_BYTES:
        raise invalid(f"the rules body is larger than {MAX_BODY_BYTES} bytes", "body")
    try:
        text = raw.decode("utf-8")
    except UnicodeDecodeError:
        raise invalid("the rules body is not UTF-8 text", "body") from None
    try:
        if "json" in content_type:
            return json.loads(text)
        return yaml.safe_load(text)  # YAML (JSON is YAML too)
    except (json.JSONDecodeError, yaml.YAMLError) as exc:
        kind = "JSON" if "json" in content_type else "YAML"
        raise invalid(f"request body: not valid {kind}: {exc}", "body") from None


@router.put("/{park_id}", openapi_extra=BODY_DOC)
async def put_park_rules(park_id: Annotated[str, IdPath], access: AdminDep, request: Request,
                         base_revision: BaseRevision = None) -> dict[str, Any]:
    """Replace a park's override (administrators): validated, stored as the next revision, applied live."""
    if access.registry.park(park_id) is None:
        raise not_found("park", park_id)
    override = _parse_body(await request.body(), request.headers.get("content-type", ""))
    files = _files(request)
    await _blocking(files.put, access.registry, park_id, override, access.principal.subject,
                    base_revision=base_revision)
    return await _blocking(_park_view, files, access, park_id)  # type: ignore[no-any-return]


@router.delete("/{park_id}", status_code=204)
async def delete_park_rules(park_id: Annotated[str, IdPath], access: AdminDep, request: Request) -> None:
    """Drop a park's override (administrators): the park runs on the defaults again; its history stays."""
    if access.registry.park(park_id) is None:
        raise not_found("park", park_id)
    if await _blocking(_files(request).delete, park_id, access.principal.subject) is None:
        raise ApiError(ErrorCode.NOT_FOUND, f"park {park_id!r} has no rules override")
