"""canteen-ops: field toolkit for school-canteen (明厨亮灶) video surveillance."""

import sys

__version__ = "0.1.0"

# httpx's package imports its own command-line client (httpx._main: click, rich.console, rich.progress, pygments),
# ~50 ms at every start of every command, before the first device is asked anything. We never run that client;
# marking the module absent makes httpx define its stub instead, exactly as when its CLI extras are not installed.
sys.modules.setdefault("httpx._main", None)
