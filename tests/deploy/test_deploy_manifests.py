"""The deployment files agree with the code and with each other, checked without servers.

No docker engine or cluster is needed: docker-compose resolves docker-compose.yml
(``config``), Kubernetes' own JSON schemas (kubernetes-validate, offline) check
deploy/k8s, and the Dockerfile is read as text. A typo in a
``TAGGER_*`` name, a probe on the wrong port or an HPA that outgrows the partitions would
otherwise only show once deployed.
"""

from __future__ import annotations

import importlib
import os
import re
import shlex
import shutil
import subprocess
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Any
from urllib.parse import urlsplit

import pytest
import yaml

from streams.cli import build_parser
from streams.settings import Settings, SettingsError, load_settings, unknown_variables
from tests.support import ROOT

COMPOSE_FILE = ROOT / "docker-compose.yml"
K8S = ROOT / "deploy" / "k8s"
DOCKERFILE = ROOT / "Dockerfile"

SERVICES = {"kafka", "redis", "worker-1", "worker-2", "prometheus", "grafana", "generator"}
WORKERS = ("worker-1", "worker-2")
# An example the operator copies, not a resource to apply: see kustomization.yaml.
EXAMPLE_SECRET = "secret.example.yaml"
# Generated from rules/ (scripts/rules_configmap.py); the workers' rule directory.
RULES_CONFIGMAP = K8S / "rules-configmap.yaml"
WEB_PORT: int = Settings.model_fields["web_port"].default
IMAGE_UID = 10001

Doc = dict[str, Any]


# --- helpers ----------------------------------------------------------------------------------


def tagger_variables(environ: Mapping[str, str]) -> dict[str, str]:
    """The ``TAGGER_*`` entries of an environment."""
    return {name: value for name, value in environ.items() if name.startswith("TAGGER_")}


def assert_settings_load(environ: Mapping[str, str], monkeypatch: pytest.MonkeyPatch) -> None:
    """These variables name known settings and hold values those settings can take
    (the worker would stop at start with exit code 2 otherwise)."""
    assert unknown_variables(environ) == []
    for name in tagger_variables(os.environ):
        monkeypatch.delenv(name)
    for name, value in tagger_variables(environ).items():
        monkeypatch.setenv(name, value)
    try:
        load_settings()
    except SettingsError as error:
        pytest.fail(f"bad setting: {error}")


def secret_settings() -> set[str]:
    """The variables of the settings that hold secrets (typed SecretStr)."""
    return {
        f"TAGGER_{name.upper()}"
        for name, field in Settings.model_fields.items()
        if "SecretStr" in str(field.annotation)
    }


# --- docker-compose ---------------------------------------------------------------------------


@pytest.fixture(scope="module")
def compose() -> Doc:
    """docker-compose.yml as docker-compose resolves it (anchors merged, paths absolute),
    with the generator's profile on so that every service is there."""
    binary = shutil.which("docker-compose")
    if binary is None:
        pytest.fail("docker-compose is missing: run scripts/setup.sh")
    result = subprocess.run(
        [binary, "-f", str(COMPOSE_FILE), "--profile", "generator", "config"],
        cwd=ROOT,
        capture_output=True,
        text=True,
        check=False,
    )
    assert result.returncode == 0, result.stderr
    resolved: Doc = yaml.safe_load(result.stdout)
    return resolved


def service_environment(service: Doc) -> dict[str, str]:
    """A service's environment, whichever form (mapping or KEY=VALUE list) it has."""
    environment = service.get("environment") or {}
    if isinstance(environment, list):
        pairs = (item.split("=", 1) for item in environment)
        return {pair[0]: pair[1] if len(pair) > 1 else "" for pair in pairs}
    return {name: "" if value is None else str(value) for name, value in environment.items()}


def published_ports(service: Doc) -> dict[int, int]:
    """Host port -> container port, from the short ("6067:6066") or long form."""
    found = {}
    for port in service.get("ports", []):
        if isinstance(port, dict):
            found[int(port["published"])] = int(port["target"])
        else:
            host, _, container = str(port).rpartition(":")
            found[int(host.rsplit(":", 1)[-1])] = int(container.split("/")[0])
    return found


def bind_mounts(service: Doc) -> dict[str, Path]:
    """Container path -> host path of a service's bind mounts (named volumes left out)."""
    found = {}
    for volume in service.get("volumes", []):
        if isinstance(volume, dict):
            if volume.get("type") == "bind":
                found[volume["target"]] = Path(volume["source"])
            continue
        source, target = str(volume).split(":")[:2]
        if source.startswith(("/", ".")):
            found[target] = Path(source)
    return found


def test_compose_file_is_valid_and_has_every_service(compose: Doc) -> None:
    """docker-compose accepts the file, and it runs the whole stack: broker, Redis, two
    workers, Prometheus, Grafana and the optional generator."""
    assert set(compose["services"]) == SERVICES


def test_generator_runs_only_with_its_profile(compose: Doc) -> None:
    """`docker compose up` must not flood the topics unasked: the generator belongs to
    the `generator` profile, and it feeds the events topic with the worker's own CLI."""
    generator = compose["services"]["generator"]
    assert generator.get("profiles") == ["generator"]
    script = " ".join([*generator.get("entrypoint", []), *generator.get("command", [])])
    assert "tagger simulate" in script
    assert "tagger produce" in script
    # Each tagger command of the script is one the CLI accepts (shell variables as 1).
    commands = re.sub(r"\$+\{?(\w+)\}?", "1", script.replace("\\\n", " "))
    argvs = [
        shlex.split(part)
        for line in commands.splitlines()
        for part in line.split("|")
        if part.strip().startswith("tagger ")
    ]
    assert [argv[:2] for argv in argvs] == [["tagger", "simulate"], ["tagger", "produce"]]
    for argv in argvs:
        build_parser().parse_args(argv[1:])  # exits (fails the test) on a bad option
    for name, service in compose["services"].items():
        if name != "generator":
            assert not service.get("profiles"), f"{name} would not start by default"


@pytest.mark.parametrize("name", sorted(SERVICES))
def test_compose_tagger_variables_are_settings(
    compose: Doc, name: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    """Every TAGGER_* variable a service sets is a setting and holds a valid value: the
    worker only warns about an unknown name, so a typo would silently do nothing."""
    environ = service_environment(compose["services"][name])
    assert_settings_load(tagger_variables(environ), monkeypatch)


def test_workers_use_the_internal_kafka_listener_and_redis(compose: Doc) -> None:
    """Inside the compose network the broker must be reached on the listener it advertises
    under its service name (localhost:9092 is the host's), and Redis by its service name."""
    services = compose["services"]
    kafka_env = service_environment(services["kafka"])
    kafka_names = {"kafka", services["kafka"].get("hostname", "kafka")}
    advertised = {
        listener.split("://", 1)[1]
        for listener in kafka_env["KAFKA_ADVERTISED_LISTENERS"].split(",")
    }
    internal = {address for address in advertised if address.rsplit(":", 1)[0] in kafka_names}
    assert internal, "kafka advertises no listener under its service name"
    for name in (*WORKERS, "generator"):
        environ = service_environment(services[name])
        broker = environ["TAGGER_BROKER_URL"]
        assert broker.startswith("kafka://")
        servers = set(broker.removeprefix("kafka://").split(";"))
        assert servers <= internal, f"{name}: {broker} is not one of {sorted(internal)}"
        redis_url = urlsplit(environ["TAGGER_REDIS_URL"])
        assert redis_url.scheme == "redis"
        assert redis_url.hostname == "redis"
        assert (redis_url.port or 6379) == 6379
    assert "redis" in services


def test_workers_share_one_definition(compose: Doc) -> None:
    """The two workers are the same image and settings (one consumer group), each with
    its web port published on its own host port, started once Kafka and Redis are healthy."""
    first, second = (compose["services"][name] for name in WORKERS)
    for key in ("build", "image", "command", "environment", "depends_on"):
        assert first.get(key) == second.get(key), key
    environ = service_environment(first)
    port = int(environ.get("TAGGER_WEB_PORT", WEB_PORT))
    hosts: list[int] = []
    for worker in (first, second):
        ports = published_ports(worker)
        assert list(ports.values()) == [port]
        hosts.extend(ports)
        for dependency in ("kafka", "redis"):
            assert worker["depends_on"][dependency]["condition"] == "service_healthy"
        assert worker.get("restart") == "unless-stopped"
    assert sorted(hosts) == [6066, 6067]


def test_prometheus_and_grafana_mount_the_repository_files(compose: Doc) -> None:
    """Prometheus and Grafana read their configuration from deploy/ (a missing source
    directory would be created empty by docker and the stack would start blind)."""
    services = compose["services"]
    prometheus = bind_mounts(services["prometheus"])
    grafana = bind_mounts(services["grafana"])
    expected = {
        (prometheus.get("/etc/prometheus"), ROOT / "deploy" / "prometheus"),
        (grafana.get("/etc/grafana/provisioning"), ROOT / "deploy" / "grafana" / "provisioning"),
        (grafana.get("/var/lib/grafana/dashboards"), ROOT / "deploy" / "grafana" / "dashboards"),
    }
    for mounted, directory in expected:
        assert mounted is not None and mounted.resolve() == directory, (mounted, directory)
        assert directory.is_dir(), f"{directory.relative_to(ROOT)} does not exist"
    command = services["prometheus"].get("command", [])
    assert "--config.file=/etc/prometheus/prometheus.yml" in command
    assert (ROOT / "deploy" / "prometheus" / "prometheus.yml").is_file()


def test_prometheus_scrapes_every_worker(compose: Doc) -> None:
    """The scrape targets of the `tagger` job are exactly the workers' web ports."""
    config = yaml.safe_load((ROOT / "deploy" / "prometheus" / "prometheus.yml").read_text())
    jobs = [job for job in config["scrape_configs"] if job["job_name"] == "tagger"]
    assert len(jobs) == 1
    targets = {target for static in jobs[0]["static_configs"] for target in static["targets"]}
    port = service_environment(compose["services"]["worker-1"]).get("TAGGER_WEB_PORT", WEB_PORT)
    assert targets == {f"{name}:{port}" for name in WORKERS}


def test_grafana_provisioning_matches_the_mounts(compose: Doc) -> None:
    """Grafana's dashboard provider reads the directory compose mounts the dashboards at,
    and its data source is the compose Prometheus."""
    provisioning = ROOT / "deploy" / "grafana" / "provisioning"
    mounts = bind_mounts(compose["services"]["grafana"])
    dashboards = [path for path, source in mounts.items() if source.name == "dashboards"]
    for path in sorted((provisioning / "dashboards").glob("*.y*ml")):
        for provider in yaml.safe_load(path.read_text())["providers"]:
            assert provider["options"]["path"] in dashboards, path.name
    for path in sorted((provisioning / "datasources").glob("*.y*ml")):
        for source in yaml.safe_load(path.read_text())["datasources"]:
            if source["type"] == "prometheus":
                url = urlsplit(source["url"])
                assert url.hostname in compose["services"], source["url"]
                assert 9090 in published_ports(compose["services"]["prometheus"]).values()


# --- Kubernetes -------------------------------------------------------------------------------

kubernetes_validate = importlib.import_module("kubernetes_validate")
# An older minor still in wide use, and the newest schemas the package ships.
K8S_VERSIONS = ("1.31.0", kubernetes_validate.latest_version())


def manifest_files() -> list[Path]:
    """The Kubernetes manifests; kustomization.yaml is kustomize's, not a k8s kind."""
    return sorted(path for path in K8S.glob("*.yaml") if path.name != "kustomization.yaml")


def documents(path: Path) -> Iterator[Doc]:
    """The non-empty YAML documents of a file."""
    for document in yaml.safe_load_all(path.read_text()):
        if document:
            yield document


@pytest.fixture(scope="module")
def resources() -> dict[str, Doc]:
    """Every manifest's resource by kind (one of each kind here), but for the rules
    ConfigMap, which tests/deploy/test_deploy_rules.py checks."""
    found: dict[str, Doc] = {}
    for path in manifest_files():
        if path == RULES_CONFIGMAP:
            continue
        for document in documents(path):
            assert document["kind"] not in found, f"two {document['kind']}s"
            found[document["kind"]] = document
    return found


def test_there_are_manifests() -> None:
    """The parametrised validation below must not pass by finding nothing."""
    names = {path.name for path in manifest_files()}
    expected = {"configmap.yaml", EXAMPLE_SECRET, "deployment.yaml", "service.yaml"}
    assert names >= expected | {"hpa.yaml", "pdb.yaml", "networkpolicy.yaml"}
    assert names >= {RULES_CONFIGMAP.name}


@pytest.mark.parametrize("version", K8S_VERSIONS)
@pytest.mark.parametrize("path", manifest_files(), ids=lambda path: path.name)
def test_manifest_matches_the_kubernetes_schema(path: Path, version: str) -> None:
    """Strict schema validation: a misspelt or misplaced field (which the API server
    might drop silently) fails here, not at deploy time."""
    for document in documents(path):
        try:
            kubernetes_validate.validate(document, version, True)
        except kubernetes_validate.ValidationError as error:
            where = "/".join(str(part) for part in error.path)
            pytest.fail(f"{path.name} ({version}): {where}: {error.message}")


def container(resources: Doc) -> Doc:
    """The worker container of the Deployment."""
    containers = resources["Deployment"]["spec"]["template"]["spec"]["containers"]
    assert len(containers) == 1
    only: Doc = containers[0]
    return only


def container_port(worker: Doc, port: int | str) -> int:
    """A port number, given its number or the container's name for it."""
    if isinstance(port, int):
        return port
    named = [item["containerPort"] for item in worker["ports"] if item.get("name") == port]
    assert named, f"the container has no port named {port}"
    number: int = named[0]
    return number


def test_probes_and_service_use_the_web_port(resources: Doc) -> None:
    """Liveness asks /healthz and readiness /readyz on the port the worker serves
    (TAGGER_WEB_PORT), which is also the port the Service sends to."""
    worker = container(resources)
    config = resources["ConfigMap"]["data"]
    web_port = int(config.get("TAGGER_WEB_PORT", WEB_PORT))
    probes = {
        "livenessProbe": "/healthz",
        "readinessProbe": "/readyz",
        "startupProbe": "/healthz",
    }
    for probe, path in probes.items():
        check = worker[probe]["httpGet"]
        assert check["path"] == path, probe
        assert container_port(worker, check["port"]) == web_port, probe
    service = resources["Service"]
    (port,) = service["spec"]["ports"]
    assert container_port(worker, port["targetPort"]) == web_port
    assert port["name"] == "metrics"
    pod_labels = resources["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert service["spec"]["selector"].items() <= pod_labels.items()
    annotations = resources["Deployment"]["spec"]["template"]["metadata"]["annotations"]
    assert annotations["prometheus.io/scrape"] == "true"
    assert int(annotations["prometheus.io/port"]) == web_port


def test_deployment_is_bounded_and_locked_down(resources: Doc) -> None:
    """Requests and limits for the scheduler; no root, no privilege escalation, no
    capabilities, a read-only root with a writable /tmp (Faust's data directory)."""
    spec = resources["Deployment"]["spec"]
    pod = spec["template"]["spec"]
    worker = container(resources)
    for kind in ("requests", "limits"):
        assert {"cpu", "memory"} <= set(worker["resources"][kind]), kind
    security = pod.get("securityContext", {}) | worker["securityContext"]
    assert security["runAsNonRoot"] is True
    assert security["runAsUser"] == IMAGE_UID
    assert security["allowPrivilegeEscalation"] is False
    assert security["readOnlyRootFilesystem"] is True
    assert security["capabilities"]["drop"] == ["ALL"]
    mounts = {mount["mountPath"]: mount["name"] for mount in worker["volumeMounts"]}
    volumes = {volume["name"]: volume for volume in pod["volumes"]}
    assert "emptyDir" in volumes[mounts["/tmp"]]
    assert pod["terminationGracePeriodSeconds"] >= 30
    labels = spec["template"]["metadata"]["labels"]
    assert labels["app.kubernetes.io/name"] == "tagger"
    assert spec["selector"]["matchLabels"].items() <= labels.items()


def test_environment_comes_from_the_configmap_and_secret(
    resources: Doc, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The pod gets its settings from the ConfigMap and the Secret defined here; every
    key is a setting with a valid value, and secrets live in the Secret only."""
    worker = container(resources)
    config = resources["ConfigMap"]
    secret = resources["Secret"]
    sources = {
        next(iter(source)): next(iter(source.values()))["name"] for source in worker["envFrom"]
    }
    assert sources == {
        "configMapRef": config["metadata"]["name"],
        "secretRef": secret["metadata"]["name"],
    }
    secret_data = secret.get("stringData", {})
    environ = {**config["data"], **secret_data}
    assert_settings_load(environ, monkeypatch)
    assert set(secret_data) == secret_settings()
    assert not set(config["data"]) & secret_settings()
    assert urlsplit(config["data"]["TAGGER_REDIS_URL"]).password is None
    # The image runs its bundled pack or the directory mounted at /app/rules (its working
    # directory's rules/): a TAGGER_RULES_DIR naming a directory nobody mounted stops it.
    assert "TAGGER_RULES_DIR" not in config["data"]
    assert "TAGGER_RULES_DIR" not in dockerfile_env()


def test_autoscaler_stays_within_the_partitions(resources: Doc) -> None:
    """The HPA scales this Deployment, never beyond the partition count (a worker
    without a partition idles and is never ready), and never below what the
    PodDisruptionBudget keeps (or a drain could never evict a worker)."""
    hpa = resources["HorizontalPodAutoscaler"]["spec"]
    deployment = resources["Deployment"]
    assert hpa["scaleTargetRef"] == {
        "apiVersion": "apps/v1",
        "kind": "Deployment",
        "name": deployment["metadata"]["name"],
    }
    partitions = int(resources["ConfigMap"]["data"]["TAGGER_PARTITIONS"])
    assert 1 <= hpa["minReplicas"] <= hpa["maxReplicas"] <= partitions
    assert hpa["minReplicas"] <= deployment["spec"]["replicas"] <= hpa["maxReplicas"]
    metrics = [metric["pods"]["metric"]["name"] for metric in hpa["metrics"]]
    assert metrics == ["tagger_consumer_lag_messages"]
    pdb = resources["PodDisruptionBudget"]["spec"]
    assert pdb["minAvailable"] < hpa["minReplicas"]
    labels = deployment["spec"]["template"]["metadata"]["labels"]
    assert pdb["selector"]["matchLabels"].items() <= labels.items()


def peers(rule: Doc, direction: str) -> list[Doc]:
    """The peers (``from`` or ``to``) of a NetworkPolicy rule."""
    found: list[Doc] = rule[direction]
    return found


def rule_ports(worker: Doc, rule: Doc) -> set[tuple[int, str]]:
    """(port, protocol) of a NetworkPolicy rule, named ports resolved on the worker."""
    return {
        (container_port(worker, port["port"]), port.get("protocol", "TCP"))
        for port in rule["ports"]
    }


def egress_to(policy: Doc, worker: Doc, namespace: str) -> set[tuple[int, str]]:
    """The ports the worker may reach in a namespace (by its kubernetes.io/metadata.name)."""
    ports: set[tuple[int, str]] = set()
    for rule in policy["spec"]["egress"]:
        for peer in peers(rule, "to"):
            labels = peer.get("namespaceSelector", {}).get("matchLabels", {})
            if labels.get("kubernetes.io/metadata.name") == namespace:
                ports |= rule_ports(worker, rule)
    return ports


def service_namespace(host: str) -> str:
    """The namespace of a cluster service's name (NAME.NAMESPACE.svc[.cluster.local])."""
    parts = host.split(".")
    assert len(parts) >= 3 and parts[2] == "svc", f"{host} is not NAME.NAMESPACE.svc..."
    return parts[1]


def test_network_policy_opens_the_web_port_to_prometheus_and_view_clients(
    resources: Doc,
) -> None:
    """The policy selects the workers, lets in only Prometheus and the labelled view
    clients, and only on the web port the worker serves."""
    policy = resources["NetworkPolicy"]
    worker = container(resources)
    labels = resources["Deployment"]["spec"]["template"]["metadata"]["labels"]
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= labels.items()
    assert sorted(policy["spec"]["policyTypes"]) == ["Egress", "Ingress"]
    (ingress,) = policy["spec"]["ingress"]
    web_port = int(resources["ConfigMap"]["data"].get("TAGGER_WEB_PORT", WEB_PORT))
    assert rule_ports(worker, ingress) == {(web_port, "TCP")}
    allowed = [peer["podSelector"]["matchLabels"] for peer in peers(ingress, "from")]
    assert allowed == [
        {"app.kubernetes.io/name": "prometheus"},
        {"tagger-views-client": "true"},
    ]
    # Any namespace, but only pods with those labels: never a bare namespaceSelector.
    for peer in peers(ingress, "from"):
        assert set(peer) == {"namespaceSelector", "podSelector"}


def test_network_policy_lets_the_worker_reach_kafka_redis_and_dns(resources: Doc) -> None:
    """Egress is open to DNS and to the namespaces and ports of the ConfigMap's broker and
    Redis URLs, and nothing else: a changed URL without a changed policy fails here."""
    policy = resources["NetworkPolicy"]
    worker = container(resources)
    config = resources["ConfigMap"]["data"]
    wanted: dict[str, set[tuple[int, str]]] = {"kube-system": {(53, "UDP"), (53, "TCP")}}
    for server in config["TAGGER_BROKER_URL"].removeprefix("kafka://").split(";"):
        host, _, port = server.rpartition(":")
        wanted.setdefault(service_namespace(host), set()).add((int(port), "TCP"))
    redis_url = urlsplit(config["TAGGER_REDIS_URL"])
    assert redis_url.hostname is not None
    wanted.setdefault(service_namespace(redis_url.hostname), set()).add(
        (redis_url.port or 6379, "TCP")
    )
    assert {name: egress_to(policy, worker, name) for name in wanted} == wanted
    namespaces = {
        peer["namespaceSelector"]["matchLabels"]["kubernetes.io/metadata.name"]
        for rule in policy["spec"]["egress"]
        for peer in peers(rule, "to")
    }
    assert namespaces == set(wanted)
    (dns,) = [rule for rule in policy["spec"]["egress"] if (53, "UDP") in rule_ports(worker, rule)]
    assert [peer["podSelector"]["matchLabels"] for peer in peers(dns, "to")] == [
        {"k8s-app": "kube-dns"}
    ]


def test_kustomization_lists_every_manifest() -> None:
    """`kubectl apply -k deploy/k8s` applies every manifest, except the example Secret,
    which must never be applied with its placeholder passwords."""
    kustomization = yaml.safe_load((K8S / "kustomization.yaml").read_text())
    assert kustomization["kind"] == "Kustomization"
    listed = kustomization["resources"]
    assert len(listed) == len(set(listed))
    expected = {path.name for path in manifest_files()} - {EXAMPLE_SECRET}
    assert set(listed) == expected


# --- Dockerfile ------------------------------------------------------------------------------


def instructions() -> list[tuple[str, str]]:
    """The Dockerfile's instructions (keyword, arguments), continuation lines joined and
    comments dropped."""
    found: list[tuple[str, str]] = []
    pending = ""
    for raw in DOCKERFILE.read_text().splitlines():
        line = raw.strip()
        if not line or line.startswith("#"):
            continue
        if line.endswith("\\"):
            pending += line[:-1] + " "
            continue
        keyword, _, arguments = (pending + line).partition(" ")
        found.append((keyword.upper(), arguments.strip()))
        pending = ""
    return found


def dockerfile_env() -> dict[str, str]:
    """The variables the image's ENV instructions set (KEY=VALUE form)."""
    environ = {}
    for keyword, arguments in instructions():
        if keyword == "ENV":
            for pair in arguments.split():
                name, _, value = pair.partition("=")
                environ[name] = value
    return environ


def test_dockerfile_pins_its_base_images() -> None:
    """Every FROM names an exact version (a moving tag rebuilds into another image), and
    the base is a slim Python 3.11 at an exact patch release."""
    stages: set[str] = set()
    bases = []
    for keyword, arguments in instructions():
        if keyword != "FROM":
            continue
        parts = arguments.split()
        image = parts[0]
        if len(parts) >= 3 and parts[1].upper() == "AS":
            stages.add(parts[2])
        if image in stages:
            continue
        bases.append(image)
        name, _, tag = image.partition("@")[0].rpartition(":")
        assert "@sha256:" in image or (name and tag and tag != "latest"), image
        assert re.search(r"\d+\.\d+", tag or image), f"{image}: not an exact version"
    assert bases
    for image in bases:
        assert re.fullmatch(r"python:3\.11\.\d+-slim(-\w+)?(@sha256:[0-9a-f]{64})?", image), image


def test_dockerfile_runs_the_worker_unprivileged() -> None:
    """The final stage runs `tagger run` as the non-root uid the Kubernetes manifests
    expect, finds the rule pack (which a site-packages install does not carry), and
    exposes and health-checks the web port."""
    steps = instructions()
    final = steps[max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM") :]
    users = [arguments for keyword, arguments in final if keyword == "USER"]
    assert users, "no USER: the worker would run as root"
    user = users[-1].split(":")[0]
    assert user not in {"root", "0"}
    assert user == str(IMAGE_UID)
    # The rule pack is package data of the wheel built in the first stage, and the worker
    # runs from /app, where a mounted rules/ directory replaces it.
    builder = steps[: max(i for i, (keyword, _) in enumerate(steps) if keyword == "FROM")]
    assert ("COPY", "rules rules") in builder
    assert not [
        arguments for keyword, arguments in final if keyword == "COPY" and "rules" in arguments
    ]
    assert ("WORKDIR", "/app") in final
    assert (ROOT / "rules").is_dir()
    assert ("EXPOSE", str(WEB_PORT)) in final
    healthchecks = [arguments for keyword, arguments in final if keyword == "HEALTHCHECK"]
    assert len(healthchecks) == 1 and "/healthz" in healthchecks[0]
    assert ("ENTRYPOINT", '["tagger"]') in final
    assert ("CMD", '["run"]') in final


def test_dockerfile_installs_the_locks_with_their_hashes() -> None:
    """The builder installs the build requirements and the runtime dependencies from
    their locks, every file checked against its hash (tests/lint/test_locks.py checks
    the locks themselves)."""
    runs = [arguments for keyword, arguments in instructions() if keyword == "RUN"]
    for lock in ("deploy/requirements-build.lock", "deploy/requirements.lock"):
        installs = [command for command in runs if f"-r {lock}" in command]
        assert installs, f"the Dockerfile does not install {lock}"
        assert all("--require-hashes" in command for command in installs), lock
    copies = [arguments for keyword, arguments in instructions() if keyword == "COPY"]
    assert "deploy/requirements.lock deploy/requirements.lock" in copies
