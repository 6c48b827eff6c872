"""Every validation error class: one message per problem, with file:line:column and the field path."""

from __future__ import annotations

import pytest

from canteen_ops.errors import InvalidFile, NotFound
from canteen_ops.inventory import yamlpos
from canteen_ops.inventory.loader import load_inventory, parse_inventory
from tests.inventory_fixtures import BASE, assert_problem, one_problem, pos, problems_of, write

HEAD = """\
version: 1
credentials:
  hik: {username: admin, password_env: HIK_PW}
schools:
  - id: s1
    name: 第一小学
    devices:
"""


def school(devices: str, head: str = HEAD) -> str:
    return head + devices


def test_problem_string_format(tmp_path):
    text = school("      - {id: c1, kind: camera, vendor: onvif, host: 10.0.0.1, port: 70000}\n")
    p = one_problem(tmp_path, text)
    line, col = pos(text, "70000")
    assert str(p) == f"{tmp_path / 'inventory.yaml'}:{line}:{col}: schools[0].devices[0].port: port 70000 out of range 1-65535"


def test_yaml_syntax_error(tmp_path):
    text = HEAD + "      - id: c1\n       kind: camera\n"
    p = one_problem(tmp_path, text)
    assert p.message.startswith("YAML syntax error:") and p.path == ""
    assert p.line == pos(text, "kind: camera")[0]


def test_yaml_unclosed_flow(tmp_path):
    text = HEAD + "      - {id: c1, kind: camera\n"
    p = one_problem(tmp_path, text)
    assert "YAML syntax error" in p.message
    assert p.line == text.count("\n") + 1  # the end of the stream, where the parser gave up


def test_unknown_key_with_suggestion(tmp_path):
    text = school("      - {id: c1, kind: camera, vendor: onvif, host: 10.0.0.1, prot: 8080}\n")
    assert_problem(one_problem(tmp_path, text), text, "prot:", "schools[0].devices[0].prot",
                   "unknown key 'prot' (did you mean 'port'?)")


def test_unknown_key_without_suggestion_and_at_top_level(tmp_path):
    text = "colour: blue\n" + school("      - {id: c1, kind: camera, vendor: onvif, host: 10.0.0.1}\n")
    p = one_problem(tmp_path, text)
    assert_problem(p, text, "colour", "colour", "unknown key 'colour'")
    assert "did you mean" not in p.message


def test_unknown_key_in_school_and_credentials(tmp_path):
    text = """\
version: 1
credentials:
  hik: {username: admin, pasword: hunter22}
schools:
  - id: s1
    name: 第一小学
    adress: 北京
    devices: []
"""
    probs = problems_of(tmp_path, text)
    assert len(probs) == 2, probs  # the typo is reported once: no extra "no password source" message
    assert_problem(probs[0], text, "pasword", "credentials.hik.pasword", "did you mean 'password'?")
    assert_problem(probs[1], text, "adress", "schools[0].adress", "did you mean 'address'?")
    assert all("hunter22" not in str(p) for p in probs)


def test_duplicate_key(tmp_path):
    text = school("      - id: c1\n        kind: camera\n        vendor: onvif\n        host: 10.0.0.1\n"
                  "        host: 10.0.0.2\n")
    assert_problem(one_problem(tmp_path, text), text, "host", "schools[0].devices[0].host",
                   "duplicate key 'host'", occurrence=2)


def test_duplicate_school_id(tmp_path):
    text = school("      - {id: c1, kind: camera, vendor: onvif, host: 10.0.0.1}\n"
                  "  - id: s1\n    name: 另一所\n    devices: []\n")
    p = one_problem(tmp_path, text)
    assert_problem(p, text, "s1", "schools[1].id", "duplicate school id 's1'", occurrence=2)
    line, col = pos(text, "s1")
    assert f"first defined at {tmp_path / 'inventory.yaml'}:{line}:{col}" in p.message


def test_duplicate_device_id_across_schools(tmp_path):
    text = school("      - {id: c1, kind: camera, vendor: onvif, host: 10.0.0.1}\n"
                  "  - id: s2\n    name: 另一所\n    devices:\n"
                  "      - {id: c1, kind: camera, vendor: onvif, host: 10.0.0.2}\n")
    p = one_problem(tmp_path, text)
    assert_problem(p, text, "c1", "schools[1].devices[0].id", "duplicate device id 'c1'", occurrence=2)
    assert "first defined at" in p.message and f":{pos(text, 'c1')[0]}:" in p.message


def test_invalid_ids(tmp_path):
    text = school("      - {id: 'cam 1', kind: camera, vendor: onvif, host: 10.0.0.1}\n")
    assert_problem(one_problem(tmp_path, text), text, "'cam 1'", "schools[0].devices[0].id", "invalid id 'cam 1'")


@pytest.mark.parametrize("host", ["10.0.0.256", "cam_1.local", "-bad.example", "1.2.3"])
def test_bad_host(tmp_path, host):
    text = school(f"      - {{id: c1, kind: camera, vendor: onvif, host: '{host}'}}\n")
    assert_problem(one_problem(tmp_path, text), text, f"'{host}'", "schools[0].devices[0].host",
                   f"invalid host {host!r}")


@pytest.mark.parametrize("host", ["10.0.0.1", "::1", "fe80::1", "cam-1.school.example", "localhost"])
def test_good_hosts(host):
    parse_inventory(school(f"      - {{id: c1, kind: camera, vendor: onvif, host: '{host}'}}\n"))


@pytest.mark.parametrize("value, message", [
    ("'80'", "expected a port number (integer), got string '80'"),
    ("true", "expected a port number (integer), got boolean True"),
    ("80.5", "expected a port number (integer), got number 80.5"),
    ("0", "port 0 out of range 1-65535"),
    ("65536", "port 65536 out of range 1-65535"),
    ("-1", "port -1 out of range 1-65535"),
])
@pytest.mark.parametrize("key", ["port", "rtsp_port"])
def test_bad_port(tmp_path, key, value, message):
    text = school(f"      - {{id: c1, kind: camera, vendor: onvif, host: 10.0.0.1, {key}: {value}}}\n")
    assert_problem(one_problem(tmp_path, text), text, f"{key}: {value}", f"schools[0].devices[0].{key}", message,
                   shift=len(key) + 2)


def test_bad_port_in_defaults_and_group(tmp_path):
    text = """\
version: 1
defaults: {port: 0}
groups:
  g: {rtsp_port: '554'}
schools: []
"""
    probs = problems_of(tmp_path, text)
    assert [p.path for p in probs] == ["defaults.port", "groups.g.rtsp_port"]
    assert (probs[0].line, probs[0].column) == pos(text, "0}")
    assert (probs[1].line, probs[1].column) == pos(text, "'554'")


@pytest.mark.parametrize("field, value, message", [
    ("timeout", "fast", "expected a number, got string 'fast'"),
    ("timeout", "0", "must be greater than 0, got 0"),
    ("https", "'maybe'", "expected true or false, got string 'maybe'"),
    ("tags", "5", "expected a list of strings, got integer 5"),
    ("name", "[a, b]", "expected a string, got list"),
])
def test_wrong_types_on_device(tmp_path, field, value, message):
    text = school(f"      - {{id: c1, kind: camera, vendor: onvif, host: 10.0.0.1, {field}: {value}}}\n")
    assert_problem(one_problem(tmp_path, text), text, f"{field}: {value}", f"schools[0].devices[0].{field}",
                   message, shift=len(field) + 2)


def test_nvr_channel_type(tmp_path):
    text = school("      - {id: n, kind: nvr, vendor: onvif, host: 10.0.0.9}\n"
                  "      - {id: c1, kind: camera, vendor: onvif, host: 10.0.0.1, nvr: n, nvr_channel: 'one'}\n")
    assert_problem(one_problem(tmp_path, text), text, "'one'", "schools[0].devices[1].nvr_channel",
                   "expected a channel number (integer), got string 'one'")


def test_tag_items_must_be_strings(tmp_path):
    text = school("      - {id: c1, kind: camera, vendor: onvif, host: 10.0.0.1, tags: [ok, 7]}\n")
    assert_problem(one_problem(tmp_path, text), text, "7]", "schools[0].devices[0].tags[1]",
                   "expected a string, got integer 7")


def test_wrong_container_types(tmp_path):
    text = """\
version: 1
credentials: [a, b]
groups: a-string
schools:
  - id: s1
    name: 第一小学
    contacts: 王建国
    devices: {id: c1}
  - just-a-string
"""
    probs = problems_of(tmp_path, text)
    got = [(p.path, p.message) for p in probs]
    assert got == [
        ("credentials", "expected a mapping of named credential sets, got list"),
        ("groups", "expected a mapping of named groups, got string 'a-string'"),
        ("schools[0].contacts", "expected a list of contacts, got string '王建国'"),
        ("schools[0].devices", "expected a list of devices, got mapping"),
        ("schools[1]", "expected a mapping, got string"),
    ]
    assert (probs[0].line, probs[0].column) == pos(text, "[a, b]")
    assert (probs[4].line, probs[4].column) == pos(text, "just-a-string")


def test_schools_must_be_a_list_and_root_a_mapping(tmp_path):
    text = "version: 1\nschools: {s1: x}\n"
    assert_problem(one_problem(tmp_path, text), text, "{s1", "schools", "expected a list of schools, got mapping")
    text = "- a\n- b\n"
    p = one_problem(tmp_path, text)
    assert (p.line, p.column, p.message) == (1, 1, "expected a mapping, got list")


def test_empty_file(tmp_path):
    probs = problems_of(tmp_path, "")
    assert [(p.line, p.message) for p in probs] == [(1, "missing required key 'version'"),
                                                    (1, "missing required key 'schools'")]


def test_missing_required_keys(tmp_path):
    text = """\
version: 1
credentials:
  hik: {password_env: HIK_PW}
schools:
  - id: s1
    devices:
      - {id: c1, kind: camera, host: 10.0.0.1}
      - id: c2
        vendor: onvif
        kind:
        host: 10.0.0.2
  - name: 无编号
    devices: []
"""
    probs = problems_of(tmp_path, text)
    got = [(p.line, p.column, p.path, p.message) for p in probs]
    assert got == [
        (*pos(text, "{password_env"), "credentials.hik", "missing required key 'username'"),
        (*pos(text, "id: s1"), "schools[0]", "missing required key 'name'"),
        (*pos(text, "{id: c1"), "schools[0].devices[0]", "missing required key 'vendor'"),
        (*pos(text, "id: c2"), "schools[0].devices[1]", "missing required key 'kind'"),  # `kind:` is null
        (*pos(text, "name: 无编号"), "schools[1]", "missing required key 'id'"),
    ]


def test_dangling_credentials_and_group(tmp_path):
    text = """\
version: 1
credentials:
  hik: {username: admin, password_env: HIK_PW}
defaults: {credentials: dahua}
groups:
  g: {credentials: nope}
schools:
  - id: s1
    name: 第一小学
    group: missing-group
    devices:
      - {id: c1, kind: camera, vendor: onvif, host: 10.0.0.1, credentials: hikk}
"""
    probs = problems_of(tmp_path, text)
    assert [(p.line, p.column, p.path) for p in probs] == [
        (*pos(text, "dahua"), "defaults.credentials"),
        (*pos(text, "nope"), "groups.g.credentials"),
        (*pos(text, "missing-group"), "schools[0].group"),
        (*pos(text, "hikk"), "schools[0].devices[0].credentials"),
    ]
    assert probs[0].message == "unknown credentials 'dahua' (defined: hik)"
    assert probs[2].message == "unknown group 'missing-group' (defined: g)"


def test_dangling_nvr(tmp_path):
    text = school("      - {id: c1, kind: camera, vendor: onvif, host: 10.0.0.1, nvr: nvr-x, nvr_channel: 1}\n")
    assert_problem(one_problem(tmp_path, text), text, "nvr-x", "schools[0].devices[0].nvr", "unknown nvr 'nvr-x'")


def test_nvr_of_wrong_kind_and_other_school(tmp_path):
    text = school("      - {id: c0, kind: camera, vendor: onvif, host: 10.0.0.9}\n"
                  "      - {id: c1, kind: camera, vendor: onvif, host: 10.0.0.1, nvr: c0, nvr_channel: 1}\n"
                  "  - id: s2\n    name: 第二小学\n    devices:\n"
                  "      - {id: n2, kind: nvr, vendor: dahua, host: 10.0.2.1}\n"
                  "      - {id: c2, kind: camera, vendor: dahua, host: 10.0.2.2, nvr: n1, nvr_channel: 1}\n"
                  "  - id: s3\n    name: 第三小学\n    devices:\n"
                  "      - {id: n1, kind: nvr, vendor: dahua, host: 10.0.3.1}\n"
                  "      - {id: n3, kind: nvr, vendor: dahua, host: 10.0.3.2, nvr: n1}\n")
    probs = problems_of(tmp_path, text)
    assert [(p.line, p.column, p.path, p.message) for p in probs] == [
        (*pos(text, "c0,", 2), "schools[0].devices[1].nvr", "device 'c0' is a camera, not an nvr"),
        (*pos(text, "n1,"), "schools[1].devices[1].nvr", "nvr 'n1' belongs to another school"),
        (*pos(text, "n1}"), "schools[2].devices[1].nvr", "an nvr cannot itself be attached to an nvr"),
    ]


def test_nvr_channel_without_nvr(tmp_path):
    text = school("      - {id: c1, kind: camera, vendor: onvif, host: 10.0.0.1, nvr_channel: 3}\n")
    assert_problem(one_problem(tmp_path, text), text, "3}", "schools[0].devices[0].nvr_channel",
                   "nvr_channel needs nvr")


def test_nvr_channel_below_one(tmp_path):
    text = school("      - {id: n, kind: nvr, vendor: onvif, host: 10.0.0.9}\n"
                  "      - {id: c1, kind: camera, vendor: onvif, host: 10.0.0.1, nvr: n, nvr_channel: 0}\n")
    assert_problem(one_problem(tmp_path, text), text, "0}", "schools[0].devices[1].nvr_channel",
                   "channel numbers start at 1, got 0")


def test_duplicate_nvr_channel(tmp_path):
    text = school("      - {id: n, kind: nvr, vendor: hikvision, host: 10.0.0.9}\n"
                  "      - {id: c1, kind: camera, vendor: hikvision, host: 10.0.0.1, nvr: n, nvr_channel: 4}\n"
                  "      - {id: c2, kind: camera, vendor: hikvision, host: 10.0.0.2, nvr: n, nvr_channel: 4}\n")
    p = one_problem(tmp_path, text)
    assert_problem(p, text, "4}", "schools[0].devices[2].nvr_channel", "channel 4 of 'n' is already used at",
                   occurrence=2)
    assert p.message.endswith(":%d:%d" % pos(text, "4}"))


@pytest.mark.parametrize("field, value, choices", [
    ("kind", "dome", "camera, nvr"), ("vendor", "uniview", "hikvision, dahua, onvif"),
])
def test_bad_enums(tmp_path, field, value, choices):
    dev = {"kind": "camera", "vendor": "onvif"}
    dev[field] = value
    text = school(f"      - {{id: c1, kind: {dev['kind']}, vendor: {dev['vendor']}, host: 10.0.0.1}}\n")
    assert_problem(one_problem(tmp_path, text), text, value, f"schools[0].devices[0].{field}",
                   f"invalid {field} {value!r}: expected one of {choices}")


@pytest.mark.parametrize("value, shown", [
    ("2023-13-45", "'2023-13-45'"), ("yesterday", "'yesterday'"), ("2023-08-20 10:00:00", "datetime"),
    ("20230820", "20230820"),
])
def test_bad_dates(tmp_path, value, shown):
    text = school(f"      - {{id: c1, kind: camera, vendor: onvif, host: 10.0.0.1, installed: {value}}}\n")
    p = one_problem(tmp_path, text)
    assert_problem(p, text, value, "schools[0].devices[0].installed", "expected a date (YYYY-MM-DD), got")
    assert shown in p.message


@pytest.mark.parametrize("wh, needle, path, message", [
    ("{start: '25:00'}", "'25:00'", "start", "expected a time HH:MM, got '25:00'"),
    ("{start: 8}", "8}", "start", 'expected a time HH:MM, got 8 (write hours as HH:MM, e.g. "08:00")'),
    ("{end: 24:00}", "24:00", "end", "expected a time HH:MM, got 24:00"),
    ("{days: [mon, funday]}", "[mon", "days", "unknown weekday(s) funday: use mon..sun"),
    ("{start: '18:00', end: '08:00'}", "'08:00'", "end", "end 08:00 must be after start 18:00"),
    ("{timezone: Mars/Olympus}", "Mars", "timezone", "unknown time zone 'Mars/Olympus'"),
    ("{start: '08:00', lunch: '12:00'}", "lunch", "lunch", "unknown key 'lunch'"),
    ("weekdays", "weekdays", "", "expected a mapping, got string"),
    ("{closed: ['2026-10-07..2026-10-01']}", "'2026-10-07", "closed[0]",
     "range ends (2026-10-01) before it starts (2026-10-07)"),
    ("{closed: [2026-10-01, '2026-13-01']}", "'2026-13", "closed[1]", "expected a date (YYYY-MM-DD), got '2026-13-01'"),
    ("{closed: '2026-10-01'}", "'2026", "closed", "expected a list, got string"),
    ("{open_days: [2026-09-27, soon]}", "soon", "open_days[1]", "expected a date (YYYY-MM-DD), got 'soon'"),
])
def test_bad_working_hours(tmp_path, wh, needle, path, message):
    text = HEAD.replace("    devices:\n", f"    working_hours: {wh}\n    devices: []\n")
    full = "schools[0].working_hours" + (f".{path}" if path else "")
    assert_problem(one_problem(tmp_path, text), text, needle, full, message)


def test_working_hours_end_before_inherited_start(tmp_path):
    text = "version: 1\ndefaults:\n  working_hours: {start: '08:00'}\n" \
           "schools:\n  - id: s\n    name: S\n    working_hours: {end: '07:00'}\n    devices: []\n"
    assert_problem(one_problem(tmp_path, text), text, "{end", "schools[0].working_hours",
                   "working hours end 07:00 must be after start 08:00")


@pytest.mark.parametrize("policy, needle, path, message", [
    ("{clock_warn: 5}", "clock_warn", "clock_warn", "unknown key 'clock_warn' (did you mean 'clock_warn_s'?)"),
    ("{clock_warn_s: soon}", "soon", "clock_warn_s", "expected a number, got string 'soon'"),
    ("{clock_warn_s: -1}", "-1", "clock_warn_s", "must not be negative, got -1"),
    ("{retention_crit_days: true}", "true", "retention_crit_days", "expected a number, got boolean True"),
    ("{min_resolution: 1080p}", "1080p", "min_resolution", "expected WIDTHxHEIGHT such as 1920x1080, got '1080p'"),
    ("{frozen_frames: 2.5}", "2.5", "frozen_frames", "expected an integer, got number 2.5"),
    ("{frozen_frames: 0}", "0}", "frozen_frames", "must be at least 1, got 0"),
    ("{required_areas: [加工区, 3]}", "3]", "required_areas[1]", "expected a string, got integer 3"),
    ("[clock_warn_s]", "[clock", "", "expected a mapping, got list"),
    ("{skip_checks: [storage, disk]}", "[storage", "skip_checks", "unknown device check 'disk'; known: reachable, "
     "login, facts, clock, ntp, storage, channels, retention, gaps, stream, picture"),
])
def test_bad_policy(tmp_path, policy, needle, path, message):
    text = HEAD.replace("    devices:\n", f"    policy: {policy}\n    devices: []\n")
    full = "schools[0].policy" + (f".{path}" if path else "")
    assert_problem(one_problem(tmp_path, text), text, needle, full, message)


@pytest.mark.parametrize("version", ["2", "'1'", "1.0"])
def test_unsupported_version(tmp_path, version):
    text = f"version: {version}\nschools: []\n"
    assert_problem(one_problem(tmp_path, text), text, version, "version", "unsupported inventory version")


def test_settings_block(tmp_path):
    inv = parse_inventory("version: 1\nsettings: {backup_dir: /srv/backups, timezone: Asia/Urumqi, "
                          "upstream_url: 'https://d.example/db'}\nschools: []\n")
    assert inv.settings.backup_dir == "/srv/backups" and inv.settings.timezone == "Asia/Urumqi"
    assert inv.settings.upstream_token_env == "CANTEEN_OPS_UPSTREAM_TOKEN"
    text = "version: 1\nsettings:\n  timezone: Nowhere/City\n  backup_directory: /x\nschools: []\n"
    probs = problems_of(tmp_path, text)
    assert [(p.path, p.line) for p in probs] == [("settings.timezone", 3), ("settings.backup_directory", 4)]
    assert "did you mean 'backup_dir'" in probs[1].message


@pytest.mark.parametrize("cred, found", [
    ("{username: admin}", ""),
    ("{username: admin, password_env: PW, password_file: /x}", " (found password_env, password_file)"),
])
def test_credentials_need_exactly_one_password_source(tmp_path, cred, found):
    text = f"version: 1\ncredentials:\n  c: {cred}\nschools: []\n"
    assert_problem(one_problem(tmp_path, text), text, "{username", "credentials.c",
                   "give exactly one of password_env, password_file or password" + found)


def test_password_env_must_be_a_name_and_is_not_echoed(tmp_path):
    text = "version: 1\ncredentials:\n  c: {username: admin, password_env: 'Hik@12345!'}\nschools: []\n"
    p = one_problem(tmp_path, text)
    assert_problem(p, text, "'Hik@", "credentials.c.password_env", "name of an environment variable")
    assert "Hik@12345!" not in str(p)


@pytest.mark.parametrize("value", ["987654321", "[Sup3rS3cret, x]", "{Sup3rS3cret: 1}", "2024-01-02", "true"])
def test_plaintext_password_of_wrong_type_is_never_echoed(tmp_path, value):
    text = f"version: 1\ncredentials:\n  c: {{username: admin, password: {value}}}\nschools: []\n"
    p = one_problem(tmp_path, text)
    assert p.path == "credentials.c.password" and p.message.startswith("expected a string, got ")
    assert (p.line, p.column) == pos(text, value)
    for fragment in ("987654321", "Sup3rS3cret", "2024", "True", "true"):
        assert fragment not in str(p)


def test_plaintext_password_is_a_warning_with_file_and_line(tmp_path):
    text = "version: 1\ncredentials:\n  c:\n    username: admin\n    password: Hik12345\nschools: []\n"
    f = write(tmp_path, text)
    inv = load_inventory(f)
    assert inv.credentials["c"].password == "Hik12345"
    assert inv.warnings == (f"{f}:5:15: credentials 'c' has a plaintext password; "
                            "use password_env or password_file instead",)
    assert "Hik12345" not in inv.warnings[0]


def test_every_problem_is_reported_once_and_sorted(tmp_path):
    text = """\
version: 1
schools:
  - id: s1
    name: 第一小学
    devices:
      - {id: c1, kind: dome, vendor: onvif, host: 10.0.0.999, port: 0}
      - {id: c1, kind: camera, vendor: acme, host: 10.0.0.2, nvr: ghost}
"""
    probs = problems_of(tmp_path, text)
    assert [p.path for p in probs] == [
        "schools[0].devices[0].kind", "schools[0].devices[0].host", "schools[0].devices[0].port",
        "schools[0].devices[1].id", "schools[0].devices[1].vendor", "schools[0].devices[1].nvr",
    ]
    assert len({(p.line, p.column, p.path) for p in probs}) == len(probs)
    assert [p.line for p in probs] == sorted(p.line for p in probs)


def test_python_tags_are_refused(tmp_path):
    text = school("      - {id: c1, kind: !!python/object/apply:os.system [echo hi], vendor: onvif, host: h}\n")
    p = one_problem(tmp_path, text)
    assert "YAML syntax error" in p.message
    assert p.line == pos(text, "!!python")[0]


def test_recursive_alias(tmp_path):
    text = "version: 1\nschools: &s [*s]\n"
    p = one_problem(tmp_path, text)
    assert "recursive alias" in p.message and p.line == 2


def test_alias_bomb_is_contained(tmp_path, monkeypatch):
    monkeypatch.setattr(yamlpos, "MAX_NODES", 5000)
    lines = ['a0: &a0 ["x","x","x","x","x","x","x","x","x","x"]']
    lines += [f"a{i}: &a{i} [" + ", ".join([f"*a{i - 1}"] * 10) + "]" for i in range(1, 8)]
    p = one_problem(tmp_path, "\n".join(lines) + "\n")
    assert "document too large after expanding aliases" in p.message


def test_missing_file_is_not_found(tmp_path):
    with pytest.raises(NotFound, match="inventory file not found"):
        load_inventory(tmp_path / "nope.yaml")


def test_undecodable_file(tmp_path):
    f = tmp_path / "inv.yaml"
    f.write_bytes(b"version: 1\nschools: []\nname: \xff\xfe\n")
    with pytest.raises(InvalidFile, match="save it as UTF-8") as exc:
        load_inventory(f)
    assert (exc.value.problems[0].line, exc.value.problems[0].column) == (3, 7)


def test_base_fixture_is_valid():
    assert len(parse_inventory(BASE).devices) == 5


def test_a_user_name_with_a_line_break_is_refused(tmp_path):
    """It goes into Authorization headers: a line break would end the header and start one of its own."""
    text = HEAD.replace("username: admin", 'username: "admin\\r\\nX-Injected: 1"') + \
        "      - {id: c1, kind: camera, vendor: hikvision, host: 10.0.0.1, credentials: hik}\n"
    assert_problem(one_problem(tmp_path, text), text, "\"admin", "credentials.hik.username",
                   "the user name contains a line break or another control character")


# --- errors that name the likely cause ------------------------------------------------------------------------
def test_tab_indentation_is_named(tmp_path):
    text = school("      - {id: c1, kind: camera, vendor: onvif, host: 10.0.0.1}\n").replace(
        "    name: 第一小学", "\tname: 第一小学")
    p = one_problem(tmp_path, text)
    assert "indented with a tab" in p.message and "spaces" in p.message
    assert p.line == text.splitlines().index("\tname: 第一小学") + 1


@pytest.mark.parametrize("encoding, says", [("gbk", "GBK"), ("utf-16", "UTF-16"), ("utf-16-le", "UTF-16")])
def test_a_file_not_saved_as_utf8_is_named(tmp_path, encoding, says):
    text = school("      - {id: c1, kind: camera, vendor: onvif, host: 10.0.0.1, area: 烹饪区}\n")
    p = tmp_path / "inventory.yaml"
    p.write_bytes(text.encode(encoding))
    with pytest.raises(InvalidFile) as exc:
        load_inventory(p)
    [problem] = exc.value.problems
    assert says in problem.message and "save it as UTF-8" in problem.message
    if encoding == "gbk":
        assert problem.line == text.splitlines().index("    name: 第一小学") + 1  # the first non-UTF-8 byte


@pytest.mark.parametrize("host, expect", [
    ("http://10.0.0.1", "host: 10.0.0.1"),
    ("https://cam.example:8443/ISAPI", "host: cam.example, port: 8443, https: true"),
    ("10.0.0.1:8000", "host: 10.0.0.1, port: 8000"),
    ("cam2.s1.example:80", "host: cam2.s1.example, port: 80"),
])
def test_host_with_a_scheme_or_port_says_use_port(tmp_path, host, expect):
    p = one_problem(tmp_path, school(f"      - {{id: c1, kind: camera, vendor: onvif, host: '{host}'}}\n"))
    assert p.path.endswith("host") and "use `port:`" in p.message and expect in p.message


@pytest.mark.parametrize("host", ["admin:Sekr1t-77@10.0.0.1", "http://admin:Sekr1t-77@10.0.0.1:80/",
                                  "admin@10.0.0.1"])
def test_password_in_host_is_named_and_never_echoed(tmp_path, cli, host):
    text = school(f"      - {{id: c1, kind: camera, vendor: onvif, host: '{host}'}}\n")
    p = one_problem(tmp_path, text)
    assert "user name or password" in p.message and "Sekr1t" not in str(p) and host not in str(p)
    r = cli("-i", tmp_path / "inventory.yaml", "inventory", "validate")
    assert r.code == 65 and "password" in r.err and "Sekr1t" not in r.out + r.err
