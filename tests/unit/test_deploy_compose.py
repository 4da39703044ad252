"""docker-compose.yml against the Compose Specification schema and the stack it must describe, without Docker."""

import json
import re
import subprocess
from pathlib import Path
from typing import Any

import jsonschema
import pytest

from tests.support.deploy import COMPOSE_FILE, ROOT, env_names_read_by_code, load_yaml

# The Compose Specification schema, vendored with its source and license (see the README beside it).
COMPOSE_SCHEMA = ROOT / "tests" / "fixtures" / "compose-spec" / "compose-spec.json"

CALLN_MODULES = {
    "web": "services.web",
    "gateway-1": "services.signalling",
    "gateway-2": "services.signalling",
    "matcher-1": "services.matcher",
    "matcher-2": "services.matcher",
    "moderation": "services.moderation",
}

NGINX_CONF = ROOT / "deploy" / "compose" / "nginx.conf"
NATS_CONFS = (ROOT / "deploy" / "compose" / "nats.conf", ROOT / "deploy" / "k8s" / "base" / "nats" / "nats.conf")


@pytest.fixture(scope="module")
def compose() -> dict[str, Any]:
    return load_yaml(COMPOSE_FILE)


def calln_services(compose: dict[str, Any]) -> dict[str, dict[str, Any]]:
    return {name: compose["services"][name] for name in CALLN_MODULES}


def test_compose_matches_specification(compose: dict[str, Any]) -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    validator = jsonschema.Draft7Validator(schema)

    errors = [f"{'/'.join(map(str, error.absolute_path))}: {error.message}" for error in validator.iter_errors(compose)]

    assert errors == []


def test_compose_schema_rejects_unknown_key(compose: dict[str, Any]) -> None:
    schema = json.loads(COMPOSE_SCHEMA.read_text(encoding="utf-8"))
    broken = json.loads(json.dumps(compose))
    broken["services"]["web"]["helthcheck"] = {}

    assert not jsonschema.Draft7Validator(schema).is_valid(broken)


def test_compose_runs_every_service(compose: dict[str, Any]) -> None:
    services = compose["services"]

    for name, module in CALLN_MODULES.items():
        assert services[name]["command"] == ["python", "-m", module], name
    assert {"nats", "proxy", "coturn"} <= services.keys()


def test_compose_nats_jetstream_and_monitoring(compose: dict[str, Any]) -> None:
    nats = compose["services"]["nats"]
    conf = (ROOT / "deploy" / "compose" / "nats.conf").read_text(encoding="utf-8")

    assert "jetstream {" in conf
    assert "store_dir: /data/jetstream" in conf
    assert any(volume.startswith("nats-data:/data") for volume in nats["volumes"])
    assert "nats-data" in compose["volumes"]
    assert "127.0.0.1:8222:8222" in nats["ports"]
    assert "healthcheck" in nats


def test_compose_replica_ids_distinct(compose: dict[str, Any]) -> None:
    services = compose["services"]

    gateway_ids = {services[name]["environment"]["GATEWAY_ID"] for name in ("gateway-1", "gateway-2")}
    matcher_ids = {services[name]["environment"]["MATCHER_ID"] for name in ("matcher-1", "matcher-2")}

    assert len(gateway_ids) == 2
    assert len(matcher_ids) == 2


def test_compose_services_are_hardened(compose: dict[str, Any]) -> None:
    for name, service in calln_services(compose).items():
        assert service["read_only"] is True, name
        assert service["cap_drop"] == ["ALL"], name
        assert "no-new-privileges:true" in service["security_opt"], name
        assert not service["user"].startswith("0"), name
        assert "/tmp" in service["tmpfs"], name


def test_compose_healthchecks_probe_readyz(compose: dict[str, Any]) -> None:
    for name, service in calln_services(compose).items():
        test = service["healthcheck"]["test"]
        port = _service_port(service)

        assert test[-1] == f"http://127.0.0.1:{port}/readyz", name


def test_compose_stop_grace_exceeds_drain(compose: dict[str, Any]) -> None:
    for name in ("gateway-1", "gateway-2"):
        service = compose["services"][name]
        drain_s = float(service["environment"]["DRAIN_TIMEOUT_S"])

        assert _seconds(service["stop_grace_period"]) > drain_s, name


def test_compose_secrets_come_from_env_file(compose: dict[str, Any]) -> None:
    example = (ROOT / ".env.example").read_text(encoding="utf-8")

    for name in ("IP_KEY_SECRET", "ADMIN_TOKEN", "TURN_SECRET"):
        assert re.search(rf"^{name}=$", example, re.MULTILINE), f"{name} must be listed in .env.example, empty"
    for service in calln_services(compose).values():
        for key, value in service["environment"].items():
            if key in ("IP_KEY_SECRET", "ADMIN_TOKEN", "TURN_SECRET"):
                assert value.startswith("${" + key), f"{key} must come from the environment, not the file"


def test_compose_env_names_are_read_by_code(compose: dict[str, Any]) -> None:
    known = env_names_read_by_code()

    for name, service in calln_services(compose).items():
        unknown = sorted(set(service["environment"]) - known)
        assert unknown == [], f"{name} sets variables no service reads"


def test_compose_bind_mounts_exist(compose: dict[str, Any]) -> None:
    for name, service in compose["services"].items():
        for volume in service.get("volumes", []):
            source = volume.split(":", 1)[0]
            if source.startswith("./"):
                assert (ROOT / source).exists(), f"{name} mounts missing {source}"


def test_compose_admin_port_on_loopback(compose: dict[str, Any]) -> None:
    ports = compose["services"]["moderation"]["ports"]

    assert ports == ["127.0.0.1:8095:8095"]


def test_compose_trusts_proxy_address(compose: dict[str, Any]) -> None:
    proxy_address = compose["services"]["proxy"]["networks"]["edge"]["ipv4_address"]

    for name in ("gateway-1", "gateway-2"):
        assert compose["services"][name]["environment"]["TRUSTED_PROXIES"] == proxy_address


def test_nginx_routes_socketio_to_both_gateways(compose: dict[str, Any]) -> None:
    conf = NGINX_CONF.read_text(encoding="utf-8")
    upstream = re.search(r"upstream gateways \{(.*?)\}", conf, re.DOTALL)
    socketio = re.search(r"location /socket\.io/ \{(.*?)\}", conf, re.DOTALL)

    assert upstream is not None
    assert socketio is not None
    servers = re.findall(r"server ([\w-]+):(\d+)", upstream.group(1))
    assert {host for host, _ in servers} == {"gateway-1", "gateway-2"}
    assert all(host in compose["services"] for host, _ in servers)
    assert "proxy_pass http://gateways;" in socketio.group(1)
    assert "proxy_set_header Upgrade $http_upgrade;" in socketio.group(1)
    assert "proxy_set_header Connection $connection_upgrade;" in socketio.group(1)
    assert "proxy_read_timeout 3600s;" in socketio.group(1)


def test_nginx_keeps_addresses_out_of_logs() -> None:
    conf = NGINX_CONF.read_text(encoding="utf-8")

    assert "access_log off;" in conf
    assert "error_log stderr crit;" in conf


@pytest.mark.parametrize("conf", NATS_CONFS, ids=lambda path: path.parent.name)
def test_nats_fsyncs_every_write(conf: Path) -> None:
    assert re.search(r"^\s*sync_interval: always$", conf.read_text(encoding="utf-8"), re.MULTILINE)


def test_coturn_secret_stays_off_command_line(compose: dict[str, Any], tmp_path: Path) -> None:
    # Compose turns `$$` into `$` before the container's shell reads the script.
    script = compose["services"]["coturn"]["command"][0].replace("$$", "$")
    script = _sandboxed_coturn_script(script, tmp_path)
    environment = {"PATH": "/usr/bin:/bin", "TURN_SECRET": "canary-turn-secret", "TURN_EXTERNAL_IP": "203.0.113.9"}

    result = subprocess.run(["sh", "-c", script], env=environment, capture_output=True, text=True, timeout=10)

    assert result.returncode == 0, result.stderr
    assert "canary-turn-secret" not in result.stdout
    rendered = (tmp_path / "turnserver.conf").read_text(encoding="utf-8")
    assert "static-auth-secret=canary-turn-secret\n" in rendered
    assert "denied-peer-ip=203.0.113.9\n" in rendered
    assert (tmp_path / "turnserver.conf").stat().st_mode & 0o077 == 0


def test_coturn_script_refuses_empty_secret(compose: dict[str, Any], tmp_path: Path) -> None:
    script = _sandboxed_coturn_script(compose["services"]["coturn"]["command"][0].replace("$$", "$"), tmp_path)
    environment = {"PATH": "/usr/bin:/bin", "TURN_SECRET": "", "TURN_EXTERNAL_IP": "203.0.113.9"}

    result = subprocess.run(["sh", "-c", script], env=environment, capture_output=True, text=True, timeout=10)

    assert result.returncode != 0
    assert "TURN_SECRET" in result.stderr


def _sandboxed_coturn_script(script: str, folder: Path) -> str:
    """Point the start script at files under `folder` and print the turnserver command instead of running it."""
    return (
        script.replace("/etc/coturn/turnserver-prod.conf", str(ROOT / "deploy" / "coturn" / "turnserver-prod.conf"))
        .replace("/tmp/turnserver.conf", str(folder / "turnserver.conf"))
        .replace("exec turnserver", "echo turnserver")
    )


def _service_port(service: dict[str, Any]) -> str:
    environment = service["environment"]
    for key in ("WEB_PORT", "GATEWAY_PORT", "MATCHER_HTTP_PORT", "MODERATION_HTTP_PORT"):
        if key in environment:
            return str(environment[key])
    raise AssertionError(f"no port setting in {sorted(environment)}")


def _seconds(duration: str) -> float:
    match = re.fullmatch(r"(\d+)s", duration)
    assert match is not None, f"stop_grace_period {duration!r} must be whole seconds like 30s"
    return float(match.group(1))
