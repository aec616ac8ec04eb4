"""`name:key=value,key=value` option strings, as used by `--source synthetic:...`
and `--segmenter passthrough:jitter_ms=5-40`."""

from __future__ import annotations

import json
import os
from dataclasses import dataclass, field
from pathlib import Path

from repcoach.common.errors import UserError


@dataclass(frozen=True)
class Spec:
    """A parsed option string: a name and its keyword options (all strings)."""

    name: str
    options: dict[str, str] = field(default_factory=dict)

    @classmethod
    def parse(cls, text: str, what: str, secret: bool = False) -> Spec:
        """`secret`: the options may hold secrets (a webhook's URL or token),
        so an error names the bad option by position instead of quoting it."""
        name, _, rest = text.partition(":")
        options: dict[str, str] = {}
        items = [part.strip() for part in rest.split(",") if part.strip()]
        for position, item in enumerate(items, 1):
            key, sep, value = item.partition("=")
            if not sep or not key:
                shown = f"option {position} of {len(items)}" if secret else f"option {item!r}"
                raise UserError(
                    f"{what} {name.strip() if secret else text!r}: {shown} is not key=value"
                )
            options[key.strip()] = value.strip()
        return cls(name.strip(), options)

    def save(self, path: Path) -> None:
        """Into a new file only its owner may read (the options may hold secrets)."""
        path.unlink(missing_ok=True)  # a file left by an earlier run keeps its mode
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w", encoding="utf-8") as handle:
            json.dump({"name": self.name, "options": self.options}, handle)

    @classmethod
    def load(cls, path: Path) -> Spec:
        """What `save` wrote: the options as they were parsed, never re-parsed
        from text (a path with a comma stays one path)."""
        try:
            data = json.loads(path.read_text(encoding="utf-8"))
            name, options = data["name"], data["options"]
            if not isinstance(name, str) or not all(
                isinstance(k, str) and isinstance(v, str) for k, v in options.items()
            ):
                raise TypeError("names and options must be text")
        except (OSError, ValueError, KeyError, TypeError, AttributeError) as exc:
            raise UserError(f"options file {path} is unreadable ({exc})") from None
        return cls(name, dict(options))

    def take(self, key: str, default: str, allowed: set[str] | None = None) -> str:
        value = self.options.get(key, default)
        if allowed is not None and value not in allowed:
            raise UserError(f"{self.name}: {key}={value!r} is not one of {sorted(allowed)}")
        return value

    def take_number(self, key: str, default: float, lo: float, hi: float) -> float:
        raw = self.options.get(key)
        if raw is None:
            return default
        try:
            value = float(raw)
        except ValueError:
            raise UserError(f"{self.name}: {key}={raw!r} is not a number") from None
        if not lo <= value <= hi:
            raise UserError(f"{self.name}: {key}={raw} is outside [{lo:g}, {hi:g}]")
        return value

    def check_known(self, known: set[str]) -> None:
        unknown = set(self.options) - known
        if unknown:
            raise UserError(
                f"{self.name}: unknown option(s) {sorted(unknown)}; valid: {sorted(known)}"
            )
