"""The Vault Agent injector stand-in: the patch applied to pods, the agent config, and the
webhook served over HTTPS."""

from __future__ import annotations

import base64
import copy
import datetime
import ipaddress
import json
import logging
import re
import ssl
import threading
import urllib.error
import urllib.request
from collections.abc import Iterator
from typing import Any

import jsonpatch
import pytest
from cryptography import x509
from cryptography.hazmat.primitives import hashes, serialization
from cryptography.hazmat.primitives.asymmetric import ec
from cryptography.x509.oid import NameOID

from maestro.localplatform import vault_injection as vi
from maestro.localplatform.vault_injector import make_server
from maestro.security.pod_security import restricted_violations

pytestmark = pytest.mark.unit

Obj = dict[str, Any]
Injector = tuple[str, ssl.SSLContext]  # base URL, client TLS context
VAULT = "https://vault.local:8200"
TOKEN_MOUNT = {"name": "kube-api-access", "mountPath": vi.KUBE_TOKEN_MOUNT, "readOnly": True}
# vault-k8s's default ("map") template.
MAP_TEMPLATE = (
    '{{ with secret "PATH" }}{{ range $k, $v := .Data }}{{ $k }}: {{ $v }}\n{{ end }}{{ end }}'
)
ERR = f"annotation {vi.ROLE} is required (the Vault role to log in as)"
RESTRICTED_SC = {
    "allowPrivilegeEscalation": False,
    "capabilities": {"drop": ["ALL"]},
    "runAsNonRoot": True,
    "seccompProfile": {"type": "RuntimeDefault"},
}


def container(name: str, *mounts: Obj) -> Obj:
    c: Obj = {"name": name, "image": "app", "securityContext": copy.deepcopy(RESTRICTED_SC)}
    if mounts:
        c["volumeMounts"] = list(mounts)
    return c


def annotated_pod(extra: dict[str, str] | None = None, **spec: Any) -> Obj:
    """A restricted pod asking for one secret, as the API server hands it to the webhook
    (the ServiceAccount admission plugin has added the token volume and mount)."""
    annotations = {
        vi.INJECT: "true",
        vi.ROLE: "serving",
        vi.SECRET + "db": "secret/data/db",
        **(extra or {}),
    }
    pod_spec: Obj = {
        "containers": [container("app", TOKEN_MOUNT)],
        "volumes": [{"name": "kube-api-access", "projected": {"sources": []}}],
        **spec,
    }
    return {"metadata": {"name": "p", "annotations": annotations}, "spec": pod_spec}


def injected(pod: Obj, **kwargs: Any) -> Obj:
    patched: Obj = jsonpatch.apply_patch(pod, vi.inject(pod, VAULT, **kwargs))
    return patched


def names(items: list[Obj] | None) -> list[str]:
    return [item["name"] for item in items or []]


def agent(pod: Obj, name: str) -> Obj:
    spec = pod["spec"]
    return next(c for c in spec.get("initContainers", []) + spec["containers"] if c["name"] == name)


def agent_config(container: Obj) -> Obj:
    env = {e["name"]: e["value"] for e in container["env"]}
    config: Obj = json.loads(base64.b64decode(env["VAULT_CONFIG"]))
    return config


@pytest.mark.parametrize(
    "annotations",
    [
        pytest.param(None, id="no-annotations"),
        pytest.param({vi.ROLE: "serving"}, id="not-asked"),
        pytest.param({vi.INJECT: "false", vi.ROLE: "serving"}, id="inject-false"),
        pytest.param({vi.INJECT: "true", vi.STATUS: "injected"}, id="already-injected"),
    ],
)
def test_pods_not_asking_get_no_patch(annotations: dict[str, str] | None) -> None:
    metadata = {} if annotations is None else {"annotations": annotations}
    pod = {"metadata": metadata, "spec": {"containers": [container("app", TOKEN_MOUNT)]}}
    assert vi.inject(pod, VAULT) == []


def test_an_injected_pod_gets_an_init_container_a_sidecar_and_volumes() -> None:
    pod = injected(annotated_pod(), image="registry.local/vault:1.14.8")
    spec = pod["spec"]
    assert names(spec["initContainers"]) == ["vault-agent-init"]
    assert names(spec["containers"]) == ["app", "vault-agent"]
    assert spec["volumes"][1:] == [
        {"name": name, "emptyDir": {"medium": "Memory"}}
        for name in ("home-init", "home-sidecar", "vault-secrets")
    ]
    assert pod["metadata"]["annotations"][vi.STATUS] == "injected"
    sidecar = agent(pod, "vault-agent")
    assert sidecar["image"] == "registry.local/vault:1.14.8"
    assert sidecar["command"] == ["/bin/sh", "-ec"]
    assert sidecar["args"] == [vi.CONTAINER_ARG]
    assert sidecar["env"][:2] == [
        {"name": "VAULT_LOG_LEVEL", "value": "info"},
        {"name": "VAULT_LOG_FORMAT", "value": "standard"},
    ]
    assert sidecar["resources"]["requests"] == {"cpu": "250m", "memory": "64Mi"}
    assert sidecar["resources"]["limits"] == {"cpu": "500m", "memory": "128Mi"}
    assert {m["mountPath"]: m["name"] for m in sidecar["volumeMounts"]} == {
        vi.KUBE_TOKEN_MOUNT: "kube-api-access",
        "/home/vault": "home-sidecar",
        "/vault/secrets": "vault-secrets",
    }
    assert agent(pod, "vault-agent-init")["volumeMounts"][0]["name"] == "home-init"


@pytest.mark.parametrize(
    ("init_first", "order"),
    [
        pytest.param("true", ["vault-agent-init", "migrate", "seed"], id="init-first"),
        pytest.param("false", ["migrate", "seed", "vault-agent-init"], id="init-last"),
    ],
)
def test_init_container_order(init_first: str, order: list[str]) -> None:
    inits = [container("migrate"), container("seed")]
    containers = [container("app", TOKEN_MOUNT), container("bare")]
    spec = injected(
        annotated_pod({vi.INIT_FIRST: init_first}, initContainers=inits, containers=containers)
    )["spec"]
    assert names(spec["initContainers"]) == order
    # Every container sees the rendered secrets, the init ones whatever their index now.
    secrets = {"name": "vault-secrets", "mountPath": "/vault/secrets", "readOnly": False}
    for c in spec["initContainers"] + spec["containers"]:
        assert secrets in c["volumeMounts"], c["name"]


@pytest.mark.parametrize(
    ("annotations", "agents", "home"),
    [
        pytest.param({vi.PRE_POPULATE_ONLY: "true"}, ["vault-agent-init"], "home-init", id="init"),
        pytest.param({vi.PRE_POPULATE: "false"}, ["vault-agent"], "home-sidecar", id="sidecar"),
    ],
)
def test_only_one_agent(annotations: dict[str, str], agents: list[str], home: str) -> None:
    spec = injected(annotated_pod(annotations, initContainers=[container("m")]))["spec"]
    added = names(spec["initContainers"] + spec["containers"])
    assert [name for name in added if name.startswith("vault-")] == agents
    assert names(spec["volumes"]) == ["kube-api-access", home, "vault-secrets"]
    # Without the init agent nothing is rendered before the init containers run (vault-k8s).
    assert ("volumeMounts" in spec["initContainers"][0]) is (home == "home-init")


def test_the_agent_configs() -> None:
    pod = injected(annotated_pod({vi.SECRET + "api-key": "secret/data/api"}))
    expected = {
        "auto_auth": {
            "method": {
                "type": "kubernetes",
                "mount_path": "auth/kubernetes",
                "config": {"role": "serving", "token_path": f"{vi.KUBE_TOKEN_MOUNT}/token"},
            },
            "sink": [{"type": "file", "config": {"path": "/home/vault/.vault-token"}}],
        },
        "exit_after_auth": True,
        "pid_file": "/home/vault/.pid",
        "vault": {"address": VAULT},
        "template": [
            {
                "destination": f"/vault/secrets/{name}",
                "contents": MAP_TEMPLATE.replace("PATH", path),
                "left_delimiter": "{{",
                "right_delimiter": "}}",
            }
            for name, path in [("api-key", "secret/data/api"), ("db", "secret/data/db")]
        ],
        "template_config": {"exit_on_retry_failure": True},
    }
    assert agent_config(agent(pod, "vault-agent-init")) == expected
    assert agent_config(agent(pod, "vault-agent")) == {**expected, "exit_after_auth": False}


def test_annotated_template_auth_path_service_and_render_interval() -> None:
    template = '{{ with secret "secret/data/db" }}{{ .Data.data.password }}{{ end }}'
    annotations = {
        vi.TEMPLATE + "db": template,
        vi.TEMPLATE + "Extra": "static",  # a template alone declares a file too
        vi.AUTH_PATH: "auth/local",
        vi.SERVICE: "http://vault.other:8200",
        vi.RENDER_INTERVAL: "30s",
    }
    config = agent_config(agent(injected(annotated_pod(annotations)), "vault-agent"))
    assert [(t["destination"], t["contents"]) for t in config["template"]] == [
        ("/vault/secrets/db", template),
        ("/vault/secrets/extra", "static"),
    ]
    assert config["auto_auth"]["method"]["mount_path"] == "auth/local"
    assert config["vault"] == {"address": "http://vault.other:8200"}
    assert config["template_config"] == {
        "exit_on_retry_failure": True,
        "static_secret_render_interval": "30s",
    }


def test_a_named_token_volume_is_mounted_at_the_vault_path() -> None:
    token_volume = {
        "name": "vault-token",
        "projected": {"sources": [{"serviceAccountToken": {"path": "token", "audience": "v"}}]},
    }
    pod = annotated_pod({vi.TOKEN_VOLUME: "vault-token"}, containers=[container("app")])
    pod["spec"]["volumes"] = [token_volume]
    mount = {"name": "vault-token", "mountPath": vi.VAULT_TOKEN_MOUNT, "readOnly": True}
    for name in ("vault-agent-init", "vault-agent"):
        c = agent(injected(pod), name)
        assert mount in c["volumeMounts"]
        token_path = agent_config(c)["auto_auth"]["method"]["config"]["token_path"]
        assert token_path == f"{vi.VAULT_TOKEN_MOUNT}/token"


def without_role() -> Obj:
    pod = annotated_pod(containers=[container("app")])  # no token either: the role comes first
    del pod["metadata"]["annotations"][vi.ROLE]
    return pod


@pytest.mark.parametrize(
    ("pod", "message"),
    [
        pytest.param(without_role(), ERR, id="no-role"),
        pytest.param(annotated_pod({vi.INIT_FIRST: "yes"}), vi.INIT_FIRST, id="not-a-bool"),
        pytest.param(annotated_pod(containers=[container("app")]), "no service", id="no-token"),
        pytest.param(annotated_pod({vi.TOKEN_VOLUME: "x"}), "no volume 'x'", id="no-volume"),
        pytest.param(annotated_pod({vi.TOKEN_VOLUME: "kube-api-access"}), "not a", id="not-token"),
    ],
)
def test_errors(pod: Obj, message: str) -> None:
    with pytest.raises(ValueError, match=re.escape(message)):
        vi.inject(pod, VAULT)


def test_no_volumes_idempotence_and_the_escaped_status() -> None:
    pod = annotated_pod()
    del pod["spec"]["volumes"]
    patched = injected(pod)
    assert names(patched["spec"]["volumes"]) == ["home-init", "home-sidecar", "vault-secrets"]
    assert names(patched["spec"]["initContainers"]) == ["vault-agent-init"]
    assert vi.inject(patched, VAULT) == []
    path = "/metadata/annotations/vault.hashicorp.com~1agent-inject-status"
    assert vi.inject(pod, VAULT)[-1] == {"op": "add", "path": path, "value": "injected"}
    assert vi.escape_pointer("a~b/c") == "a~0b~1c"


def test_the_injected_restricted_pod_stays_restricted() -> None:
    pod = annotated_pod(
        securityContext={"runAsNonRoot": True, "seccompProfile": {"type": "RuntimeDefault"}},
        initContainers=[container("migrate")],
    )
    assert restricted_violations(pod["spec"]) == []
    assert restricted_violations(injected(pod)["spec"]) == []


def test_the_webhook_configuration() -> None:
    config = vi.webhook_configuration("https://127.0.0.1:1/mutate", b"PEM")
    assert config["metadata"] == {"name": "maestro-local-vault-agent-injector"}
    (webhook,) = config["webhooks"]
    assert webhook.pop("rules") == [
        {"apiGroups": [""], "apiVersions": ["v1"], "operations": ["CREATE"], "resources": ["pods"]}
    ]
    assert webhook == {
        "name": "vault.agent.injector.maestro.local",
        "clientConfig": {"url": "https://127.0.0.1:1/mutate", "caBundle": "UEVN"},
        "objectSelector": {"matchLabels": {"maestro.dev/local-run": "true"}},
        "failurePolicy": "Ignore",
        "sideEffects": "None",
        "admissionReviewVersions": ["v1"],
        "timeoutSeconds": 10,
        "reinvocationPolicy": "Never",
    }


# The webhook over HTTPS.


@pytest.fixture(scope="module")
def injector(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Injector]:
    """The webhook on a free port, with a self-signed certificate the client trusts."""
    directory = tmp_path_factory.mktemp("injector-tls")
    key = ec.generate_private_key(ec.SECP256R1())
    name = x509.Name([x509.NameAttribute(NameOID.COMMON_NAME, "vault-injector")])
    now, localhost = datetime.datetime.now(datetime.UTC), ipaddress.ip_address("127.0.0.1")
    cert = (
        x509.CertificateBuilder()
        .subject_name(name)
        .issuer_name(name)
        .public_key(key.public_key())
        .serial_number(x509.random_serial_number())
        .not_valid_before(now - datetime.timedelta(minutes=5))
        .not_valid_after(now + datetime.timedelta(hours=1))
        .add_extension(x509.SubjectAlternativeName([x509.IPAddress(localhost)]), critical=False)
        .sign(key, hashes.SHA256())
    )
    cert_file, key_file = directory / "tls.crt", directory / "tls.key"
    cert_file.write_bytes(cert.public_bytes(serialization.Encoding.PEM))
    pem, pkcs8 = serialization.Encoding.PEM, serialization.PrivateFormat.PKCS8
    key_file.write_bytes(key.private_bytes(pem, pkcs8, serialization.NoEncryption()))
    server = make_server("127.0.0.1", 0, cert_file, key_file, VAULT, vi.DEFAULT_IMAGE)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"https://127.0.0.1:{server.server_address[1]}"
    try:
        yield url, ssl.create_default_context(cafile=cert_file)
    finally:
        server.shutdown()
        server.server_close()


def call(injector: Injector, path: str, body: bytes | None = None) -> tuple[int, bytes]:
    base, context = injector
    headers = {"Content-Type": "application/json"}
    request = urllib.request.Request(base + path, data=body, headers=headers)
    try:
        with urllib.request.urlopen(request, context=context, timeout=10) as resp:
            return resp.status, resp.read()
    except urllib.error.HTTPError as err:
        return err.code, err.read()


def review(pod: Obj) -> bytes:
    request = {"uid": "u-1", "namespace": "ns", "operation": "CREATE", "object": pod}
    body = {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview", "request": request}
    return json.dumps(body).encode()


def test_health(injector: Injector) -> None:
    assert call(injector, "/healthz") == (200, b"ok")


@pytest.mark.parametrize(
    ("pod", "expected"),
    [
        pytest.param(annotated_pod(), {"allowed": True, "patchType": "JSONPatch"}, id="patched"),
        pytest.param({"spec": {"containers": [container("app")]}}, {"allowed": True}, id="as-is"),
        pytest.param(
            without_role(),
            {"allowed": False, "status": {"code": 400, "message": f"vault agent injection: {ERR}"}},
            id="denied",
        ),
    ],
)
def test_the_webhook_answers(injector: Injector, pod: Obj, expected: Obj) -> None:
    status, body = call(injector, "/mutate?timeout=10s", review(pod))
    answer = json.loads(body)
    response = answer.pop("response")
    assert status == 200
    assert answer == {"apiVersion": "admission.k8s.io/v1", "kind": "AdmissionReview"}
    patch = json.loads(base64.b64decode(response.pop("patch", "W10=")))  # "[]" when absent
    assert response == {"uid": "u-1", **expected}
    assert jsonpatch.apply_patch(pod, patch) == (injected(pod) if patch else pod)


def test_the_log_line(injector: Injector, caplog: pytest.LogCaptureFixture) -> None:
    with caplog.at_level(logging.INFO, logger="vault-injector"):
        call(injector, "/mutate", review(annotated_pod({vi.TEMPLATE + "db": "{{ .Data }}"})))
    assert caplog.messages == ["injected vault agent into ns/p (role serving, secrets db)"]


@pytest.mark.parametrize(
    "body",
    [
        pytest.param(b"not json", id="not-json"),
        pytest.param(b"[]", id="not-an-object"),
        pytest.param(b'{"kind": "AdmissionReview", "request": {"uid": "u"}}', id="no-object"),
        pytest.param(b'{"kind": "AdmissionReview"}', id="no-request"),
    ],
)
def test_a_malformed_review_is_a_bad_request(injector: Injector, body: bytes) -> None:
    assert call(injector, "/mutate", body)[0] == 400
