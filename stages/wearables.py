"""Heart rate from chest straps and watches that broadcast the Bluetooth LE
Heart Rate Service (0x180D), read with bumble (a Bluetooth stack in Python:
it drives a USB dongle, the Linux HCI socket, or a software controller).

The wearables stage connects to each configured strap, subscribes to its
Heart Rate Measurement notifications, and hands every reading to the score
stage, which gives it to the strap's member or station. A strap that goes
out of reach is reconnected with backoff; meanwhile a reading of None says
there is a gap, so nobody's heart rate is shown from a stale value.
"""

from __future__ import annotations

import asyncio
import contextlib
import logging
import struct
import time
from collections.abc import Callable
from dataclasses import dataclass

from repcoach.common import transport
from repcoach.common.backoff import Backoff
from repcoach.common.config import Strap
from repcoach.common.errors import UserError
from repcoach.common.messages import MAX_RR, HeartRateSample, encode_plain
from repcoach.common.stage_context import StageContext

log = logging.getLogger(__name__)

HEART_RATE_SERVICE = 0x180D
HEART_RATE_MEASUREMENT = 0x2A37
CONNECT_TIMEOUT_S = 10.0
SETUP_TIMEOUT_S = 10.0  # service discovery and subscription after connecting
BACKOFF = (1.0, 30.0)  # first and longest wait between reconnection attempts
# Readings on their way to the score stage at most: straps send about one a
# second each, so a backlog beyond this means a hostile strap or a stuck stage.
MAX_IN_FLIGHT = 64


@dataclass(frozen=True)
class Measurement:
    bpm: int
    rr: tuple[float, ...]  # seconds


def parse_measurement(data: bytes) -> Measurement | None:
    """A Heart Rate Measurement notification (Bluetooth SIG's format:
    flags, heart rate as 8 or 16 bits, energy expended if flagged, RR
    intervals in 1/1024 s), or None if it is not one."""
    if len(data) < 2:
        return None
    flags, offset = data[0], 1
    wide = flags & 0x01
    if len(data) < offset + (2 if wide else 1):
        return None
    bpm = struct.unpack_from("<H" if wide else "B", data, offset)[0]
    offset += 2 if wide else 1
    if flags & 0x08:  # energy expended: skipped
        offset += 2
    rr: tuple[float, ...] = ()
    if flags & 0x10:
        tail = data[offset:]
        if len(tail) % 2:
            return None
        rr = tuple(v / 1024 for (v,) in struct.iter_unpack("<H", tail))[:MAX_RR]
    if not 0 < bpm < 300 or offset > len(data):
        return None
    return Measurement(bpm, tuple(v for v in rr if v > 0))


async def open_device(spec: str, name: str):
    """A powered-on bumble device on the controller `spec` names (a bumble
    transport), and the transport to close after it."""
    from bumble.device import Device
    from bumble.hci import Address
    from bumble.transport import open_transport

    try:
        hci = await open_transport(spec)
    except (ValueError, OSError, RuntimeError) as error:
        raise UserError(f"--ble {spec}: cannot open the Bluetooth controller ({error})") from None
    device = Device.with_hci(name, Address("F0:00:00:00:00:01"), hci.source, hci.sink)
    await device.power_on()
    return device, hci


async def scan(spec: str, seconds: float) -> list[dict]:
    """Devices heard advertising the Heart Rate Service in `seconds`:
    address, name and signal strength (dBm), strongest first."""
    from bumble.core import UUID, AdvertisingData

    heart_rate = UUID.from_16_bits(HEART_RATE_SERVICE)
    device, hci = await open_device(spec, "repcoach-scan")
    found: dict[str, dict] = {}

    def heard(advertisement) -> None:
        try:
            data = advertisement.data
            kinds = (
                AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                AdvertisingData.COMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
            )
            uuids = [u for kind in kinds for group in data.get_all(kind) for u in group]
            if heart_rate not in uuids:
                return
            name = data.get(AdvertisingData.COMPLETE_LOCAL_NAME) or ""
            address = str(advertisement.address).split("/")[0]
            rssi = int(advertisement.rssi)
        except (TypeError, ValueError, AttributeError):  # a garbled advertisement
            return
        found[address] = {"address": address, "name": str(name)[:64], "rssi": rssi}

    device.on("advertisement", heard)
    try:
        await device.start_scanning()
        await asyncio.sleep(seconds)
        await device.stop_scanning()
    finally:
        await hci.close()
    return sorted(found.values(), key=lambda d: -d["rssi"])


class StrapReader:
    """Follows one strap: connect, subscribe, pass each reading on; when it
    drops, say so (`None`) and try again with backoff."""

    def __init__(self, device, strap: Strap, report: Callable[[Strap, Measurement | None], None]):
        self.device, self.strap, self.report = device, strap, report
        self.malformed = 0  # notifications that were not heart-rate measurements

    async def run(self, connecting: asyncio.Lock) -> None:
        from bumble.core import BaseBumbleError

        backoff = Backoff(*BACKOFF)
        while True:
            try:
                async with connecting:  # one LE connection attempt at a time
                    connection = await asyncio.wait_for(
                        self.device.connect(self.strap.address), CONNECT_TIMEOUT_S
                    )
                gone = asyncio.Event()
                connection.on("disconnection", lambda _reason, gone=gone: gone.set())
                await asyncio.wait_for(self._subscribe(connection), SETUP_TIMEOUT_S)
                log.info("strap %s connected", self.strap.address)
                backoff.reset()
                await gone.wait()
                log.warning("strap %s disconnected", self.strap.address)
            except (BaseBumbleError, TimeoutError, OSError, ValueError) as error:
                log.warning("strap %s: %s", self.strap.address, error or type(error).__name__)
            self.report(self.strap, None)
            await asyncio.sleep(backoff.next_delay())

    async def _subscribe(self, connection) -> None:
        from bumble.device import Peer
        from bumble.gatt import UUID

        peer = Peer(connection)
        services = await peer.discover_service(UUID.from_16_bits(HEART_RATE_SERVICE))
        if not services:
            raise ValueError("no heart rate service")
        await services[0].discover_characteristics()
        found = services[0].get_characteristics_by_uuid(UUID.from_16_bits(HEART_RATE_MEASUREMENT))
        if not found:
            raise ValueError("no heart rate measurement")
        await found[0].subscribe(self._notified)

    def _notified(self, value: bytes) -> None:
        measurement = parse_measurement(bytes(value))
        if measurement is None:
            self.malformed += 1
            return
        self.report(self.strap, measurement)


class Wearables:
    """The wearables stage: reads every strap and sends each reading to the
    score stage's request socket (a request each, answered; readings arrive
    about once a second)."""

    def __init__(self, ctx: StageContext):
        self.ctx = ctx
        self.score_at = ctx.config.endpoints().connect("snapshot")
        self.readers: list[StrapReader] = []
        self.sending: set[asyncio.Task] = set()

    def run(self) -> None:
        asyncio.run(self._main())

    async def _main(self) -> None:
        device = hci = None
        tasks: list[asyncio.Task] = []
        self.ctx.tick()  # reported in: capture waits for every stage
        try:
            backoff = Backoff(*BACKOFF)
            while device is None and not self.ctx.should_stop():
                try:
                    device, hci = await open_device(self.ctx.config.ble, "repcoach")
                except UserError as error:  # no dongle yet: keep trying, said once a try
                    log.warning("%s; retrying", error)
                    await self._pause(backoff.next_delay())
            if device is not None:
                connecting = asyncio.Lock()
                self.readers = [StrapReader(device, s, self._send) for s in self.ctx.config.straps]
                tasks = [asyncio.create_task(r.run(connecting)) for r in self.readers]
            while not self.ctx.should_stop():
                self.ctx.stats.dropped["malformed"] = sum(r.malformed for r in self.readers)
                await self._pause(0.2)
        finally:
            for task in tasks:
                task.cancel()
            with contextlib.suppress(asyncio.CancelledError):
                await asyncio.gather(*tasks, return_exceptions=True)
            if hci is not None:
                with contextlib.suppress(Exception):  # closing a controller that went away
                    await hci.close()

    async def _pause(self, seconds: float) -> None:
        deadline = time.monotonic() + seconds
        while time.monotonic() < deadline and not self.ctx.should_stop():
            self.ctx.tick()
            await asyncio.sleep(min(0.2, seconds))

    def _send(self, strap: Strap, measurement: Measurement | None) -> None:
        sample = HeartRateSample(
            strap=strap.address,
            member=strap.member,
            station=strap.station,
            bpm=None if measurement is None else measurement.bpm,
            rr=() if measurement is None else measurement.rr,
            t_wall=time.time(),
        )
        self.ctx.stats.received()
        if len(self.sending) >= MAX_IN_FLIGHT:  # a strap notifying far too fast, or score stuck
            self.ctx.stats.drop("backlog")
            return
        task = asyncio.create_task(self._deliver(sample))
        self.sending.add(task)
        task.add_done_callback(self.sending.discard)

    async def _deliver(self, sample: HeartRateSample) -> None:
        body = encode_plain(sample.to_plain())
        reply = await asyncio.to_thread(transport.request, self.score_at, body, 2.0)
        if reply is None:
            self.ctx.stats.drop("score-unreachable")
        else:
            self.ctx.stats.emitted()
