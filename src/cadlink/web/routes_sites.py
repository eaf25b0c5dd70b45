"""Sites: list, create, read, and the tracker snippet to install."""

from __future__ import annotations

import asyncio
import html
from typing import Any

from fastapi import APIRouter, Depends, Request
from pydantic import BaseModel, Field

from cadlink.services import Services
from cadlink.store.meta import AlreadyExists, InvalidInput, SiteRecord
from cadlink.web.deps import Principal, allow_admins, allow_any, services
from cadlink.web.responses import ApiError, ok

router = APIRouter(prefix="/api/v1/sites", tags=["sites"])


class SiteBody(BaseModel):
    domain: str = Field(min_length=1, max_length=253)
    name: str | None = Field(default=None, max_length=200)
    allowedOrigins: list[str] | None = None  # noqa: N815 - wire name
    timezone: str = Field(default="UTC", max_length=64)
    respectDnt: bool = True  # noqa: N815 - wire name


def site_json(site: SiteRecord) -> dict[str, Any]:
    return {
        "id": site.public_id,
        "domain": site.domain,
        "name": site.name,
        "allowedOrigins": list(site.allowed_origins),
        "timezone": site.timezone,
        "respectDnt": site.respect_dnt,
        "createdAt": site.created_at.isoformat(),
    }


def snippet_for(base_url: str, site_id: str) -> str:
    src = html.escape(base_url.rstrip("/") + "/t.js", quote=True)
    return f'<script defer src="{src}" data-site="{html.escape(site_id, quote=True)}"></script>'


@router.get("")
async def list_sites(
    _: Principal = Depends(allow_any), svc: Services = Depends(services)
) -> dict[str, Any]:
    sites = await asyncio.to_thread(svc.meta.list_sites)
    return ok([site_json(s) for s in sites])


@router.post("", status_code=201)
async def create_site(
    body: SiteBody, _: Principal = Depends(allow_admins), svc: Services = Depends(services)
) -> dict[str, Any]:
    try:
        site = await asyncio.to_thread(
            svc.meta.create_site,
            body.domain,
            body.name,
            body.allowedOrigins,
            body.timezone,
            body.respectDnt,
        )
    except InvalidInput as e:
        raise ApiError(400, "invalid_request", str(e)) from None
    except AlreadyExists as e:
        raise ApiError(409, "already_exists", str(e)) from None
    await svc.sites.refresh()
    return ok(site_json(site))


class SitePatch(BaseModel):
    """Fields to change; omitted fields keep their value."""

    domain: str | None = Field(default=None, min_length=1, max_length=253)
    name: str | None = Field(default=None, max_length=200)
    allowedOrigins: list[str] | None = None  # noqa: N815 - wire name
    timezone: str | None = Field(default=None, max_length=64)
    respectDnt: bool | None = None  # noqa: N815 - wire name


async def _get(svc: Services, site_id: str) -> SiteRecord:
    site = await asyncio.to_thread(svc.meta.get_site, site_id)
    if site is None:
        raise ApiError(404, "unknown_site", f"no site with id {site_id!r}", {"field": "siteId"})
    return site


@router.get("/{site_id}")
async def get_site(
    site_id: str, _: Principal = Depends(allow_any), svc: Services = Depends(services)
) -> dict[str, Any]:
    return ok(site_json(await _get(svc, site_id)))


@router.patch("/{site_id}")
async def update_site(
    site_id: str,
    body: SitePatch,
    _: Principal = Depends(allow_admins),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """Change a site's domain, name, allowed origins, time zone or DNT setting."""
    await _get(svc, site_id)
    try:
        site = await asyncio.to_thread(
            svc.meta.update_site,
            site_id,
            domain=body.domain,
            name=body.name,
            allowed_origins=body.allowedOrigins,
            timezone=body.timezone,
            respect_dnt=body.respectDnt,
        )
    except InvalidInput as e:
        raise ApiError(400, "invalid_request", str(e)) from None
    await svc.sites.refresh()  # the collect path sees new origins and DNT at once
    return ok(site_json(site))


@router.get("/{site_id}/snippet")
async def snippet(
    site_id: str,
    request: Request,
    _: Principal = Depends(allow_any),
    svc: Services = Depends(services),
) -> dict[str, Any]:
    """The one tag to paste into the site's pages."""
    site = await _get(svc, site_id)
    base = str(request.base_url)
    return ok({"siteId": site.public_id, "snippet": snippet_for(base, site.public_id)})
