"""What the recorder (drivers/recorder.py, capture.py) and the replay (lab/replay.py) must agree on: the capture
file's format name and how an ONVIF request is keyed (its operation). Here, because the drivers and the lab never
import each other (tests/drivers/test_independence.py)."""

from __future__ import annotations

import re

CAPTURE_FORMAT = "canteen-ops-capture/1"
SOAP_SCAN = 65536  # an operation is the Body's first element: never further into a request than this

_OPERATION = re.compile(rb"<(?:[\w.-]+:)?Body\b[^>]*>\s*<(?:[\w.-]+:)?([A-Za-z]\w*)", re.S)


def soap_operation(body: bytes) -> str | None:
    """The local name of the first element inside the SOAP Body (the ONVIF operation), read without parsing."""
    m = _OPERATION.search(body[:SOAP_SCAN])
    return m.group(1).decode("ascii") if m else None
