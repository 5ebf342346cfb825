"""Resources the checks of one drwatch share, created on first use and closed by the runtime."""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from app.checks._http import HttpPool


class SharedResources:
    """The runtime's shared pools, reached through :class:`app.checks.base.CheckContext`.

    Each pool is created on first use, so a drwatch without HTTP checks never imports aiohttp.
    :meth:`close` is called once, by ``Runtime.stop()``, after the checks have closed.
    """

    def __init__(self, *, max_in_flight: int | None = None) -> None:
        # None: the HTTP engine's default bound on requests in flight.
        self.max_in_flight = max_in_flight
        self._http: HttpPool | None = None

    def http(self) -> HttpPool:
        if self._http is None:
            from app.checks._http import HttpPool

            self._http = (
                HttpPool()
                if self.max_in_flight is None
                else HttpPool(max_in_flight=self.max_in_flight)
            )
        return self._http

    async def close(self) -> None:
        pool, self._http = self._http, None
        if pool is not None:
            await pool.close()
