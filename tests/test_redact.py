"""The redaction layers: values (log rows, upstream rows) and everything the CLI writes to the terminal."""

from __future__ import annotations

import io
import json
import sys

from canteen_ops import redact
from canteen_ops.redact import MASK, RedactingStream, redact_text, remember_secret


def test_values_mask_secret_keys_urls_and_inline_passwords():
    assert redact.redact({"password": "x1y2z3", "url": "rtsp://admin:pw123@10.0.0.1/1", "n": 3}) == {
        "password": MASK, "url": f"rtsp://admin:{MASK}@10.0.0.1/1", "n": 3}
    assert redact_text("login failed password=hunter22 for admin") == f"login failed password={MASK} for admin"


def test_known_secrets_among_many_are_all_masked_longest_first(monkeypatch):
    monkeypatch.setattr(redact, "_KNOWN", set())
    for i in range(1000):  # a 1,000-device run knows 1,000 passwords
        remember_secret(f"Fleet-Pw-{i:04d}")
    remember_secret("Kit")  # the shortest that counts
    remember_secret("Kitchen-7")  # contains a shorter known secret: masked whole
    text = "a Fleet-Pw-0042, b Fleet-Pw-0999 c Kitchen-7 d Kit e Fleet-Pw- f"
    assert redact.mask_known(text) == f"a {MASK}, b {MASK} c {MASK} d {MASK} e Fleet-Pw- f"
    remember_secret("Late-Added-Pw")  # the index follows additions
    assert redact.mask_known("x Late-Added-Pw") == f"x {MASK}"
    assert redact.mask_known("no secret here, ab") == "no secret here, ab"
    assert redact.mask_known("extra one", secrets=("extra",)) == f"{MASK} one"


def test_terminal_stream_masks_known_secrets_and_keeps_json_valid():
    remember_secret("Kitchen-Cam-Pw-7")
    buf = io.StringIO()
    out = RedactingStream(buf)
    doc = {"device": "s1-cam01", "summary": "device said: bad password Kitchen-Cam-Pw-7",
           "faults": {"wrong-password": True}, "uri": "rtsp://admin:Kitchen-Cam-Pw-7@127.0.1.5/1"}
    out.write(json.dumps(doc) + "\n")
    text = buf.getvalue()
    assert "Kitchen-Cam-Pw-7" not in text
    back = json.loads(text)  # masking never breaks the document a script parses
    assert back["faults"] == {"wrong-password": True} and back["uri"] == f"rtsp://admin:{MASK}@127.0.1.5/1"
    assert out.getvalue() == text  # everything else is the wrapped stream's


def test_cli_wraps_stdout_and_stderr_only_while_it_runs(cli, monkeypatch):
    remember_secret("Leaky-Secret-42")
    from canteen_ops.cli import app

    seen = {}

    def fake_run(argv):
        seen["types"] = (type(sys.stdout).__name__, type(sys.stderr).__name__)
        import typer

        print("echoed by some library: Leaky-Secret-42")
        typer.echo("typer.echo: Leaky-Secret-42")  # click resolves its own stream: must still be ours
        print("error: Leaky-Secret-42", file=sys.stderr)
        return 0

    monkeypatch.setattr(app, "_run", fake_run)
    r = cli("anything")
    assert seen["types"] == ("RedactingStream", "RedactingStream")
    assert "Leaky-Secret-42" not in r.out + r.err and MASK in r.out and MASK in r.err
    assert type(sys.stdout).__name__ != "RedactingStream"
