"""Staff accounts: passwords, logins and their throttle, sessions, roles (SQLite and PostgreSQL)."""

from __future__ import annotations

import datetime as dt
import hashlib
from collections.abc import Iterator
from pathlib import Path

import pytest
from argon2 import PasswordHasher
from sqlalchemy import func, select, text
from sqlalchemy.engine import Engine
from sqlalchemy.orm import Session

from bot.db.crypto import blind_index
from bot.db.models import AuditEvent, LoginAttempt, StaffRole, StaffSession, StaffUser
from bot.db.session import make_engine, unit_of_work
from bot.services import staff
from tests.conftest import own_database

PASSWORD = "correct horse battery"
EMAIL = "dana.reyes@clinic.example"
CLIENT = "203.0.113.7"
T0 = dt.datetime(2026, 12, 14, 15, 0, tzinfo=dt.timezone.utc)

# Cheap parameters for most tests; the production parameters are argon2-cffi's defaults.
FAST = PasswordHasher(time_cost=1, memory_cost=1024, parallelism=1)


@pytest.fixture(autouse=True)
def floors(request: pytest.FixtureRequest) -> None:
    """Note where this test's audit entries, accounts and login attempts start: entries
    committed by other tests cannot be deleted (the log is append-only)."""
    if "db_session" not in request.fixturenames:
        return
    session = request.getfixturevalue("db_session")
    for key, model in (("audit_floor", AuditEvent), ("staff_floor", StaffUser),
                       ("attempt_floor", LoginAttempt)):
        session.info[key] = session.scalar(select(func.max(model.id))) or 0


@pytest.fixture(autouse=True)
def fast_hashes(monkeypatch: pytest.MonkeyPatch) -> Iterator[None]:
    staff._dummy_hash.cache_clear()
    monkeypatch.setattr(staff, "_hasher", lambda: FAST)
    yield
    staff._dummy_hash.cache_clear()


def _user(session: Session, email: str = EMAIL, role: StaffRole | str = StaffRole.CLINICIAN,
          password: str = PASSWORD, name: str = "Dana Reyes") -> StaffUser:
    return staff.create_user(session, email, name, role, password)


def _events(session: Session, action: str | None = None) -> list[AuditEvent]:
    query = select(AuditEvent).where(AuditEvent.id > session.info.get("audit_floor", 0)) \
        .order_by(AuditEvent.id)
    if action is not None:
        query = query.where(AuditEvent.action == action)
    return list(session.scalars(query))


def _new_users(session: Session) -> list[StaffUser]:
    return [user for user in staff.list_users(session)
            if user.id > session.info.get("staff_floor", 0)]


def _attempts(session: Session) -> list[LoginAttempt]:
    return list(session.scalars(
        select(LoginAttempt).where(LoginAttempt.id > session.info.get("attempt_floor", 0))
        .order_by(LoginAttempt.id)))


# -- Passwords ---------------------------------------------------------------------------------


def test_production_hashes_are_argon2id_with_the_library_defaults(monkeypatch) -> None:
    monkeypatch.undo()
    staff._hasher.cache_clear()
    stored = staff.hash_password(PASSWORD)
    assert stored.startswith("$argon2id$v=19$m=65536,t=3,p=4$")
    assert PASSWORD not in stored
    assert staff.verify_password(stored, PASSWORD)
    assert not staff.verify_password(stored, PASSWORD + "!")


@pytest.mark.parametrize("stored", ["", "not a hash", "$argon2id$v=19$m=65536,t=3,p=4$broken"])
def test_a_broken_hash_never_verifies(stored: str) -> None:
    assert staff.verify_password(stored, PASSWORD) is False


@pytest.mark.parametrize("password", ["", "eleven char", "x" * 1025])
def test_passwords_shorter_than_12_characters_are_refused(password: str) -> None:
    with pytest.raises(staff.StaffError, match="password"):
        staff.hash_password(password)


def test_twelve_characters_are_enough() -> None:
    assert staff.verify_password(staff.hash_password("twelve chars"), "twelve chars")


# -- Accounts ----------------------------------------------------------------------------------


def test_create_user_stores_a_lower_case_email_and_a_hash_and_audits(db_session) -> None:
    user = _user(db_session, email="  Dana.Reyes@Clinic.EXAMPLE ", role="front_desk")

    assert (user.email, user.display_name, user.role, user.active) == (
        EMAIL, "Dana Reyes", StaffRole.FRONT_DESK, True)
    raw_hash = db_session.execute(text("SELECT password_hash FROM staff_users")).scalar_one()
    assert raw_hash.startswith("$argon2id$") and PASSWORD not in raw_hash
    [event] = _events(db_session)
    assert (event.action, event.staff_user_id, event.target_type, event.target_id,
            event.detail) == ("staff.create", None, "staff_user", str(user.id),
                              {"role": "front_desk"})


@pytest.mark.parametrize(
    ("email", "name", "role", "password", "message"),
    [
        ("not-an-email", "Dana", "admin", PASSWORD, "email"),
        ("dana@clinic.example.", "Dana", "admin", PASSWORD, "email"),
        ("İnci@clinic.example", "Inci", "admin", PASSWORD, "email"),
        (EMAIL, "   ", "admin", PASSWORD, "display_name"),
        (EMAIL, "Dana\x07", "admin", PASSWORD, "display_name"),
        (EMAIL, "Dana", "nurse", PASSWORD, "role"),
        (EMAIL, "Dana", "admin", "short", "password"),
    ],
)
def test_create_user_refuses_bad_values_and_writes_nothing(
    db_session, email, name, role, password, message
) -> None:
    with pytest.raises(staff.StaffError, match=message):
        staff.create_user(db_session, email, name, role, password)
    assert _new_users(db_session) == []
    assert _events(db_session) == []


def test_one_account_per_email_whatever_the_case(db_session) -> None:
    _user(db_session)
    with pytest.raises(staff.StaffError, match="already an account"):
        _user(db_session, email=EMAIL.upper())


def test_update_user_records_the_changed_fields_never_the_values(db_session) -> None:
    admin = _user(db_session, email="admin@clinic.example", role="admin")
    user = _user(db_session)
    staff.update_user(db_session, user.id, actor_id=admin.id, display_name="Dana R.",
                      role="front_desk", password="a brand new password")

    assert (user.display_name, user.role) == ("Dana R.", StaffRole.FRONT_DESK)
    assert staff.verify_password(user.password_hash, "a brand new password")
    [event] = _events(db_session, "staff.update")
    assert (event.staff_user_id, event.target_id) == (admin.id, str(user.id))
    assert event.detail == {"fields": ["display_name", "role", "password"],
                            "role": "front_desk"}
    # Nothing changed: nothing recorded.
    staff.update_user(db_session, user.id, actor_id=admin.id, display_name="Dana R.")
    assert len(_events(db_session, "staff.update")) == 1


def test_the_last_active_admin_cannot_be_demoted_or_deactivated(db_session) -> None:
    admin = _user(db_session, email="admin@clinic.example", role="admin")
    for change in ({"role": "clinician"}, {"active": False}):
        with pytest.raises(staff.StaffError, match="only active admin"):
            staff.update_user(db_session, admin.id, actor_id=admin.id, **change)
    second = _user(db_session, email="second@clinic.example", role="admin")
    staff.update_user(db_session, admin.id, actor_id=second.id, active=False)
    assert admin.active is False


def test_update_of_an_unknown_account_is_refused(db_session) -> None:
    with pytest.raises(staff.StaffError, match="No such"):
        staff.update_user(db_session, 424242, actor_id=None, display_name="X")


def test_list_and_get_users(db_session) -> None:
    zed = _user(db_session, email="zed@clinic.example", name="Zed")
    amy = _user(db_session, email="amy@clinic.example", name="Amy")
    old = _user(db_session, email="old@clinic.example", name="Aaron")
    staff.update_user(db_session, old.id, actor_id=None, active=False)
    assert [u.id for u in _new_users(db_session)] == [amy.id, zed.id, old.id]
    assert staff.get_user(db_session, zed.id) is zed
    assert staff.get_user(db_session, 424242) is None


# -- Logins ------------------------------------------------------------------------------------


def test_a_good_login_is_audited_and_stores_no_email_or_address(db_session) -> None:
    user = _user(db_session)
    assert staff.authenticate(db_session, " DANA.Reyes@clinic.example", PASSWORD, CLIENT,
                              now=T0) is user

    assert staff._as_utc(user.last_login_at) == T0
    [attempt] = _attempts(db_session)
    assert attempt.succeeded is True
    assert attempt.email_index == blind_index("staff-login-email:" + EMAIL)
    assert attempt.client_index == blind_index("staff-login-client:" + CLIENT)
    # Not the same digest as the patient tables' index of the same address.
    assert attempt.email_index != blind_index(EMAIL)
    [event] = _events(db_session, "login")
    assert (event.staff_user_id, event.target_id) == (user.id, str(user.id))
    raw = db_session.execute(text("SELECT * FROM login_attempts")).all()
    raw += db_session.execute(text("SELECT * FROM audit_events")).all()
    assert EMAIL not in repr(raw) and CLIENT not in repr(raw)


@pytest.mark.parametrize(
    ("email", "password", "deactivate", "reason"),
    [
        (EMAIL, "wrong password!", False, "wrong_password"),
        ("nobody@clinic.example", PASSWORD, False, "unknown_account"),
        (EMAIL, PASSWORD, True, "inactive"),
    ],
)
def test_failed_logins_say_the_same_thing_and_are_recorded(
    db_session, email, password, deactivate, reason
) -> None:
    user = _user(db_session)
    if deactivate:
        staff.update_user(db_session, user.id, actor_id=None, active=False)

    with pytest.raises(staff.LoginFailed) as failure:
        staff.authenticate(db_session, email, password, CLIENT, now=T0)

    assert str(failure.value) == "That email and password do not match an active account."
    assert [a.succeeded for a in _attempts(db_session)] == [False]
    [event] = _events(db_session, "login.failed")
    assert event.staff_user_id is None
    assert event.detail == {"reason": reason}
    assert event.target_id == (None if reason == "unknown_account" else str(user.id))
    assert user.last_login_at is None


def test_an_unknown_email_still_costs_a_password_verification(db_session, monkeypatch) -> None:
    user = _user(db_session)
    checked: list[str] = []

    class Spy:
        def hash(self, password: str) -> str:
            return FAST.hash(password)

        def verify(self, stored: str, password: str) -> bool:
            checked.append(stored)
            return FAST.verify(stored, password)

        def check_needs_rehash(self, stored: str) -> bool:
            return False

    monkeypatch.setattr(staff, "_hasher", lambda: Spy())
    for email in ("nobody@clinic.example", ""):
        with pytest.raises(staff.LoginFailed):
            staff.authenticate(db_session, email, PASSWORD, CLIENT, now=T0)
    assert checked == [staff._dummy_hash()] * 2
    assert checked[0] != user.password_hash

    staff.authenticate(db_session, EMAIL, PASSWORD, CLIENT, now=T0)
    assert checked[-1] == user.password_hash


def test_five_failures_for_one_email_throttle_it_for_the_rest_of_the_window(db_session) -> None:
    _user(db_session)
    for minute in range(5):
        with pytest.raises(staff.LoginFailed):
            staff.authenticate(db_session, EMAIL, "wrong password!", f"10.0.0.{minute}",
                               now=T0 + dt.timedelta(minutes=minute))

    # Even the right password, from another address, is refused until the first failure ages
    # out of the 15 minutes.
    with pytest.raises(staff.LoginThrottled) as throttled:
        staff.authenticate(db_session, EMAIL, PASSWORD, "10.0.0.99",
                           now=T0 + dt.timedelta(minutes=10))
    assert throttled.value.retry_after == 5 * 60
    assert _events(db_session, "login.failed")[-1].detail == {"reason": "throttled"}
    # A refused attempt is not counted (it was not checked), so waiting is enough.
    assert len(_attempts(db_session)) == 5

    assert staff.authenticate(db_session, EMAIL, PASSWORD, "10.0.0.99",
                              now=T0 + dt.timedelta(minutes=15, seconds=1)).email == EMAIL


def test_a_good_login_clears_the_count_for_its_email(db_session) -> None:
    _user(db_session)

    def fail(minute: int) -> None:
        with pytest.raises(staff.LoginFailed):
            staff.authenticate(db_session, EMAIL, "wrong password!", CLIENT,
                               now=T0 + dt.timedelta(minutes=minute))

    for minute in range(4):
        fail(minute)
    staff.authenticate(db_session, EMAIL, PASSWORD, CLIENT, now=T0 + dt.timedelta(minutes=4))
    for minute in range(5, 10):
        fail(minute)
    with pytest.raises(staff.LoginThrottled):
        staff.authenticate(db_session, EMAIL, PASSWORD, CLIENT, now=T0 + dt.timedelta(minutes=10))


def test_twenty_failures_from_one_client_throttle_that_client_only(db_session) -> None:
    _user(db_session)
    for number in range(20):
        with pytest.raises(staff.LoginFailed):
            staff.authenticate(db_session, f"guess{number}@clinic.example", PASSWORD, CLIENT,
                               now=T0 + dt.timedelta(seconds=number))
    with pytest.raises(staff.LoginThrottled) as throttled:
        staff.authenticate(db_session, EMAIL, PASSWORD, CLIENT, now=T0 + dt.timedelta(minutes=1))
    assert throttled.value.retry_after == 14 * 60
    assert staff.authenticate(db_session, EMAIL, PASSWORD, "198.51.100.1",
                              now=T0 + dt.timedelta(minutes=1)).email == EMAIL


def test_old_login_attempts_are_deleted(db_session) -> None:
    _user(db_session)
    with pytest.raises(staff.LoginFailed):
        staff.authenticate(db_session, EMAIL, "wrong password!", CLIENT, now=T0)
    staff.authenticate(db_session, EMAIL, PASSWORD, CLIENT, now=T0 + dt.timedelta(days=2))
    assert [a.succeeded for a in _attempts(db_session)] == [True]


def test_a_hash_made_with_older_parameters_is_renewed_at_login(db_session) -> None:
    user = _user(db_session)
    weaker = PasswordHasher(time_cost=1, memory_cost=512, parallelism=1)
    user.password_hash = weaker.hash(PASSWORD)
    db_session.flush()
    assert FAST.check_needs_rehash(user.password_hash)

    staff.authenticate(db_session, EMAIL, PASSWORD, CLIENT, now=T0)

    assert not FAST.check_needs_rehash(user.password_hash)
    assert "m=1024,t=1,p=1" in user.password_hash
    assert staff.authenticate(db_session, EMAIL, PASSWORD, CLIENT, now=T0) is user


@pytest.fixture(params=["sqlite", "postgres"])
def own_engine(request: pytest.FixtureRequest, tmp_path: Path) -> Iterator[Engine]:
    """A database of this test's own (commits stay here), on SQLite and on PostgreSQL."""
    with own_database(request.param, tmp_path, "staff") as url:
        engine = make_engine(url)
        yield engine
        engine.dispose()


def test_a_failure_counts_even_when_the_callers_unit_of_work_rolls_back(own_engine) -> None:
    with unit_of_work(own_engine) as session:
        _user(session)
    for _ in range(5):
        with pytest.raises(staff.LoginFailed), unit_of_work(own_engine) as session:
            staff.authenticate(session, EMAIL, "wrong password!", CLIENT)
    with pytest.raises(staff.LoginThrottled), unit_of_work(own_engine) as session:
        staff.authenticate(session, EMAIL, PASSWORD, CLIENT)
    with unit_of_work(own_engine) as session:
        assert session.scalar(select(func.count()).select_from(LoginAttempt)) == 5
        reasons = [e.detail["reason"] for e in _events(session, "login.failed")]
        assert reasons == ["wrong_password"] * 5 + ["throttled"]


# -- Sessions ----------------------------------------------------------------------------------


def test_a_session_stores_only_the_sha256_of_its_token(db_session) -> None:
    user = _user(db_session)
    token, row = staff.start_session(db_session, user, now=T0)
    other_token, other = staff.start_session(db_session, user, now=T0)

    assert len(token) >= 43 and token != other_token
    assert row.id == hashlib.sha256(token.encode()).hexdigest()
    assert row.csrf_token and row.csrf_token != other.csrf_token and row.csrf_token != token
    assert staff._as_utc(row.expires_at) == T0 + staff.SESSION_MAX_AGE
    stored = db_session.execute(text("SELECT * FROM staff_sessions")).all()
    assert token not in repr(stored)


def test_resume_bumps_activity_and_ends_after_15_idle_minutes(db_session) -> None:
    user = _user(db_session)
    token, row = staff.start_session(db_session, user, now=T0)

    later = T0 + dt.timedelta(minutes=14)
    assert staff.resume_session(db_session, token, now=later) is row
    assert staff._as_utc(row.last_seen_at) == later
    assert staff.resume_session(db_session, token, now=later + dt.timedelta(minutes=15)) is row
    assert staff.resume_session(
        db_session, token, now=later + dt.timedelta(minutes=30, seconds=1)) is None


def test_an_active_session_still_ends_after_12_hours(db_session) -> None:
    user = _user(db_session)
    token, _ = staff.start_session(db_session, user, now=T0)
    moment = T0
    while moment < T0 + staff.SESSION_MAX_AGE - dt.timedelta(minutes=10):
        moment += dt.timedelta(minutes=10)
        assert staff.resume_session(db_session, token, now=moment) is not None
    assert staff.resume_session(db_session, token, now=T0 + staff.SESSION_MAX_AGE) is None


@pytest.mark.parametrize("token", ["", "unknown-token", "x" * 5000],
                         ids=["empty", "unknown", "very-long"])
def test_unknown_tokens_resume_nothing(db_session, token: str) -> None:
    staff.start_session(db_session, _user(db_session), now=T0)
    assert staff.resume_session(db_session, token, now=T0) is None
    staff.end_session(db_session, token)
    assert _events(db_session, "logout") == []


def test_logout_ends_the_session_for_good_and_is_audited(db_session) -> None:
    user = _user(db_session)
    token, row = staff.start_session(db_session, user, now=T0)
    staff.end_session(db_session, token, now=T0 + dt.timedelta(minutes=1))
    staff.end_session(db_session, token)

    assert row.revoked_at is not None
    assert staff.resume_session(db_session, token, now=T0 + dt.timedelta(minutes=2)) is None
    [event] = _events(db_session, "logout")
    assert (event.staff_user_id, event.target_id) == (user.id, str(user.id))


@pytest.mark.parametrize("change", [{"active": False}, {"password": "another good password"}])
def test_deactivating_or_a_new_password_ends_every_session(db_session, change) -> None:
    _user(db_session, email="admin@clinic.example", role="admin")
    user = _user(db_session)
    tokens = [staff.start_session(db_session, user)[0] for _ in range(2)]
    staff.update_user(db_session, user.id, actor_id=None, **change)
    assert [staff.resume_session(db_session, token) for token in tokens] == [None, None]
    assert all(row.revoked_at is not None for row in db_session.scalars(select(StaffSession)))


def test_a_role_change_keeps_the_session(db_session) -> None:
    user = _user(db_session)
    token, row = staff.start_session(db_session, user)
    staff.update_user(db_session, user.id, actor_id=None, role="front_desk")
    assert staff.resume_session(db_session, token) is row


# -- Permissions -------------------------------------------------------------------------------

ALL = ("queue.view", "handoff.view", "handoff.clinical", "transcript.view", "handoff.act",
       "conversation.reply", "admin.staff", "admin.patients", "admin.clinic", "audit.view")
GRANTED = {
    "admin": set(ALL),
    "clinician": {"queue.view", "handoff.view", "handoff.clinical", "transcript.view",
                  "handoff.act", "conversation.reply"},
    "front_desk": {"queue.view", "handoff.view", "handoff.act"},
}


@pytest.mark.parametrize("role", ["admin", "clinician", "front_desk"])
@pytest.mark.parametrize("permission", ALL)
def test_role_permissions(role: str, permission: str) -> None:
    expected = permission in GRANTED[role]
    assert staff.can(role, permission) is expected
    assert staff.can(StaffRole(role), permission) is expected


def test_front_desk_never_sees_clinical_data_or_transcripts() -> None:
    for permission in ("handoff.clinical", "transcript.view", "conversation.reply"):
        assert not staff.can(StaffRole.FRONT_DESK, permission)


@pytest.mark.parametrize(("role", "permission"), [
    ("nurse", "queue.view"), ("admin", "everything"), ("", "queue.view")])
def test_unknown_roles_and_permissions_grant_nothing(role: str, permission: str) -> None:
    assert staff.can(role, permission) is False
