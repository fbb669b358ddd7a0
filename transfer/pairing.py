"""``prm transfer connect``: pair two instances of this service in one step, through their admin APIs.

Each instance gets a partner CRM connection to the other: for the organization that stands for the
other side there, with the other side's inbound URL as its base URL (``{their URL}/v1/partner-crm/{the
key of their connection}``) and a crossed pair of fresh signing secrets (what one signs with, the other
verifies with). Neither secret is printed or leaves the two instances. Running it again re-pairs: the
existing connections are updated (new secrets, URLs, profiles) rather than duplicated, so a pairing
that stopped half-way is finished by running the same command again.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

from transfer.client import AdminApi, AdminApiError
from transfer.connection_service import check_profile
from transfer.signing import new_secret


@dataclass(frozen=True)
class Side:
    """One instance as the command sees it."""

    label: str  # "A" or "B", for the report
    api_url: str  # where this command reaches its admin API
    public_url: str  # where the other instance reaches it
    admin_key: str
    organization: str  # id or key, on this instance, of the organization the other side is
    profile: str  # the model the other side speaks (YAML text), what this side sends in
    profile_file: str
    inbound_profile: str | None
    inbound_profile_file: str | None
    key: str | None = None  # this side's connection key (default: the organization's key)
    inbound_creates: str = "opportunity"


@dataclass(frozen=True)
class _Found:
    organization: dict[str, Any]
    connection: dict[str, Any] | None


def _pages(api: AdminApi, path: str) -> list[dict[str, Any]]:
    items: list[dict[str, Any]] = []
    cursor: str | None = None
    while True:
        page, _ = api.call("GET", f"{path}?limit=500" + (f"&cursor={cursor}" if cursor else ""))
        items.extend(page.get("items", []))
        cursor = page.get("next_cursor")
        if not cursor:
            return items


def _find(api: AdminApi, side: Side) -> _Found:
    wanted = side.organization
    orgs = _pages(api, "/v1/organizations")
    org = next((o for o in orgs if str(o.get("id")) == wanted or o.get("key") == wanted), None)
    if org is None:
        raise AdminApiError(f"{side.api_url}: no organization {wanted!r} (give its id or key)")
    connections, _ = api.call("GET", "/v1/partner-crm-connections")
    existing = next((c for c in connections["items"] if c["organization_id"] == org["id"]), None)
    return _Found(org, existing)


def _body(side: Side, base_url: str, signs: str, verifies: str, **extra: Any) -> dict[str, Any]:
    return {
        "base_url": base_url,
        "signing_secret": signs,
        "inbound_secret": verifies,
        "profile": side.profile,
        "inbound_profile": side.inbound_profile,
        "inbound_creates": side.inbound_creates,
        **extra,
    }


def connect(
    a: Side,
    b: Side,
    *,
    operations: list[str],
    timeout_seconds: float,
    api: Callable[[str, str], AdminApi] = AdminApi,
) -> list[str]:
    """Pair ``a`` and ``b``; returns what was done, one line each. Raises `AdminApiError` (or the
    profile's `MappingProfileInvalid`, before anything is changed)."""
    for side in (a, b):  # every file checked before anything changes
        check_profile(side.profile, side.profile_file)
        if side.inbound_profile is not None:
            check_profile(side.inbound_profile, side.inbound_profile_file or "inbound profile")
    apis = {s.label: api(s.api_url, s.admin_key) for s in (a, b)}
    found = {s.label: _find(apis[s.label], s) for s in (a, b)}

    def key_of(side: Side) -> str:
        existing = found[side.label].connection
        if existing is not None:
            return str(existing["key"])
        return side.key or str(found[side.label].organization["key"])

    keys = {s.label: key_of(s) for s in (a, b)}
    a_signs, b_signs = new_secret(), new_secret()
    plan = [(a, b, a_signs, b_signs), (b, a, b_signs, a_signs)]
    report: list[str] = []
    for here, there, signs, verifies in plan:
        f = found[here.label]
        base_url = f"{there.public_url.rstrip('/')}/v1/partner-crm/{keys[there.label]}"
        body = _body(
            here,
            base_url,
            signs,
            verifies,
            operations=operations,
            timeout_seconds=timeout_seconds,
            active=True,
        )
        org = f.organization
        try:
            if f.connection is None:
                body.pop("active")
                out, _ = apis[here.label].call(
                    "POST",
                    "/v1/partner-crm-connections",
                    {
                        **body,
                        "organization_id": org["id"],
                        "key": keys[here.label],
                        "name": f"{there.label}: instance at {there.public_url}",
                    },
                )
                verb = "created"
            else:
                _, etag = apis[here.label].call("GET", f"/v1/partner-crm-connections/{f.connection['id']}")
                out, _ = apis[here.label].call(
                    "PATCH", f"/v1/partner-crm-connections/{f.connection['id']}", body, if_match=etag
                )
                verb = "updated"
        except AdminApiError as exc:
            if report:
                raise AdminApiError(
                    f"{exc}\n{report[0]}\nthe pairing is half done: run the same command again to finish it"
                ) from None
            raise
        report.append(
            f"{here.label} ({here.api_url}): {verb} connection {out['id']} {out['key']!r} for organization "
            f"{org['id']} ({org.get('name', org.get('key'))}); it calls {there.label} at {out['base_url']}, "
            f"signs with ...{out['signing_secret_last4']}, verifies with ...{out['inbound_secret_last4']}; "
            f"operations {','.join(out['operations'])}; profile {out['profile_name']}"
        )
    report.append(
        f"paired: {a.label} and {b.label} each verify what the other signs (secrets crossed, not printed); "
        f"queue a transfer on either side and run `prm transfer deliver` there"
    )
    return report
