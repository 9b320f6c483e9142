"""RFC 4028 negotiation (pure) and the refresh / expiry clock of one call."""

from __future__ import annotations

import asyncio

from voicebot.sip.headers import Headers
from voicebot.sip.session_timer import (Refresher, SessionRefresh, SessionTimer, SessionTimerPolicy, TooSmall, as_peer_request,
                                        from_answer, from_response, negotiate, offer_headers)

POLICY = SessionTimerPolicy(expires_s=1800, min_se_s=90)


def test_too_small_is_a_422_naming_our_min_se() -> None:
    assert negotiate(Headers([("Session-Expires", "60"), ("Supported", "timer")]), POLICY) == TooSmall(90)


def test_a_caller_without_the_extension_is_not_refused_its_short_interval_is_raised() -> None:
    # RFC 4028 errata 1687: a 422 to a caller that does not support timers would only fail the call
    agreed = negotiate(Headers([("Session-Expires", "60")]), POLICY)
    assert agreed == SessionTimer(90, "uas", False)


def test_interval_is_capped_by_policy_and_floored_by_the_peers_min_se() -> None:
    agreed = negotiate(Headers([("Session-Expires", "7200;refresher=uac"), ("Supported", "timer")]), POLICY)
    assert agreed == SessionTimer(1800, "uac", True)
    agreed = negotiate(Headers([("Session-Expires", "1800"), ("Min-SE", "1900"), ("Supported", "timer")]), POLICY)
    assert isinstance(agreed, SessionTimer) and agreed.interval == 1900


def test_refresher_choice() -> None:
    assert negotiate(Headers([("Session-Expires", "600;refresher=uas"), ("Supported", "timer")]),
                     POLICY) == SessionTimer(600, "uas", True)
    # without Supported: timer the caller cannot refresh, so we do, and do not Require it
    plain = negotiate(Headers(), POLICY)
    assert plain == SessionTimer(1800, "uas", False)
    assert plain.response_headers() == [("Session-Expires", "1800;refresher=uas")]
    assert ("Require", "timer") in SessionTimer(600, "uac", True).response_headers()
    assert negotiate(Headers(), SessionTimerPolicy(enabled=False)) is None


def test_from_response_takes_the_peers_interval() -> None:
    current = SessionTimer(600, "uas", True)
    assert from_response(Headers([("Session-Expires", "900;refresher=uas")]), current).interval == 900
    assert from_response(Headers(), current) is current


def test_a_refresh_we_send_names_its_sender_the_refresher_whatever_our_initial_role() -> None:
    # RFC 4028 §7.4: the refresher of a refresh request is named by that request's roles; we send it as its UAC.
    # Naming our initial role ("uas" on a call we answered) asked the caller to take the refreshing over.
    roles: tuple[Refresher, ...] = ("uas", "uac")
    for ours in roles:
        headers = dict(SessionTimer(600, ours, True).request_headers(90))
        assert headers["Session-Expires"] == "600;refresher=uac"


def test_the_answer_to_our_refresh_is_read_by_the_refreshs_roles() -> None:
    on_a_call_we_answered = SessionTimer(600, "uas", True)
    kept = from_response(Headers([("Session-Expires", "600;refresher=uac")]), on_a_call_we_answered, "uas")
    assert kept.refresher == "uas"  # the refresh's UAC, us: we keep refreshing
    handed = from_response(Headers([("Session-Expires", "600;refresher=uas")]), on_a_call_we_answered, "uas")
    assert handed.refresher == "uac"  # the refresh's UAS, the caller: it refreshes from now on
    on_a_leg_we_placed = SessionTimer(600, "uac", True)
    assert from_response(Headers([("Session-Expires", "600;refresher=uac")]), on_a_leg_we_placed, "uac") \
        .refresher == "uac"


def test_refreshee_ends_the_call_when_no_refresh_comes() -> None:
    async def scenario() -> list[str]:
        expired: list[str] = []

        async def refresh(_t: SessionTimer) -> SessionTimer | None:
            raise AssertionError("the refreshee never refreshes")

        async def expire(reason: str) -> None:
            expired.append(reason)

        clock = SessionRefresh(SessionTimer(1, "uac", True), refresh, expire)
        await asyncio.wait_for(clock.run(), 5)
        return expired

    assert asyncio.run(scenario()) == ["session timer expired"]


def test_peer_refreshes_keep_the_call_up() -> None:
    async def scenario() -> tuple[bool, int]:
        async def refresh(_t: SessionTimer) -> SessionTimer | None:
            raise AssertionError("the refreshee never refreshes")

        ended = asyncio.Event()

        async def expire(_reason: str) -> None:
            ended.set()

        timer = SessionTimer(1, "uac", True)  # expiry after 0.67 s without a refresh
        clock = SessionRefresh(timer, refresh, expire)
        task = asyncio.ensure_future(clock.run())
        for _ in range(6):  # 6 x 0.3 s = 1.8 s, well past one expiry
            await asyncio.sleep(0.3)  # the peer's refresh cadence, not synchronisation
            clock.refreshed(timer)
        alive = not ended.is_set()
        await asyncio.wait_for(task, 5)  # refreshes stop: it expires
        return alive, clock.refreshes_received

    assert asyncio.run(scenario()) == (True, 6)


def test_refresher_refreshes_every_half_interval_and_stops_when_the_dialog_is_gone() -> None:
    async def scenario() -> tuple[int, list[str]]:
        sent: list[SessionTimer] = []
        expired: list[str] = []

        async def refresh(t: SessionTimer) -> SessionTimer | None:
            sent.append(t)
            return t if len(sent) < 3 else None  # the third gets 481

        async def expire(reason: str) -> None:
            expired.append(reason)

        clock = SessionRefresh(SessionTimer(1, "uas", True), refresh, expire)
        await asyncio.wait_for(clock.run(), 5)
        return len(sent), expired

    assert asyncio.run(scenario()) == (3, ["session refresh failed"])


def test_an_outbound_offer_asks_our_interval_and_a_422_raises_it() -> None:
    assert offer_headers(POLICY) == [("Session-Expires", "1800"), ("Min-SE", "90"), ("Supported", "timer")]
    assert offer_headers(POLICY, min_se=3600)[:2] == [("Session-Expires", "3600"), ("Min-SE", "3600")]
    assert offer_headers(SessionTimerPolicy(enabled=False)) == []


def test_an_outbound_answer_names_the_refresher_and_without_one_we_refresh() -> None:
    assert from_answer(Headers([("Session-Expires", "600;refresher=uas")]), POLICY) == SessionTimer(600, "uas", True)
    assert from_answer(Headers([("Session-Expires", "600;refresher=uac")]), POLICY) == SessionTimer(600, "uac", True)
    assert from_answer(Headers([]), POLICY) == SessionTimer(1800, "uac", False)  # §7.2: the answerer has no timers
    assert from_answer(Headers([]), SessionTimerPolicy(enabled=False)) is None


def test_a_refresh_from_the_answerer_names_roles_of_its_own_request() -> None:
    assert as_peer_request(SessionTimer(600, "uac", True)) == SessionTimer(600, "uas", True)
