"""Gateway session state: waiting, ending calls, recent partners and report blocks."""

import time

from services.signalling.ratelimit import TokenBucket
from services.signalling.session import Call, PastPartner, Session, State
from shared.events import OFFERER, Matched


def new_session() -> Session:
    return Session(
        sid="sid1",
        session_id="s1",
        browser_id="browser-000000000001",
        ip_key="aa" * 32,
        previous_ip_key=None,
        country="GB",
        hide_ip=False,
        limiter=TokenBucket(rate_per_s=20.0, burst=60),
    )


def matched(call_id: str, partner: str) -> Matched:
    return Matched(
        call_id=call_id,
        epoch=1,
        session_id="s1",
        partner_session=partner,
        partner_gateway="gw2",
        partner_key="bb" * 32,
        partner_browser=f"browser-{partner}",
        partner_country="DE",
        role=OFFERER,
    )


def in_call(session: Session, call_id: str, partner: str) -> None:
    session.call = Call.from_matched(matched(call_id, partner))
    session.state = State.IN_CALL


def test_call_from_matched() -> None:
    call = Call.from_matched(matched("c1", "s2"))

    assert call == Call("c1", OFFERER, "s2", "gw2", "bb" * 32, "browser-s2", "DE")


def test_new_session_idle() -> None:
    session = new_session()

    assert session.state is State.IDLE
    assert session.call is None
    assert session.pending is None


def test_start_waiting_sets_request() -> None:
    session = new_session()
    before_us = time.time_ns() // 1000

    session.start_waiting("DE", widen=True)

    assert session.state is State.WAITING
    assert session.wanted == "DE"
    assert session.widen is True
    assert session.waiting_since_us >= before_us


def test_start_waiting_clears_call_and_pending() -> None:
    session = new_session()
    in_call(session, "c1", "s2")
    session.pending = matched("c2", "s3")

    session.start_waiting("any", widen=False)

    assert session.call is None
    assert session.pending is None


def test_end_call_remembers_partner() -> None:
    session = new_session()
    in_call(session, "c1", "s2")

    ended = session.end_call(now_s=50.0)

    assert ended is not None
    assert ended.call_id == "c1"
    assert session.state is State.IDLE
    assert session.call is None
    assert list(session.past_partners) == [PastPartner("c1", "s2", "browser-s2", "bb" * 32, 50.0)]


def test_end_call_without_call() -> None:
    session = new_session()
    session.state = State.WAITING
    session.pending = matched("c1", "s2")

    assert session.end_call(now_s=1.0) is None
    assert session.state is State.IDLE
    assert session.pending is None
    assert not session.past_partners


def test_recent_partners_last_count() -> None:
    session = new_session()
    for index in range(5):
        in_call(session, f"c{index}", f"p{index}")
        session.end_call(now_s=float(index))

    recent = session.recent_partners(now_s=5.0, count=3, window_s=300.0)

    assert [partner.session_id for partner in recent] == ["p2", "p3", "p4"]


def test_recent_partners_window() -> None:
    session = new_session()
    in_call(session, "c1", "old")
    session.end_call(now_s=0.0)
    in_call(session, "c2", "edge")
    session.end_call(now_s=100.0)
    in_call(session, "c3", "new")
    session.end_call(now_s=350.0)

    recent = session.recent_partners(now_s=400.0, count=5, window_s=300.0)

    assert [partner.session_id for partner in recent] == ["edge", "new"]


def test_recent_partners_zero_count() -> None:
    session = new_session()
    in_call(session, "c1", "p1")
    session.end_call(now_s=0.0)

    assert session.recent_partners(now_s=0.0, count=0, window_s=300.0) == []


def test_past_partners_bounded() -> None:
    session = new_session()
    for index in range(40):
        in_call(session, f"c{index}", f"p{index}")
        session.end_call(now_s=float(index))

    assert len(session.past_partners) == 16
    assert session.past_partners[-1].session_id == "p39"


def test_active_blocks_expire() -> None:
    session = new_session()
    session.blocked_keys = {"k_expired": 10.0, "k_edge": 20.0, "k_active": 30.0}

    assert session.active_blocks(now_s=20.0) == ("k_active",)
    assert session.blocked_keys == {"k_active": 30.0}
    assert session.active_blocks(now_s=30.0) == ()
