"""The registry style shared by segmenters and sinks."""

import pytest

from repcoach.common.errors import UserError
from repcoach.common.registry import Registry
from repcoach.stages.segmenters import SEGMENTERS
from repcoach.stages.sinks import SINKS


def test_an_unknown_name_lists_the_valid_ones():
    with pytest.raises(UserError, match=r"unknown segmenter 'yolo'; valid: blazepose, maskrcnn"):
        SEGMENTERS.factory("yolo")
    with pytest.raises(UserError, match=r"unknown sink 'fax'; valid: console, jsonl, summary"):
        SINKS.factory("fax")


def test_every_registered_factory_can_be_found():
    for registry in (SEGMENTERS, SINKS):
        for name in registry.names:
            assert callable(registry.factory(name)), name


def test_a_factory_is_imported_only_when_asked_for():
    lazy = Registry("thing", {"real": "json:dumps", "missing": "no_such_module_xyz:f"})
    assert lazy.factory("real")([1]) == "[1]"
    with pytest.raises(ModuleNotFoundError):
        lazy.factory("missing")
