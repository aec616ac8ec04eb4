"""An emulated heart-rate strap for tests: bumble's software controllers on
a virtual link, one holding a strap that advertises the Heart Rate Service
and notifies a rising heart rate twice a second, the other offered to the
pipeline as `tcp-client:127.0.0.1:PORT`.

    python strap_emulator.py PORT ADDRESS [--drop-after S --away S]

Prints `ready` once the pipeline may connect, then one JSON line per event:
{"t": wall time, "bpm": N} per notification sent, {"t", "dropped": true}
when it cuts the link (`--drop-after` seconds after its first subscriber)
and {"t", "back": true} when it advertises again `--away` seconds later.
"""

from __future__ import annotations

import argparse
import asyncio
import json
import struct
import time

from bumble.controller import Controller
from bumble.core import AdvertisingData
from bumble.device import Device
from bumble.hci import Address
from bumble.host import Host
from bumble.link import LocalLink
from bumble.profiles.heart_rate_service import HeartRateService
from bumble.transport import open_transport
from bumble.transport.common import AsyncPipeSink


def say(**fields) -> None:
    print(json.dumps({"t": time.time(), **fields}), flush=True)


async def main(port: int, address: str, drop_after: float | None, away: float) -> None:
    link = LocalLink()
    pipeline_side = await open_transport(f"tcp-server:127.0.0.1:{port}")
    Controller(
        "pipeline", host_source=pipeline_side.source, host_sink=pipeline_side.sink, link=link
    )
    controller = Controller("strap", link=link, public_address=address)
    strap = Device(address=Address(address), host=Host(controller, AsyncPipeSink(controller)))
    bpm = [90]
    service = HeartRateService(
        read_heart_rate_measurement=lambda _connection: HeartRateService.HeartRateMeasurement(
            bpm[0], rr_intervals=[60 / bpm[0]]
        )
    )
    strap.add_service(service)
    strap.advertising_data = bytes(
        AdvertisingData(
            [
                (AdvertisingData.COMPLETE_LOCAL_NAME, b"Test Strap"),
                (
                    AdvertisingData.INCOMPLETE_LIST_OF_16_BIT_SERVICE_CLASS_UUIDS,
                    struct.pack("<H", 0x180D),
                ),
            ]
        )
    )
    await strap.power_on()
    await strap.start_advertising(auto_restart=True)
    print("ready", flush=True)
    first_subscriber: float | None = None
    dropped = False
    while True:
        await asyncio.sleep(0.5)
        subscribed = bool(strap.connections)
        if subscribed and first_subscriber is None:
            first_subscriber = time.monotonic()
        since = time.monotonic() - first_subscriber if first_subscriber else 0.0
        if drop_after is not None and not dropped and first_subscriber and since > drop_after:
            dropped = True
            await strap.stop_advertising()
            for connection in list(strap.connections.values()):
                await connection.disconnect()
            say(dropped=True)
            await asyncio.sleep(away)
            await strap.start_advertising(auto_restart=True)
            say(back=True)
            continue
        if subscribed:
            bpm[0] = min(bpm[0] + 1, 180)
            await strap.notify_subscribers(service.heart_rate_measurement_characteristic)
            say(bpm=bpm[0])


if __name__ == "__main__":
    parser = argparse.ArgumentParser()
    parser.add_argument("port", type=int)
    parser.add_argument("address")
    parser.add_argument("--drop-after", type=float)
    parser.add_argument("--away", type=float, default=3.0)
    args = parser.parse_args()
    asyncio.run(main(args.port, args.address, args.drop_after, args.away))
