"""The built-in playbook tasks and how each becomes a canteen-ops command line.

Arguments mirror the command's own flags (`open_incidents: true` → `--open-incidents`), so the CLI reference is
also the playbook reference. wait / prompt / assert are handled by the runner itself.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

SELECTION_KEYS = {"school", "device", "kind", "vendor", "area", "tag"}
INTERNAL = ("wait", "prompt", "assert")


@dataclass(frozen=True)
class TaskSpec:
    name: str
    actions: dict[str, tuple[str, ...]]  # action → command words; the first action is the default
    options: dict[str, type | tuple] = field(default_factory=dict)  # arg key → accepted type(s)
    positional: tuple[str, ...] = ()  # arg keys passed as positional arguments, in order
    required: tuple[str, ...] = ()
    selects: bool = False  # takes the selection flags (playbook targets / step target)
    shorthand: str | None = None  # `note: "lens cleaned"` fills this key

    def normalize(self, args: Any) -> dict[str, Any]:
        if args is None:
            return {}
        if not isinstance(args, dict):
            return {self.shorthand: args} if self.shorthand else {"__invalid__": args}
        return dict(args)

    def validate(self, raw: Any, path: tuple) -> list[tuple[tuple, str]]:
        """(path, message) for each problem, in the reader's language (problems are shown, never stored)."""
        from canteen_ops.i18n import _

        args = self.normalize(raw)
        problems = []
        if "__invalid__" in args:
            return [(path, _("task {name!r} takes a mapping of arguments").format(name=self.name))]
        allowed = set(self.options) | set(self.positional) | ({"action"} if len(self.actions) > 1 else set())
        for key, value in args.items():
            if key not in allowed:
                problems.append((path + (key,), _("unknown argument {key!r} for task {name!r} (allowed: {allowed})")
                                 .format(key=key, name=self.name, allowed=", ".join(sorted(allowed)) or "-")))
                continue
            if key == "action":
                if value not in self.actions:
                    problems.append((path + (key,), _("action must be one of {actions}").format(
                        actions=", ".join(self.actions))))
                continue
            kind = self.options.get(key, (str, int, float))
            if kind is list:
                ok = isinstance(value, (list, str)) and all(isinstance(x, (str, int)) for x in
                                                             (value if isinstance(value, list) else [value]))
            elif kind is bool:
                ok = isinstance(value, bool)
            else:
                ok = isinstance(value, kind) and not isinstance(value, bool)
            if not ok:
                want = {list: _("a list"), bool: _("true or false"), str: _("a string")}.get(kind, _("a value"))
                problems.append((path + (key,), _("argument {key!r} must be {want}").format(key=key, want=want)))
        for key in self.required:
            if key not in args:
                problems.append((path, _("task {name!r} needs argument {key!r}").format(name=self.name, key=key)))
        return problems

    def argv(self, raw: Any, target: dict[str, list[str]] | None) -> list[str]:
        args = self.normalize(raw)
        action = args.pop("action", next(iter(self.actions)))
        argv = list(self.actions[action])
        argv += [str(args.pop(k)) for k in self.positional if k in args]
        for key, value in args.items():
            flag = "--" + key.replace("_", "-")
            if isinstance(value, bool):
                if value:
                    argv.append(flag)
            elif isinstance(value, list):
                for item in value:
                    argv += [flag, str(item)]
            else:
                argv += [flag, str(value)]
        if self.selects and target:
            for key in sorted(target):
                for item in target[key]:
                    argv += [f"--{key}", item]
        return argv


_NUM = (int, float)
TASKS: dict[str, TaskSpec] = {t.name: t for t in (
    TaskSpec("check", {"run": ("check",)},
             {"only": list, "skip": list, "open_incidents": bool, "workers": int, "deadline": _NUM,
              "all": bool}, selects=True),
    TaskSpec("backup", {"run": ("backup", "run"), "verify": ("backup", "verify"), "list": ("backup", "list"),
                        "prune": ("backup", "prune")},
             {"stale": str, "keep_last": int, "keep_days": _NUM, "dry_run": bool, "workers": int,
              "deadline": _NUM}, selects=True),
    TaskSpec("snapshot", {"take": ("snapshot", "take"), "drift": ("snapshot", "drift")}, selects=True),
    TaskSpec("firmware", {"check": ("firmware", "check")}, {"catalog": str, "workers": int}, selects=True),
    TaskSpec("sync", {"push": ("sync",), "status": ("sync", "status")},
             {"upstream": str, "dry_run": bool, "batch_size": int}),
    TaskSpec("report", {"make": ("report",)},
             {"from": str, "to": str, "format": str, "output": str, "school": list}),
    TaskSpec("note", {"add": ("log", "add")}, {"kind": str, "device": str, "school": str},
             positional=("text",), required=("text",), shorthand="text"),
    TaskSpec("incident", {"open": ("incident", "open"), "ack": ("incident", "ack"),
                          "arrive": ("incident", "arrive"), "resolve": ("incident", "resolve")},
             {"level": str, "title": str, "device": str, "school": str, "description": str, "note": str,
              "resolution": str}),
    TaskSpec("lab-fault", {"set": ("lab", "fault")}, {"clear": bool, "dir": str},
             positional=("device", "fault"), required=("device",)),
    TaskSpec("wait", {"wait": ()}, {"seconds": _NUM}, required=("seconds",), shorthand="seconds"),
    TaskSpec("prompt", {"prompt": ()}, {"message": str, "default": str, "choices": list, "var": str},
             required=("message",), shorthand="message"),
    TaskSpec("assert", {"assert": ()}, {"step": str, "status": list, "incident_device": str,
                                         "incident_level": str, "within_deadline": bool}),
)}
