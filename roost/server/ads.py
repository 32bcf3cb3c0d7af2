"""The ads surface: ``/ads/serve``, ``/ads/click`` and the admin ``/admin/campaigns``, ``/admin/reports``.

Prices in answers are in currency units: per click for CPC campaigns, per 1,000
impressions for CPM ones (``price_unit`` says which), and always the second
price of the auction, never more than the bid.
"""

from __future__ import annotations

import re
import sys
from typing import Annotated, Literal

from fastapi import APIRouter, Depends, Query, Request
from fastapi.responses import RedirectResponse
from psycopg import OperationalError as DatabaseUnavailable
from pydantic import BaseModel, ConfigDict, Field

from roost.ads.campaign import (
    CampaignPatch,
    CampaignSpec,
    check_landing_url,
    from_micros,
)
from roost.ads.clicks import BadToken
from roost.ads.listing import PRICE_UNIT, SORTS, ListQuery, campaign_money, list_campaigns
from roost.ads.service import AdRequest, AdService
from roost.server.auth import require_admin_key, require_api_key
from roost.server.errors import APIError
from roost.server.state import ServedModel, ServerState

router = APIRouter()
_DAY = re.compile(r"^\d{4}-\d{2}-\d{2}$")


class ServeBody(BaseModel):
    model_config = ConfigDict(extra="forbid")
    user_id: str | None = Field(default=None, max_length=200)
    query: str | None = Field(default=None, max_length=4000)
    context_text: str | None = Field(default=None, max_length=20000)
    context_post_ids: list[str] = Field(default_factory=list, max_length=100)
    slots: int = Field(default=1, ge=1, le=10)
    lang: str | None = Field(default=None, max_length=8)
    exclude_campaign_ids: list[Annotated[str, Field(max_length=64)]] = Field(
        default_factory=list,
        max_length=100,
        description="campaigns already on this page: a timeline asks once per ad slot and passes what it has shown",
    )


def open_service(state: ServerState, served: ServedModel | None) -> tuple[AdService | None, str | None]:
    """The ads service (embedding with the served model, loaded once by the app) and why it is off, if it is: a
    broken ads artifact turns off /ads and /admin/campaigns, not the whole server."""
    from roost.ads.setup import open_service as open_ads

    try:
        service = open_ads(state.workspace, model=served.embedder if served else None, ads_db=state.config.ads_db)
    except Exception as e:  # a broken artifact, a schema behind (ValueError) or a database that does not answer
        if not (isinstance(e, ValueError) or type(e).__module__.startswith("psycopg")):
            raise
        print(f"roost serve: ads are off: {e}", file=sys.stderr)
        return None, str(e)
    service.follow_catalog()  # campaigns created or edited through other replicas reach this one in seconds
    if service.safety is None:
        warning = (
            "brand safety is off: no safety model in this workspace, so ads may run next to unsafe posts; "
            "train one with `roost ads train-safety` (it learns from the corpus's moderation signals)"
        )
        state.warnings.append(warning)
        print(f"roost serve: {warning}", file=sys.stderr)
    return service, None


def _service(request: Request) -> AdService:
    services = request.app.state.roost.services
    if services.ads is None:
        raise APIError(
            404,
            f"ads are not set up in this workspace: {services.ads_error or 'no ads service'}",
            type="not_found_error",
        )
    return services.ads


def _unavailable() -> APIError:
    """A shared ads database that stops answering: a 503 the client (or balancer) retries, not a 500. Nothing
    was acknowledged, and an open transaction is rolled back by the database."""
    return APIError(
        503,
        "the ads database does not answer; retry shortly",
        type="service_unavailable",
        code="ads_db_unavailable",
        headers={"Retry-After": "1"},
    )


@router.post("/ads/serve", dependencies=[Depends(require_api_key)])
def serve(body: ServeBody, request: Request) -> dict:
    service = _service(request)
    if not (body.query or body.context_text or body.context_post_ids or body.user_id):
        raise APIError(400, "give at least one of query, context_text, context_post_ids or user_id", param="query")
    try:
        ads = service.serve(AdRequest(**body.model_dump()))
    except ValueError as e:
        raise APIError(400, str(e)) from None
    except DatabaseUnavailable:
        raise _unavailable() from None
    base = request.app.state.roost.config.base_url()  # configured (--public-url), never the request's Host header
    return {
        "ads": [
            {
                "impression_id": ad.impression_id,
                "campaign_id": ad.campaign_id,
                "creative_id": ad.creative_id,
                "text": ad.text,
                "landing_url": ad.landing_url,
                "click_url": f"{base}/ads/click?t={ad.click_token}",
                "price": from_micros(ad.price_micros),
                "bid_type": ad.bid_type,
                "price_unit": PRICE_UNIT[ad.bid_type],
                "position": ad.position,
                "why": ad.why,
            }
            for ad in ads
        ]
    }


@router.get(
    "/ads/click",
    status_code=302,
    response_class=RedirectResponse,
    responses={302: {"description": "to the ad's landing page"}},
)
def click(request: Request, t: str = Query(..., max_length=1000, description="signed click token")):
    service = _service(request)
    try:
        recorded = service.click(t)
    except BadToken as e:
        raise APIError(403, str(e), param="t", code="invalid_click_token") from None
    except DatabaseUnavailable:
        raise _unavailable() from None
    if recorded is None:
        raise APIError(
            404, "the impression this click token names is not in the ads database", param="t", type="not_found_error"
        )
    return RedirectResponse(check_landing_url(recorded.landing_url), status_code=302)


@router.post("/admin/campaigns", status_code=201, dependencies=[Depends(require_admin_key)])
def create_campaign(spec: CampaignSpec, request: Request) -> dict:
    service = _service(request)
    try:
        [cid] = service.store.add_campaigns([spec])
    except ValueError as e:
        raise APIError(409, str(e), param="id", code="campaign_exists") from None
    service.refresh([cid])
    return campaign_view(service, cid)


def campaign_view(service: AdService, campaign_id: str) -> dict | None:
    """Settings and creatives (the store's view) with the money a marketer reads (the listing's row)."""
    view = service.store.campaign_view(campaign_id)
    if view is None:
        return None
    return {**view, **campaign_money(service.store, campaign_id, pacing=service.config.pacing)}


SortKey = Literal[tuple(SORTS)]  # type: ignore[valid-type]


def campaign_page(service: AdService, sort: str, order: str, limit: int, offset: int) -> dict:
    return list_campaigns(service.store, ListQuery(sort, order, limit, offset), pacing=service.config.pacing)


@router.get("/admin/campaigns", dependencies=[Depends(require_admin_key)])
def campaigns(
    request: Request,
    sort: SortKey = "spend",
    order: Literal["asc", "desc"] = "desc",
    limit: int = Query(50, ge=1, le=500),
    offset: int = Query(0, ge=0, le=2**53),
) -> dict:
    """Every campaign, a page at a time: spend, remaining budget, pacing, impressions, clicks, CTR."""
    return campaign_page(_service(request), sort, order, limit, offset)


@router.get("/admin/campaigns/{campaign_id}", dependencies=[Depends(require_admin_key)])
def get_campaign(campaign_id: str, request: Request) -> dict:
    view = campaign_view(_service(request), campaign_id)
    if view is None:
        raise APIError(404, f"no campaign {campaign_id!r}", type="not_found_error", param="campaign_id")
    return view


@router.patch("/admin/campaigns/{campaign_id}", dependencies=[Depends(require_admin_key)])
def patch_campaign(campaign_id: str, patch: CampaignPatch, request: Request) -> dict:
    service = _service(request)
    try:
        service.store.update_campaign(campaign_id, patch)
    except KeyError:
        raise APIError(404, f"no campaign {campaign_id!r}", type="not_found_error", param="campaign_id") from None
    except ValueError as e:  # a money rule (MoneyError names the field)
        raise APIError(400, str(e), param=getattr(e, "param", None)) from None
    service.refresh([campaign_id])
    return campaign_view(service, campaign_id)


@router.get("/admin/reports", dependencies=[Depends(require_admin_key)])
def reports(request: Request, start: str | None = None, end: str | None = None, campaign_id: str | None = None) -> dict:
    for name, value in (("start", start), ("end", end)):
        if value is not None and not _DAY.match(value):
            raise APIError(400, f"{name} must be a UTC day as YYYY-MM-DD, got {value!r}", param=name)
    rows = _service(request).store.report(start, end, campaign_id)
    return {"object": "list", "data": rows}
