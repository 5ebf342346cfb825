"""``statuspage``: a vendor's public Atlassian Statuspage (``/api/v2/status.json``)."""

from __future__ import annotations

from typing import Any, ClassVar

from pydantic import Field, field_validator

from app.checks import base
from app.checks._vendor import ApiCheck, base_url_of, require
from app.checks.base import CheckFailed, Result, Status

_INDICATORS = {
    "none": Status.PASS,
    "minor": Status.WARN,
    "maintenance": Status.WARN,
    "major": Status.FAIL,
    "critical": Status.FAIL,
}
_COMPONENT_STATES = {
    "operational": Status.PASS,
    "degraded_performance": Status.WARN,
    "under_maintenance": Status.WARN,
    "partial_outage": Status.FAIL,
    "major_outage": Status.FAIL,
}


class StatuspageCheck(ApiCheck["StatuspageCheck.Params"]):
    """Reads the page's overall indicator, or the status of the named ``components``.

    Indicator ``none`` passes, ``minor`` (and maintenance) warns, ``major``/``critical`` fail.
    Components: ``operational`` passes, degraded performance and maintenance warn, partial and
    major outages fail. Public pages need no credentials.
    """

    class Params(base.Params):
        base_url: str = Field(description="The status page, e.g. https://status.twilio.com")
        components: list[str] = Field(
            default_factory=list,
            description=(
                "Names of the components the application depends on; default: the page's "
                "overall indicator."
            ),
        )

        @field_validator("base_url")
        @classmethod
        def _http_url(cls, value: str) -> str:
            if not value.startswith(("http://", "https://")):
                raise ValueError("expected the status page's http(s):// address")
            return value

    vendor: ClassVar[str] = "The status page"
    # A status page has no id in the configuration, and it is itself where one would look for
    # the vendor's outage: say what its own 404 and 5xx mean instead.
    missing_means: ClassVar[str] = (
        "the address is not an Atlassian Statuspage page (it has no /api/v2 there) or the page "
        "was removed; fix base_url"
    )
    failing_means: ClassVar[str] = (
        "the status page itself has an outage, so the vendor's state cannot be read from it; "
        "check the vendor's other channels"
    )
    default_interval: ClassVar[float] = 120.0

    def client_options(self) -> dict[str, Any]:
        return {"base_url": base_url_of(self.params.base_url), "follow_redirects": True}

    async def run(self) -> Result:
        if self.params.components:
            return await self._components()
        body = await self.get_json("/api/v2/status.json", resource="status.json")
        status = require(body, "status", dict, self._page_name(body))
        indicator = require(status, "indicator", str, self._page_name(body))
        description = status.get("description") or indicator
        page = self._page_name(body)
        verdict = _INDICATORS.get(indicator)
        details = {"indicator": indicator, "description": description}
        if verdict is None:
            return self.warned(
                f"{page} reports an unknown indicator {indicator!r} ({description}).",
                details=details,
            )
        said = f"{page} says {description!r} (indicator {indicator})"
        if verdict is Status.FAIL:
            raise CheckFailed(
                f"{said}; the vendor reports an outage, so features that depend on it fail.",
                context=details,
            )
        if verdict is Status.WARN:
            return self.warned(f"{said}; some features may be degraded.", details=details)
        return self.passed(f"{said}.", details=details)

    async def _components(self) -> Result:
        body = await self.get_json("/api/v2/components.json", resource="components.json")
        page = self._page_name(body)
        listed = require(body, "components", list, page)
        by_name = {str(c.get("name", "")).strip().lower(): c for c in listed if isinstance(c, dict)}
        missing = [n for n in self.params.components if n.strip().lower() not in by_name]
        if missing:
            known = ", ".join(sorted(str(c.get("name")) for c in by_name.values()))[:300]
            raise CheckFailed(
                f"{page} has no component named {', '.join(repr(m) for m in missing)}; fix the "
                f"components setting (the page lists: {known}).",
                permanent=True,
            )
        states: dict[str, str] = {}
        worst = Status.PASS
        for name in self.params.components:
            component = by_name[name.strip().lower()]
            state = str(component.get("status") or "unknown")
            states[str(component.get("name"))] = state
            worst = Status.worst(worst, _COMPONENT_STATES.get(state, Status.WARN))
        affected = [
            f"{n} is {s.replace('_', ' ')}" for n, s in states.items() if s != "operational"
        ]
        details = {"components": states}
        if worst is Status.FAIL:
            raise CheckFailed(
                f"{page}: {'; '.join(affected)}; features that depend on it fail.",
                context=details,
            )
        if worst is Status.WARN:
            return self.warned(f"{page}: {'; '.join(affected)}.", details=details)
        return self.passed(f"{page}: {', '.join(states)} operational.", details=details)

    def _page_name(self, body: Any) -> str:
        page = body.get("page") if isinstance(body, dict) else None
        name = page.get("name") if isinstance(page, dict) else None
        return f"The {name} status page" if isinstance(name, str) and name else "The status page"
