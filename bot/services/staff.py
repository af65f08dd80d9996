"""Staff accounts of the staff console: passwords, logins, sessions and what each role may do.

Passwords are hashed with argon2 (argon2-cffi's defaults, which follow RFC 9106); a login with
a hash made under older parameters re-hashes it. A login for an email nobody has still
verifies a password against a dummy hash, so the time taken does not tell whether an account
exists.

Password guessing is throttled: :data:`MAX_FAILURES_PER_EMAIL` failed logins for one email, or
:data:`MAX_FAILURES_PER_CLIENT` from one client address, within :data:`LOGIN_WINDOW` refuse
further attempts for a while. ``login_attempts`` keeps keyed blind indexes of the email and the
address (:func:`bot.db.crypto.blind_index`), never the values.

A session's token lives only in the browser's cookie; the database keeps its SHA-256. Sessions
end after :data:`IDLE_TIMEOUT` without activity, after :data:`SESSION_MAX_AGE` in any case, on
logout, and when the account is deactivated or its password changed.
"""

from __future__ import annotations

import datetime as dt
import hashlib
import math
import re
import secrets
from functools import lru_cache

from argon2 import PasswordHasher
from argon2.exceptions import InvalidHashError, VerificationError
from sqlalchemy import delete, func, select, update
from sqlalchemy.orm import Session
from sqlalchemy.sql.elements import ColumnElement

from bot.db.crypto import blind_index
from bot.db.models import LoginAttempt, StaffRole, StaffSession, StaffUser, utcnow
from bot.services import audit

IDLE_TIMEOUT = dt.timedelta(minutes=15)
SESSION_MAX_AGE = dt.timedelta(hours=12)

LOGIN_WINDOW = dt.timedelta(minutes=15)
MAX_FAILURES_PER_EMAIL = 5
MAX_FAILURES_PER_CLIENT = 20
LOGIN_ATTEMPT_RETENTION = dt.timedelta(days=1)
"""Login attempts older than this are deleted: they only serve the throttle."""

MIN_PASSWORD_LENGTH = 12
MAX_PASSWORD_LENGTH = 1024
MAX_EMAIL_LENGTH = 254
MAX_DISPLAY_NAME_LENGTH = 200
MAX_TOKEN_LENGTH = 256

PERMISSIONS: dict[StaffRole, frozenset[str]] = {
    StaffRole.ADMIN: frozenset({
        "queue.view", "handoff.view", "handoff.clinical", "transcript.view", "handoff.act",
        "conversation.reply", "admin.staff", "admin.patients", "admin.clinic", "audit.view",
    }),
    StaffRole.CLINICIAN: frozenset({
        "queue.view", "handoff.view", "handoff.clinical", "transcript.view", "handoff.act",
        "conversation.reply",
    }),
    # Front desk sees contact details and reasons, never check-in answers, scores, intake
    # clinical answers or transcripts.
    StaffRole.FRONT_DESK: frozenset({"queue.view", "handoff.view", "handoff.act"}),
}
"""What each role may do: ``handoff.clinical`` covers summary answers, scores and the chart;
``handoff.act`` claiming, noting and resolving; ``conversation.reply`` taking over, replying
and handing back."""

_EMAIL = re.compile(r"[^@\s]+@[^@\s]+\.[^@\s.]+")
_CONTROL = re.compile(r"[\x00-\x1f\x7f]")


class StaffError(ValueError):
    """A staff-account request that cannot be carried out; the message says why, for staff."""


class LoginFailed(StaffError):
    """Wrong email or password, or an inactive account (deliberately not told apart)."""

    def __init__(self) -> None:
        super().__init__("That email and password do not match an active account.")


class LoginThrottled(StaffError):
    """Too many failed logins for this email or from this client; try again later.

    Attributes:
        retry_after: Seconds until another attempt is allowed.
    """

    def __init__(self, retry_after: int) -> None:
        super().__init__(f"Too many failed logins. Try again in {retry_after} seconds.")
        self.retry_after = retry_after


# -- Passwords ---------------------------------------------------------------------------------


@lru_cache(maxsize=1)
def _hasher() -> PasswordHasher:
    return PasswordHasher()


@lru_cache(maxsize=1)
def _dummy_hash() -> str:
    # A hash of a random password nobody knows, made with the current parameters, so a login
    # for an unknown email costs the same as one for a real account.
    return _hasher().hash(secrets.token_urlsafe(32))


def check_password(password: str) -> str:
    """``password`` if it is acceptable as a staff password.

    Raises:
        StaffError: It is shorter than :data:`MIN_PASSWORD_LENGTH` characters (or absurdly
            long).
    """
    if not isinstance(password, str) or len(password) < MIN_PASSWORD_LENGTH:
        raise StaffError(f"password: use at least {MIN_PASSWORD_LENGTH} characters")
    if len(password) > MAX_PASSWORD_LENGTH:
        raise StaffError(f"password: use at most {MAX_PASSWORD_LENGTH} characters")
    return password


def hash_password(password: str) -> str:
    """An argon2 hash of an acceptable password (see :func:`check_password`).

    Raises:
        StaffError: The password is too short or too long.
    """
    return _hasher().hash(check_password(password))


def verify_password(stored: str, password: str) -> bool:
    """Whether ``password`` matches the argon2 hash ``stored`` (``False`` for a broken hash)."""
    try:
        return _hasher().verify(stored, password)
    except (VerificationError, InvalidHashError):
        return False


# -- Accounts ----------------------------------------------------------------------------------


def normalise_email(email: str) -> str:
    """The login form of an email address: trimmed and lower-case."""
    return (email or "").strip().lower()


def _check_email(email: str) -> str:
    clean = normalise_email(email)
    # ASCII only: Python and the databases then agree on what lower case is.
    if len(clean) > MAX_EMAIL_LENGTH or not clean.isascii() or not _EMAIL.fullmatch(clean):
        raise StaffError("email: not an email address (name@example.org)")
    return clean


def _check_display_name(name: str) -> str:
    clean = re.sub(r"\s+", " ", (name or "").strip())
    if not clean:
        raise StaffError("display_name: a name is required")
    if len(clean) > MAX_DISPLAY_NAME_LENGTH:
        raise StaffError(f"display_name: longer than {MAX_DISPLAY_NAME_LENGTH} characters")
    if _CONTROL.search(clean):
        raise StaffError("display_name: contains control characters")
    return clean


def _check_role(role: StaffRole | str) -> StaffRole:
    try:
        return StaffRole(role)
    except ValueError:
        roles = ", ".join(member.value for member in StaffRole)
        raise StaffError(f"role: {role!r} is not a role (use {roles})") from None


def create_user(
    session: Session,
    email: str,
    display_name: str,
    role: StaffRole | str,
    password: str,
    actor_id: int | None = None,
) -> StaffUser:
    """Create a staff account (audited as ``staff.create``).

    Args:
        session: The unit of work.
        email: The login email; stored lower-case, one account per address.
        display_name: The name shown to colleagues and on staff replies.
        role: ``admin``, ``clinician`` or ``front_desk``.
        password: At least :data:`MIN_PASSWORD_LENGTH` characters.
        actor_id: The admin creating it; ``None`` from the command line.

    Returns:
        The new, active account.

    Raises:
        StaffError: A value is invalid, or the email already has an account.
    """
    clean_email = _check_email(email)
    clean_name = _check_display_name(display_name)
    clean_role = _check_role(role)
    password_hash = hash_password(password)
    if find_by_email(session, clean_email) is not None:
        raise StaffError("email: there is already an account with this email")
    user = StaffUser(email=clean_email, display_name=clean_name, role=clean_role,
                     password_hash=password_hash, active=True)
    session.add(user)
    session.flush()
    audit.record(session, actor_id, audit.STAFF_CREATE, "staff_user", user.id,
                 detail={"role": clean_role.value})
    return user


def _other_active_admins(session: Session, user_id: int) -> int:
    return int(session.scalar(
        select(func.count()).select_from(StaffUser).where(
            StaffUser.role == StaffRole.ADMIN, StaffUser.active.is_(True),
            StaffUser.id != user_id)
    ) or 0)


def update_user(
    session: Session,
    user_id: int,
    *,
    actor_id: int | None,
    display_name: str | None = None,
    role: StaffRole | str | None = None,
    active: bool | None = None,
    password: str | None = None,
) -> StaffUser:
    """Change a staff account (audited as ``staff.update``, with the names of changed fields).

    Deactivating the account or setting a new password ends its sessions. The last active
    admin can be neither deactivated nor given another role, so someone can always administer.

    Args:
        session: The unit of work.
        user_id: The account.
        actor_id: The admin making the change (``None`` from the command line).
        display_name: A new display name.
        role: A new role.
        active: ``False`` to deactivate the account, ``True`` to reactivate it.
        password: A new password.

    Returns:
        The account.

    Raises:
        StaffError: No such account, an invalid value, or the change would leave no active
            admin.
    """
    user = session.get(StaffUser, user_id)
    if user is None:
        raise StaffError("No such staff account.")
    changed: list[str] = []
    if display_name is not None:
        clean_name = _check_display_name(display_name)
        if clean_name != user.display_name:
            user.display_name = clean_name
            changed.append("display_name")
    new_role = _check_role(role) if role is not None else user.role
    new_active = bool(active) if active is not None else bool(user.active)
    was_admin = user.role is StaffRole.ADMIN and user.active
    if was_admin and (new_role is not StaffRole.ADMIN or not new_active) \
            and _other_active_admins(session, user.id) == 0:
        raise StaffError("This is the only active admin: make another admin first.")
    if new_role is not user.role:
        user.role = new_role
        changed.append("role")
    if new_active != user.active:
        user.active = new_active
        changed.append("active")
    if password is not None:
        user.password_hash = hash_password(password)
        changed.append("password")
    if not changed:
        return user
    if "password" in changed or ("active" in changed and not new_active):
        _revoke_sessions(session, user.id)
    session.flush()
    detail: dict[str, object] = {"fields": changed}
    if "role" in changed:
        detail["role"] = new_role.value
    if "active" in changed:
        detail["active"] = new_active
    audit.record(session, actor_id, audit.STAFF_UPDATE, "staff_user", user.id, detail=detail)
    return user


def list_users(session: Session) -> list[StaffUser]:
    """Every staff account, active ones first, then by name."""
    return list(session.scalars(
        select(StaffUser).order_by(StaffUser.active.desc(), StaffUser.display_name, StaffUser.id)
    ))


def get_user(session: Session, user_id: int) -> StaffUser | None:
    """The staff account with ``user_id``, if any."""
    return session.get(StaffUser, user_id)


def find_by_email(session: Session, email: str) -> StaffUser | None:
    """The staff account with this login email (any case), if any."""
    return session.scalars(
        select(StaffUser).where(StaffUser.email == normalise_email(email))
    ).first()


# -- Logins ------------------------------------------------------------------------------------


def _email_index(email: str) -> str:
    # Prefixed, so the digest differs from the patient tables' index of the same address.
    return blind_index("staff-login-email:" + email)


def _client_index(client: str) -> str:
    return blind_index("staff-login-client:" + (client or ""))


def _as_utc(moment: dt.datetime) -> dt.datetime:
    # SQLite gives stored UTC times back naive.
    if moment.tzinfo is None:
        return moment.replace(tzinfo=dt.timezone.utc)
    return moment.astimezone(dt.timezone.utc)


def _retry_after(failures: list[dt.datetime], limit: int, now: dt.datetime) -> int | None:
    """Seconds until fewer than ``limit`` of ``failures`` (newest first) are in the window."""
    if len(failures) < limit:
        return None
    frees_at = _as_utc(failures[limit - 1]) + LOGIN_WINDOW
    return max(1, math.ceil((frees_at - now).total_seconds()))


def _recent_failures(session: Session, whose: ColumnElement[bool], since: dt.datetime,
                     limit: int) -> list[dt.datetime]:
    return list(session.scalars(
        select(LoginAttempt.at)
        .where(whose, LoginAttempt.succeeded.is_(False), LoginAttempt.at > since)
        .order_by(LoginAttempt.at.desc())
        .limit(limit)
    ))


def _throttled(session: Session, email_index: str, client_index: str,
               now: dt.datetime) -> int | None:
    window_start = now - LOGIN_WINDOW
    # A successful login clears the email's count; the client's count stands.
    last_success = session.scalar(
        select(func.max(LoginAttempt.at)).where(
            LoginAttempt.email_index == email_index, LoginAttempt.succeeded.is_(True))
    )
    since_email = max(window_start, _as_utc(last_success)) if last_success else window_start
    waits = [
        _retry_after(_recent_failures(session, LoginAttempt.email_index == email_index,
                                      since_email, MAX_FAILURES_PER_EMAIL),
                     MAX_FAILURES_PER_EMAIL, now),
        _retry_after(_recent_failures(session, LoginAttempt.client_index == client_index,
                                      window_start, MAX_FAILURES_PER_CLIENT),
                     MAX_FAILURES_PER_CLIENT, now),
    ]
    found = [wait for wait in waits if wait is not None]
    return max(found) if found else None


def _fail(session: Session, user: StaffUser | None, reason: str, attempt: LoginAttempt | None
          ) -> None:
    if attempt is not None:
        session.add(attempt)
    audit.record(session, None, audit.LOGIN_FAILED, "staff_user",
                 user.id if user is not None else None, detail={"reason": reason})
    # Committed here, so the failure counts even when the caller's unit of work rolls back on
    # the exception that follows.
    session.commit()


def authenticate(
    session: Session,
    email: str,
    password: str,
    client: str,
    *,
    now: dt.datetime | None = None,
) -> StaffUser:
    """Check a login; audited as ``login`` or ``login.failed``.

    A failed or throttled attempt is recorded and committed before the exception is raised,
    so it counts even when the caller's unit of work rolls back.

    Args:
        session: The unit of work.
        email: The email as typed (any case).
        password: The password as typed.
        client: The client's network address (only its blind index is stored).
        now: The current time (tests pass their own).

    Returns:
        The active account; its hash is renewed if made with older parameters.

    Raises:
        LoginThrottled: Too many recent failures for this email or from this client.
        LoginFailed: Unknown email, wrong password, or an inactive account.
    """
    now = _as_utc(now or utcnow())
    clean_email = normalise_email(email)[:MAX_EMAIL_LENGTH]
    email_index = _email_index(clean_email)
    client_index = _client_index(client)
    session.execute(delete(LoginAttempt).where(LoginAttempt.at < now - LOGIN_ATTEMPT_RETENTION))

    wait = _throttled(session, email_index, client_index, now)
    if wait is not None:
        _fail(session, None, "throttled", None)
        raise LoginThrottled(wait)

    user = find_by_email(session, clean_email) if clean_email else None
    candidate = password if isinstance(password, str) else ""
    candidate = candidate[:MAX_PASSWORD_LENGTH + 1]
    matches = verify_password(user.password_hash if user is not None else _dummy_hash(),
                              candidate)
    attempt = LoginAttempt(email_index=email_index, client_index=client_index, at=now)
    if user is None or not matches or not user.active:
        reason = ("unknown_account" if user is None
                  else "wrong_password" if not matches else "inactive")
        attempt.succeeded = False
        _fail(session, user, reason, attempt)
        raise LoginFailed()

    attempt.succeeded = True
    session.add(attempt)
    if _hasher().check_needs_rehash(user.password_hash):
        user.password_hash = _hasher().hash(candidate)
    user.last_login_at = now
    session.flush()
    audit.record(session, user.id, audit.LOGIN, "staff_user", user.id)
    return user


# -- Sessions ----------------------------------------------------------------------------------


def session_id(token: str) -> str:
    """The stored id of a session token: its SHA-256, hex."""
    return hashlib.sha256(token.encode("utf-8")).hexdigest()


def start_session(session: Session, user: StaffUser, *, now: dt.datetime | None = None
                  ) -> tuple[str, StaffSession]:
    """Open a session for a user who just logged in.

    Args:
        session: The unit of work.
        user: The authenticated account.
        now: The current time (tests pass their own).

    Returns:
        The token for the browser's cookie (shown nowhere else, stored only as its SHA-256),
        and the session row, with its CSRF token.
    """
    now = _as_utc(now or utcnow())
    token = secrets.token_urlsafe(32)
    row = StaffSession(
        id=session_id(token),
        user_id=user.id,
        csrf_token=secrets.token_urlsafe(32),
        created_at=now,
        last_seen_at=now,
        expires_at=now + SESSION_MAX_AGE,
    )
    session.add(row)
    session.flush()
    return token, row


def _live_row(session: Session, token: str) -> StaffSession | None:
    if not token or not isinstance(token, str) or len(token) > MAX_TOKEN_LENGTH:
        return None
    return session.get(StaffSession, session_id(token))


def resume_session(session: Session, token: str, now: dt.datetime | None = None
                   ) -> StaffSession | None:
    """The live session of a cookie's token, its activity time bumped.

    Args:
        session: The unit of work.
        token: The token from the cookie.
        now: The current time (tests pass their own).

    Returns:
        The session, or ``None`` when the token is unknown, the session was ended, has been
        idle longer than :data:`IDLE_TIMEOUT`, is older than :data:`SESSION_MAX_AGE`, or its
        account is inactive.
    """
    now = _as_utc(now or utcnow())
    row = _live_row(session, token)
    if row is None or row.revoked_at is not None:
        return None
    if now >= _as_utc(row.expires_at) or now - _as_utc(row.last_seen_at) > IDLE_TIMEOUT:
        return None
    user = session.get(StaffUser, row.user_id)
    if user is None or not user.active:
        return None
    row.last_seen_at = now
    session.flush()
    return row


def end_session(session: Session, token: str, *, now: dt.datetime | None = None) -> None:
    """Log out: the session ends for good (audited as ``logout``). Unknown tokens are ignored."""
    row = _live_row(session, token)
    if row is None or row.revoked_at is not None:
        return
    row.revoked_at = _as_utc(now or utcnow())
    session.flush()
    audit.record(session, row.user_id, audit.LOGOUT, "staff_user", row.user_id)


def _revoke_sessions(session: Session, user_id: int) -> None:
    session.execute(
        update(StaffSession)
        .where(StaffSession.user_id == user_id, StaffSession.revoked_at.is_(None))
        .values(revoked_at=utcnow())
        .execution_options(synchronize_session="fetch")
    )


# -- Permissions -------------------------------------------------------------------------------


def permissions(role: StaffRole | str) -> frozenset[str]:
    """Everything ``role`` may do (nothing for an unknown role)."""
    try:
        return PERMISSIONS[StaffRole(role)]
    except ValueError:
        return frozenset()


def can(role: StaffRole | str, permission: str) -> bool:
    """Whether ``role`` grants ``permission`` (``"handoff.clinical"``, ``"admin.staff"`` ...)."""
    return permission in permissions(role)

