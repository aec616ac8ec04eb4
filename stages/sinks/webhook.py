"""POST each feedback event as JSON to an app's URL, through an on-disk queue.

    --sink webhook:url=http://127.0.0.1:8000/events[,kinds=rep+cue][,queue=PATH]
                   [,timeout=5][,max_queue=100000][,flush=10]

Guarantee: at-least-once, in order, with ids (the queue keeps one copy per
id, and only rejected or queue-full events are never sent). An event is
written to the queue file (`outbox.py`) before anything else happens to it;
a sender thread posts the oldest one, one event per POST, with the header
`Idempotency-Key: <event id>`, and removes it only once the app answered 2xx.
So a crash between the app's answer and the removal posts that event again:
receivers de-duplicate by `Idempotency-Key` (equal to the body's `id`).

Connection errors, timeouts, 5xx, 408 and 429 are retried with exponential
backoff and jitter (0.5 s doubling to 30 s, or the app's `Retry-After`);
other answers (3xx, 4xx) reject that event for good: one log line, and it
is moved aside in the queue file and counted. The pipeline never waits on the
app: `on_result` only writes to SQLite. At the end the sender tries for up
to `flush` seconds to empty the queue, then leaves the rest in the file for
the next run with the same queue (same URL, or the same `queue=`).
"""

from __future__ import annotations

import email.utils
import hashlib
import http.client
import json
import logging
import socket
import sqlite3
import tempfile
import threading
import time
import urllib.error
import urllib.parse
import urllib.request
from dataclasses import dataclass
from enum import Enum
from pathlib import Path

from repcoach.common.backoff import Backoff
from repcoach.common.endpoints import data_root
from repcoach.common.errors import UserError
from repcoach.common.messages import (
    EndOfStream,
    EventKind,
    FeedbackEvent,
    FramePacket,
    SessionState,
)
from repcoach.common.redact import mask_url
from repcoach.common.specs import Spec
from repcoach.stages.sinks import check_writable
from repcoach.stages.sinks.outbox import DEFAULT_MAX_EVENTS, Outbox, holder_of

log = logging.getLogger(__name__)

EVENT_KINDS = tuple(k.value for k in EventKind)
OPTIONS = {"url", "queue", "kinds", "timeout", "max_queue", "flush"}
EXAMPLE = "--sink webhook:url=http://127.0.0.1:8000/events"
RETRY_STATUSES = {408, 429}
MAX_RETRY_AFTER_S = 300.0
PROBE_TIMEOUT_S = 2.0


# --- options


def check_url(url: str | None) -> str:
    """An http(s) URL with a host and a valid port, or one clear line."""
    if not url:
        raise UserError(f"webhook sink needs a url: {EXAMPLE}")
    parts = urllib.parse.urlsplit(url)
    if parts.scheme not in ("http", "https"):
        raise UserError(f"webhook url {mask_url(url)!r} must start with http:// or https://")
    if not parts.hostname:
        raise UserError(f"webhook url {mask_url(url)!r} has no host; e.g. {EXAMPLE}")
    try:
        port = parts.port  # raises on a port that is not a number in 0-65535
    except ValueError:
        port = 0
    if port == 0:
        raise UserError(f"webhook url {mask_url(url)!r} has a bad port; give 1-65535")
    return url


def parse_kinds(text: str | None) -> frozenset[str]:
    """`rep+cue` -> those kinds (the spec's own separator is the comma)."""
    if not text or text == "all":
        return frozenset(EVENT_KINDS)
    kinds = frozenset(k.strip() for k in text.split("+") if k.strip())
    unknown = sorted(kinds - set(EVENT_KINDS))
    if unknown or not kinds:
        raise UserError(
            f"webhook: kinds={text!r}: unknown {unknown}; join kinds with +, "
            f"valid: {'+'.join(EVENT_KINDS)} or all"
        )
    return kinds


def default_queue(url: str) -> Path:
    """One queue per URL, so the next run to the same app sends what is left."""
    digest = hashlib.sha256(url.encode()).hexdigest()[:12]
    return data_root() / "webhook" / f"{digest}.sqlite"


def _check_creatable(folder: Path, what: str) -> None:
    """`folder` exists and is writable, or its nearest existing parent is."""
    existing = folder
    while not existing.exists() and existing != existing.parent:
        existing = existing.parent
    if not existing.is_dir():
        raise UserError(f"{what} folder {folder} cannot be made: {existing} is not a folder")
    try:
        tempfile.TemporaryFile(dir=existing).close()
    except OSError as exc:
        raise UserError(
            f"{what} folder {folder} cannot be made: {existing} is not writable ({exc.strerror})"
        ) from None


def queue_path(spec: Spec, url: str) -> Path:
    """The queue file, checked writable (creating nothing lasting)."""
    what = "webhook queue"
    if "queue" in spec.options:
        path = check_writable(Path(spec.options["queue"]), f"{what} file")
    else:
        path = default_queue(url)
        _check_creatable(path.parent, what)
        if path.parent.exists():
            check_writable(path, f"{what} file")
    holder = holder_of(path)
    if holder is not None:
        raise UserError(
            f"{what} file {path} is in use by another sink ({holder}); "
            "give this one its own queue=PATH"
        )
    return path


def unreachable_reason(url: str, timeout: float) -> str | None:
    """Why nothing answers at the URL's host and port now (None: it connects)."""
    parts = urllib.parse.urlsplit(url)
    port = parts.port or (443 if parts.scheme == "https" else 80)
    try:
        with socket.create_connection((parts.hostname, port), timeout=timeout):
            return None
    except OSError as exc:
        return exc.strerror or str(exc) or type(exc).__name__


# --- one POST


class Verdict(str, Enum):
    SENT = "sent"
    RETRY = "retry"  # connection error, timeout, 5xx, 408, 429
    REJECT = "reject"  # any other answer: retrying would not change it


@dataclass(frozen=True)
class Outcome:
    """What one POST came to; `wait_s` is the app's Retry-After, if any."""

    verdict: Verdict
    detail: str = ""
    wait_s: float | None = None


class _NoRedirect(urllib.request.HTTPRedirectHandler):
    """A redirected POST would lose its body; report the 3xx instead."""

    def redirect_request(self, req, fp, code, msg, headers, newurl):
        return None


def retry_after_s(value: str | None) -> float | None:
    """`Retry-After` as seconds from now: a number of seconds or an HTTP date."""
    if not value:
        return None
    try:
        seconds = float(value)
    except ValueError:
        try:
            seconds = email.utils.parsedate_to_datetime(value).timestamp() - time.time()
        except (TypeError, ValueError, OverflowError):
            return None
    return min(max(seconds, 0.0), MAX_RETRY_AFTER_S)


class Poster:
    """POSTs one JSON body to the app and classifies the answer."""

    def __init__(self, url: str, timeout: float):
        self.url = url
        self.shown = mask_url(url)  # what log lines say: never the credentials
        self.timeout = timeout
        self._opener = urllib.request.build_opener(_NoRedirect())

    def post(self, event_id: str, body: str) -> Outcome:
        request = urllib.request.Request(
            self.url,
            data=body.encode(),
            method="POST",
            headers={
                "Content-Type": "application/json",
                "Idempotency-Key": event_id,
                "User-Agent": "repcoach-webhook",
            },
        )
        try:
            with self._opener.open(request, timeout=self.timeout) as response:
                response.read()
                return Outcome(Verdict.SENT)
        except urllib.error.HTTPError as error:
            detail = f"HTTP {error.code} {error.reason}"
            error.close()
            if error.code >= 500 or error.code in RETRY_STATUSES:
                return Outcome(
                    Verdict.RETRY, detail, retry_after_s(error.headers.get("Retry-After"))
                )
            if 300 <= error.code < 400:
                where = mask_url(error.headers.get("Location", "?"))
                detail += f", redirected to {where}; point url= at the final address"
            return Outcome(Verdict.REJECT, detail)
        except urllib.error.URLError as error:
            reason = error.reason
            return Outcome(Verdict.RETRY, getattr(reason, "strerror", None) or str(reason))
        except (OSError, http.client.HTTPException) as error:  # timeouts, resets
            return Outcome(Verdict.RETRY, str(error) or type(error).__name__)


# --- the sender thread


class Sender(threading.Thread):
    """Drains the outbox oldest-first, one POST at a time, in its own thread."""

    def __init__(self, outbox: Outbox, poster: Poster):
        super().__init__(name="webhook-sender", daemon=True)
        self.failure: str | None = None  # why the thread stopped early, for tick()
        self.outbox = outbox
        self.poster = poster
        self.backoff = Backoff()
        self.delivered = 0
        self.rejected = 0
        self._queued = threading.Event()  # on_result queued something
        self._finishing = threading.Event()  # close: stop waiting out a backoff
        self._deadline: float | None = None  # set by finish(): flush until then
        self._failing_since: float | None = None

    def wake(self) -> None:
        self._queued.set()

    def finish(self, flush_s: float) -> None:
        """Stop after the queue is empty or `flush_s` seconds, whichever is first."""
        self._deadline = time.monotonic() + flush_s
        self._finishing.set()
        self._queued.set()
        self.join(flush_s + self.poster.timeout + 2.0)

    def _done(self) -> bool:
        return self._deadline is not None and (
            time.monotonic() >= self._deadline or len(self.outbox) == 0
        )

    def _wait(self, seconds: float, until: threading.Event) -> None:
        """Sleep `seconds` (never past the flush deadline) or until `until` is set."""
        if self._deadline is not None:
            seconds = min(seconds, self._deadline - time.monotonic())
        if seconds > 0:
            until.wait(seconds)
        until.clear()

    def run(self) -> None:
        try:
            self._drain()
        except sqlite3.Error as exc:  # the queue file broke (disk full, removed...)
            self.failure = f"could not write the webhook queue {self.outbox.path}: {exc}"

    def _drain(self) -> None:
        while not self._done():
            self._queued.clear()
            head = self.outbox.peek(1)
            if not head:
                self._wait(0.5, until=self._queued)
                continue
            event_id, body = head[0]
            outcome = self.poster.post(event_id, body)
            if outcome.verdict is Verdict.SENT:
                self.outbox.remove([event_id])
                self.delivered += 1
                self._recovered()
            elif outcome.verdict is Verdict.REJECT:
                self.outbox.reject(event_id, outcome.detail)
                self.rejected += 1
                log.warning(
                    "webhook %s refused event %s for good (%s); moved aside in %s",
                    self.poster.shown,
                    event_id,
                    outcome.detail,
                    self.outbox.path,
                )
            else:
                self._failed(outcome.detail)
                delay = outcome.wait_s if outcome.wait_s is not None else self.backoff.next_delay()
                # New events do not cut a backoff short (that would hammer a
                # failing app); close does, once, for a last try.
                self._wait(delay, until=self._finishing)

    def _failed(self, detail: str) -> None:
        if self._failing_since is None:
            self._failing_since = time.monotonic()
            log.warning(
                "webhook %s: %s; %d event(s) wait in %s and are retried with backoff",
                self.poster.shown,
                detail,
                len(self.outbox),
                self.outbox.path,
            )

    def _recovered(self) -> None:
        self.backoff.reset()
        if self._failing_since is not None:
            log.info(
                "webhook %s answers again after %.1f s; %d event(s) still queued",
                self.poster.shown,
                time.monotonic() - self._failing_since,
                len(self.outbox),
            )
            self._failing_since = None


# --- the sink


def event_body(event: FeedbackEvent, packet: FramePacket) -> dict:
    """The JSON an app receives (documented in the README)."""
    return {
        **event.to_wire(),
        "station": packet.meta.station,
        "source": packet.meta.source_id,
        # event ids are `<session>:<seq>:<n>` (coaching/coach.py)
        "session": event.event_id.rsplit(":", 2)[0],
        "time": round(packet.meta.t_wall, 3),  # capture wall clock, Unix seconds
    }


class WebhookSink:
    topics = (b"res",)

    def __init__(
        self,
        url: str,
        outbox: Outbox,
        kinds: frozenset[str] = frozenset(EVENT_KINDS),
        timeout: float = 5.0,
        flush_s: float = 10.0,
    ):
        self.url = url
        self.shown = mask_url(url)  # what log lines say: never the credentials
        self.outbox = outbox
        self.kinds = kinds
        self.flush_s = flush_s
        self.queued = 0
        self.unqueued = 0  # events the queue file refused (disk full, ...)
        self.queue_error: str | None = None  # why, the first time
        self._dropped_before = outbox.dropped
        self._warned_full = False
        self.sender = Sender(outbox, Poster(url, timeout))
        if len(outbox):
            log.info("webhook %s: %d event(s) left by an earlier run", self.shown, len(outbox))
        self.sender.start()

    def drops(self) -> dict[str, int]:
        return {"queue-full": self.dropped, "rejected-by-app": self.sender.rejected}

    @property
    def dropped(self) -> int:
        """Events this run pushed out of a full queue before they were sent."""
        return self.outbox.dropped - self._dropped_before

    def on_state(self, state: SessionState) -> None:
        pass

    def on_result(self, packet: FramePacket) -> None:
        added = False
        for event in packet.events:
            if event.kind in self.kinds:
                body = json.dumps(event_body(event, packet), separators=(",", ":"))
                try:
                    added |= self.outbox.put(event.event_id, body)
                except sqlite3.Error as exc:  # disk full, file gone: lose it, say so
                    self.unqueued += 1
                    if self.queue_error is None:
                        self.queue_error = (
                            f"could not write the webhook queue {self.outbox.path}: {exc}"
                        )
                        log.error("error: %s; events are lost until it can", self.queue_error)
                    continue
                self.queued += 1
        if added:
            self.sender.wake()
            if not self._warned_full and len(self.outbox) >= self.outbox.max_events:
                self._warned_full = True
                log.warning(
                    "webhook %s: queue %s is full (%d events); the oldest are dropped",
                    self.shown,
                    self.outbox.path,
                    self.outbox.max_events,
                )

    def on_eos(self, eos: EndOfStream) -> None:
        pass

    def tick(self) -> None:
        if self.sender.failure is not None:
            raise UserError(self.sender.failure)

    def close(self, missed: int) -> None:
        self.sender.finish(self.flush_s)
        left = len(self.outbox)
        summary = (
            f"webhook {self.shown}: {self.queued} queued, {self.sender.delivered} delivered, "
            f"{self.sender.rejected} rejected, {self.dropped} dropped (queue full)"
        )
        if self.unqueued:
            summary += f", {self.unqueued} lost (queue file refused them)"
        if missed:
            summary += f", {missed} result(s) missed by this sink"
        if left:
            log.warning(
                "%s; %d still queued in %s: the next run with this queue sends them",
                summary,
                left,
                self.outbox.path,
            )
        else:
            log.info("%s; queue empty", summary)
        if not self.sender.is_alive():  # a POST stuck past its timeout keeps the file
            self.outbox.close()
        failure = self.sender.failure or self.queue_error
        if failure is not None:  # the sink (and `pipeline up`) exits non-zero
            raise UserError(
                f"{failure} ({self.unqueued} event(s) never queued; "
                "the events queued before are kept)"
            )


def from_spec(spec: Spec, build: bool) -> WebhookSink | None:
    spec.check_known(OPTIONS)
    url = check_url(spec.options.get("url"))
    kinds = parse_kinds(spec.options.get("kinds"))
    timeout = spec.take_number("timeout", 5.0, 0.1, 120.0)
    flush_s = spec.take_number("flush", 10.0, 0.0, 600.0)
    max_queue = spec.take_number("max_queue", DEFAULT_MAX_EVENTS, 1, 10_000_000)
    if max_queue != int(max_queue):
        raise UserError(f"webhook: max_queue={spec.options['max_queue']} is not a whole number")
    queue = queue_path(spec, url)
    if not build:
        reason = unreachable_reason(url, min(timeout, PROBE_TIMEOUT_S))
        if reason is not None:
            log.warning(
                "warning: webhook %s does not answer now (%s); events wait in %s until it does",
                mask_url(url),
                reason,
                queue,
            )
        return None
    try:
        queue.parent.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UserError(f"webhook queue folder {queue.parent} cannot be made ({exc})") from None
    return WebhookSink(url, Outbox(queue, int(max_queue)), kinds, timeout, flush_s)
