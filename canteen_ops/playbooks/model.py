"""Playbook files: YAML with name, description, targets, variables and steps, validated with line numbers.

A step is one built-in task plus common keys:

    - name: 发现故障            # optional; shown in the timeline
      check: {only: [reachable, login], open_incidents: true}
      target: {device: [xc-nvr-01]}   # optional; overrides the playbook's targets
      on_failure: continue      # stop (default) | continue
      timeout: 120              # seconds (default 600)
      expect: crit              # a drill expects to find the fault: that status counts as success

Every task except wait / prompt / assert runs one canteen-ops command, so a playbook step does exactly what the
same command typed by hand would do (see `tasks.py`).
"""

from __future__ import annotations

import re
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

from canteen_ops.errors import InvalidFile
from canteen_ops.inventory.loader import _Validator
from canteen_ops.inventory.yamlpos import read_input_file
from canteen_ops.playbooks.tasks import SELECTION_KEYS, TASKS

STEP_KEYS = {"name", "target", "on_failure", "timeout", "expect"}
TOP_KEYS = {"name", "description", "kind", "targets", "variables", "steps"}
STATUSES = ("ok", "warn", "crit", "unknown")
VAR_RE = re.compile(r"\{\{\s*([A-Za-z_][A-Za-z0-9_]*)\s*\}\}")
BUILTIN_VARS = ("operator", "date", "now")


@dataclass
class Step:
    index: int  # 1-based, as people count
    name: str
    task: str
    args: Any
    target: dict[str, list[str]] | None
    on_failure: str = "stop"
    timeout: float = 600.0
    expect: tuple[str, ...] = ()
    line: int = 0


@dataclass
class Playbook:
    path: str
    name: str
    description: str
    kind: str  # "job" or "drill"
    targets: dict[str, list[str]]
    variables: dict[str, str]
    steps: list[Step] = field(default_factory=list)


def load_playbook(path: str | Path) -> Playbook:
    data, positions, problems = read_input_file(path, "playbook")
    v = _Validator(str(path), positions)
    v.problems.extend(problems)
    book = _build(v, data if data is not None else {}, Path(path).stem)
    if v.problems:
        raise InvalidFile(sorted(set(v.problems), key=lambda p: (p.line, p.column, p.path)))
    return book


def _selection(v: _Validator, raw: Any, path: tuple) -> dict[str, list[str]]:
    m = v.mapping(raw, path, SELECTION_KEYS)
    out = {}
    for key, value in m.items():
        if key in SELECTION_KEYS and (lst := v.str_list(value, path + (key,))) is not None:
            out[key] = list(lst)
    return out


def _build(v: _Validator, data: Any, stem: str) -> Playbook:
    root = v.mapping(data, (), TOP_KEYS, required=("steps",))
    name = v.string(root, "name", ()) or stem
    kind = v.string(root, "kind", ()) or "job"
    if kind not in ("job", "drill"):
        v.problem(("kind",), "invalid kind {kind!r}: expected job or drill", kind=kind)
    targets = _selection(v, root.get("targets") or {}, ("targets",))
    variables: dict[str, str] = {}
    for key, value in v.mapping(root.get("variables") or {}, ("variables",), set(root.get("variables") or {})
                                ).items():
        if isinstance(value, (dict, list)) or value is None:
            v.problem(("variables", key), "a variable must be a string, number or boolean")
        else:
            variables[str(key)] = str(value).lower() if isinstance(value, bool) else str(value)
    _check_vars(v, targets, ("targets",), variables, "targets")
    steps_raw = root.get("steps")
    if steps_raw is not None and v.typed(steps_raw, ("steps",), list, "a list of steps") is None:
        steps_raw = []
    steps: list[Step] = []
    for i, raw in enumerate(steps_raw or []):
        p = ("steps", i)
        m = v.mapping(raw, p, STEP_KEYS | set(TASKS))
        tasks = [k for k in m if k in TASKS]
        label = f"step {i + 1}" + (f" ({m['name']})" if isinstance(m.get("name"), str) else "")
        if len(tasks) != 1:
            v.problem(p, "{label}: give exactly one task ({tasks}), found {found}" if tasks
                      else "{label}: give exactly one task ({tasks})", label=label, tasks=", ".join(TASKS),
                      found=", ".join(tasks))
            continue
        task = tasks[0]
        spec = TASKS[task]
        for problem_path, message in spec.validate(m[task], p + (task,)):
            v.problem(problem_path, "{label}: {text}", label=label, text=message)
        _check_vars(v, m[task], p + (task,), variables, label)
        on_failure = m.get("on_failure", "stop")
        if on_failure not in ("stop", "continue"):
            v.problem(p + ("on_failure",), "{label}: on_failure must be stop or continue, got {on_failure!r}",
                      label=label, on_failure=on_failure)
        timeout = 600.0
        if m.get("timeout") is not None:
            timeout = v.positive(m["timeout"], p + ("timeout",)) or timeout
        expect: tuple[str, ...] = ()
        if m.get("expect") is not None:
            expect = v.str_list(m["expect"], p + ("expect",)) or ()
            bad = [s for s in expect if s not in STATUSES]
            if bad:
                v.problem(p + ("expect",), "{label}: expect must be among {statuses}, got {bad}", label=label,
                          statuses=', '.join(STATUSES), bad=bad)
        target = _selection(v, m["target"], p + ("target",)) if m.get("target") is not None else None
        if target:
            _check_vars(v, target, p + ("target",), variables, label)
        if target is not None and not spec.selects:
            v.problem(p + ("target",), "{label}: task {task!r} does not take a target", label=label, task=task)
        steps.append(Step(index=i + 1, name=str(m.get("name") or task), task=task, args=m[task],
                          target=target, on_failure=on_failure, timeout=timeout, expect=tuple(expect),
                          line=v.positions.at(p).line))
    if steps_raw == []:
        v.problem(("steps",), "a playbook needs at least one step")
    return Playbook(path=v.file, name=name, description=v.string(root, "description", ()) or "", kind=kind,
                    targets=targets, variables=variables, steps=steps)


def _check_vars(v: _Validator, value: Any, path: tuple, variables: dict[str, str], label: str) -> None:
    if isinstance(value, str):
        for var in VAR_RE.findall(value):
            if var not in variables and var not in BUILTIN_VARS:
                v.problem(path, "{label}: unknown variable {var!r} (define it under variables:)", label=label, var=var)
    elif isinstance(value, dict):
        for k, item in value.items():
            _check_vars(v, item, path + (k,), variables, label)
    elif isinstance(value, list):
        for i, item in enumerate(value):
            _check_vars(v, item, path + (i,), variables, label)


def substitute(value: Any, variables: dict[str, str]) -> Any:
    if isinstance(value, str):
        return VAR_RE.sub(lambda m: variables.get(m.group(1), m.group(0)), value)
    if isinstance(value, dict):
        return {k: substitute(v, variables) for k, v in value.items()}
    if isinstance(value, list):
        return [substitute(v, variables) for v in value]
    return value
