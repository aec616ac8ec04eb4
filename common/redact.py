"""Secrets out of log lines: one helper for every URL that may carry them.

    mask_url("https://user:pw@host:8443/hook/T0KENabc123456/x?token=abc#k")
    -> "https://***@host:8443/hook/***/x?token=***#***"

What is masked: the user-info part (user and password), every query value,
the fragment, and path segments that look like tokens (12 or more
characters mixing letters and digits, as Slack- and Discord-style webhook
URLs carry). The scheme, host, port and the plain path stay, so a log line
still says where the request went.
"""

from __future__ import annotations

import re
import urllib.parse

MASK = "***"
_TOKEN_SEGMENT = re.compile(r"^(?=.*[A-Za-z])(?=.*\d)[\w.~%+=-]{12,}$")
_URL_IN_TEXT = re.compile(r"\b[a-zA-Z][a-zA-Z0-9+.-]*://[^\s'\"<>]+")


def mask_url(url: str) -> str:
    """`url` with its secrets replaced by `***` (see the module docstring)."""
    try:
        parts = urllib.parse.urlsplit(url)
    except ValueError:
        return MASK
    netloc = parts.netloc
    if "@" in netloc:
        netloc = MASK + "@" + netloc.rsplit("@", 1)[1]
    path = "/".join(MASK if _TOKEN_SEGMENT.match(s) else s for s in parts.path.split("/"))
    query = "&".join(
        (item.split("=", 1)[0] + "=" + MASK) if "=" in item else MASK
        for item in parts.query.split("&")
        if item
    )
    fragment = MASK if parts.fragment else ""
    return urllib.parse.urlunsplit((parts.scheme, netloc, path, query, fragment))


def mask_secrets(text: str) -> str:
    """`text` with every URL in it masked by `mask_url`."""
    return _URL_IN_TEXT.sub(lambda m: mask_url(m.group(0)), text)
