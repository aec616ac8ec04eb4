"""Reading a gym's stations from a TOML file: what it gives, and one line
for each way it can be wrong."""

from __future__ import annotations

import pytest

from repcoach.common.config import Station
from repcoach.common.errors import UserError
from repcoach.launch.gym_file import read_gym_file


def _read(tmp_path, text: str):
    path = tmp_path / "gym.toml"
    path.write_text(text)
    return read_gym_file(path)


def test_stations_options_and_sinks(tmp_path):
    gym = _read(
        tmp_path,
        'workers = 3\nrealtime = true\nsinks = ["console"]\n'
        '[[station]]\nname = "rack1"\nsource = "camera0"\nexercise = "squat"\n'
        'sinks = ["video:path=r.mp4"]\n'
        '[[station]]\nsource = "rtsp://user:pw@10.0.0.9/s1"\n'
        '[[station]]\nsource = "rtsp://10.0.0.9/s2"\n',
    )
    assert gym.stations == (
        Station("rack1", "camera0", "squat"),
        Station("10.0.0.9", "rtsp://user:pw@10.0.0.9/s1"),  # the host's name, not the password
        Station("10.0.0.9-2", "rtsp://10.0.0.9/s2"),
    )
    assert (gym.workers, gym.realtime, gym.name, gym.summary) == (3, True, None, None)
    assert gym.sinks == (("console", None), ("video:path=r.mp4", "rack1"))


def test_heart_rate_straps_and_check_in(tmp_path):
    gym = _read(
        tmp_path,
        'ble = "usb:0"\ncheckin_hold_s = 90\n[[station]]\nname = "rack1"\nsource = "camera0"\n'
        '[[strap]]\naddress = "C0:11:22:33:44:55"\nmember = "alice"\n'
        '[[strap]]\naddress = "C0:11:22:33:44:66"\nstation = "rack1"\n',
    )
    assert (gym.ble, gym.checkin_hold_s) == ("usb:0", 90)
    assert gym.straps == ("C0:11:22:33:44:55=alice", "C0:11:22:33:44:66@rack1")


@pytest.mark.parametrize(
    ("text", "message"),
    [
        ("workers = 2\n", "give each station as [[station]]"),
        ('[[station]]\nname = "a"\n', 'station 1: needs source = "cameraN, a file or a URL"'),
        ('[[station]]\nsource = "x"\ncolour = 1\n', "station 1: unknown key(s) ['colour']"),
        ('[[station]]\nsource = "x"\nstation = 1\n', "station 1: unknown key(s) ['station']"),
        ('workers = "2"\n[[station]]\nsource = "x"\n', "workers must be a int, got '2'"),
        ('workers = true\n[[station]]\nsource = "x"\n', "workers must be a int, got True"),
        ('workers = -1\n[[station]]\nsource = "x"\n', "workers must be 0 to 64, got -1"),
        ('sinks = "console"\n[[station]]\nsource = "x"\n', "sinks must be a list of texts"),
        ('[[station]]\nname = "a"\nsource = "x"\n[[station]]\nname = "a"\nsource = "y"\n',
         "station 'a' is named twice"),
        ('[[station]]\nname = "rack one"\nsource = "x"\n', "station name 'rack one': use up to 32"),
        ("[[station]\n", "is not valid TOML"),
        ('checkin_hold_s = 0\n[[station]]\nsource = "x"\n', "checkin_hold_s must be 1 to 86400"),
        ('[[station]]\nsource = "x"\n[[strap]]\naddress = "C0:11:22:33:44:55"\n',
         "strap 1: give its address and either member or station"),
        ('[[station]]\nsource = "x"\n[[strap]]\naddress = "x"\nmember = "a"\nstation = "b"\n',
         "strap 1: give its address and either member or station"),
        ('[[station]]\nsource = "x"\n[[strap]]\naddress = 1\nmember = "a"\n',
         "strap 1: address must be a str"),
    ],
)  # fmt: skip
def test_a_wrong_file_is_one_line(tmp_path, text, message):
    with pytest.raises(UserError, match=None) as raised:
        _read(tmp_path, text)
    assert message in str(raised.value) and "\n" not in str(raised.value)


def test_a_missing_file_is_one_line(tmp_path):
    with pytest.raises(UserError, match="cannot read it"):
        read_gym_file(tmp_path / "none.toml")
