"""Choices made by name (`--segmenter`, `--joints`, `--sink`, the source
kinds `--source` names by its form, the stage kinds of the pipeline graph):
the one registry style. Each name points at a
factory, `module:function`, imported only when that name is used (Mask
R-CNN's module pulls in TensorFlow when it builds; a sink's, its own
libraries). Segmenter and sink factories take the parsed `Spec` and `build`:
with `build=False` they check the options and create nothing, so a command
can validate all its choices before starting any process."""

from __future__ import annotations

import importlib
from collections.abc import Callable, Mapping
from typing import Any

from repcoach.common.errors import UserError


class Registry:
    """Names of one kind of thing (`what`: "sink", "segmenter") and where
    each one's factory lives."""

    def __init__(self, what: str, factories: Mapping[str, str]):
        self.what = what
        self._factories = dict(factories)

    @property
    def names(self) -> tuple[str, ...]:
        return tuple(self._factories)

    def factory(self, name: str) -> Callable[..., Any]:
        """The factory for `name`; a UserError listing the valid names if
        there is none."""
        where = self._factories.get(name)
        if where is None:
            raise UserError(f"unknown {self.what} {name!r}; valid: {', '.join(self.names)}")
        module, _, function = where.partition(":")
        return getattr(importlib.import_module(module), function)
