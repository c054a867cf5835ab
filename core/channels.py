"""One channel vocabulary for how leads came, whatever each source calls it.

Salesforce's `LeadSource` says `Web`, `Advertisement` or `Purchased List`, HubSpot's
`hs_analytics_source` says `ORGANIC_SEARCH` or `PAID_SOCIAL` (its connector lowercases them into
this vocabulary already), Facebook Lead Ads leads are `facebook_ads`, Mailchimp members `email`.
The store keeps each source's own value on its identity and writes the canonical name on the lead,
so reports, rules (`field: channel`) and the dashboard's filters see one name per channel.

Canonical names: organic, direct, paid_search, paid_social, social, email, referral, event,
purchased_list, offline, campaign, other. A value is looked up ignoring case, spaces, hyphens and
underscores (`Partner Referral` = `partner-referral` = `PARTNER_REFERRAL`); an unknown value is
kept in that same lowercase, underscored form (`Olark Chat` → `olark_chat`). The hub file's
`channels:` mapping (`{"Vendor value": canonical}`) wins over the defaults.
"""

from __future__ import annotations

import re
from collections.abc import Mapping

# canonical name: the values (in lookup form, see `channel_key`) sources use for it
ALIASES: dict[str, tuple[str, ...]] = {
    "organic": ("organic", "web", "website", "organic_search", "seo", "content"),
    "direct": ("direct", "direct_traffic"),
    "paid_search": ("paid_search", "ppc", "pay_per_click_ads", "google_ads", "adwords", "sem"),
    "paid_social": ("paid_social", "facebook_ads", "facebook_lead_ads", "advertisement",
                    "linkedin_ads", "instagram_ads", "social_ads"),
    "social": ("social", "social_media", "organic_social"),
    "email": ("email", "email_marketing", "newsletter", "e_mail"),
    "referral": ("referral", "referrals", "partner_referral", "employee_referral",
                 "external_referral", "partner", "reference", "referral_sites", "ai_referrals",
                 "word_of_mouth"),
    "event": ("event", "events", "trade_show", "tradeshow", "conference", "seminar",
              "seminar_internal", "seminar_partner", "webinar"),
    "purchased_list": ("purchased_list", "list_purchase", "purchased"),
    "offline": ("offline", "phone_inquiry", "phone", "walk_in"),
    "campaign": ("campaign", "other_campaigns"),
    "other": ("other",),
}  # fmt: skip
DEFAULT_CHANNELS: dict[str, str] = {
    alias: name for name, aliases in ALIASES.items() for alias in aliases
}

_SEPARATORS = re.compile(r"[\s\-_]+")
_configured: dict[str, str] = {}


def channel_key(value: str) -> str:
    """The form a channel value is looked up in: lowercase, separators as one underscore."""
    return _SEPARATORS.sub("_", value.strip().lower()).strip("_")


def canonical_channel(value: str | None, overrides: Mapping[str, str] | None = None) -> str | None:
    """The canonical name of `value` (None and blank stay None); `overrides` (by default the
    hub file's `channels:`) win over the defaults.

    >>> canonical_channel("Purchased List")
    'purchased_list'
    """
    if value is None or not str(value).strip():
        return None
    key = channel_key(str(value))
    mapping = _configured if overrides is None else _keyed(overrides)
    return mapping.get(key) or DEFAULT_CHANNELS.get(key) or key


def use_overrides(overrides: Mapping[str, str]) -> None:
    """Make the hub file's `channels:` the mapping every page stored in this process uses."""
    global _configured
    _configured = _keyed(overrides)


def _keyed(overrides: Mapping[str, str]) -> dict[str, str]:
    return {channel_key(k): v.strip() for k, v in overrides.items()}
