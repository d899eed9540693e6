"""The deployment checks behind scripts/check-deploy (run it through that script: it picks the Python
of .tools/venv, where scripts/bootstrap installs kubernetes-validate and PyYAML).

  check                 docker-compose config accepts compose/; kubectl kustomize renders every
                        kustomization under k8s/; kubernetes-validate accepts the rendered manifests;
                        and the structure the deployment relies on is there (probes, healthchecks,
                        volumes, budgets, scalers...).
  ops                   writes k8s/ops/prometheusrule.yaml and k8s/ops/grafana-dashboard.yaml from
                        compose/prometheus/alerts.yml and compose/grafana/dashboards/tradebus.json (the
                        one source of each); `check` fails when they are out of date.
  environments FILE     writes, as JSON, the environment every TradeBus container gets in compose and
                        in each overlay, for Tests/TradeBusTests/DeploymentConfigTests.swift, which runs
                        the workers' --print-config on it and compares it with what the code reads.
"""

import base64
import json
import os
import re
import shutil
import subprocess
import sys
import tempfile
from pathlib import Path

import yaml

ROOT = Path(__file__).resolve().parent.parent
COMPOSE_DIR = ROOT / "compose"
K8S_DIR = ROOT / "k8s"
WORKERS = ["feed-ingester", "indicator-worker", "ai-analyst", "executor", "notifier"]
# The operator's cockpit: deployed like a worker, but one replica (its sessions live in memory) with its
# page published on the host's loopback only (compose) or behind a ClusterIP Service (k8s).
COCKPIT = "cockpit"
PROGRAMS = WORKERS + [COCKPIT]
SERVERS = ["rabbitmq", "redis", "postgres"]
OVERLAYS = ["dev", "prod"]
# Kubernetes versions the manifests are validated against: an old one still supported by most
# providers, and the newest kubernetes-validate knows.
K8S_VERSIONS = ["1.28.0", None]


class CheckFailed(Exception):
    pass


def run(command, **kwargs):
    return subprocess.run(command, capture_output=True, text=True, **kwargs)


def tool(name):
    path = shutil.which(name)
    if path is None:
        venv = Path(sys.executable).parent / name
        if venv.exists():
            return str(venv)
        raise CheckFailed(f"{name} is not installed: run scripts/bootstrap")
    return path


# ---------------------------------------------------------------------------------------------------
# compose


def read_env_file(path):
    """`KEY=value` lines and `# KEY=...` lines (a key listed but commented out)."""
    values, commented = {}, []
    for line in Path(path).read_text().splitlines():
        stripped = line.strip()
        if not stripped:
            continue
        match = re.fullmatch(r"#\s*([A-Z][A-Z0-9_]*)=.*", stripped)
        if match:
            commented.append(match.group(1))
            continue
        if stripped.startswith("#"):
            continue
        key, sep, value = stripped.partition("=")
        if not sep:
            raise CheckFailed(f"{path}: '{line}' is not KEY=value")
        values[key.strip()] = value
    return values, commented


def compose_variables(text):
    """Names interpolated in docker-compose.yml (`${NAME}`, `${NAME:-x}`, `${NAME:?x}`)."""
    return sorted(set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*)", text)))


def compose_required_variables(text):
    return sorted(set(re.findall(r"(?<!\$)\$\{([A-Za-z_][A-Za-z0-9_]*):\?", text)))


def compose_config(env_overrides):
    """`docker-compose config` on a copy of compose/ whose .env is .env.example with `env_overrides`."""
    with tempfile.TemporaryDirectory() as tmp:
        copy = Path(tmp) / "compose"
        shutil.copytree(COMPOSE_DIR, copy, ignore=shutil.ignore_patterns(".env"))
        lines = []
        for line in (COMPOSE_DIR / ".env.example").read_text().splitlines():
            key = line.partition("=")[0].strip()
            if not line.lstrip().startswith("#") and key in env_overrides:
                line = f"{key}={env_overrides[key]}"
            lines.append(line)
        (copy / ".env").write_text("\n".join(lines) + "\n")
        result = run([tool("docker-compose"), "--project-directory", str(copy), "-f", str(copy / "docker-compose.yml"), "config"],
                     env={**os.environ, "COMPOSE_INTERACTIVE_NO_CLI": "1"})
        return result


def check_compose(errors):
    text = (COMPOSE_DIR / "docker-compose.yml").read_text()
    required = compose_required_variables(text)
    # With the passwords still blank, compose must refuse to start.
    blank = compose_config({})
    if blank.returncode == 0 and required:
        errors.append("compose: docker-compose config accepts blank passwords; ${VAR:?...} should refuse them")
    filled = compose_config({name: f"check{name.lower().replace('_', '')}" for name in required})
    if filled.returncode != 0:
        raise CheckFailed(f"compose: docker-compose config refused the compose file:\n{filled.stderr}")
    config = yaml.safe_load(filled.stdout)
    raw = yaml.safe_load(text)
    services = config["services"]
    raw_services = raw["services"]
    volumes = set((config.get("volumes") or {}).keys())
    print(f"compose: docker-compose config accepts compose/docker-compose.yml ({len(services)} services)")

    def healthcheck(name):
        check = services[name].get("healthcheck")
        if not check or not check.get("test"):
            errors.append(f"compose: {name} has no healthcheck")
        return check or {}

    for name in SERVERS:
        if name not in services:
            errors.append(f"compose: no {name} service")
            continue
        healthcheck(name)
        named = [v for v in services[name].get("volumes", []) if isinstance(v, dict) and v.get("type") == "volume"
                 or isinstance(v, str) and v.split(":")[0] in volumes]
        if not named:
            errors.append(f"compose: {name} has no named volume")
        if not services[name].get("restart"):
            errors.append(f"compose: {name} has no restart policy")
    if "management" not in services.get("rabbitmq", {}).get("image", ""):
        errors.append("compose: rabbitmq should run an image with the management plugin")

    for name in WORKERS:
        if name not in services:
            errors.append(f"compose: no {name} service")
            continue
        service, raw_service = services[name], raw_services[name]
        test = healthcheck(name).get("test", [])
        if "/health" not in " ".join(test if isinstance(test, list) else [test]):
            errors.append(f"compose: {name}'s healthcheck does not GET /health")
        if service.get("restart") not in ("always", "unless-stopped", "on-failure"):
            errors.append(f"compose: {name} has no restart policy")
        env_file = raw_service.get("env_file") or raw.get("x-worker", {}).get("env_file")
        if env_file not in (".env", [".env"], "./.env", ["./.env"]):
            errors.append(f"compose: {name} does not read .env (env_file)")
        for key in ("container_name", "ports"):
            if key in service:
                errors.append(f"compose: {name} has {key}, so it cannot be scaled")
        depends = service.get("depends_on") or {}
        for server in ("rabbitmq", "redis"):
            if depends.get(server, {}).get("condition") != "service_healthy":
                errors.append(f"compose: {name} does not wait for {server} to be healthy")
    cockpit = services.get(COCKPIT)
    if cockpit is None:
        errors.append("compose: no cockpit service")
    else:
        test = healthcheck(COCKPIT).get("test", [])
        if "/health" not in " ".join(test if isinstance(test, list) else [test]):
            errors.append("compose: cockpit's healthcheck does not GET /health")
        for published in cockpit.get("ports") or []:
            # docker-compose 1.29 renders a port as "127.0.0.1:8090:8090/tcp", v2 as a mapping.
            host = published.get("host_ip") if isinstance(published, dict) else str(published).split(":")[0]
            if host != "127.0.0.1":
                errors.append(f"compose: cockpit publishes {published} beyond the host's loopback")
        depends = cockpit.get("depends_on") or {}
        for server in ("rabbitmq", "postgres"):
            if depends.get(server, {}).get("condition") != "service_healthy":
                errors.append(f"compose: cockpit does not wait for {server} to be healthy")
    executor_depends = services.get("executor", {}).get("depends_on") or {}
    if executor_depends.get("migrate", {}).get("condition") != "service_completed_successfully":
        errors.append("compose: executor does not wait for migrate (service_completed_successfully)")
    if services.get("migrate", {}).get("command") != ["tradebus", "migrate"]:
        errors.append("compose: migrate does not run `tradebus migrate`")
    return config, raw


def duration_seconds(text):
    match = re.fullmatch(r"(?:(\d+)m)?(?:(\d+)s)?", str(text))
    if not match or not any(match.groups()):
        return None
    return int(match.group(1) or 0) * 60 + int(match.group(2) or 0)


def compose_environments(config, raw):
    text = (COMPOSE_DIR / "docker-compose.yml").read_text()
    shared, commented = read_env_file(COMPOSE_DIR / ".env.example")
    targets = []
    for name, service in config["services"].items():
        command = service.get("command") or []
        if not command or (command[0] not in PROGRAMS and command[0] != "tradebus"):
            continue
        raw_env = raw["services"][name].get("environment") or {}
        own_keys = list(raw_env.keys() if isinstance(raw_env, dict) else [e.partition("=")[0] for e in raw_env])
        environment = {k: ("" if v is None else str(v)) for k, v in (service.get("environment") or {}).items()}
        own = {k: environment.get(k, "") for k in own_keys}
        shared_env = {k: v for k, v in environment.items() if k not in own}
        test = " ".join((service.get("healthcheck") or {}).get("test") or [])
        port = re.search(r":(\d+)/health", test)
        targets.append({
            "target": "compose", "name": name, "program": command[0], "arguments": command[1:],
            "shared": shared_env, "own": own, "operatorSupplied": [],
            "healthPorts": [int(port.group(1))] if port else [],
            "stopGraceSeconds": duration_seconds(service.get("stop_grace_period", "10s")),
        })
    return {
        "variables": sorted(set(compose_variables(text)) | {k for k in shared if k.startswith("COMPOSE_")}),
        "envExample": {"set": shared, "commented": commented},
        "targets": targets,
    }


# ---------------------------------------------------------------------------------------------------
# Kubernetes


def kustomizations():
    return sorted(p.parent for p in K8S_DIR.rglob("kustomization.yaml"))


def render(path):
    result = run([tool("kubectl"), "kustomize", str(path)])
    if result.returncode != 0:
        raise CheckFailed(f"k8s: kubectl kustomize {path.relative_to(ROOT)} failed:\n{result.stderr}")
    return result.stdout, [d for d in yaml.safe_load_all(result.stdout) if d]


def validate(name, text, errors):
    with tempfile.NamedTemporaryFile("w", suffix=".yaml", prefix=f"{name.replace('/', '-')}-") as file:
        file.write(text)
        file.flush()
        for version in K8S_VERSIONS:
            command = [tool("kubernetes-validate"), "--strict", "--quiet"] + (["-k", version] if version else []) + [file.name]
            result = run(command)
            output = (result.stdout + result.stderr).splitlines()
            missing = sorted({m.group(1) for line in output if (m := re.search(r"Couldn't find schema for kind (\w+)", line))})
            problems = [line for line in output if "Couldn't find schema" not in line and line.strip()]
            if result.returncode != 0 or problems:
                errors.append(f"k8s: kubernetes-validate {' '.join(command[1:-1])} rejects {name}:\n  " + "\n  ".join(problems))
            else:
                extra = f"; no schema for {', '.join(missing)} (checked below)" if missing else ""
                print(f"k8s: {name} validates against Kubernetes {version or 'latest'} (strict){extra}")


def by_kind(docs, kind):
    return {d["metadata"]["name"]: d for d in docs if d.get("kind") == kind}


def secret_values(secret):
    values = dict(secret.get("stringData") or {})
    for key, value in (secret.get("data") or {}).items():
        values[key] = base64.b64decode(value).decode()
    return {k: "" if v is None else str(v) for k, v in values.items()}


def pod_targets(name, docs, secret_template):
    """The environment of every TradeBus container in one rendered overlay."""
    config_maps = {n: {k: "" if v is None else str(v) for k, v in (d.get("data") or {}).items()} for n, d in by_kind(docs, "ConfigMap").items()}
    secrets = {n: secret_values(d) for n, d in by_kind(docs, "Secret").items()}
    targets = []
    workloads = list(by_kind(docs, "Deployment").values()) + list(by_kind(docs, "Job").values())
    for workload in workloads:
        pod = workload["spec"]["template"]
        spec = pod["spec"]
        for container in spec["containers"]:
            command = container.get("command") or []
            if not command or (command[0] not in PROGRAMS and command[0] != "tradebus"):
                continue
            shared, own, operator = {}, {}, []

            def resolve(ref, kind, key, optional=False):
                source = config_maps if kind == "configMap" else secrets
                if ref in source:
                    return source[ref].get(key, "")
                if kind == "secret" and ref == "tradebus-secrets":
                    operator.append(key)
                    return secret_template.get(key, "")
                return None

            for source in container.get("envFrom") or []:
                if "configMapRef" in source:
                    ref = source["configMapRef"]["name"]
                    shared.update(config_maps.get(ref, {}))
                if "secretRef" in source:
                    ref = source["secretRef"]["name"]
                    keys = secrets.get(ref) or {k: resolve(ref, "secret", k) for k in secret_template}
                    shared.update(keys)
            for entry in container.get("env") or []:
                if "value" in entry:
                    own[entry["name"]] = str(entry["value"])
                elif "valueFrom" in entry:
                    origin = entry["valueFrom"]
                    if "secretKeyRef" in origin:
                        ref = origin["secretKeyRef"]
                        own[entry["name"]] = resolve(ref["name"], "secret", ref["key"]) or ""
                    elif "configMapKeyRef" in origin:
                        ref = origin["configMapKeyRef"]
                        own[entry["name"]] = resolve(ref["name"], "configMap", ref["key"]) or ""
                    else:
                        own[entry["name"]] = ""
                        operator.append(entry["name"])
                else:
                    own[entry["name"]] = ""
            ports = {p.get("name"): p["containerPort"] for p in container.get("ports") or []}

            def probe_port(probe):
                port = ((probe or {}).get("httpGet") or {}).get("port")
                return ports.get(port, port) if isinstance(port, str) else port

            health_ports = [probe_port(container.get(p)) for p in ("startupProbe", "livenessProbe", "readinessProbe") if container.get(p)]
            annotations = pod.get("metadata", {}).get("annotations") or {}
            metrics = annotations.get("prometheus.io/port")
            targets.append({
                "target": f"k8s/{name}", "name": workload["metadata"]["name"], "program": command[0], "arguments": command[1:],
                "shared": shared, "own": own, "operatorSupplied": sorted(set(operator)),
                "healthPorts": health_ports + ([int(metrics)] if metrics else []),
                "stopGraceSeconds": spec.get("terminationGracePeriodSeconds", 30) if workload["kind"] == "Deployment" else None,
            })
    return targets


def check_k8s_structure(name, docs, secret_template, errors):
    deployments = by_kind(docs, "Deployment")
    config_maps = by_kind(docs, "ConfigMap")
    secrets = by_kind(docs, "Secret")
    where = f"k8s/{name}"
    for worker in PROGRAMS:
        deployment = deployments.get(worker)
        if deployment is None:
            errors.append(f"{where}: no Deployment {worker}")
            continue
        pod = deployment["spec"]["template"]
        spec = pod["spec"]
        labels = pod["metadata"].get("labels") or {}
        selector = deployment["spec"]["selector"].get("matchLabels") or {}
        if any(labels.get(k) != v for k, v in selector.items()):
            errors.append(f"{where}: {worker}'s selector does not match its pods")
        annotations = pod["metadata"].get("annotations") or {}
        if annotations.get("prometheus.io/scrape") != "true" or annotations.get("prometheus.io/path") != "/metrics":
            errors.append(f"{where}: {worker} has no Prometheus scrape annotations for /metrics")
        if not (spec.get("securityContext") or {}).get("runAsNonRoot"):
            errors.append(f"{where}: {worker} may run as root (securityContext.runAsNonRoot)")
        if "terminationGracePeriodSeconds" not in spec:
            errors.append(f"{where}: {worker} has no terminationGracePeriodSeconds")
        volumes = {v["name"] for v in spec.get("volumes") or []}
        for container in spec["containers"]:
            for probe, path in (("livenessProbe", "/health"), ("readinessProbe", None)):
                if not ((container.get(probe) or {}).get("httpGet") or {}).get("path", "").startswith(path or "/"):
                    errors.append(f"{where}: {worker} has no {probe}" + (f" on {path}" if path else ""))
            resources = container.get("resources") or {}
            for part in ("requests", "limits"):
                if not {"cpu", "memory"} <= set((resources.get(part) or {}).keys()):
                    errors.append(f"{where}: {worker} has no cpu and memory {part}")
            context = container.get("securityContext") or {}
            if not context.get("readOnlyRootFilesystem"):
                errors.append(f"{where}: {worker}'s root filesystem is writable")
            if context.get("allowPrivilegeEscalation") is not False:
                errors.append(f"{where}: {worker} allows privilege escalation")
            for mount in container.get("volumeMounts") or []:
                if mount["name"] not in volumes:
                    errors.append(f"{where}: {worker} mounts '{mount['name']}', which is not among its volumes")
            for source in container.get("envFrom") or []:
                ref = (source.get("configMapRef") or {}).get("name")
                if ref and ref not in config_maps:
                    errors.append(f"{where}: {worker} reads ConfigMap {ref}, which is not rendered")
            for entry in container.get("env") or []:
                ref = ((entry.get("valueFrom") or {}).get("secretKeyRef") or {})
                if ref:
                    if ref["name"] != "tradebus-secrets" and ref["name"] not in secrets:
                        errors.append(f"{where}: {worker} reads Secret {ref['name']}, which is neither rendered nor tradebus-secrets")
                    if ref["name"] == "tradebus-secrets" and ref["key"] not in secret_template:
                        errors.append(f"{where}: {worker} reads {ref['key']} from tradebus-secrets; k8s/secret-template lacks it")
    jobs = [d for d in by_kind(docs, "Job").values()
            if any(c.get("command") == ["tradebus", "migrate"] for c in d["spec"]["template"]["spec"]["containers"])]
    if not jobs:
        errors.append(f"{where}: no Job runs `tradebus migrate`")
    budgets = by_kind(docs, "PodDisruptionBudget")
    covered = {b["spec"]["selector"]["matchLabels"].get("app.kubernetes.io/name") for b in budgets.values()}
    for worker in PROGRAMS:
        if worker not in covered:
            errors.append(f"{where}: no PodDisruptionBudget for {worker}")
    if deployments.get(COCKPIT, {}).get("spec", {}).get("replicas") != 1:
        errors.append(f"{where}: cockpit must run one replica (its sessions live in memory)")
    services = by_kind(docs, "Service")
    if not any((s["spec"].get("selector") or {}).get("app.kubernetes.io/name") == COCKPIT for s in services.values()):
        errors.append(f"{where}: no Service selects the cockpit")
    auths = by_kind(docs, "TriggerAuthentication")
    for auth_name, auth in auths.items():
        for ref in auth["spec"].get("secretTargetRef") or []:
            if ref["name"] == "tradebus-secrets" and ref["key"] not in secret_template:
                errors.append(f"{where}: TriggerAuthentication {auth_name} reads {ref['key']}, which k8s/secret-template lacks")
    scaled = by_kind(docs, "ScaledObject")
    for worker in ("ai-analyst", "notifier"):
        obj = next((s for s in scaled.values() if s["spec"]["scaleTargetRef"]["name"] == worker), None)
        if obj is None:
            errors.append(f"{where}: no KEDA ScaledObject scales {worker}")
            continue
        if "replicas" in deployments.get(worker, {}).get("spec", {}):
            errors.append(f"{where}: {worker} sets replicas, which KEDA manages")
        for trigger in obj["spec"].get("triggers") or []:
            metadata = trigger.get("metadata") or {}
            if trigger.get("type") != "rabbitmq" or metadata.get("mode") != "QueueLength" or not metadata.get("queueName"):
                errors.append(f"{where}: {worker}'s trigger is not a rabbitmq QueueLength trigger on a queue")
            if (trigger.get("authenticationRef") or {}).get("name") not in auths:
                errors.append(f"{where}: {worker}'s trigger has no TriggerAuthentication")
    if name == "overlays/dev":
        for kind in ("StatefulSet", "Service"):
            for server in SERVERS:
                if server not in by_kind(docs, kind):
                    errors.append(f"{where}: no {kind} {server}")
        for server, sts in by_kind(docs, "StatefulSet").items():
            if sts["spec"].get("replicas") != 1:
                errors.append(f"{where}: StatefulSet {server} should have one replica")
        values = secret_values(secrets.get("tradebus-secrets", {}))
        for key in ("AMQP_URL", "REDIS_URL", "DATABASE_URL"):
            if not values.get(key):
                errors.append(f"{where}: the Secret tradebus-secrets has no {key}")
    if name == "overlays/prod" and "tradebus-secrets" in secrets:
        errors.append(f"{where}: ships the Secret tradebus-secrets, which would overwrite the one you created")


def scalers(name, docs):
    deployments = {}
    for obj in by_kind(docs, "ScaledObject").values():
        queues = [t["metadata"]["queueName"] for t in obj["spec"].get("triggers") or [] if (t.get("metadata") or {}).get("queueName")]
        deployments[obj["spec"]["scaleTargetRef"]["name"]] = queues
    return {"target": f"k8s/{name}", "queues": deployments}


def k8s(errors, do_validate):
    print(f"k8s: rendering with {tool('kubectl')} kustomize")
    template_path = K8S_DIR / "secret-template"
    _, template_docs = render(template_path)
    template = secret_values(next(iter(by_kind(template_docs, "Secret").values())))
    for key, value in template.items():
        if value:
            errors.append(f"k8s/secret-template: {key} has a value; the template must stay blank")
    rendered = {}
    for path in kustomizations():
        name = str(path.relative_to(K8S_DIR))
        text, docs = render(path)
        print(f"k8s: kubectl kustomize k8s/{name} renders {len(docs)} objects")
        if do_validate:
            validate(f"k8s/{name}", text, errors)
        rendered[name] = docs
    for overlay in OVERLAYS:
        key = f"overlays/{overlay}"
        if key not in rendered:
            errors.append(f"k8s: no overlay {key}")
    if do_validate:
        for name in ["base"] + [f"overlays/{o}" for o in OVERLAYS]:
            if name in rendered:
                check_k8s_structure(name, rendered[name], template, errors)
    return rendered, template


# ---------------------------------------------------------------------------------------------------
# The operations pack: Prometheus and its rules, Grafana and its dashboard, in compose and k8s.

PROMETHEUS_DIR = COMPOSE_DIR / "prometheus"
DASHBOARD = COMPOSE_DIR / "grafana" / "dashboards" / "tradebus.json"
OPS_DIR = K8S_DIR / "ops"
ALERTS = ["TradeBusWorkerDown", "TradeBusQueueGrowing", "TradeBusDeadLetters", "TradeBusFeedStale",
          "TradeBusBreakerTripped", "TradeBusReducing", "TradeBusPositionWithoutStop",
          "TradeBusReconciliationMismatch", "TradeBusOrderLatency", "TradeBusLLMErrors", "TradeBusLLMSpend"]


def ops_manifests():
    """The k8s/ops files made from compose's: the PrometheusRule and the dashboard's ConfigMap."""
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    header = "# Generated by `scripts/check-deploy ops` from {}: edit that file, then run it again.\n"
    rule = {
        "apiVersion": "monitoring.coreos.com/v1",
        "kind": "PrometheusRule",
        "metadata": {"name": "tradebus", "labels": {"app.kubernetes.io/part-of": "tradebus", "release": "prometheus"}},
        "spec": {"groups": groups},
    }
    dashboard = {
        "apiVersion": "v1",
        "kind": "ConfigMap",
        "metadata": {"name": "tradebus-grafana-dashboard",
                     "labels": {"app.kubernetes.io/part-of": "tradebus", "grafana_dashboard": "1"}},
        "data": {"tradebus.json": DASHBOARD.read_text()},
    }
    dump = lambda doc: yaml.safe_dump(doc, sort_keys=False, width=1000, allow_unicode=True)
    return {
        OPS_DIR / "prometheusrule.yaml": header.format("compose/prometheus/alerts.yml") + dump(rule),
        OPS_DIR / "grafana-dashboard.yaml": header.format("compose/grafana/dashboards/tradebus.json") + dump(dashboard),
    }


def check_ops(config, errors):
    """promtool checks the rules and runs their unit tests; compose's ops profile and k8s/ops are there
    and agree with their sources; the dashboard is valid JSON whose every query names a metric."""
    promtool = tool("promtool")
    for command in (["check", "config", str(PROMETHEUS_DIR / "prometheus.yml")],
                    ["check", "rules", str(PROMETHEUS_DIR / "alerts.yml")],
                    ["test", "rules", str(PROMETHEUS_DIR / "alerts.test.yml")]):
        result = run([promtool] + command, cwd=str(PROMETHEUS_DIR))
        if result.returncode != 0:
            errors.append(f"ops: promtool {' '.join(command[:2])} failed:\n{result.stdout}{result.stderr}")
        else:
            print(f"ops: promtool {' '.join(command[:2])} {Path(command[2]).name}: ok")
    groups = yaml.safe_load((PROMETHEUS_DIR / "alerts.yml").read_text())["groups"]
    names = [rule.get("alert") for group in groups for rule in group["rules"]]
    for alert in ALERTS:
        if alert not in names:
            errors.append(f"ops: no alert rule {alert}")
    tested = (PROMETHEUS_DIR / "alerts.test.yml").read_text()
    for alert in names:
        if f"alertname: {alert}" not in tested:
            errors.append(f"ops: alerts.test.yml has no test of {alert}")
    readme = (ROOT / "README.md").read_text()
    for alert in names:
        if f"`{alert}`" not in readme:
            errors.append(f"ops: README.md does not say what {alert} means")
    services = config["services"]
    for name in ("prometheus", "grafana"):
        service = services.get(name)
        if service is None:
            errors.append(f"compose: no {name} service (the ops profile)")
            continue
        if service.get("profiles") != ["ops"]:
            errors.append(f"compose: {name} is not in the ops profile only")
        for published in service.get("ports") or []:
            host = published.get("host_ip") if isinstance(published, dict) else str(published).split(":")[0]
            if host != "127.0.0.1":
                errors.append(f"compose: {name} publishes {published} beyond the host's loopback")
    dashboard = json.loads(DASHBOARD.read_text())
    for panel in dashboard.get("panels", []):
        for target in panel.get("targets", []):
            if not re.search(r"(tradebus_|rabbitmq_|\bup\b)", target.get("expr", "")):
                errors.append(f"ops: dashboard panel '{panel.get('title')}' queries no TradeBus metric")
    for path, text in ops_manifests().items():
        if not path.exists() or path.read_text() != text:
            errors.append(f"ops: {path.relative_to(ROOT)} is out of date: run scripts/check-deploy ops")


def check_ops_k8s(docs, errors):
    kinds = {}
    for doc in docs:
        kinds.setdefault(doc["kind"], []).append(doc)
    for kind in ("ServiceMonitor", "PrometheusRule", "Service", "ConfigMap"):
        if kind not in kinds:
            errors.append(f"k8s/ops: no {kind}")
    monitored = {d["metadata"]["name"] for d in kinds.get("Service", [])}
    for program in PROGRAMS:
        if f"{program}-metrics" not in monitored:
            errors.append(f"k8s/ops: no metrics Service for {program}")
    for monitor in kinds.get("ServiceMonitor", []):
        endpoints = monitor["spec"].get("endpoints") or []
        if not any(e.get("port") == "http" and e.get("path") == "/metrics" for e in endpoints):
            errors.append("k8s/ops: the ServiceMonitor does not scrape port http at /metrics")


def main(argv):
    if len(argv) >= 1 and argv[0] == "environments" and len(argv) == 2:
        errors = []
        config, raw = check_compose(errors)
        rendered, template = k8s(errors, do_validate=False)
        compose = compose_environments(config, raw)
        targets = list(compose["targets"])
        config_maps, scaling = {}, []
        for overlay in OVERLAYS:
            docs = rendered[f"overlays/{overlay}"]
            targets += pod_targets(f"overlays/{overlay}", docs, template)
            config_map = by_kind(docs, "ConfigMap").get("tradebus-config") or {}
            config_maps[f"k8s/overlays/{overlay}"] = {k: "" if v is None else str(v) for k, v in (config_map.get("data") or {}).items()}
            scaling.append(scalers(f"overlays/{overlay}", docs))
        document = {
            "workers": WORKERS,
            "composeVariables": compose["variables"],
            "envExample": compose["envExample"],
            "targets": targets,
            "configMaps": config_maps,
            "secretTemplate": template,
            "scalers": scaling,
        }
        Path(argv[1]).write_text(json.dumps(document, indent=2, sort_keys=True))
        return 0
    if argv == ["ops"]:
        for path, text in ops_manifests().items():
            path.write_text(text)
            print(f"check-deploy: wrote {path.relative_to(ROOT)}")
        return 0
    if argv not in ([], ["check"]):
        print(__doc__, file=sys.stderr)
        return 2
    errors = []
    config, raw = check_compose(errors)
    rendered, _ = k8s(errors, do_validate=True)
    check_ops(config, errors)
    if "ops" in rendered:
        check_ops_k8s(rendered["ops"], errors)
    else:
        errors.append("k8s: no k8s/ops kustomization")
    if errors:
        print("check-deploy: FAILED", file=sys.stderr)
        for error in errors:
            print(f"  {error}", file=sys.stderr)
        return 1
    print("check-deploy: compose and k8s are consistent")
    return 0


if __name__ == "__main__":
    try:
        sys.exit(main(sys.argv[1:]))
    except CheckFailed as failure:
        print(f"check-deploy: {failure}", file=sys.stderr)
        sys.exit(1)
