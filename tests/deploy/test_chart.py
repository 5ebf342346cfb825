"""The Helm chart in helm/drwatch, rendered by the real helm binary.

Every manifest rendered with the default values and with values-production.yaml is validated by
kubernetes-validate in strict mode (unknown fields are errors) against the oldest Kubernetes the
chart supports and the newest kubernetes-validate knows. kubernetes-validate ships schemas for the
built-in kinds only; ServiceMonitor and PrometheusRule (Prometheus Operator CRDs) have none, and
its CLI merely warns about them. Rather than let them pass unchecked, these tests allow exactly
those two kinds without a schema and check them on their own terms: the PrometheusRule's groups
must be the shipped rule files and pass `promtool check rules`, and the ServiceMonitor must select
the chart's Service and scrape its port under the configured job name. Any other kind without a
schema fails.
"""

from __future__ import annotations

import shutil
import subprocess
from pathlib import Path
from typing import Any

import kubernetes_validate
import pytest
import yaml
from kubernetes_validate.utils import SchemaNotFoundError, latest_version

from tests.deploy import CHART, REPO, RULES, require_tool

PRODUCTION_VALUES = CHART / "values-production.yaml"
KUBERNETES_VERSIONS = ["1.25.0", latest_version()]
CRD_KINDS = {"ServiceMonitor", "PrometheusRule"}
VALUE_SETS = {"default": [], "production": ["-f", str(PRODUCTION_VALUES)]}
POSTGRES_URL = "postgresql+asyncpg://drwatch@state-db:5432/drwatch"


@pytest.fixture(scope="module")
def helm() -> str:
    return require_tool(
        "helm", "run scripts/fetch-helm.sh to install it", REPO / ".tools" / "bin" / "helm"
    )


def run(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(list(args), capture_output=True, text=True, timeout=120, check=False)


def template(helm: str, *args: str, chart: Path = CHART) -> list[dict[str, Any]]:
    """The manifests `helm template` renders, parsed; fails the test when rendering fails."""
    result = run(helm, "template", "drwatch", str(chart), "--namespace", "booking", *args)
    assert result.returncode == 0, result.stderr
    return [doc for doc in yaml.safe_load_all(result.stdout) if doc]


def refused(helm: str, *args: str) -> str:
    """helm's error output for values the chart must refuse."""
    result = run(helm, "template", "drwatch", str(CHART), *args)
    assert result.returncode != 0, "helm rendered values the chart must refuse"
    return result.stderr


def one(manifests: list[dict[str, Any]], kind: str) -> dict[str, Any]:
    found = [m for m in manifests if m["kind"] == kind]
    assert len(found) == 1, f"expected one {kind}, found {len(found)}"
    return found[0]


def container(deployment: dict[str, Any], name: str = "drwatch") -> dict[str, Any]:
    containers = deployment["spec"]["template"]["spec"]["containers"]
    return next(c for c in containers if c["name"] == name)


def env(container_spec: dict[str, Any]) -> dict[str, Any]:
    return {e["name"]: e.get("value", e.get("valueFrom")) for e in container_spec.get("env", [])}


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_the_chart_passes_helm_lint_strict(helm: str, values: list[str]) -> None:
    """`helm lint --strict` passes with the default and the production values."""
    result = run(helm, "lint", "--strict", str(CHART), *values)
    assert result.returncode == 0, result.stdout + result.stderr


@pytest.mark.parametrize("values", VALUE_SETS.values(), ids=VALUE_SETS.keys())
def test_every_rendered_manifest_is_valid_kubernetes(helm: str, values: list[str]) -> None:
    """kubernetes-validate --strict accepts every built-in manifest; only the CRDs lack schemas."""
    manifests = template(helm, *values)
    without_schema = set()
    for version in KUBERNETES_VERSIONS:
        for manifest in manifests:
            name = f"{manifest['kind']}/{manifest['metadata']['name']}"
            try:
                kubernetes_validate.validate(manifest, version, strict=True)
            except SchemaNotFoundError:
                without_schema.add(manifest["kind"])
            except kubernetes_validate.ValidationError as exc:
                path = ".".join(str(p) for p in exc.path)
                pytest.fail(f"{name} is invalid for Kubernetes {version}: {path}: {exc.message}")
    assert without_schema <= CRD_KINDS, f"kinds that nothing validates: {without_schema}"


def test_strict_validation_catches_a_misspelt_field(helm: str) -> None:
    """The validation above is able to fail: a Deployment with an unknown field is rejected."""
    deployment = one(template(helm), "Deployment")
    deployment["spec"]["template"]["spec"]["containers"][0]["readinesProbe"] = {}
    with pytest.raises(kubernetes_validate.ValidationError):
        kubernetes_validate.validate(deployment, KUBERNETES_VERSIONS[-1], strict=True)


def test_the_default_values_run_one_non_root_read_only_pod_on_sqlite(helm: str) -> None:
    """Defaults: one replica, non-root, read-only root, /tmp and the SQLite dir on emptyDirs."""
    manifests = template(helm)
    deployment = one(manifests, "Deployment")
    pod = deployment["spec"]["template"]["spec"]
    drwatch = container(deployment)
    assert deployment["spec"]["replicas"] == 1
    assert drwatch["command"] == ["drwatch", "serve"]
    assert pod["securityContext"]["runAsNonRoot"] is True
    assert drwatch["securityContext"]["readOnlyRootFilesystem"] is True
    assert drwatch["securityContext"]["allowPrivilegeEscalation"] is False
    assert drwatch["ports"] == [{"name": "http", "containerPort": 8080, "protocol": "TCP"}]
    assert drwatch["livenessProbe"]["httpGet"] == {"path": "/health/live", "port": "http"}
    assert drwatch["readinessProbe"]["httpGet"] == {"path": "/health/ready", "port": "http"}
    assert drwatch["resources"]["limits"]["memory"]
    volumes = {v["name"]: v for v in pod["volumes"]}
    assert "emptyDir" in volumes["tmp"] and "emptyDir" in volumes["state"]
    mounts = {m["mountPath"]: m["name"] for m in drwatch["volumeMounts"]}
    assert mounts == {
        "/tmp": "tmp",
        "/var/lib/drwatch": "state",
        "/var/lib/drwatch-drills": "drill-work",
    }
    variables = env(drwatch)
    assert variables["DRWATCH_STATE_URL"] == "sqlite+aiosqlite:////var/lib/drwatch/drwatch-state.db"
    assert variables["DRWATCH_PORT"] == "8080"
    assert variables["DRWATCH_LOG_FORMAT"] == "json"
    assert "DRWATCH_CONFIG" not in variables  # no config: drwatch builds checks from the env
    # SQLite lives in the pod, so the migrations run there too, before drwatch starts.
    (init,) = pod["initContainers"]
    assert init["command"] == ["drwatch", "db", "upgrade"]
    assert env(init)["DRWATCH_STATE_URL"] == variables["DRWATCH_STATE_URL"]
    assert not [m for m in manifests if m["kind"] in {"Job", "Secret", "ConfigMap"} | CRD_KINDS]


def test_the_config_value_becomes_the_file_drwatch_config_names(helm: str) -> None:
    """values.config is rendered into a ConfigMap, mounted, and named by DRWATCH_CONFIG."""
    manifests = template(helm, "-f", str(PRODUCTION_VALUES))
    config_map = one(manifests, "ConfigMap")
    production = yaml.safe_load(PRODUCTION_VALUES.read_text())
    assert yaml.safe_load(config_map["data"]["drwatch.yaml"]) == production["config"]
    deployment = one(manifests, "Deployment")
    drwatch = container(deployment)
    assert env(drwatch)["DRWATCH_CONFIG"] == "/etc/drwatch/drwatch.yaml"
    mounts = {m["name"]: m["mountPath"] for m in drwatch["volumeMounts"]}
    assert mounts["config"] == "/etc/drwatch"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["config"]["configMap"]["name"] == config_map["metadata"]["name"]


def test_a_config_change_rolls_the_pods(helm: str) -> None:
    """The pod template carries a checksum of the configuration, so a change restarts drwatch."""

    def checksum(*args: str) -> str:
        deployment = one(template(helm, *args), "Deployment")
        return str(deployment["spec"]["template"]["metadata"]["annotations"]["checksum/config"])

    assert checksum("--set", "config.checks[0].name=a", "--set", "config.checks[0].type=redis") != (
        checksum("--set", "config.checks[0].name=b", "--set", "config.checks[0].type=redis")
    )


def test_secrets_come_only_from_the_existing_secret(helm: str) -> None:
    """Production values: envFrom and *_FILE mounts of the named Secret, no Secret rendered."""
    manifests = template(helm, "-f", str(PRODUCTION_VALUES))
    assert not [m for m in manifests if m["kind"] == "Secret"]
    deployment = one(manifests, "Deployment")
    drwatch = container(deployment)
    assert drwatch["envFrom"] == [{"secretRef": {"name": "drwatch-secrets"}}]
    variables = env(drwatch)
    assert variables["DRWATCH_ADMIN_TOKEN_FILE"] == "/run/secrets/drwatch/admin-token"
    assert variables["DRWATCH_DETAILS_TOKEN_FILE"] == "/run/secrets/drwatch/details-token"
    assert "DRWATCH_ADMIN_TOKEN" not in variables and "DRWATCH_DETAILS_TOKEN" not in variables
    assert variables["DRWATCH_STATE_URL"] == {
        "secretKeyRef": {"name": "drwatch-secrets", "key": "DRWATCH_STATE_URL"}
    }
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    secret_volume = volumes["secret-files"]["secret"]
    assert secret_volume["secretName"] == "drwatch-secrets"
    assert {i["key"] for i in secret_volume["items"]} == {"admin-token", "details-token"}


def test_postgresql_state_migrates_once_in_a_hook_job_the_service_does_not_select(
    helm: str,
) -> None:
    """With PostgreSQL, `drwatch db upgrade` runs in a pre-install/pre-upgrade Job, not per pod."""
    manifests = template(helm, "-f", str(PRODUCTION_VALUES))
    job = one(manifests, "Job")
    assert job["metadata"]["annotations"]["helm.sh/hook"] == "pre-install,pre-upgrade"
    pod = job["spec"]["template"]["spec"]
    (migrate,) = pod["containers"]
    assert migrate["command"] == ["drwatch", "db", "upgrade"]
    assert env(migrate)["DRWATCH_STATE_URL"] == {
        "secretKeyRef": {"name": "drwatch-secrets", "key": "DRWATCH_STATE_URL"}
    }
    # A hook runs before the release's ServiceAccount exists.
    assert "serviceAccountName" not in pod
    selector = one(manifests, "Service")["spec"]["selector"]
    job_labels = job["spec"]["template"]["metadata"]["labels"]
    assert not all(job_labels.get(k) == v for k, v in selector.items())
    deployment = one(manifests, "Deployment")
    assert deployment["spec"]["replicas"] == 2
    assert "initContainers" not in deployment["spec"]["template"]["spec"]
    assert "state" not in {v["name"] for v in deployment["spec"]["template"]["spec"]["volumes"]}


def test_the_service_and_disruption_budget_select_the_drwatch_pods(helm: str) -> None:
    """The Service targets the http port of the Deployment's pods; the PDB covers the same pods."""
    manifests = template(helm, "-f", str(PRODUCTION_VALUES))
    pod_labels = one(manifests, "Deployment")["spec"]["template"]["metadata"]["labels"]
    service = one(manifests, "Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] == "http"
    pdb = one(manifests, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    assert pdb["spec"]["maxUnavailable"] == 1


def shipped_groups() -> list[dict[str, Any]]:
    groups: list[dict[str, Any]] = []
    for path in sorted(RULES.glob("*.yaml")):
        groups.extend(yaml.safe_load(path.read_text())["groups"])
    return groups


def test_the_prometheus_rule_carries_the_shipped_rules_and_passes_promtool(
    helm: str, tmp_path: Path
) -> None:
    """The PrometheusRule's groups are rules/*.yaml unchanged, and promtool accepts them."""
    promtool = require_tool("promtool", "apt-get install prometheus")
    rule = one(template(helm, "-f", str(PRODUCTION_VALUES)), "PrometheusRule")
    assert rule["apiVersion"] == "monitoring.coreos.com/v1"
    assert rule["metadata"]["labels"]["release"] == "kube-prometheus-stack"
    assert rule["spec"]["groups"] == shipped_groups()
    rule_file = tmp_path / "prometheusrule.yaml"
    rule_file.write_text(yaml.safe_dump({"groups": rule["spec"]["groups"]}))
    result = run(promtool, "check", "rules", str(rule_file))
    assert result.returncode == 0, result.stdout + result.stderr


def test_a_custom_job_name_and_runbook_base_are_carried_into_the_rules(helm: str) -> None:
    """serviceMonitor.jobName relabels the scrape job and rewrites DrwatchDown to select it."""
    manifests = template(
        helm,
        "-f",
        str(PRODUCTION_VALUES),
        "--set",
        "serviceMonitor.jobName=drwatch-eu",
        "--set",
        "prometheusRule.runbookBaseUrl=https://wiki.example.com/drwatch",
    )
    rules = [r for g in one(manifests, "PrometheusRule")["spec"]["groups"] for r in g["rules"]]
    down = next(r for r in rules if r.get("alert") == "DrwatchDown")
    assert down["expr"] == 'up{job="drwatch-eu"} == 0'
    assert down["annotations"]["runbook_url"] == "https://wiki.example.com/drwatch#drwatchdown"
    endpoint = one(manifests, "ServiceMonitor")["spec"]["endpoints"][0]
    assert {"action": "replace", "targetLabel": "job", "replacement": "drwatch-eu"} in endpoint[
        "relabelings"
    ]


def test_the_service_monitor_scrapes_the_service_port(helm: str) -> None:
    """The ServiceMonitor selects the chart's Service, in its namespace, on its named port."""
    manifests = template(helm, "-f", str(PRODUCTION_VALUES))
    monitor = one(manifests, "ServiceMonitor")
    service = one(manifests, "Service")
    assert monitor["apiVersion"] == "monitoring.coreos.com/v1"
    assert (
        monitor["spec"]["selector"]["matchLabels"].items() <= service["metadata"]["labels"].items()
    )
    assert monitor["spec"]["namespaceSelector"] == {"matchNames": ["booking"]}
    (endpoint,) = monitor["spec"]["endpoints"]
    assert endpoint["port"] in {p["name"] for p in service["spec"]["ports"]}
    assert endpoint["path"] == "/metrics"
    assert {"action": "replace", "targetLabel": "job", "replacement": "drwatch"} in endpoint[
        "relabelings"
    ]


def test_it_refuses_several_replicas_on_sqlite(helm: str) -> None:
    """values.schema.json refuses replicaCount > 1 without a PostgreSQL state store."""
    error = refused(helm, "--set", "replicaCount=2")
    assert "/state" in error


@pytest.mark.parametrize(
    "state",
    [["--set", f"state.url={POSTGRES_URL}"], ["--set", "state.existingSecret.name=drwatch-state"]],
    ids=["url", "secret"],
)
def test_it_accepts_several_replicas_on_postgresql(helm: str, state: list[str]) -> None:
    """Two replicas render once the state store is PostgreSQL, by URL or from a Secret."""
    deployment = one(template(helm, "--set", "replicaCount=2", *state), "Deployment")
    assert deployment["spec"]["replicas"] == 2


def test_it_refuses_a_password_in_the_state_url(helm: str) -> None:
    """A state URL with user:password@ belongs in a Secret, not in values."""
    error = refused(helm, "--set", "state.url=postgresql+asyncpg://drwatch:hunter2@db/drwatch")
    assert "/state/url" in error


def test_it_refuses_a_state_url_that_is_not_postgresql(helm: str) -> None:
    """state.url is for PostgreSQL; SQLite is what an empty state gives."""
    assert "/state/url" in refused(helm, "--set", "state.url=sqlite+aiosqlite:///x.db")


@pytest.mark.parametrize("name", ["DRWATCH_ADMIN_TOKEN", "DRWATCH_DETAILS_TOKEN"])
def test_it_refuses_tokens_in_extra_env(helm: str, name: str) -> None:
    """Tokens cannot be slipped in as plain environment values."""
    assert "/extraEnv" in refused(helm, "--set", f"extraEnv.{name}=secret")


def test_it_refuses_a_migration_job_with_sqlite(helm: str) -> None:
    """A hook Job cannot reach an SQLite file inside the pods."""
    assert "/state" in refused(helm, "--set", "migrations.mode=job")


def test_it_refuses_secret_files_without_a_secret(helm: str) -> None:
    """secrets.files names keys of secrets.existingSecret, which must then be set."""
    error = refused(helm, "--set", "secrets.files.DRWATCH_ADMIN_TOKEN=admin-token")
    assert "/secrets/existingSecret" in error


def test_it_refuses_unknown_values(helm: str) -> None:
    """A misspelt key fails the install instead of being ignored."""
    assert "replicas" in refused(helm, "--set", "replicas=2")


def render_notes(helm: str, tmp_path: Path, *args: str) -> str:
    """NOTES.txt as `helm install` prints it (helm template skips NOTES, so render its template)."""
    chart = tmp_path / "drwatch"
    shutil.copytree(CHART, chart)
    (chart / "templates" / "notes-preview.yaml").write_text(
        "apiVersion: v1\nkind: ConfigMap\nmetadata:\n  name: notes\n"
        'data:\n  notes: {{ include "drwatch.notes" . | quote }}\n'
    )
    assert "drwatch.notes" in (chart / "templates" / "NOTES.txt").read_text()
    args = (*args, "--show-only", "templates/notes-preview.yaml")
    return str(one(template(helm, *args, chart=chart), "ConfigMap")["data"]["notes"])


def test_the_notes_say_how_to_reach_health_and_set_up_route_53(helm: str, tmp_path: Path) -> None:
    """NOTES print the port-forward to /health and a Route 53 health check on the ingress host."""
    notes = render_notes(helm, tmp_path, "-f", str(PRODUCTION_VALUES))
    assert "port-forward service/drwatch 8080:8080" in notes
    assert "curl -i http://127.0.0.1:8080/health" in notes
    assert "https://drwatch.eu-west-1.booking.example.com/health" in notes
    assert "aws route53 create-health-check" in notes
    assert (
        "FullyQualifiedDomainName=drwatch.eu-west-1.booking.example.com,Port=443,"
        "ResourcePath=/health,RequestInterval=30,FailureThreshold=3"
    ) in notes


def test_the_notes_warn_when_health_is_not_reachable_from_outside(
    helm: str, tmp_path: Path
) -> None:
    """Without an ingress or load balancer, NOTES say Route 53 cannot reach /health."""
    notes = render_notes(helm, tmp_path)
    assert "Route 53 needs /health reachable from the internet" in notes
    assert "embedded SQLite" in notes


def _ingress_paths(manifests: list[dict[str, Any]]) -> list[str]:
    (rule,) = one(manifests, "Ingress")["spec"]["rules"]
    return [p["path"] for p in rule["http"]["paths"]]


def test_the_ingress_exposes_only_the_public_paths(helm: str) -> None:
    """By default /health*, /status, /api/v2 and /api/backups; never /api/checks or /metrics."""
    manifests = template(
        helm, "--set", "ingress.enabled=true", "--set", "ingress.hosts[0].host=dr.example.com"
    )
    assert _ingress_paths(manifests) == ["/health", "/status", "/api/v2", "/api/backups"]
    production = template(helm, "-f", str(PRODUCTION_VALUES))
    assert "/" not in _ingress_paths(production)
    assert not [p for p in _ingress_paths(production) if p.startswith(("/api/checks", "/metrics"))]


def test_the_ingress_exposes_more_only_when_told(helm: str) -> None:
    """extraPaths adds prefixes; expose: all routes everything."""
    common = ["--set", "ingress.enabled=true", "--set", "ingress.hosts[0].host=dr.example.com"]
    extra = template(helm, *common, "--set", "ingress.extraPaths[0]=/api/backup-status")
    assert _ingress_paths(extra)[-1] == "/api/backup-status"
    everything = template(helm, *common, "--set", "ingress.expose=all")
    assert _ingress_paths(everything) == ["/"]
    assert "/ingress/expose" in refused(helm, *common, "--set", "ingress.expose=some")


def test_drills_get_their_own_work_directory(helm: str) -> None:
    """DRWATCH_DRILL_WORK_DIR names an emptyDir of its own, sized by drillWorkDir.sizeLimit."""
    deployment = one(template(helm, "--set", "drillWorkDir.sizeLimit=10Gi"), "Deployment")
    drwatch = container(deployment)
    assert env(drwatch)["DRWATCH_DRILL_WORK_DIR"] == "/var/lib/drwatch-drills"
    volumes = {v["name"]: v for v in deployment["spec"]["template"]["spec"]["volumes"]}
    assert volumes["drill-work"]["emptyDir"]["sizeLimit"] == "10Gi"


def test_the_production_example_fails_over_only_for_regional_checks(helm: str) -> None:
    """Backup sources in the example are not critical: a stale dump never fails DNS over."""
    config_map = one(template(helm, "-f", str(PRODUCTION_VALUES)), "ConfigMap")
    config = yaml.safe_load(next(iter(config_map["data"].values())))
    backup_types = {"backup_files", "s3", "heartbeat", "wal_archive"}
    backups = [c for c in config["checks"] if c["type"] in backup_types]
    assert backups
    assert all(c.get("criticality", "degraded") != "critical" for c in backups)
