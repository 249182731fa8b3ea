"""The deployment examples docs/DEPLOYMENT.md points to hold together:

- packaging/kubernetes/mcpgate.yaml is valid YAML with a Secret, a ConfigMap, a
  Deployment, a Service, a PodDisruptionBudget and a NetworkPolicy whose names, labels, ports,
  secret keys and volumes refer to one another; the ConfigMap's mcpgate.toml
  passes `mcpgate check-config` with the Secret's values (placeholders replaced by
  real keys) in the environment, as the Deployment sets them, and its ports are the
  container's;
- docs/DEPLOYMENT.md shows packaging/nginx/mcpgate.conf as it is (the file the
  replica tests run).
"""

from __future__ import annotations

import base64
import os
import re
import subprocess
import tomllib
from typing import Any

import yaml
from conftest import REPO, _mcpgate_bin

K8S = REPO / "packaging" / "kubernetes" / "mcpgate.yaml"
NGINX = REPO / "packaging" / "nginx" / "mcpgate.conf"
DEPLOYMENT_MD = REPO / "docs" / "DEPLOYMENT.md"


def _docs() -> dict[str, dict[str, Any]]:
    docs = [d for d in yaml.safe_load_all(K8S.read_text()) if d is not None]
    by_kind = {d["kind"]: d for d in docs}
    assert len(by_kind) == len(docs), "one object of each kind"
    return by_kind


def _seconds(duration: str) -> int:
    m = re.fullmatch(r"(\d+)s", duration)
    assert m, duration
    return int(m.group(1))


def test_kubernetes_example_objects_fit_together() -> None:
    k = _docs()
    assert set(k) == {"Secret", "ConfigMap", "Deployment", "Service", "PodDisruptionBudget", "NetworkPolicy"}
    assert k["Deployment"]["apiVersion"] == "apps/v1" and k["PodDisruptionBudget"]["apiVersion"] == "policy/v1"
    secret, config, deployment, service = k["Secret"], k["ConfigMap"], k["Deployment"], k["Service"]

    spec = deployment["spec"]
    assert spec["replicas"] >= 2
    labels = spec["template"]["metadata"]["labels"]
    assert spec["selector"]["matchLabels"].items() <= labels.items()
    assert service["spec"]["selector"].items() <= labels.items()
    assert k["PodDisruptionBudget"]["spec"]["selector"]["matchLabels"].items() <= labels.items()
    assert k["PodDisruptionBudget"]["spec"]["minAvailable"] < spec["replicas"]

    pod = spec["template"]["spec"]
    (container,) = pod["containers"]
    ports = {p["name"]: p["containerPort"] for p in container["ports"]}
    assert {p["targetPort"] for p in service["spec"]["ports"]} <= set(ports)

    # Every secret the container reads exists; the three shared values come from it.
    env = {e["name"]: e["valueFrom"]["secretKeyRef"] for e in container["env"] if "secretKeyRef" in e.get("valueFrom", {})}
    assert set(env) == {"MCPGATE_STORE__URL", "MCPGATE_MASTER_KEY", "MCPGATE_SERVER__SESSION_KEY"}
    for ref in env.values():
        assert ref["name"] == secret["metadata"]["name"] and ref["key"] in secret["stringData"], ref
    assert secret["stringData"][env["MCPGATE_STORE__URL"]["key"]].startswith("postgres://")

    # Volumes: every mount names a volume; the config and the identity key come from the objects above.
    volumes = {v["name"]: v for v in pod["volumes"]}
    for mount in container["volumeMounts"]:
        assert mount["name"] in volumes, mount
    assert volumes["config"]["configMap"]["name"] == config["metadata"]["name"]
    identity = volumes["identity-key"]["secret"]
    assert identity["secretName"] == secret["metadata"]["name"]
    assert all(item["key"] in secret["stringData"] for item in identity["items"])

    # The probes ask the endpoints mcpgate serves, on its port.
    assert container["readinessProbe"]["httpGet"] == {"path": "/readyz", "port": "http"}
    assert container["livenessProbe"]["httpGet"] == {"path": "/healthz", "port": "http"}

    # The configuration: the container's ports, the config path the args name, and a
    # drain (preStop sleep + shutdown_grace) that fits in the termination grace period.
    toml_text = config["data"]["mcpgate.toml"]
    cfg = tomllib.loads(toml_text)
    assert int(cfg["server"]["listen"].rsplit(":", 1)[1]) == ports["http"]
    assert int(cfg["metrics"]["listen"].rsplit(":", 1)[1]) == ports["metrics"]
    assert cfg["server"]["public_url"].startswith("https://")
    config_mount = next(m for m in container["volumeMounts"] if m["name"] == "config")
    assert container["args"][-1] == f"{config_mount['mountPath']}/mcpgate.toml"
    data_mount = next(m for m in container["volumeMounts"] if m["name"] == "data")
    assert cfg["server"]["data_dir"] == data_mount["mountPath"]
    # The internal listener: every interface, advertised as the pod's IP on its port, and
    # that port open only to mcpgate pods.
    internal_port = int(cfg["server"]["internal_listen"].rsplit(":", 1)[1])
    assert internal_port == ports["internal"]
    plain = {e["name"]: e for e in container["env"]}
    assert plain["POD_IP"]["valueFrom"]["fieldRef"]["fieldPath"] == "status.podIP"
    assert plain["MCPGATE_SERVER__INTERNAL_ADVERTISE"]["value"] == f"$(POD_IP):{internal_port}"
    names = [e["name"] for e in container["env"]]
    assert names.index("POD_IP") < names.index("MCPGATE_SERVER__INTERNAL_ADVERTISE"), "$(POD_IP) expands only a variable defined before it"
    policy = k["NetworkPolicy"]["spec"]
    assert policy["podSelector"]["matchLabels"].items() <= labels.items()
    internal_rules = [r for r in policy["ingress"] if any(p["port"] == "internal" for p in r["ports"])]
    assert internal_rules and all(
        r.get("from") == [{"podSelector": {"matchLabels": policy["podSelector"]["matchLabels"]}}] for r in internal_rules
    ), internal_rules
    open_ports = {p["port"] for r in policy["ingress"] if "from" not in r for p in r["ports"]}
    assert open_ports == {"http", "metrics"}
    pre_stop = container["lifecycle"]["preStop"]["exec"]["command"]
    assert pre_stop[0] == "sleep"
    drain = int(pre_stop[1]) + _seconds(cfg["server"]["shutdown_grace"])
    assert pod["terminationGracePeriodSeconds"] > drain


def test_kubernetes_example_configuration_passes_check_config(tmp_path: Any) -> None:
    k = _docs()
    path = tmp_path / "mcpgate.toml"
    path.write_text(k["ConfigMap"]["data"]["mcpgate.toml"])
    key = lambda: base64.b64encode(os.urandom(32)).decode()  # noqa: E731
    env = {n: v for n, v in os.environ.items() if not n.startswith("MCPGATE_")}
    env |= {
        "MCPGATE_STORE__URL": k["Secret"]["stringData"]["store-url"],
        "MCPGATE_MASTER_KEY": key(),
        "MCPGATE_SERVER__SESSION_KEY": key(),
        # What Kubernetes makes of "$(POD_IP):7070".
        "MCPGATE_SERVER__INTERNAL_ADVERTISE": "10.1.2.3:7070",
    }
    out = subprocess.run(
        [str(_mcpgate_bin()), "check-config", "-c", str(path)], capture_output=True, env=env, timeout=60
    )
    assert out.returncode == 0, out.stderr.decode(errors="replace") + out.stdout.decode(errors="replace")


def test_deployment_doc_shows_the_tested_nginx_config() -> None:
    doc = DEPLOYMENT_MD.read_text()
    blocks = re.findall(r"```nginx\n(.*?)```", doc, flags=re.S)
    assert NGINX.read_text() in blocks, "docs/DEPLOYMENT.md must show packaging/nginx/mcpgate.conf verbatim"
