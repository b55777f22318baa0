"""The deployment files (deploy/, Dockerfile, docker-compose.yml) checked by the real tools, and the wiring between
their parts that no validator sees (a probe on a route that exists, a Secret the Deployment names, a Job script
that really trains, exports and switches the model the pods wait for).

The validators live in `.venv-tools` (`make tools`, deploy/tools-requirements.txt): checkov pins libraries that
would clash with the project's. No cluster and no Docker daemon are needed: nothing here is deployed.
"""

from __future__ import annotations

import json
import os
import re
import shutil
import subprocess
import sys
from pathlib import Path

import pytest
import yaml

from tests.support.paths import REPO_ROOT

ROOT = REPO_ROOT
K8S = ROOT / "deploy" / "kubernetes"
TOOLS = ROOT / ".venv-tools" / "bin"
KUBERNETES_VERSION = "1.33.0"  # the oldest release still supported upstream when this was written
LAYERS = {"base": K8S / "base", "example": K8S / "overlays" / "example"}


def tool(name: str) -> Path:
    path = TOOLS / name
    if not path.exists():
        message = f"{path} is missing: run `make tools` (deploy/tools-requirements.txt)"
        if os.environ.get("CI"):
            pytest.fail(message)  # CI runs `make test`, which builds the tools: their absence is a fault there
        pytest.skip(message)
    return path


def run_tool(name: str, *args: str, env: dict | None = None, timeout: float = 300) -> subprocess.CompletedProcess:
    # Tools on PATH too: checkov's kustomize framework calls `kubectl kustomize` itself.
    full_env = {**os.environ, "PATH": f"{TOOLS}{os.pathsep}{os.environ.get('PATH', '')}", **(env or {})}
    return subprocess.run([str(tool(name)), *args], cwd=ROOT, env=full_env, capture_output=True, text=True,
                          timeout=timeout)


@pytest.fixture(scope="module")
def rendered() -> dict[str, list[dict]]:
    """`kubectl kustomize` (kustomize v5) of the base and of the example overlay."""
    out = {}
    for name, folder in LAYERS.items():
        result = run_tool("kubectl", "kustomize", str(folder))
        assert result.returncode == 0, result.stderr
        out[name] = [doc for doc in yaml.safe_load_all(result.stdout) if doc]
    return out


def one(docs: list[dict], kind: str, name_prefix: str = "") -> dict:
    found = [d for d in docs if d["kind"] == kind and d["metadata"]["name"].startswith(name_prefix)]
    assert len(found) == 1, f"expected one {kind} {name_prefix!r}, found {len(found)}"
    return found[0]


def pod_containers(workload: dict) -> list[dict]:
    spec = workload["spec"]["template"]["spec"]
    return spec.get("initContainers", []) + spec["containers"]


def test_overlay_renders_every_part_in_its_own_namespace(rendered):
    docs = rendered["example"]
    kinds = {d["kind"] for d in docs}
    assert kinds >= {"Namespace", "ServiceAccount", "ConfigMap", "Secret", "PersistentVolumeClaim", "Deployment",
                     "Service", "Ingress", "HorizontalPodAutoscaler", "PodDisruptionBudget", "NetworkPolicy", "Job"}
    namespace = one(docs, "Namespace")["metadata"]["name"]
    assert namespace != "default"
    assert all(d["metadata"].get("namespace") == namespace for d in docs if d["kind"] != "Namespace")
    assert one(docs, "Namespace")["metadata"]["labels"]["pod-security.kubernetes.io/enforce"] == "restricted"


@pytest.mark.parametrize("layer", list(LAYERS))
def test_pods_are_hardened_and_write_only_to_their_volumes(rendered, layer):
    docs = rendered[layer]
    for workload in (one(docs, "Deployment"), one(docs, "Job")):
        pod = workload["spec"]["template"]["spec"]
        assert pod["automountServiceAccountToken"] is False
        assert pod["securityContext"]["runAsNonRoot"] is True and pod["securityContext"]["runAsUser"] > 0
        assert pod["securityContext"]["seccompProfile"]["type"] == "RuntimeDefault"
        volumes = {v["name"]: v for v in pod["volumes"]}
        for container in pod_containers(workload):
            name = f"{workload['metadata']['name']}/{container['name']}"
            context = container["securityContext"]
            assert context["readOnlyRootFilesystem"] is True, name
            assert context["allowPrivilegeEscalation"] is False, name
            assert context["capabilities"]["drop"] == ["ALL"], name
            image, _, tag = container["image"].rpartition(":")
            assert image and tag and tag != "latest" and "/" not in tag, f"{name}: image not pinned by tag"
            assert container["imagePullPolicy"] in {"Always", "IfNotPresent"}, name
            assert {"cpu", "memory"} <= set(container["resources"]["requests"]), name
            assert {"cpu", "memory"} <= set(container["resources"]["limits"]), name
            # Every place the app or its libraries write (env paths below) lies on a writable mounted volume.
            writable = [m["mountPath"] for m in container.get("volumeMounts", []) if not m.get("readOnly")
                        and {"emptyDir", "persistentVolumeClaim"} & set(volumes[m["name"]])]
            env = {e["name"]: e.get("value") for e in container.get("env", [])}
            for variable in ("FRONTDESK_HOME", "PROMETHEUS_MULTIPROC_DIR", "HOME", "HF_HOME", "MPLCONFIGDIR",
                             "XDG_CACHE_HOME"):
                if variable in env:
                    assert any(Path(env[variable]).is_relative_to(w) for w in writable), f"{name}: {variable}"
            if container["name"] != "wait-for-model":
                assert "/tmp" in writable, name


def test_server_probes_ports_and_routing_match_the_app(rendered):
    from adapters.channels import web
    from adapters.http.app import create_app
    from adapters.runtime.settings import Settings

    # The probes' routes are the app's own; the web chat's socket comes from the web channel's router.
    routes = {getattr(r, "path", None) for r in [*create_app(Settings()).routes, *web.router.routes]}
    docs = rendered["example"]
    deployment = one(docs, "Deployment")
    server = deployment["spec"]["template"]["spec"]["containers"][0]
    port_names = {p["name"]: p["containerPort"] for p in server["ports"]}
    assert server["livenessProbe"]["httpGet"]["path"] == "/healthz"
    assert server["startupProbe"]["httpGet"]["path"] == "/healthz"
    assert server["readinessProbe"]["httpGet"]["path"] == "/readyz"
    for probe in ("livenessProbe", "startupProbe", "readinessProbe"):
        assert server[probe]["httpGet"]["path"] in routes
        assert server[probe]["httpGet"]["port"] in port_names
    # The startup probe allows minutes of model loading before liveness may restart the pod.
    startup = server["startupProbe"]
    assert startup["periodSeconds"] * startup["failureThreshold"] >= 180
    assert server["args"][:1] == ["serve"] and str(port_names["http"]) in server["args"]

    pod_labels = deployment["spec"]["template"]["metadata"]["labels"]
    service = one(docs, "Service")
    assert service["spec"]["selector"].items() <= pod_labels.items()
    assert service["spec"]["ports"][0]["targetPort"] in port_names
    ingress = one(docs, "Ingress")
    backend = ingress["spec"]["rules"][0]["http"]["paths"][0]
    assert backend["backend"]["service"]["name"] == service["metadata"]["name"]
    assert backend["backend"]["service"]["port"]["name"] == service["spec"]["ports"][0]["name"]
    # The web chat's socket is under the routed prefix, and may stay open for an hour.
    assert "/web/ws" in routes and "/web/ws".startswith(backend["path"]) and backend["pathType"] == "Prefix"
    annotations = ingress["metadata"]["annotations"]
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-read-timeout"]) >= 3600
    assert int(annotations["nginx.ingress.kubernetes.io/proxy-send-timeout"]) >= 3600
    assert ingress["spec"]["rules"][0]["host"] == "chat.example.org"  # the overlay's patch applied

    hpa = one(docs, "HorizontalPodAutoscaler")
    assert hpa["spec"]["scaleTargetRef"] == {"apiVersion": "apps/v1", "kind": "Deployment",
                                             "name": deployment["metadata"]["name"]}
    assert 2 <= hpa["spec"]["minReplicas"] < hpa["spec"]["maxReplicas"]
    pdb = one(docs, "PodDisruptionBudget")
    assert pdb["spec"]["selector"]["matchLabels"].items() <= pod_labels.items()
    policy = next(d for d in docs if d["kind"] == "NetworkPolicy" and d["metadata"]["name"] == "frontdesk")
    assert policy["spec"]["podSelector"]["matchLabels"].items() <= pod_labels.items()
    assert {p["port"] for rule in policy["spec"]["ingress"] for p in rule["ports"]} == {port_names["http"]}


def test_settings_come_from_the_configmap_and_secret_and_the_app_accepts_them(rendered, monkeypatch):
    from adapters.runtime.settings import Settings

    docs = rendered["example"]
    config, secret = one(docs, "ConfigMap", "frontdesk-config"), one(docs, "Secret", "frontdesk-secrets")
    server = one(docs, "Deployment")["spec"]["template"]["spec"]["containers"][0]
    sources = {next(iter(s.values()))["name"] for s in server["envFrom"]}
    assert sources == {config["metadata"]["name"], secret["metadata"]["name"]}  # hash-suffixed names resolved

    import base64

    secret_values = {k: base64.b64decode(v).decode() for k, v in secret["data"].items()}
    assert {"REDIS_URL", "FRONTDESK_ADMIN_TOKEN", "SLACK_BOT_TOKEN", "SLACK_SIGNING_SECRET", "SLACK_APP_TOKEN",
            "TELEGRAM_BOT_TOKEN", "TELEGRAM_WEBHOOK_SECRET"} <= set(secret_values)
    assert not set(config["data"]) & {"REDIS_URL", "FRONTDESK_ADMIN_TOKEN", "SLACK_BOT_TOKEN", "TELEGRAM_BOT_TOKEN"}
    assert {"REDIS_CLUSTER", "REDIS_SENTINELS", "REDIS_SENTINEL_MASTER"} <= set(config["data"])
    # Every name is one Frontdesk reads (a misspelt key would be silently ignored), and the values parse.
    known = {field.validation_alias for field in Settings.model_fields.values()} | {
        "FRONTDESK_LOG_FORMAT", "FRONTDESK_LOG_LEVEL", "PROMETHEUS_MULTIPROC_DIR"}
    merged = {**config["data"], **secret_values}
    assert set(merged) <= known, set(merged) - known
    for name in known & set(os.environ):
        monkeypatch.delenv(name, raising=False)
    for name, value in merged.items():
        monkeypatch.setenv(name, value)
    settings = Settings()
    assert settings.redis_url.startswith("redis://") and not settings.redis_cluster
    assert str(settings.model_dir) == config["data"]["FRONTDESK_MODEL_DIR"]
    # Proxy trust comes from FRONTDESK_TRUSTED_PROXIES alone (private ranges only); uvicorn's own variable is gone.
    assert "FORWARDED_ALLOW_IPS" not in merged
    assert settings.proxy_networks_list and all(n.is_private for n in settings.proxy_networks_list)
    # The example ships no token to copy: the operator must generate one (a placeholder is refused at start-up).
    assert secret_values["FRONTDESK_ADMIN_TOKEN"] == "" and settings.admin_token is None


def _script_paths(text: str, models: Path, training: Path) -> str:
    return text.replace("/models", str(models)).replace("/training", str(training))


@pytest.mark.timeout(600)
def test_training_job_script_trains_exports_and_switches_the_model_the_pods_wait_for(rendered, tiny_data,
                                                                                     tmp_path, embedder):
    """The Job's own shell script, run here on tiny data (paths moved into tmp_path): it must leave a complete,
    loadable ONNX model at the path the Deployment serves, which is what the init container waits for, and the
    query encoder the pods are configured with."""
    from knowledge.query_encoder import load_query_encoder
    from nlu.engine import load_engine

    docs = rendered["example"]
    job, deployment = one(docs, "Job"), one(docs, "Deployment")
    config = one(docs, "ConfigMap", "frontdesk-config")["data"]
    job_pod, server_pod = job["spec"]["template"]["spec"], deployment["spec"]["template"]["spec"]
    claim = {v["name"]: v.get("persistentVolumeClaim", {}).get("claimName") for v in job_pod["volumes"]}
    served = {v["name"]: v.get("persistentVolumeClaim", {}) for v in server_pod["volumes"]}
    job_mount = next(m for m in job_pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/models")
    server_mount = next(m for m in server_pod["containers"][0]["volumeMounts"] if m["mountPath"] == "/models")
    assert claim[job_mount["name"]] == served[server_mount["name"]]["claimName"] == one(
        docs, "PersistentVolumeClaim")["metadata"]["name"]
    assert server_mount["readOnly"] is True and served[server_mount["name"]]["readOnly"] is True
    assert not job_mount.get("readOnly")

    models, training = tmp_path / "models", tmp_path / "training"
    models.mkdir()
    training.mkdir()
    shutil.copy(tiny_data[0], training / "intents.csv")
    shutil.copy(tiny_data[1], training / "sentiment.csv")
    wait = server_pod["initContainers"][0]["command"]
    wait_script = _script_paths(wait[-1], models, training)
    assert subprocess.run(["timeout", "3", *wait[:-1], wait_script]).returncode == 124  # no model yet: waits

    container = job_pod["containers"][0]
    env = {**os.environ, "PATH": f"{Path(sys.executable).parent}{os.pathsep}{os.environ['PATH']}",
           "FRONTDESK_HOME": str(tmp_path / "home"),
           "TRAIN_EPOCHS": "1", "TRAIN_ARGS": "--max-steps 4 --batch-size 8 --dev-fraction 0.2",
           "DISTILL_ARGS": "--max-steps 2 --epochs 1"}
    script = _script_paths(container["args"][0], models, training)
    result = subprocess.run([*container["command"], script], env=env, capture_output=True, text=True, timeout=540)
    assert result.returncode == 0, result.stderr[-3000:]

    current = models / "current"
    assert current.is_symlink() and not os.readlink(current).startswith("/")  # relative: same path in every pod
    assert (current / "model.onnx").is_file()
    assert json.loads((current / "config.json").read_text())["num_hidden_layers"] == 4  # the distilled student
    assert subprocess.run(["timeout", "10", *wait[:-1], wait_script]).returncode == 0  # the pods may start
    assert _script_paths(config["FRONTDESK_MODEL_DIR"], models, training) == str(current)
    query_encoder = models / "query-encoder"  # made before the switch: the pods find both
    assert query_encoder.is_symlink() and not os.readlink(query_encoder).startswith("/")
    assert _script_paths(config["FRONTDESK_QUERY_ENCODER"], models, training) == str(query_encoder)
    assert load_query_encoder(query_encoder, embedder).info.layers == 6  # loads as a pod loads it, checked
    engine = load_engine(current, "cpu")
    try:
        assert engine.predict(["where is my order"])[0].intent in {"order_status", "refund", "greet", "oos"}
    finally:
        engine.close()


@pytest.mark.parametrize("layer", list(LAYERS))
def test_manifests_pass_the_kubernetes_schemas(rendered, layer, tmp_path):
    path = tmp_path / f"{layer}.yaml"
    path.write_text(yaml.safe_dump_all(rendered[layer]))
    result = run_tool("kubernetes-validate", "--strict", "-k", KUBERNETES_VERSION, "--quiet", str(path))
    assert result.returncode == 0, result.stdout + result.stderr
    # The validator does reject a mistake: a misspelt field in the Deployment.
    broken = [dict(d) for d in rendered[layer]]
    deployment = next(d for d in broken if d["kind"] == "Deployment")
    deployment["spec"] = {**deployment["spec"], "replica": 2}
    path.write_text(yaml.safe_dump_all(broken))
    assert run_tool("kubernetes-validate", "--strict", "-k", KUBERNETES_VERSION, "--quiet",
                    str(path)).returncode != 0


def _checkov(*args: str) -> list[dict]:
    result = run_tool("checkov", "--config-file", str(ROOT / ".checkov.yaml"), "-o", "json", *args)
    reports = json.loads(result.stdout)
    return reports if isinstance(reports, list) else [reports]


def _assert_clean(reports: list[dict], frameworks: set[str]) -> None:
    assert {r["check_type"] for r in reports} >= frameworks
    for report in reports:
        summary = report["summary"]
        failed = [(c["check_id"], c["resource"]) for c in report["results"].get("failed_checks", [])]
        assert summary["failed"] == 0 and summary["parsing_errors"] == 0, (report["check_type"], failed)
        for skipped in report["results"].get("skipped_checks", []):
            reason = (skipped.get("check_result") or {}).get("suppress_comment") or ""
            assert len(reason.split()) >= 5, f"{skipped['check_id']} on {skipped['resource']} skipped without a reason"


def test_checkov_passes_the_kubernetes_manifests():
    reports = _checkov("-d", str(K8S), "--framework", "kustomize")
    _assert_clean(reports, {"kustomize"})
    assert sum(r["summary"]["passed"] for r in reports) > 100  # base and overlay were really scanned


def test_checkov_and_hadolint_pass_the_dockerfile_and_no_secret_is_committed():
    reports = _checkov("-f", "Dockerfile", "-f", "docker-compose.yml", "-f", "deploy/compose/nginx.conf",
                       "-f", str(K8S / "overlays" / "example" / "secrets.example.env"),
                       "--framework", "dockerfile", "secrets")
    _assert_clean(reports, {"dockerfile"})
    result = run_tool("hadolint", "--failure-threshold", "info", "Dockerfile")
    assert result.returncode == 0, result.stdout + result.stderr
    lines = (ROOT / "Dockerfile").read_text().splitlines()
    for number, line in enumerate(lines):
        if line.startswith("# hadolint ignore="):  # every ignored rule says why, on the comment line above
            assert lines[number - 1].startswith("#") and "ignore" not in lines[number - 1], number + 1
    final_stage = (ROOT / "Dockerfile").read_text().rsplit("\nFROM ", 1)[1]
    assert "\nUSER 10001" in final_stage and "\nHEALTHCHECK " in final_stage


def test_build_context_has_what_the_dockerfile_copies_and_nothing_heavy():
    import fnmatch

    ignored = [line.strip() for line in (ROOT / ".dockerignore").read_text().splitlines()
               if line.strip() and not line.startswith("#")]
    copies = [line.split()[1:-1] for line in (ROOT / "Dockerfile").read_text().splitlines()
              if line.startswith("COPY ") and "--from=" not in line]
    sources = [source for group in copies for source in group]
    assert {"pyproject.toml", "bot", "nlu", "knowledge", "adapters"} <= set(sources)
    for source in sources:
        assert (ROOT / source).exists(), source
        assert not any(fnmatch.fnmatch(source, pattern) for pattern in ignored), f"{source} is .dockerignored"
    for heavy in (".git", ".venv", ".venv-tools", ".frontdesk", "tests", "bench"):
        assert heavy in ignored, heavy
    # The compose file mounts the wording over the installed copy: the path must name the image's Python.
    python = re.search(r"^FROM python:(\d+\.\d+)", (ROOT / "Dockerfile").read_text(), re.M)[1]
    assert f"/opt/venv/lib/python{python}/site-packages/bot/templates.yaml" in (ROOT / "docker-compose.yml").read_text()


def _compose(*args: str, token: str | None = "t" * 32) -> subprocess.CompletedProcess:
    env = {name: value for name, value in os.environ.items() if not name.startswith(("FRONTDESK_", "COMPOSE_"))}
    if token is not None:
        env["FRONTDESK_ADMIN_TOKEN"] = token
    docker = shutil.which("docker")
    has_plugin = docker and subprocess.run([docker, "compose", "version"], capture_output=True).returncode == 0
    command = [docker, "compose"] if has_plugin else [str(tool("docker-compose"))]
    return subprocess.run([*command, "-f", str(ROOT / "docker-compose.yml"), *args], cwd=ROOT, env=env,
                          capture_output=True, text=True, timeout=60)


def test_compose_file_is_valid_and_runs_replicas_behind_one_proxy():
    missing = _compose("config", "-q", token=None)
    assert missing.returncode != 0 and "set FRONTDESK_ADMIN_TOKEN" in missing.stderr

    result = _compose("config", "--format", "json")
    assert result.returncode == 0, result.stderr
    services = json.loads(result.stdout)["services"]
    assert set(services) == {"redis", "bot", "proxy"}
    for name, service in services.items():
        assert service.get("healthcheck", {}).get("test"), f"{name} has no healthcheck"
        assert service.get("restart") == "unless-stopped", name
        assert service.get("read_only") is True and service.get("cap_drop") == ["ALL"], name
    redis_command = " ".join(services["redis"]["command"])
    for setting in ("--appendonly yes", "--appendfsync everysec", "--maxmemory-policy noeviction"):
        assert setting in redis_command
    assert services["redis"]["user"] not in {"", "root", "0"}
    bot, proxy = services["bot"], services["proxy"]
    assert bot["deploy"]["replicas"] >= 2 and not bot.get("ports")  # only the proxy has an address
    assert len(proxy["ports"]) == 1 and proxy["depends_on"]["bot"]["condition"] == "service_healthy"
    assert bot["environment"]["FRONTDESK_ADMIN_TOKEN"] == "t" * 32
    assert bot["environment"]["REDIS_URL"].startswith("redis://redis:")
    # Wording and FAQ come from this machine, read-only; the sources exist in the repository.
    mounts = {m["target"]: m for m in bot["volumes"]}
    templates = next(t for t in mounts if t.endswith("bot/templates.yaml"))
    for target in (templates, "/kb"):
        assert mounts[target]["read_only"] is True and Path(mounts[target]["source"]).exists()
    nginx = next(m for m in proxy["volumes"] if m["target"] == "/etc/nginx/nginx.conf")
    assert Path(nginx["source"]) == ROOT / "deploy" / "compose" / "nginx.conf"
    # X-Forwarded-For is believed from the proxy's own network only: a subnet the proxy alone shares with the bots.
    networks = json.loads(result.stdout)["networks"]
    assert set(proxy["networks"]) == {"edge"} and "edge" in bot["networks"] and "edge" not in services["redis"].get(
        "networks", {"default": None})
    (edge,) = [c["subnet"] for c in networks["edge"]["ipam"]["config"]]
    assert bot["environment"]["FRONTDESK_TRUSTED_PROXIES"] == edge and "FORWARDED_ALLOW_IPS" not in bot["environment"]


def test_proxy_config_parses_and_passes_websocket_upgrades_to_the_bots():
    result = run_tool("crossplane", "parse", "deploy/compose/nginx.conf")
    parsed = json.loads(result.stdout)
    assert parsed["status"] == "ok", parsed["errors"]

    def walk(block):
        for directive in block:
            yield directive
            yield from walk(directive.get("block", []))

    directives = list(walk(parsed["config"][0]["parsed"]))
    socket = next(d for d in directives if d["directive"] == "location" and d["args"] == ["/web/ws"])
    inside = {(d["directive"], tuple(d["args"])) for d in walk(socket["block"])}
    assert ("proxy_http_version", ("1.1",)) in inside
    assert ("proxy_set_header", ("Upgrade", "$http_upgrade")) in inside
    assert ("proxy_set_header", ("Connection", "$connection_upgrade")) in inside
    # X-Forwarded-For overwritten with the address nginx sees, everywhere; a client's own value never passed on.
    forwarded = [d["args"] for d in directives if d["directive"] == "proxy_set_header"
                 and d["args"][0].lower() == "x-forwarded-for"]
    assert forwarded and all(args == ["X-Forwarded-For", "$remote_addr"] for args in forwarded), forwarded
    # The access log never writes a query string ($request, $request_uri, $args) or the referrer.
    formats = {d["args"][0]: " ".join(d["args"][1:]) for d in directives if d["directive"] == "log_format"}
    logs = [d["args"] for d in directives if d["directive"] == "access_log" and d["args"] != ["off"]]
    assert logs and all(len(args) == 2 and args[1] in formats for args in logs), logs
    for shape in formats.values():
        assert not re.search(r"\$(request|request_uri|args|query_string|arg_\w+|http_referer)\b", shape), shape
    upstream = next(d for d in directives if d["directive"] == "set" and d["args"][0] == "$bot")
    assert upstream["args"][1] == "http://bot:8000"  # the compose service and the port the image listens on
    listen = next(d for d in directives if d["directive"] == "listen")
    proxy = json.loads(_compose("config", "--format", "json").stdout)["services"]["proxy"]
    assert [str(p["target"]) for p in proxy["ports"]] == listen["args"]  # the published port is nginx's


def test_proxy_passes_pages_and_chat_sockets_to_a_live_bot(tiny_model, redis_url, redis_prefix, tmp_path):
    """Debian's nginx with the compose proxy's own config (only the bot's address, the port and the scratch paths
    changed) in front of a real server: a page, /readyz and a web-chat conversation over the socket go through."""
    import httpx
    from websockets.sync.client import connect

    from adapters.runtime.settings import Settings
    from tests.support.liveserver import live_app
    from tests.support.serverutil import free_port

    nginx = ROOT / ".venv-tools" / "nginx" / "usr" / "sbin" / "nginx"
    tool("checkov")  # the tools are there (or the reason they are not is given) ...
    if not nginx.exists():  # ... and nginx came with them
        pytest.fail("nginx missing from .venv-tools: rerun `make tools`") if os.environ.get("CI") else pytest.skip(
            "nginx missing from .venv-tools: rerun `make tools`")
    kb = tmp_path / "faq.yaml"
    kb.write_text(yaml.safe_dump([
        {"id": "hours", "question": "What are your opening hours?", "answer": "We are open 9 to 5, Monday to Friday.",
         "alternates": ["when are you open"]},
        {"id": "returns", "question": "How do I return an item?", "answer": "Send it back within 30 days.",
         "alternates": ["can i send it back"]}]))
    settings = Settings(FRONTDESK_MODEL_DIR=tiny_model, REDIS_URL=redis_url, FRONTDESK_REDIS_PREFIX=redis_prefix,
                        FRONTDESK_HOME=tmp_path / "home", FRONTDESK_DEVICE="cpu", FRONTDESK_KB=kb)
    port = free_port()
    config = (ROOT / "deploy" / "compose" / "nginx.conf").read_text()
    with live_app(settings) as bot_url:
        config = (config.replace("http://bot:8000", bot_url).replace("listen 8080;", f"listen 127.0.0.1:{port};")
                  .replace("/tmp/", f"{tmp_path}/"))
        (tmp_path / "nginx.conf").write_text(config)
        proxy = subprocess.Popen([str(nginx), "-p", str(tmp_path), "-c", str(tmp_path / "nginx.conf"), "-e", "stderr",
                                  "-g", "daemon off;"], stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
        try:
            base = f"127.0.0.1:{port}"
            for _ in range(100):
                try:
                    if httpx.get(f"http://{base}/proxy-health", timeout=1).status_code == 200:
                        break
                except httpx.HTTPError:
                    assert proxy.poll() is None, proxy.stderr.read().decode()
            assert httpx.get(f"http://{base}/readyz", timeout=10).status_code == 200
            assert "<html" in httpx.get(f"http://{base}/", timeout=10).text.lower()
            # As a browser on the proxy's address does: its Origin must match the Host the bot is shown.
            with connect(f"ws://{base}/web/ws", origin=f"http://{base}", open_timeout=10) as socket:
                socket.send(json.dumps({"type": "hello", "session": f"proxytest{redis_prefix}0123456789"}))
                assert json.loads(socket.recv(timeout=30))["type"] == "history"
                socket.send(json.dumps({"type": "message", "text": "hello", "id": "m1"}))
                frames = [json.loads(socket.recv(timeout=60))]
                while frames[-1]["type"] != "ack":
                    frames.append(json.loads(socket.recv(timeout=60)))
            assert any(f["type"] == "reply" and f["text"] for f in frames), frames
        finally:
            proxy.terminate()
            proxy.wait(timeout=10)
