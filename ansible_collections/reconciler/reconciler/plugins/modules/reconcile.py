#!/usr/bin/python
# Copyright: reconciler developers
# MIT License
"""Ansible module: run ``reconcile`` so that one Docker daemon's images match images.yaml."""

from __future__ import annotations

DOCUMENTATION = r"""
---
module: reconcile
short_description: Make a Docker host's images match an images.yaml manifest
version_added: 0.1.0
description:
  - Runs the C(reconcile) command against one Docker daemon. C(reconcile apply) makes the daemon's
    images match the manifest (pull, tag, untag, remove); in check mode C(reconcile plan) shows what
    would change and changes nothing.
  - C(reconcile) never removes an image a container uses, holds the daemon's lock while it applies,
    and explains every step; see its README for the manifest format and its exit codes.
  - The task reports C(changed) when steps were done (in check mode, when steps would be done), and
    fails when C(reconcile) exits with anything else than success, carrying its JSON report, exit
    code and standard error.
author:
  - reconciler developers
requirements:
  - The C(reconcile) command on the machine the module runs on (with O(docker_host), that machine
    need not be the Docker host itself).
options:
  manifest:
    description:
      - Paths of C(images.yaml) manifests on the machine the module runs on.
      - Each is applied (or planned) in its own C(reconcile) run, in the order given; all of them run
        even when one fails.
    type: list
    elements: path
    required: true
    aliases: [manifests]
  docker_host:
    description:
      - The Docker daemon, as C(docker -H) takes it (C(unix://), C(tcp://), C(ssh://)).
      - Default C($DOCKER_HOST) of the module's environment (set it with the task's C(environment)),
        then the local socket.
    type: str
  state_dir:
    description:
      - Where C(reconcile) keeps the run history and the usage state (C(--state-dir)).
      - Default C($RECONCILE_STATE_DIR), then C($XDG_STATE_HOME/reconciler), then
        C(~/.local/state/reconciler) of the user the module runs as.
    type: path
  lock_dir:
    description:
      - Directory of the per-daemon lock files (C($RECONCILE_LOCK_DIR)); default C(/run/lock) when
        writable, else the state directory. Every C(reconcile) working on one daemon must share it.
    type: path
  lock_timeout:
    description:
      - Seconds to wait for another C(reconcile apply) on the same daemon to finish (C(--lock-timeout)).
        With C(0) a held lock fails the task at once (exit code 75). Check mode takes no lock.
    type: float
    default: 0
  pull_timeout:
    description: Seconds one pull may take, retries included (C(--pull-timeout)); default C(reconcile)'s.
    type: float
  parallelism:
    description: Pulls run at once on the daemon (C(--parallelism)); default C(reconcile)'s.
    type: int
  max_removals:
    description: Fail, doing nothing, when the plan removes more than this many images (C(--max-removals)).
    type: int
  allow_large_removal:
    description: Go ahead even when the plan removes more than O(max_removals) or the manifest's
      C(max_removal_percent) allow (C(--allow-large-removal)).
    type: bool
    default: false
  metrics_file:
    description: Write Prometheus text-format metrics of each apply to this file (C(--metrics-file)).
      With several manifests, each run replaces the file.
    type: path
  executable:
    description: The C(reconcile) command to run; default the one on C(PATH).
    type: path
attributes:
  check_mode:
    description: Runs C(reconcile plan --detailed-exitcode); nothing on the daemon changes.
    support: full
  diff_mode:
    description: Shows the plan (check mode) or the steps done and their outcomes (apply).
    support: full
notes:
  - To converge many Docker hosts from one controller, give each inventory host
    C(ansible_connection=local) and its own O(docker_host) (C(ssh://user@host) or C(tcp://) with TLS);
    Ansible's forks then run the hosts at once, each under its own daemon lock.
  - To run the module on the managed hosts themselves, install C(reconcile) there and copy the
    manifest first (M(ansible.builtin.copy)).
  - Variables the manifest uses (C(${REGISTRY})) and registry credentials
    (C(RECONCILE_REGISTRY_USER), C(RECONCILE_REGISTRY_PASSWORD)) come from the task's C(environment).
"""

EXAMPLES = r"""
- name: Build hosts have the images of images.yaml
  reconciler.reconciler.reconcile:
    manifest: /etc/reconciler/images.yaml
    lock_timeout: 300

- name: Every Docker host of the inventory, reached from the controller
  hosts: docker_hosts
  connection: local
  gather_facts: false
  tasks:
    - name: Converge the host's images
      reconciler.reconciler.reconcile:
        manifest:
          - manifests/base.yaml
          - "manifests/{{ group_names | first }}.yaml"
        docker_host: "{{ docker_host }}"
        state_dir: "{{ playbook_dir }}/state/{{ inventory_hostname }}"
        metrics_file: "/var/lib/node_exporter/textfile/reconcile-{{ inventory_hostname }}.prom"
      environment:
        REGISTRY: registry.example.com:5000

- name: What would change (nothing is done), shown as a plan
  reconciler.reconciler.reconcile:
    manifest: images.yaml
    docker_host: ssh://deploy@build-7
  check_mode: true
  diff: true
  register: pending

- name: Say how many images would go
  ansible.builtin.debug:
    msg: "{{ pending.manifests[0].plan.summary.remove }} to remove"
"""

RETURN = r"""
changed:
  description: Whether steps were done (check mode, whether steps would be done).
  returned: always
  type: bool
manifests:
  description: One entry per manifest, in the order given.
  returned: always
  type: list
  elements: dict
  contains:
    manifest:
      description: The manifest's path.
      type: str
      sample: /etc/reconciler/images.yaml
    command:
      description: The command that ran.
      type: list
      elements: str
      sample: [reconcile, apply, /etc/reconciler/images.yaml, -o, json, --lock-timeout, "0"]
    rc:
      description: Its exit code (see C(reconcile --help)); in check mode 2 means changes are pending.
      type: int
      sample: 0
    changed:
      description: Whether this run did steps (check mode, would do steps).
      type: bool
    failed:
      description: Whether this run failed.
      type: bool
    plan:
      description: Check mode only, the plan as C(reconcile plan -o json) prints it (C(steps), C(summary));
        null when C(reconcile) printed none (e.g. the daemon was unreachable).
      type: dict
      returned: check mode
      sample: {"steps": [{"action": "pull", "ref": "docker.io/library/nginx:1.27", "reason": "the tag is not on the host"}],
               "summary": {"changes": true, "pull": 1, "tag": 0, "untag": 0, "remove": 0}}
    report:
      description: Apply only, the report as C(reconcile apply -o json) prints it (C(steps) with each
        C(outcome) and C(detail), C(summary)); null when C(reconcile) printed none.
      type: dict
      returned: when not in check mode
      sample: {"steps": [{"action": "pull", "ref": "docker.io/library/nginx:1.27", "outcome": "done", "detail": "pulled"}],
               "summary": {"complete": true, "done": 1, "failed": 0, "skipped": 0, "bytes_freed": 0}}
    stderr:
      description: What C(reconcile) wrote to standard error (warnings, errors).
      type: str
rc:
  description: The exit code of the first run that failed.
  returned: failure
  type: int
  sample: 69
"""

import json  # noqa: E402 (Ansible wants the documentation first)
from typing import Any  # noqa: E402

from ansible.module_utils.basic import AnsibleModule  # noqa: E402

CHANGES_PENDING = 2  # `reconcile plan --detailed-exitcode`: there is something to do
SIGNS = {"pull": "+", "build": "+", "load": "+", "tag": "+", "untag": "-", "remove": "-"}


def reconcile_argv(
    executable: str, params: dict[str, Any], manifest: str, check_mode: bool
) -> list[str]:
    """The command line of one run: `plan` in check mode, else `apply`; JSON on stdout."""
    argv = [executable, "plan" if check_mode else "apply", manifest, "--output", "json"]
    if params["docker_host"]:
        argv += ["--host", params["docker_host"]]
    if params["state_dir"]:
        argv += ["--state-dir", params["state_dir"]]
    if params["max_removals"] is not None:
        argv += ["--max-removals", str(params["max_removals"])]
    if params["allow_large_removal"]:
        argv.append("--allow-large-removal")
    if check_mode:
        argv.append("--detailed-exitcode")
        return argv
    argv += ["--lock-timeout", f"{params['lock_timeout']:g}"]
    if params["pull_timeout"] is not None:
        argv += ["--pull-timeout", f"{params['pull_timeout']:g}"]
    if params["parallelism"] is not None:
        argv += ["--parallelism", str(params["parallelism"])]
    if params["metrics_file"]:
        argv += ["--metrics-file", params["metrics_file"]]
    return argv


def reconcile_environment(params: dict[str, Any]) -> dict[str, str]:
    """Variables set for the run on top of the module's own environment."""
    return {"RECONCILE_LOCK_DIR": params["lock_dir"]} if params["lock_dir"] else {}


def read_document(stdout: str) -> dict[str, Any] | None:
    """The JSON plan or report on stdout; None when there is none (reconcile stopped before it)."""
    try:
        document = json.loads(stdout)
    except ValueError:
        return None
    return document if isinstance(document, dict) else None


def run_result(
    manifest: str, argv: list[str], rc: int, stdout: str, stderr: str, check_mode: bool
) -> dict[str, Any]:
    """What one run did: changed means steps were done (check mode: would be done)."""
    document = read_document(stdout)
    steps = document.get("steps", []) if document else []
    if check_mode:
        changed, failed = rc == CHANGES_PENDING, rc not in (0, CHANGES_PENDING)
    else:
        changed, failed = any(step.get("outcome") == "done" for step in steps), rc != 0
    return {
        "manifest": manifest,
        "command": argv,
        "rc": rc,
        "changed": changed,
        "failed": failed,
        "plan" if check_mode else "report": document,
        "stderr": stderr,
    }


def failure_message(result: dict[str, Any]) -> str:
    """One sentence naming the run, its exit code and what went wrong."""
    command = result["command"]
    head = f"`reconcile {command[1]} {result['manifest']}` exited {result['rc']}"
    document = result.get("plan") or result.get("report") or {}
    refused = document.get("summary", {}).get("refused")
    problems = [
        f"{step['action']} {step['ref']}: {step['outcome']} ({step.get('detail') or 'no detail'})"
        for step in document.get("steps", [])
        if step.get("outcome") not in (None, "done")
    ]
    if refused:
        problems.insert(0, str(refused))
    if not problems:
        lines = [line.strip() for line in result["stderr"].splitlines() if line.strip()]
        problems = lines[-3:] or ["it printed no report"]
    return f"{head}: {'; '.join(problems)}"


def step_lines(step: dict[str, Any], check_mode: bool) -> list[str]:
    """One step as the plan shows it, with its outcome after an apply."""
    action, ref = step.get("action", "?"), step.get("ref", "?")
    target = f"{ref} -> {step['source']}" if action == "tag" and step.get("source") else ref
    if action in ("untag", "remove") and step.get("image_id"):
        target += f" ({step['image_id'].split(':')[-1][:12]})"
    sign = "!" if step.get("blocked") else SIGNS.get(action, "~")
    line = f"{sign} {action:<6} {target}"
    if not check_mode:
        outcome = step.get("outcome", "?")
        line += f"  [{outcome}{': ' + step['detail'] if outcome != 'done' and step.get('detail') else ''}]"
    return [line, f"    {step.get('blocked') or step.get('reason') or ''}".rstrip()]


def diff_of(result: dict[str, Any], check_mode: bool) -> dict[str, str] | None:
    """Ansible's diff of one run: the plan, or the steps done; None when there were no steps."""
    document = result.get("plan") or result.get("report")
    if not document or not document.get("steps"):
        return None
    host = document.get("summary", {}).get("host", "the Docker host")
    verb = "would change" if check_mode else "changed"
    lines = [f"reconcile {verb} {host} for {result['manifest']}:"]
    for step in document["steps"]:
        lines += step_lines(step, check_mode)
    return {"prepared": "\n".join(lines) + "\n"}


ARGUMENT_SPEC: dict[str, Any] = {
    "manifest": {"type": "list", "elements": "path", "required": True, "aliases": ["manifests"]},
    "docker_host": {"type": "str"},
    "state_dir": {"type": "path"},
    "lock_dir": {"type": "path"},
    "lock_timeout": {"type": "float", "default": 0},
    "pull_timeout": {"type": "float"},
    "parallelism": {"type": "int"},
    "max_removals": {"type": "int"},
    "allow_large_removal": {"type": "bool", "default": False},
    "metrics_file": {"type": "path"},
    "executable": {"type": "path"},
}


def main() -> None:
    module = AnsibleModule(argument_spec=ARGUMENT_SPEC, supports_check_mode=True)
    params = module.params
    executable = params["executable"] or module.get_bin_path("reconcile", required=True)
    results = []
    for manifest in params["manifest"]:
        argv = reconcile_argv(executable, params, manifest, module.check_mode)
        rc, stdout, stderr = module.run_command(argv, environ_update=reconcile_environment(params))
        results.append(run_result(manifest, argv, rc, stdout, stderr, module.check_mode))
    output: dict[str, Any] = {"changed": any(r["changed"] for r in results), "manifests": results}
    if module._diff:
        diffs = [diff_of(r, module.check_mode) for r in results]
        output["diff"] = [d for d in diffs if d is not None]
    failures = [r for r in results if r["failed"]]
    if failures:
        module.fail_json(
            msg="; ".join(map(failure_message, failures)), rc=failures[0]["rc"], **output
        )
    module.exit_json(**output)


if __name__ == "__main__":
    main()
