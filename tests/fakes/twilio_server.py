"""A Twilio-compatible Messages API on 127.0.0.1, for tests and the benchmark.

The real ``twilio`` client talks to it over HTTP exactly as it talks to Twilio: HTTP basic
auth with the account SID and auth token, form-encoded ``POST .../Messages.json`` answered
201 with a Message resource, ``GET .../Messages.json`` with Twilio's filters and paging
envelope, and Twilio's error JSON. Failures are programmable (``fail_next``, ``fail_for``,
``fail_rate``, ``fail_after_accept``, ``slow``, ``drop_next``) and every accepted message is
recorded, so a test can assert that each recipient got exactly one.

In a test::

    with twilio_server() as server:
        settings = load_settings(twilio_api_url=server.url, ...)
        server.fail_next(2, status=429, code=20429)

As a separate process (the worker fault tests and the benchmark)::

    python -m tests.fakes.twilio_server --port 0 --sid AC... --token ...

prints ``listening on http://127.0.0.1:N`` and is controlled over HTTP: ``GET /_fake/messages``,
``GET /_fake/count``, ``GET /_fake/callbacks``, ``POST /_fake/config`` (JSON, the keys of
``FakeTwilioServer.configure``).
``twilio_server_process()`` starts one and returns a ``RemoteTwilioServer`` with the same
controls.

aiohttp on one event loop in a background thread: thousands of requests a second, and a
``slow`` answer delays only its own request.
"""

from __future__ import annotations

import argparse
import asyncio
import base64
import collections
import contextlib
import datetime as dt
import email.utils
import hmac
import json
import random
import re
import secrets
import select
import signal
import socket
import subprocess
import sys
import threading
import time
import urllib.request
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any
from urllib.parse import parse_qsl, urlencode

import aiohttp
from aiohttp import web
from twilio.request_validator import RequestValidator

DEFAULT_ACCOUNT_SID = "AC" + "0123456789abcdef" * 2
DEFAULT_AUTH_TOKEN = "fake-twilio-auth-token-0123456789"
API_VERSION = "2010-04-01"
DEFAULT_PAGE_SIZE = 50
MAX_PAGE_SIZE = 1000
MAX_BODY = 1600
E164 = re.compile(r"^\+[1-9]\d{6,14}$")
REPO_ROOT = Path(__file__).resolve().parents[2]

JSON = dict[str, Any]

# Twilio's own wording for the errors tests inject most.
TWILIO_MESSAGES = {
    20003: "Authenticate",
    20429: "Too Many Requests",
    20500: "An internal server error has occurred",
    21211: "Invalid 'To' Phone Number",
    21408: "Permission to send an SMS has not been enabled for the region indicated by the "
    "'To' number",
    21610: "Attempt to send to unsubscribed recipient",
    21612: "The 'To' phone number is not currently reachable using the 'From' phone number "
    "via SMS.",
    21614: "'To' number is not a valid mobile number",
}


@dataclass(frozen=True)
class Failure:
    """One Twilio error answer."""

    status: int
    code: int | None = None
    message: str = "Injected failure"

    def body(self) -> JSON:
        more_info = f"https://www.twilio.com/docs/errors/{self.code}" if self.code else None
        return {
            "code": self.code,
            "message": self.message,
            "more_info": more_info,
            "status": self.status,
        }

    @classmethod
    def from_json(cls, data: Mapping[str, Any], *, status: int, code: int | None) -> Failure:
        code = data.get("code", code)
        default_message = TWILIO_MESSAGES.get(code or 0, "Injected failure")
        return cls(
            status=int(data.get("status", status)),
            code=code,
            message=str(data.get("message") or default_message),
        )


@dataclass
class _Rules:
    fail_next: collections.deque[Failure] = field(default_factory=collections.deque)
    fail_for: dict[str, Failure] = field(default_factory=dict)
    fail_rate: float = 0.0
    rate_failure: Failure = field(default_factory=lambda: Failure(500, 20500))
    rng: random.Random = field(default_factory=random.Random)
    slow: float = 0.0
    drop_next: int = 0
    fail_after_accept: collections.deque[Failure] = field(default_factory=collections.deque)
    undeliverable: dict[str, int] = field(default_factory=dict)
    send_callbacks: bool = False
    hold_in_queue: bool = False


class _Controls:
    """Failure injection, shared by the in-process server and the remote-process handle:
    each method is one ``configure`` call, which is also what ``POST /_fake/config`` takes."""

    def configure(self, config: Mapping[str, Any]) -> None:
        raise NotImplementedError

    def reset(self) -> None:
        """Forget messages, callbacks and every rule."""
        self.configure({"reset": True})

    def fail_next(
        self, n: int = 1, *, status: int = 429, code: int | None = 20429, message: str = ""
    ) -> None:
        """Answer the next ``n`` message creations with this error (nothing is recorded)."""
        self.configure({"fail_next": {"n": n, "status": status, "code": code, "message": message}})

    def fail_for(
        self, to: str, *, status: int = 400, code: int | None = 21610, message: str = ""
    ) -> None:
        """Answer every message to ``to`` with this error until reset."""
        failure = {"to": to, "status": status, "code": code, "message": message}
        self.configure({"fail_for": failure})

    def fail_rate(
        self, p: float, *, status: int = 500, code: int | None = 20500, seed: int | None = None
    ) -> None:
        """Fail each message creation with probability ``p`` (0 turns it off)."""
        self.configure({"fail_rate": {"p": p, "status": status, "code": code, "seed": seed}})

    def fail_after_accept(self, n: int = 1, *, status: int = 502, message: str = "") -> None:
        """Record the next ``n`` messages (Twilio has them, callbacks and all), then answer
        this error instead of 201: a proxy's 502 or 504 after the provider took the message."""
        self.configure({"fail_after_accept": {"n": n, "status": status, "message": message}})

    def slow(self, seconds: float) -> None:
        """Record each message, then wait this long before answering: past the client's
        timeout, Twilio has the message and the client does not know."""
        self.configure({"slow": seconds})

    def drop_next(self, n: int = 1) -> None:
        """Record the next ``n`` messages, then close the connection without an answer."""
        self.configure({"drop_next": n})

    def undeliverable(self, to: str, *, code: int = 30003) -> None:
        """Status callbacks for ``to`` end in ``undelivered`` with this ``ErrorCode``."""
        self.configure({"undeliverable": {"to": to, "code": code}})

    def set_callbacks(self, *, send: bool) -> None:
        """POST signed status callbacks (queued, sent, delivered) to each StatusCallback."""
        self.configure({"send_callbacks": send})

    def set_hold_in_queue(self, *, hold: bool) -> None:
        """Keep new messages ``queued`` with no date_sent, as a throttled Messaging Service."""
        self.configure({"hold_in_queue": hold})


class FakeTwilioServer(_Controls):
    """The fake, serving from a background thread; use ``twilio_server()`` in tests."""

    def __init__(
        self,
        *,
        account_sid: str = DEFAULT_ACCOUNT_SID,
        auth_token: str = DEFAULT_AUTH_TOKEN,
        host: str = "127.0.0.1",
        port: int = 0,
    ) -> None:
        self.account_sid = account_sid
        self.auth_token = auth_token
        self._auth = "Basic " + base64.b64encode(f"{account_sid}:{auth_token}".encode()).decode()
        self._lock = threading.Lock()
        self._rules = _Rules()
        self._messages: list[JSON] = []  # Twilio resources plus "status_callback"
        self._by_sid: dict[str, JSON] = {}
        self._callbacks: list[JSON] = []
        self._sock = socket.create_server((host, port), backlog=1024)
        self.url = f"http://{host}:{self._sock.getsockname()[1]}"
        self._loop = asyncio.new_event_loop()
        self._thread = threading.Thread(target=self._loop.run_forever, daemon=True)
        self._runner: web.AppRunner | None = None
        self._session: aiohttp.ClientSession | None = None
        self._tasks: set[asyncio.Task[None]] = set()

    # --- lifecycle -----------------------------------------------------------------------

    def start(self) -> FakeTwilioServer:
        self._thread.start()
        try:
            asyncio.run_coroutine_threadsafe(self._start(), self._loop).result(timeout=10)
        except BaseException:
            self.stop()
            raise
        return self

    def stop(self) -> None:
        try:
            asyncio.run_coroutine_threadsafe(self._stop(), self._loop).result(timeout=10)
        finally:
            self._loop.call_soon_threadsafe(self._loop.stop)
            self._thread.join(timeout=10)
            self._loop.close()
            self._sock.close()

    def __enter__(self) -> FakeTwilioServer:
        return self.start()

    def __exit__(self, *exc_info: object) -> None:
        self.stop()

    async def _start(self) -> None:
        app = web.Application(client_max_size=1024**2)
        messages = f"/{API_VERSION}/Accounts/{{sid}}/Messages"
        app.router.add_post(messages + ".json", self._create)
        app.router.add_get(messages + ".json", self._list)
        app.router.add_get(messages + "/{message_sid}.json", self._fetch)
        app.router.add_get("/_fake/messages", self._fake_messages)
        app.router.add_get("/_fake/count", self._fake_count)
        app.router.add_get("/_fake/callbacks", self._fake_callbacks)
        app.router.add_post("/_fake/config", self._fake_config)
        # A short shutdown: a request parked in slow() must not hold the test's teardown.
        self._runner = web.AppRunner(app, access_log=None, shutdown_timeout=0.5)
        await self._runner.setup()
        await web.SockSite(self._runner, self._sock).start()
        self._session = aiohttp.ClientSession(timeout=aiohttp.ClientTimeout(total=5))

    async def _stop(self) -> None:
        for task in list(self._tasks):
            task.cancel()
        await asyncio.gather(*self._tasks, return_exceptions=True)
        if self._session is not None:
            await self._session.close()
        if self._runner is not None:
            await self._runner.cleanup()

    # --- what tests read -----------------------------------------------------------------

    @property
    def messages(self) -> list[JSON]:
        """Every accepted message, oldest first (Twilio's resource plus ``status_callback``
        and ``received_at``)."""
        with self._lock:
            return [dict(message) for message in self._messages]

    @property
    def message_count(self) -> int:
        """How many messages it accepted: cheap to poll while thousands arrive."""
        with self._lock:
            return len(self._messages)

    @property
    def callbacks(self) -> list[JSON]:
        """Status callbacks posted so far: url, params, the answer's status (or error)."""
        with self._lock:
            return [dict(callback) for callback in self._callbacks]

    def messages_to(self, to: str) -> list[JSON]:
        return [message for message in self.messages if message["to"] == to]

    def wait_for_callbacks(self, count: int, *, timeout: float = 5.0) -> list[JSON]:
        """The callbacks once at least ``count`` were posted; AssertionError after timeout."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            callbacks = self.callbacks
            if len(callbacks) >= count:
                return callbacks
            time.sleep(0.01)
        raise AssertionError(f"expected {count} status callbacks, got {len(self.callbacks)}")

    def configure(self, config: Mapping[str, Any]) -> None:
        """Apply failure rules; keys: reset, fail_next, fail_for (one or a list), fail_rate,
        fail_after_accept, slow, drop_next, undeliverable, send_callbacks, hold_in_queue."""
        unknown = set(config) - _CONFIG_KEYS
        if unknown:
            raise ValueError(f"unknown fake Twilio settings: {sorted(unknown)}")
        with self._lock:
            if config.get("reset"):
                self._rules = _Rules()
                self._messages.clear()
                self._by_sid.clear()
                self._callbacks.clear()
            _apply_rules(self._rules, config)

    # --- the Twilio API ------------------------------------------------------------------

    async def _create(self, request: web.Request) -> web.StreamResponse:
        denied = self._check_auth(request)
        if denied:
            return denied
        # parse_qsl over the raw body: several times cheaper than aiohttp's multipart-aware
        # request.post(), and Twilio's API only takes form-encoded bodies.
        params = dict(parse_qsl(await request.text(), keep_blank_values=True))
        failure = _invalid(params) or self._injected_failure(params.get("To", ""))
        if failure:
            return _error(failure)
        resource, drop, delay, late_failure = self._accept(params)
        if late_failure is not None:
            return _proxy_error(late_failure)
        if drop:
            if request.transport is not None:
                request.transport.close()
            return web.Response(status=201)
        if delay:
            await asyncio.sleep(delay)
        return web.json_response(resource, status=201)

    async def _list(self, request: web.Request) -> web.Response:
        denied = self._check_auth(request)
        if denied:
            return denied
        query = request.query
        try:
            page_size = min(int(query.get("PageSize", DEFAULT_PAGE_SIZE)), MAX_PAGE_SIZE)
            page = int(query.get("Page", 0))
            keep = _list_filter(query)
        except ValueError as exc:
            return _error(Failure(400, 20001, f"Invalid parameter: {exc}"))
        with self._lock:
            found = [_public(message) for message in reversed(self._messages) if keep(message)]
        return web.json_response(_page(request, found, page=page, page_size=page_size))

    async def _fetch(self, request: web.Request) -> web.Response:
        denied = self._check_auth(request)
        if denied:
            return denied
        with self._lock:
            message = self._by_sid.get(request.match_info["message_sid"])
            found = _public(message) if message else None
        if found is None:
            return _error(
                Failure(404, 20404, f"The requested resource {request.path} was not found")
            )
        return web.json_response(found)

    # --- the control API (other processes) -----------------------------------------------

    async def _fake_messages(self, request: web.Request) -> web.Response:
        return web.json_response(self.messages)

    async def _fake_count(self, request: web.Request) -> web.Response:
        return web.json_response({"messages": self.message_count})

    async def _fake_callbacks(self, request: web.Request) -> web.Response:
        return web.json_response(self.callbacks)

    async def _fake_config(self, request: web.Request) -> web.Response:
        try:
            self.configure(await request.json())
        except (ValueError, TypeError, KeyError) as exc:
            return web.json_response({"error": str(exc)}, status=400)
        return web.json_response({"ok": True})

    # --- inside ----------------------------------------------------------------------------

    def _check_auth(self, request: web.Request) -> web.Response | None:
        given = request.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), self._auth.encode()):
            return _error(Failure(401, 20003, "Authenticate"))
        if request.match_info["sid"] != self.account_sid:
            return _error(
                Failure(404, 20404, f"The requested resource {request.path} was not found")
            )
        return None

    def _injected_failure(self, to: str) -> Failure | None:
        with self._lock:
            rules = self._rules
            if to in rules.fail_for:
                return rules.fail_for[to]
            if rules.fail_next:
                return rules.fail_next.popleft()
            if rules.fail_rate and rules.rng.random() < rules.fail_rate:
                return rules.rate_failure
        return None

    def _accept(self, params: Mapping[str, str]) -> tuple[JSON, bool, float, Failure | None]:
        """Record the message; return what the client is told, whether to drop the
        connection instead, how long to wait before answering, and the error to answer
        instead of the message (``fail_after_accept``)."""
        resource = _resource(self.account_sid, params)
        with self._lock:
            rules = self._rules
            # ``received_at``: when the request arrived, to the microsecond (Twilio's own
            # dates have whole seconds), for tests and benchmarks that compare with due times.
            stored = dict(
                resource,
                status_callback=params.get("StatusCallback"),
                received_at=_now().isoformat(),
            )
            callbacks = rules.send_callbacks and bool(stored["status_callback"])
            if not (rules.hold_in_queue or callbacks):
                # Twilio hands a message to the carrier within a moment of taking it; with
                # callbacks on, the status moves as each callback is posted instead.
                stored.update(status="sent", date_sent=resource["date_created"])
            self._messages.append(stored)
            self._by_sid[stored["sid"]] = stored
            drop = rules.drop_next > 0
            rules.drop_next -= int(drop)
            delay = rules.slow
            late_failure = rules.fail_after_accept.popleft() if rules.fail_after_accept else None
            failure_code = rules.undeliverable.get(resource["to"])
        if callbacks:
            task = self._loop.create_task(self._post_callbacks(stored, failure_code))
            self._tasks.add(task)
            task.add_done_callback(self._tasks.discard)
        return resource, drop, delay, late_failure

    async def _post_callbacks(self, message: JSON, failure_code: int | None) -> None:
        """queued -> sent -> delivered (or undelivered with ErrorCode), in order, signed as
        Twilio signs them."""
        final = "undelivered" if failure_code else "delivered"
        for status in ("queued", "sent", final):
            self._advance(message["sid"], status)
            params = _callback_params(message, status, failure_code if status == final else None)
            await self._post_callback(message["status_callback"], params)

    async def _post_callback(self, url: str, params: dict[str, str]) -> None:
        assert self._session is not None
        signature = RequestValidator(self.auth_token).compute_signature(url, params)
        record: JSON = {"url": url, "params": params, "status": None, "error": None}
        try:
            async with self._session.post(
                url, data=params, headers={"X-Twilio-Signature": signature}
            ) as answer:
                record["status"] = answer.status
        except (aiohttp.ClientError, TimeoutError) as exc:
            record["error"] = type(exc).__name__
        with self._lock:
            self._callbacks.append(record)

    def _advance(self, sid: str, status: str) -> None:
        with self._lock:
            message = self._by_sid.get(sid)  # gone after a reset
            if message is not None:
                message["status"] = status
                if status == "sent":
                    message["date_sent"] = _rfc2822(_now())


_CONFIG_KEYS = frozenset(
    {
        "reset",
        "fail_next",
        "fail_for",
        "fail_rate",
        "fail_after_accept",
        "slow",
        "drop_next",
        "undeliverable",
        "send_callbacks",
        "hold_in_queue",
    }
)


def _apply_rules(rules: _Rules, config: Mapping[str, Any]) -> None:
    if "fail_next" in config:
        spec = config["fail_next"]
        failure = Failure.from_json(spec, status=429, code=20429)
        rules.fail_next.extend([failure] * int(spec.get("n", 1)))
    if "fail_for" in config:
        specs = config["fail_for"]
        for spec in specs if isinstance(specs, list) else [specs]:
            rules.fail_for[str(spec["to"])] = Failure.from_json(spec, status=400, code=21610)
    if "fail_rate" in config:
        spec = config["fail_rate"]
        rules.fail_rate = float(spec["p"])
        rules.rate_failure = Failure.from_json(spec, status=500, code=20500)
        rules.rng = random.Random(spec.get("seed"))
    if "fail_after_accept" in config:
        spec = config["fail_after_accept"]
        late = Failure.from_json(spec, status=502, code=None)
        rules.fail_after_accept.extend([late] * int(spec.get("n", 1)))
    if "slow" in config:
        rules.slow = float(config["slow"])
    if "drop_next" in config:
        rules.drop_next = int(config["drop_next"])
    if "undeliverable" in config:
        spec = config["undeliverable"]
        rules.undeliverable[str(spec["to"])] = int(spec.get("code", 30003))
    for flag in ("send_callbacks", "hold_in_queue"):
        if flag in config:
            setattr(rules, flag, bool(config[flag]))


def _invalid(params: Mapping[str, str]) -> Failure | None:
    """The validation Twilio does before taking a message, with its codes."""
    to = params.get("To", "")
    if not to:
        return Failure(400, 21604, "A 'To' phone number is required.")
    if not E164.match(to):
        return Failure(400, 21211, f"Invalid 'To' Phone Number: {to}")
    if not params.get("Body"):
        return Failure(400, 21602, "Message body is required.")
    if len(params["Body"]) > MAX_BODY:
        return Failure(
            400, 21617, "The concatenated message body exceeds the 1600 character limit."
        )
    if not (params.get("From") or params.get("MessagingServiceSid")):
        return Failure(400, 21603, "A 'From' phone number is required.")
    return None


def _resource(account_sid: str, params: Mapping[str, str]) -> JSON:
    sid = "SM" + secrets.token_hex(16)
    now = _rfc2822(_now())
    uri = f"/{API_VERSION}/Accounts/{account_sid}/Messages/{sid}.json"
    service = params.get("MessagingServiceSid")
    return {
        "account_sid": account_sid,
        "api_version": API_VERSION,
        "body": params["Body"],
        "date_created": now,
        "date_sent": None,
        "date_updated": now,
        "direction": "outbound-api",
        "error_code": None,
        "error_message": None,
        "from": None if service else params.get("From"),
        "messaging_service_sid": service,
        "num_media": "0",
        "num_segments": "1",
        "price": None,
        "price_unit": "USD",
        "sid": sid,
        # A Messaging Service first "accepts" a message, then queues it.
        "status": "accepted" if service else "queued",
        "subresource_uris": {"media": uri.removesuffix(".json") + "/Media.json"},
        "to": params["To"],
        "uri": uri,
    }


def _public(message: JSON) -> JSON:
    return {k: v for k, v in message.items() if k not in {"status_callback", "received_at"}}


def _list_filter(query: Mapping[str, str]) -> Callable[[JSON], bool]:
    """Twilio's To, From and DateSent filters (``DateSent>`` means on or after)."""
    to, sender = query.get("To"), query.get("From")
    bounds = {
        op: _parse_date(query[f"DateSent{op}"]) for op in ("", "<", ">") if f"DateSent{op}" in query
    }

    def keep(message: JSON) -> bool:
        if (to and message["to"] != to) or (sender and message["from"] != sender):
            return False
        if not bounds:
            return True
        if message["date_sent"] is None:
            return False
        sent = email.utils.parsedate_to_datetime(message["date_sent"])
        return all(_within(sent, op, bound) for op, bound in bounds.items())

    return keep


def _within(sent: dt.datetime, op: str, bound: dt.datetime) -> bool:
    if op == ">":
        return sent >= bound
    if op == "<":
        return sent <= bound
    return sent.date() == bound.date()


def _parse_date(value: str) -> dt.datetime:
    if len(value) == len("2026-01-31"):
        return dt.datetime.fromisoformat(value).replace(tzinfo=dt.UTC)
    return dt.datetime.strptime(value, "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=dt.UTC)


def _page(request: web.Request, found: list[JSON], *, page: int, page_size: int) -> JSON:
    start = page * page_size
    records = found[start : start + page_size]
    base = {key: value for key, value in request.query.items() if key not in {"Page", "PageSize"}}

    def uri(number: int) -> str:
        return f"{request.path}?{urlencode({**base, 'PageSize': page_size, 'Page': number})}"

    more = start + page_size < len(found)
    return {
        "end": start + len(records) - 1 if records else 0,
        "first_page_uri": uri(0),
        "messages": records,
        "next_page_uri": uri(page + 1) if more else None,
        "page": page,
        "page_size": page_size,
        "previous_page_uri": uri(page - 1) if page else None,
        "start": start,
        "uri": uri(page),
    }


def _callback_params(message: JSON, status: str, error_code: int | None) -> dict[str, str]:
    params = {
        "AccountSid": message["account_sid"],
        "ApiVersion": API_VERSION,
        "From": message["from"] or "",
        "MessageSid": message["sid"],
        "MessageStatus": status,
        "SmsSid": message["sid"],
        "SmsStatus": status,
        "To": message["to"],
    }
    if message["messaging_service_sid"]:
        params["MessagingServiceSid"] = message["messaging_service_sid"]
    if error_code is not None:
        params["ErrorCode"] = str(error_code)
    return params


def _error(failure: Failure) -> web.Response:
    return web.json_response(failure.body(), status=failure.status)


def _proxy_error(failure: Failure) -> web.Response:
    """What a proxy in front of the API answers: its own HTML page, not Twilio's JSON."""
    reason = {502: "Bad Gateway", 503: "Service Unavailable", 504: "Gateway Time-out"}
    title = f"{failure.status} {reason.get(failure.status, 'Error')}"
    page = f"<html><head><title>{title}</title></head><body><h1>{title}</h1></body></html>"
    return web.Response(text=page, status=failure.status, content_type="text/html")


def _now() -> dt.datetime:
    return dt.datetime.now(dt.UTC)


def _rfc2822(moment: dt.datetime) -> str:
    return email.utils.format_datetime(moment)  # "Wed, 25 Nov 2026 14:00:00 +0000"


@contextlib.contextmanager
def twilio_server(
    *, account_sid: str = DEFAULT_ACCOUNT_SID, auth_token: str = DEFAULT_AUTH_TOKEN
) -> Iterator[FakeTwilioServer]:
    """A fake Twilio in this process, on a free port of 127.0.0.1."""
    with FakeTwilioServer(account_sid=account_sid, auth_token=auth_token) as server:
        yield server


# --- the fake as a separate process ---------------------------------------------------------


class RemoteTwilioServer(_Controls):
    """Controls and reads a fake Twilio running in another process, over its HTTP API."""

    def __init__(self, url: str, *, account_sid: str, auth_token: str, pid: int) -> None:
        self.url = url
        self.account_sid = account_sid
        self.auth_token = auth_token
        self.pid = pid  # the fake's process (the benchmark reads its CPU time)

    @property
    def messages(self) -> list[JSON]:
        return list(self._call("GET", "/_fake/messages"))

    @property
    def message_count(self) -> int:
        """How many messages it accepted: cheap to poll while thousands arrive."""
        return int(self._call("GET", "/_fake/count")["messages"])

    @property
    def callbacks(self) -> list[JSON]:
        return list(self._call("GET", "/_fake/callbacks"))

    def messages_to(self, to: str) -> list[JSON]:
        return [message for message in self.messages if message["to"] == to]

    def configure(self, config: Mapping[str, Any]) -> None:
        self._call("POST", "/_fake/config", dict(config))

    def _call(self, method: str, path: str, payload: JSON | None = None) -> Any:
        data = json.dumps(payload).encode() if payload is not None else None
        request = urllib.request.Request(
            self.url + path, data=data, method=method, headers={"Content-Type": "application/json"}
        )
        with urllib.request.urlopen(request, timeout=10) as answer:
            return json.loads(answer.read())


@contextlib.contextmanager
def twilio_server_process(
    *,
    account_sid: str = DEFAULT_ACCOUNT_SID,
    auth_token: str = DEFAULT_AUTH_TOKEN,
    port: int = 0,
    startup_timeout: float = 15.0,
) -> Iterator[RemoteTwilioServer]:
    """Run the fake as its own process (``python -m tests.fakes.twilio_server``), for tests
    whose workers run in other processes; stopped with SIGTERM at the end."""
    command = [sys.executable, "-m", "tests.fakes.twilio_server", "--port", str(port)]
    command += ["--sid", account_sid, "--token", auth_token]
    process = subprocess.Popen(command, cwd=REPO_ROOT, stdout=subprocess.PIPE, text=True)
    try:
        url = _read_listening_url(process, startup_timeout)
        yield RemoteTwilioServer(
            url, account_sid=account_sid, auth_token=auth_token, pid=process.pid
        )
    finally:
        process.terminate()
        try:
            process.wait(timeout=10)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        if process.stdout is not None:
            process.stdout.close()


def _read_listening_url(process: subprocess.Popen[str], timeout: float) -> str:
    assert process.stdout is not None
    ready, _, _ = select.select([process.stdout], [], [], timeout)
    line = process.stdout.readline() if ready else ""
    if not line.startswith("listening on "):
        raise RuntimeError(f"fake Twilio did not start (exit code {process.poll()}): {line!r}")
    return line.removeprefix("listening on ").strip()


def main(argv: list[str] | None = None) -> None:
    parser = argparse.ArgumentParser(description="A Twilio-compatible Messages API for tests.")
    parser.add_argument("--host", default="127.0.0.1")
    parser.add_argument("--port", type=int, default=0)
    parser.add_argument("--sid", default=DEFAULT_ACCOUNT_SID)
    parser.add_argument("--token", default=DEFAULT_AUTH_TOKEN)
    args = parser.parse_args(argv)
    server = FakeTwilioServer(
        account_sid=args.sid, auth_token=args.token, host=args.host, port=args.port
    )
    stop = threading.Event()
    for signum in (signal.SIGTERM, signal.SIGINT):
        signal.signal(signum, lambda *_: stop.set())
    with server:
        print(f"listening on {server.url}", flush=True)
        stop.wait()


if __name__ == "__main__":
    main()
