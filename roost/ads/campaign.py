"""A campaign as advertisers write it: the admin API body and the ``roost ads load`` file shape.

One pydantic model validates both, so the API and the loader reject the same
things with the same field names. Money comes in as decimal currency units
(``12.5`` or ``"12.50"``) and is kept as integer micros everywhere after this
module: floats never touch a budget.
"""

from __future__ import annotations

from datetime import datetime
from decimal import Decimal
from typing import Annotated, Literal
from urllib.parse import urlsplit

from pydantic import (
    BaseModel,
    ConfigDict,
    Field,
    ValidationError,
    field_validator,
    model_validator,
)

from roost.ads.money import MICROS, check_campaign_money
from roost.errors import UserError

Money = Annotated[Decimal, Field(gt=0, decimal_places=6, max_digits=18)]
# impressions per user per UTC day; bounded so it fits SQLite's 64-bit INTEGER
FrequencyCap = Annotated[int, Field(ge=1, le=1_000_000, description="impressions per user per UTC day")]


def to_micros(amount: Decimal | int | str) -> int:
    """Currency units -> integer micros, exactly (the validator already limited it to 6 places)."""
    return int(Decimal(str(amount)) * MICROS)


def from_micros(micros: int) -> float:
    """Integer micros -> currency units, for JSON answers only (never stored)."""
    return micros / MICROS


def check_landing_url(url: str) -> str:
    parts = urlsplit(url)
    if parts.scheme not in ("http", "https") or not parts.netloc:
        raise UserError(f"landing_url must be an absolute http or https URL, got {url!r}")
    return url


class Creative(BaseModel):
    model_config = ConfigDict(extra="forbid")
    text: str = Field(min_length=1, max_length=2000)
    landing_url: str = Field(max_length=2048)

    _url = field_validator("landing_url")(check_landing_url)


class Targeting(BaseModel):
    """Keywords and topics pull a campaign in as candidates; languages are a hard filter."""

    model_config = ConfigDict(extra="forbid")
    keywords: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(default_factory=list, max_length=1000)
    topics: list[Annotated[str, Field(min_length=1, max_length=100)]] = Field(default_factory=list, max_length=100)
    languages: list[Annotated[str, Field(min_length=2, max_length=8)]] = Field(default_factory=list, max_length=100)


class Schedule(BaseModel):
    """When a campaign may run: an optional window and optional UTC hours of the day."""

    model_config = ConfigDict(extra="forbid")
    start: datetime | None = None
    end: datetime | None = None
    hours: list[Annotated[int, Field(ge=0, le=23)]] | None = None

    @model_validator(mode="after")
    def _window(self) -> Schedule:
        for name in ("start", "end"):
            value = getattr(self, name)
            if value is not None and value.tzinfo is None:
                raise UserError(f"schedule.{name} needs a timezone, e.g. 2026-01-01T00:00:00Z")
        if self.start and self.end and self.end <= self.start:
            raise UserError("schedule.end must be after schedule.start")
        return self


class CampaignSpec(BaseModel):
    """``POST /admin/campaigns`` body; ``ads.json`` entries are the same plus an optional ``id``."""

    model_config = ConfigDict(extra="forbid")
    id: str | None = Field(default=None, min_length=1, max_length=64, pattern=r"^[A-Za-z0-9_.:-]+$")
    advertiser: str = Field(min_length=1, max_length=200)
    name: str = Field(min_length=1, max_length=200)
    status: Literal["active", "paused"] = "active"
    budget: Money
    daily_budget: Money | None = None
    bid_type: Literal["cpc", "cpm"]
    bid: Money
    max_bid: Money | None = None  # the most one charge may ever be; defaults to bid
    targeting: Targeting = Field(default_factory=Targeting)
    schedule: Schedule | None = None
    frequency_cap: FrequencyCap | None = None
    brand_safety_threshold: float | None = Field(default=None, gt=0, le=1)
    creatives: list[Creative] = Field(min_length=1, max_length=100)

    @model_validator(mode="after")
    def _money(self) -> CampaignSpec:
        bid = to_micros(self.bid)
        check_campaign_money(
            bid=bid,
            max_bid=to_micros(self.max_bid) if self.max_bid else bid,
            budget=to_micros(self.budget),
            daily_budget=to_micros(self.daily_budget) if self.daily_budget else None,
        )
        return self


class CampaignPatch(BaseModel):
    """``PATCH /admin/campaigns/{id}``: any subset of the mutable fields.

    ``null`` removes an optional setting (daily budget, schedule, frequency cap,
    safety threshold); the others cannot be removed, so ``null`` there is a 400.
    """

    model_config = ConfigDict(extra="forbid")
    name: str | None = Field(default=None, min_length=1, max_length=200)
    status: Literal["active", "paused"] | None = None
    budget: Money | None = None
    daily_budget: Money | None = None
    bid: Money | None = None
    max_bid: Money | None = None
    targeting: Targeting | None = None
    schedule: Schedule | None = None
    frequency_cap: FrequencyCap | None = None
    brand_safety_threshold: float | None = Field(default=None, gt=0, le=1)

    @model_validator(mode="after")
    def _required_stay(self) -> CampaignPatch:
        for name in REQUIRED_IN_PATCH:
            if name in self.model_fields_set and getattr(self, name) is None:
                raise UserError(f"{name}: cannot be removed (null); give a value or leave it out")
        return self


REQUIRED_IN_PATCH = ("name", "status", "budget", "bid", "max_bid", "targeting")


def describe_error(e: ValidationError) -> str:
    """'field.path: message' for the first problem pydantic found."""
    first = e.errors()[0]
    loc = ".".join(str(p) for p in first["loc"]) or "(body)"
    msg = first["msg"].removeprefix("Value error, ")
    return f"{loc}: {msg}"


def parse_campaigns(obj: object, source: str) -> list[CampaignSpec]:
    """Validate a loaded ``{"campaigns": [...]}`` document (or a bare list).

    Raises ValueError naming the file, the campaign (index and id or name) and the field.
    """
    items = obj.get("campaigns") if isinstance(obj, dict) else obj
    if not isinstance(items, list):
        # ValueError, not TypeError: a file of the wrong shape is bad input, reported as such by the CLI
        raise UserError(f'{source}: expected {{"campaigns": [...]}} or a JSON list of campaigns')  # noqa: TRY004
    specs, seen = [], set()
    for i, item in enumerate(items):
        label = f"campaign #{i}"
        if isinstance(item, dict) and (item.get("id") or item.get("name")):
            label += f" ({item.get('id') or item.get('name')!s})"
        try:
            spec = CampaignSpec.model_validate(item)
        except ValidationError as e:
            raise UserError(f"{source}: {label}: {describe_error(e)}") from None
        if spec.id is not None:
            if spec.id in seen:
                raise UserError(f"{source}: {label}: id: duplicate campaign id {spec.id!r}")
            seen.add(spec.id)
        specs.append(spec)
    return specs
