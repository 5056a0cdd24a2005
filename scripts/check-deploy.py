#!/usr/bin/env python3
"""Checks the production compose stack without a Docker engine (CI has none).

- docker-compose.yml validates against the Compose Specification's JSON schema
  (deploy/compose-spec/compose-spec.json, vendored);
- every file it mounts from the repository exists;
- the Grafana provisioning names the datasource uid the dashboard uses.

The Prometheus configuration is checked by `promtool check config` and the
dashboard's queries by the jobwire-metrics crate's tests (`cargo test -p jobwire-metrics`).
Needs PyYAML and jsonschema. Exit code 0 when all is well, 1 otherwise.
"""

import json
import pathlib
import sys

import jsonschema
import yaml

ROOT = pathlib.Path(__file__).resolve().parent.parent


def main() -> int:
    problems = []
    compose = yaml.safe_load((ROOT / "docker-compose.yml").read_text())
    schema = json.loads((ROOT / "deploy/compose-spec/compose-spec.json").read_text())
    validator = jsonschema.Draft7Validator(schema)
    for error in sorted(validator.iter_errors(compose), key=lambda e: list(e.path)):
        where = "/".join(str(part) for part in error.path) or "(top)"
        problems.append(f"docker-compose.yml {where}: {error.message}")

    for name, service in (compose.get("services") or {}).items():
        for volume in service.get("volumes", []):
            source = volume.split(":")[0] if isinstance(volume, str) else volume.get("source", "")
            if source.startswith("./") and not (ROOT / source).exists():
                problems.append(f"service {name} mounts {source}, which does not exist")

    for wanted in ("prometheus", "grafana", "api", "worker"):
        if wanted not in compose.get("services", {}):
            problems.append(f"docker-compose.yml has no `{wanted}` service")

    dashboard = json.loads((ROOT / "deploy/grafana/dashboards/jobwire.json").read_text())
    datasources = yaml.safe_load(
        (ROOT / "deploy/grafana/provisioning/datasources/prometheus.yml").read_text()
    )
    uids = {source["uid"] for source in datasources["datasources"]}
    for panel in dashboard["panels"]:
        used = panel.get("datasource", {}).get("uid")
        if used is not None and used not in uids:
            problems.append(f"panel `{panel['title']}` uses datasource {used}, not provisioned")

    for problem in problems:
        print(f"FAIL: {problem}")
    if not problems:
        print("deploy: docker-compose.yml matches the Compose Specification; mounts and datasource agree")
    return 1 if problems else 0


if __name__ == "__main__":
    sys.exit(main())
