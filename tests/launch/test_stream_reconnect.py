"""A network camera that drops is reconnected with backoff, and logged.

The camera is a real HTTP server on 127.0.0.1 streaming MJPEG
(multipart/x-mixed-replace), the format most IP cameras offer.
"""

from __future__ import annotations

import http.server
import os
import signal
import threading
import time

import cv2
import numpy as np

from tests.conftest import stage_report


class MjpegCamera:
    def __init__(self, port: int = 0):
        stopped = self.stopped = threading.Event()
        self.clients = 0  # connections being served now
        camera = self

        class Handler(http.server.BaseHTTPRequestHandler):
            def do_GET(self):
                camera.clients += 1
                try:
                    self._stream()
                finally:
                    camera.clients -= 1

            def _stream(self):
                self.send_response(200)
                self.send_header("Content-Type", "multipart/x-mixed-replace; boundary=frame")
                self.end_headers()
                count = 0
                while not stopped.is_set():
                    image = np.full((240, 320, 3), count % 250, np.uint8)
                    jpeg = cv2.imencode(".jpg", image)[1].tobytes()
                    head = (
                        "--frame\r\nContent-Type: image/jpeg\r\n"
                        f"Content-Length: {len(jpeg)}\r\n\r\n"
                    )
                    try:
                        self.wfile.write(head.encode() + jpeg + b"\r\n")
                    except OSError:
                        return
                    count += 1
                    time.sleep(1 / 30)

            def log_message(self, *args):
                pass

        self.httpd = http.server.ThreadingHTTPServer(("127.0.0.1", port), Handler)
        self.port = self.httpd.server_address[1]
        threading.Thread(target=self.httpd.serve_forever, daemon=True).start()

    def stop(self):
        self.stopped.set()
        self.httpd.shutdown()
        self.httpd.server_close()


def frames_read(status) -> int:
    return (stage_report(status, "capture")["report"] or {}).get("frames_in", 0)


def test_http_camera_that_drops_is_reconnected(pipeline, run_root):
    camera = MjpegCamera()
    url = f"http://127.0.0.1:{camera.port}/stream.mjpg"
    up = pipeline.start(
        "up", "--source", url, "--segmenter", "passthrough", "--joints", "none", "--no-console"
    )
    try:
        status = pipeline.wait_for(lambda s: frames_read(s) >= 30, timeout=60, what="30 frames")
        assert status["policy"] == "latest"
        camera.stop()
        log = run_root / "default" / "logs" / "capture.log"
        pipeline.wait_for(lambda s: "reconnecting" in log.read_text(), timeout=30, what="a retry")
        before = frames_read(pipeline.status())
        camera = MjpegCamera(port=camera.port)
        pipeline.wait_for(
            lambda s: frames_read(s) >= before + 30, timeout=60, what="frames after reconnecting"
        )
        assert "stopped delivering frames; reconnecting in" in log.read_text()
    finally:
        camera.stop()
    os.killpg(up.pid, signal.SIGINT)
    assert up.wait(30) == 130
