"""`make demo`: a guided tour. Until the device lab exists it validates and lists the example inventory."""

from __future__ import annotations

from pathlib import Path

from canteen_ops.cli.app import run


def main() -> int:
    example = str(Path(__file__).resolve().parent.parent / "inventory.example.yaml")
    for argv in (["-i", example, "inventory", "validate"], ["-i", example, "inventory", "list"]):
        print(f"\n$ canteen-ops {' '.join(argv)}", flush=True)
        rc = run(argv)
        if rc:
            return rc
    return 0


if __name__ == "__main__":
    raise SystemExit(main())
