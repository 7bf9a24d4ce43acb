"""Client administration, token issuing, and authenticating each request."""

from __future__ import annotations

import asyncio
import re
import time
import uuid
from collections import OrderedDict
from dataclasses import dataclass, replace
from datetime import datetime
from typing import Generic, TypeVar

from riskgate.auth import credentials, repository
from riskgate.auth.repository import ClientListing, ClientRecord, ManagedClientView, NewApiKey
from riskgate.auth.schemas import ManagedClientSpec, ProposedCredentials
from riskgate.auth.scopes import ADMIN_SCOPE, SCOPES, format_scopes, parse_scopes
from riskgate.auth.signing import InvalidToken, SigningKeys
from riskgate.db import Pool
from riskgate.errors import (
    ClientManagedExternally,
    ClientNameTaken,
    ClientNotFound,
    CredentialsConflict,
    InvalidField,
    OAuthBusy,
    OAuthInvalidClient,
    OAuthInvalidScope,
    OAuthTooManyFailedAttempts,
    Unauthenticated,
)
from riskgate.observability.metrics import record_rate_limited
from riskgate.ratelimit.failed_attempts import FailedAttemptLimits
from riskgate.ratelimit.limiter import API_POLICY_PATTERN, RateLimitPolicy

__all__ = ["ClientNotFound"]  # raised here; the CLI catches it from this module

K = TypeVar("K")
V = TypeVar("V")


@dataclass(frozen=True, slots=True)
class Caller:
    """An authenticated client and the scopes this request may use."""

    client_id: uuid.UUID
    name: str
    scopes: frozenset[str]
    rate_limit: str | None = None

    @property
    def actor(self) -> str:
        """How the audit log names the caller."""
        return f"client:{self.name}"


@dataclass(frozen=True, slots=True)
class IssuedCredentials:
    """Shown to the operator once; only hashes are stored."""

    client_id: str
    client_secret: str
    api_key: str


@dataclass(frozen=True, slots=True)
class Pair:
    """A client secret and an API key the caller generated (see ``ProposedCredentials``)."""

    client_secret: str
    api_key: str


def pair_of(offered: ProposedCredentials | None) -> Pair | None:
    return None if offered is None else Pair(offered.client_secret, offered.api_key)


@dataclass(frozen=True, slots=True)
class Rotated:
    credentials: IssuedCredentials
    previous_expire_at: datetime | None
    """When the replaced secret and API keys stop working; None: they already have."""
    rotated: bool = True
    """False: the proposed pair was the current one already, and nothing changed."""


def _key_in_use(field: str) -> CredentialsConflict:
    return CredentialsConflict(
        "this API key has been used before; propose a freshly generated one", field=field
    )


async def _same_secret(secret: str, stored_hash: str) -> None:
    """A repeated rotation must repeat the whole pair: the current key with another secret is
    a caller's mistake, not a retry."""
    if not await asyncio.to_thread(credentials.verify_secret, secret, stored_hash):
        raise CredentialsConflict(
            "api_key is the client's current key but client_secret is not its current secret",
            field="credentials.client_secret",
        )


def managed_name(managed_ref: str) -> str:
    """The client name of ApiClient ``<namespace>/<name>``: ``<namespace>.<name>``.

    Namespaces are DNS labels (no dots), so the first dot tells the two apart again and two
    resources never derive the same name.
    """
    namespace, _, name = managed_ref.partition("/")
    return f"{namespace}.{name}"


def _managed_elsewhere(client: ClientRecord) -> ClientManagedExternally:
    return ClientManagedExternally(
        f"client {client.name} is managed by the Kubernetes ApiClient {client.managed_ref}; "
        "change that resource instead"
    )


def _new_api_key(key: str) -> NewApiKey:
    return NewApiKey(
        id=uuid.uuid4(), hash=credentials.api_key_hash(key), prefix=credentials.api_key_prefix(key)
    )


def _new_client(name: str, scopes: str, secret: str, rate_limit: str | None) -> ClientRecord:
    return ClientRecord(
        id=uuid.uuid4(),
        name=name,
        secret_hash=credentials.hash_secret(secret),
        scopes=parse_scopes(scopes),
        active=True,
        rate_limit=rate_limit,
    )


class ClientExists(Exception):
    pass


class ClientContended(Exception):
    """The client kept changing under ``ensure``: another writer never let it settle."""


@dataclass(frozen=True, slots=True)
class Ensured:
    """What ``ClientAdmin.ensure`` did."""

    created: bool
    changed: tuple[str, ...]
    """Which of ``secret``, ``scopes``, ``rate_limit`` an update replaced (empty: nothing)."""
    active: bool


_ENSURE_ATTEMPTS = 5


def _differences(current: ClientRecord, wanted: ClientRecord, secret: str) -> tuple[str, ...]:
    differs = {
        # Hashes are salted, so only verifying tells whether the secret is still the same.
        "secret": not credentials.verify_secret(secret, current.secret_hash),
        "scopes": current.scopes != wanted.scopes,
        "rate_limit": current.rate_limit != wanted.rate_limit,
    }
    return tuple(field for field, different in differs.items() if different)


class ClientAdmin:
    """What ``riskgate clients ...`` does."""

    def __init__(self, pool: Pool, actor: str = "operator:cli") -> None:
        self._pool = pool
        self._actor = actor

    async def create(
        self, name: str, scopes: str, *, secret: str | None = None, rate_limit: str | None = None
    ) -> IssuedCredentials:
        """Register a client; ``secret`` is only for the dev demo, real clients get a random one."""
        secret = secret or credentials.new_client_secret()
        api_key = credentials.new_api_key()
        client = _new_client(name, scopes, secret, rate_limit)
        if not await repository.create_client(
            self._pool, client, _new_api_key(api_key), self._actor
        ):
            raise ClientExists(f"a client named {name!r} already exists")
        return IssuedCredentials(client_id=name, client_secret=secret, api_key=api_key)

    async def ensure(
        self, name: str, scopes: str, secret: str, *, rate_limit: str | None = None
    ) -> Ensured:
        """Make client ``name`` exist with exactly this secret, scopes and rate limit.

        For bootstrap from deployment tooling: the client_id is the name and the secret is the
        caller's, so both can sit in a Secret before the client exists. Running it again with
        the same inputs writes and audits nothing; a change is one audited update. It issues
        no API key (nobody would see it) and never touches the status: a client someone
        disabled stays disabled. Concurrent runs are safe: the insert is ``ON CONFLICT DO
        NOTHING`` and the update a compare-and-set, retried on a fresh read.
        """
        wanted = _new_client(name, scopes, secret, rate_limit)
        for _ in range(_ENSURE_ATTEMPTS):
            if await repository.create_client(self._pool, wanted, None, self._actor):
                return Ensured(created=True, changed=(), active=True)
            current = await repository.client_by_name(self._pool, name)
            if current is None:
                continue
            if current.managed_ref is not None:
                raise _managed_elsewhere(current)
            changed = _differences(current, wanted, secret)
            if not changed:
                return Ensured(created=False, changed=(), active=current.active)
            kept_hash = wanted.secret_hash if "secret" in changed else current.secret_hash
            update = replace(wanted, secret_hash=kept_hash)
            if await repository.update_client(
                self._pool, current, update, list(changed), self._actor
            ):
                return Ensured(created=False, changed=changed, active=current.active)
        raise ClientContended(f"client {name!r} kept changing; try again")

    async def list(self) -> list[ClientListing]:
        return await repository.list_clients(self._pool)

    async def set_active(self, name: str, active: bool, *, managed_ref: str | None = None) -> bool:
        """Enable or disable; returns whether anything changed."""
        await self._owned(name, managed_ref)
        changed, found = await repository.set_status(
            self._pool, name, "active" if active else "disabled", self._actor
        )
        if not found:
            raise ClientNotFound(f"no client named {name!r}")
        return changed

    async def rotate(
        self,
        name: str,
        *,
        overlap_seconds: float = 0,
        managed_ref: str | None = None,
        proposed: Pair | None = None,
    ) -> Rotated:
        """New secret and API key. The current ones keep working for ``overlap_seconds`` (0:
        they stop at once); those an earlier rotation left in their overlap stop now.

        ``managed_ref`` is the ApiClient the caller acts for (the admin API); without it, a
        client managed from Kubernetes is refused. ``proposed``: the caller's own new pair
        instead of generated ones; proposing the current pair again changes nothing, so a
        caller that lost the answer repeats the call safely. The row lock makes concurrent
        repeats wait for each other instead of both rotating.
        """
        await self._owned(name, managed_ref)
        pair = proposed or Pair(credentials.new_client_secret(), credentials.new_api_key())
        key = _new_api_key(pair.api_key)
        secret_hash = await asyncio.to_thread(credentials.hash_secret, pair.client_secret)
        issued = IssuedCredentials(name, pair.client_secret, pair.api_key)
        async with self._pool.acquire() as conn, conn.transaction():
            target = await repository.lock_for_rotation(conn, name, key.hash)
            if target is None:
                raise ClientNotFound(f"no client named {name!r}")
            if target.key_is_current:
                await _same_secret(pair.client_secret, target.secret_hash)
                return Rotated(issued, target.previous_expires_at, rotated=False)
            try:
                ends = await repository.rotate_credentials(
                    conn, name, secret_hash, key, self._actor, overlap_seconds
                )
            except repository.ApiKeyInUse:
                raise _key_in_use("credentials.api_key") from None
        assert ends is not None  # the row is locked: it cannot have gone
        return Rotated(issued, ends if overlap_seconds > 0 else None)

    async def _owned(self, name: str, managed_ref: str | None) -> None:
        """Refuse a change from the CLI to a managed client (409), or from the admin API to a
        client it does not manage (404). A client's ``managed_ref`` never changes, so reading
        it before the write cannot race."""
        client = await repository.client_by_name(self._pool, name)
        if client is None or client.status == "deleted":
            raise ClientNotFound(f"no client named {name!r}")
        if client.managed_ref == managed_ref:
            return
        if managed_ref is None:
            raise _managed_elsewhere(client)
        raise ClientNotFound(f"no client managed by {managed_ref}")


@dataclass(frozen=True, slots=True)
class Applied:
    """What ``ManagedClients.apply`` did: ``credentials`` only when it created the client."""

    view: ManagedClientView
    credentials: IssuedCredentials | None
    generated: bool = True
    """Whether the service generated ``credentials`` (False: the caller proposed them)."""


def _spec_scopes(spec: ManagedClientSpec) -> frozenset[str]:
    for index, scope in enumerate(spec.scopes):
        if scope == ADMIN_SCOPE:
            # Clients declared in Git must never be able to mint clients in turn.
            raise InvalidField(f"{ADMIN_SCOPE} cannot be granted here", field=f"scopes[{index}]")
        if scope not in SCOPES:
            raise InvalidField(f"unknown scope {scope!r}", field=f"scopes[{index}]")
    return frozenset(spec.scopes)


def _spec_rate_limit(spec: ManagedClientSpec) -> str | None:
    if spec.rate_limit is None:
        return None
    if not re.fullmatch(API_POLICY_PATTERN, spec.rate_limit):
        raise InvalidField(
            "not a rate limit such as 100/60s, 10/s or 5000/1h (at most 9999999 requests; "
            "windows up to 99999s, 999m, 99h or 5d)",
            field="rate_limit",
        )
    RateLimitPolicy.parse(spec.rate_limit)  # the pattern keeps within what it takes
    return spec.rate_limit


def _spec_changes(current: ClientRecord, wanted: ClientRecord) -> list[str]:
    differs = {
        "scopes": current.scopes != wanted.scopes,
        "rate_limit": current.rate_limit != wanted.rate_limit,
        "status": current.status != wanted.status,
    }
    return [field for field, different in differs.items() if different]


class ManagedClients:
    """Clients owned by ApiClient resources (``<namespace>/<name>``): the admin API's side."""

    def __init__(self, pool: Pool) -> None:
        self._pool = pool

    async def apply(self, managed_ref: str, spec: ManagedClientSpec, actor: str) -> Applied:
        """Create the client or make it match ``spec``; audited, and idempotent: applying the
        same spec again writes nothing. Concurrent applies of one reference create one client
        (the insert is ``ON CONFLICT DO NOTHING``; the loser then updates the winner's row)."""
        wanted = ClientRecord(
            id=uuid.uuid4(),
            name=managed_name(managed_ref),
            secret_hash="",  # set only if it is created
            scopes=_spec_scopes(spec),
            active=spec.status == "active",
            rate_limit=_spec_rate_limit(spec),
            managed_ref=managed_ref,
            status=spec.status,
        )
        proposed = pair_of(spec.credentials)
        issued = None
        async with self._pool.acquire() as conn, conn.transaction():
            current = await repository.lock_managed_client(conn, managed_ref)
            if current is None:
                issued = await self._create(conn, wanted, actor, proposed)
            if issued is None:
                current = current or await repository.lock_managed_client(conn, managed_ref)
                if current is None:
                    raise ClientNameTaken(
                        f"a client named {wanted.name} exists and is not managed from "
                        f"Kubernetes; rename the ApiClient {managed_ref} or remove that client"
                    )
                changed = _spec_changes(current, wanted)
                if changed:
                    await repository.update_managed_client(conn, wanted, changed, actor)
            view = await repository.managed_client(conn, managed_ref)
        assert view is not None  # written or locked in this very transaction
        return Applied(view, issued, generated=proposed is None)

    @staticmethod
    async def _create(
        conn: repository.Tx, wanted: ClientRecord, actor: str, proposed: Pair | None
    ) -> IssuedCredentials | None:
        """Insert ``wanted`` with the proposed or fresh credentials; None when its name is
        taken."""
        pair = proposed or Pair(credentials.new_client_secret(), credentials.new_api_key())
        secret_hash = await asyncio.to_thread(credentials.hash_secret, pair.client_secret)
        client = replace(wanted, secret_hash=secret_hash)
        try:
            created = await repository.create_client(
                conn, client, _new_api_key(pair.api_key), actor
            )
        except repository.ApiKeyInUse:
            raise _key_in_use("credentials.api_key") from None
        return IssuedCredentials(wanted.name, pair.client_secret, pair.api_key) if created else None

    async def get(self, managed_ref: str) -> ManagedClientView:
        view = await repository.managed_client(self._pool, managed_ref)
        if view is None:
            raise ClientNotFound(f"no client managed by {managed_ref}")
        return view

    async def delete(self, managed_ref: str, actor: str) -> None:
        """Its secret and API keys stop working; the name and the reference become free."""
        name = managed_name(managed_ref)
        if not await repository.delete_managed_client(self._pool, managed_ref, name, actor):
            raise ClientNotFound(f"no client managed by {managed_ref}")

    async def rotate(
        self, managed_ref: str, overlap_seconds: float, actor: str, proposed: Pair | None = None
    ) -> Rotated:
        admin = ClientAdmin(self._pool, actor)
        return await admin.rotate(
            managed_name(managed_ref),
            overlap_seconds=overlap_seconds,
            managed_ref=managed_ref,
            proposed=proposed,
        )


class TokenIssuer:
    """The client-credentials grant (RFC 6749 section 4.4)."""

    def __init__(
        self,
        pool: Pool,
        keys: SigningKeys,
        ttl_seconds: int,
        *,
        verifier: credentials.SecretVerifier,
        failures: FailedAttemptLimits,
    ) -> None:
        self._pool = pool
        self._keys = keys
        self.ttl_seconds = ttl_seconds
        self._verifier = verifier
        self._failures = failures

    async def issue(
        self,
        client_name: str,
        secret: str,
        requested_scope: str | None,
        *,
        basic: bool,
        address: str,
    ) -> tuple[str, str]:
        """(access token, granted scope), or an ``OAuthError`` subclass."""
        attempt = await self._failures.reserve(client_name, address)
        if attempt.blocked_by is not None:
            record_rate_limited(attempt.blocked_by.name)
            raise OAuthTooManyFailedAttempts(
                "too many failed authentication attempts; retry later",
                retry_after_seconds=attempt.retry_after_seconds,
            )
        try:
            client = await self._authenticate(client_name, secret, basic=basic)
        except OAuthInvalidClient:
            raise  # a failure: it stays counted
        except BaseException:
            await self._failures.release(attempt)
            raise
        await self._failures.release(attempt)
        granted = self._granted_scopes(client, requested_scope)
        scope = format_scopes(granted)
        return self._keys.issue(client.id, client.name, scope, self.ttl_seconds), scope

    async def _authenticate(self, client_name: str, secret: str, *, basic: bool) -> ClientRecord:
        client = await repository.client_by_name(self._pool, client_name)
        # Hash even for unknown clients, so response time does not reveal which names exist.
        verified = await self._verify(secret, client.secret_hash if client else _DUMMY_HASH)
        if not verified and client is not None and client.previous_secret_hash is not None:
            # During a rotation's overlap (the query returns it only until then).
            verified = await self._verify(secret, client.previous_secret_hash)
        if not verified or client is None or not client.active:
            raise OAuthInvalidClient("client authentication failed", basic_challenge=basic)
        return client

    async def _verify(self, secret: str, stored_hash: str) -> bool:
        try:
            return await self._verifier.verify(secret, stored_hash)
        except credentials.VerifierBusy:
            raise OAuthBusy("too many token requests at once; retry shortly") from None

    def close(self) -> None:
        self._verifier.close()

    @staticmethod
    def _granted_scopes(client: ClientRecord, requested: str | None) -> frozenset[str]:
        if requested is None or not requested.strip():
            return client.scopes
        wanted = frozenset(requested.split())
        if not wanted <= client.scopes:
            extra = " ".join(sorted(wanted - client.scopes))
            raise OAuthInvalidScope(f"scope not granted to this client: {extra}")
        return wanted


_DUMMY_HASH = credentials.hash_secret("riskgate-timing-equaliser")


class _TtlCache(Generic[K, V]):
    """A small bounded cache whose entries expire: enough to spare the database a lookup per
    request, short enough that disabling a client takes effect within seconds."""

    def __init__(self, ttl: float, max_entries: int = 10_000) -> None:
        self._ttl = ttl
        self._max = max_entries
        self._entries: OrderedDict[K, tuple[float, V]] = OrderedDict()

    def get(self, key: K) -> tuple[bool, V | None]:
        entry = self._entries.get(key)
        if entry is None or entry[0] < time.monotonic():
            return False, None
        return True, entry[1]

    def put(self, key: K, value: V, ttl: float | None = None) -> None:
        """``ttl`` shortens this entry's life (never lengthens it past the cache's)."""
        ttl = self._ttl if ttl is None else min(ttl, self._ttl)
        if ttl <= 0:
            return
        self._entries[key] = (time.monotonic() + ttl, value)
        self._entries.move_to_end(key)
        while len(self._entries) > self._max:
            self._entries.popitem(last=False)


class Authenticator:
    """Turns a bearer token or an API key into a ``Caller``, or raises ``Unauthenticated``."""

    def __init__(self, pool: Pool, keys: SigningKeys, cache_seconds: float) -> None:
        self._pool = pool
        self._keys = keys
        self._by_id: _TtlCache[uuid.UUID, ClientRecord | None] = _TtlCache(cache_seconds)
        self._by_key: _TtlCache[bytes, ClientRecord | None] = _TtlCache(cache_seconds)

    async def from_bearer(self, token: str) -> Caller:
        try:
            claims = self._keys.verify(token)
        except InvalidToken as exc:
            raise Unauthenticated(str(exc)) from None
        client = await self._client(claims.client_ref)
        if client is None or not client.active:
            raise Unauthenticated("the token's client is disabled or gone")
        # A token never carries more than its client holds now: scopes removed since issue
        # stop working before the token expires.
        return Caller(client.id, client.name, claims.scopes & client.scopes, client.rate_limit)

    async def from_api_key(self, key: str) -> Caller:
        digest = credentials.api_key_hash(key)
        hit, client = self._by_key.get(digest)
        if not hit:
            client, seconds_left = await repository.client_by_api_key(self._pool, digest)
            # A key a rotation retired is cached no longer than it has left: it stops on time.
            self._by_key.put(digest, client, seconds_left)
        if client is None or not client.active:
            raise Unauthenticated("the API key is not valid", error="invalid_token")
        return Caller(client.id, client.name, client.scopes, client.rate_limit)

    async def _client(self, client_ref: uuid.UUID) -> ClientRecord | None:
        hit, client = self._by_id.get(client_ref)
        if not hit:
            client = await repository.client_by_id(self._pool, client_ref)
            self._by_id.put(client_ref, client)
        return client
