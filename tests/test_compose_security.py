"""docker-compose.yml gives workers only what they need: the public key, a token, the store path."""

from __future__ import annotations

from tests.test_docker_compose import compose


def test_workers_get_the_public_key_and_the_trainer_the_private_one() -> None:
    spec = compose()
    worker, trainer = spec["services"]["worker"], spec["services"]["trainer"]
    assert "artifact_signing_key" not in worker.get("secrets", [])
    assert "artifact_signing_key" in trainer["secrets"]
    verify_secret = worker["environment"]["BIFROST_VERIFY_KEY_FILE"].removeprefix("/run/secrets/")
    assert verify_secret in worker["secrets"]
    assert spec["secrets"][verify_secret]["file"].endswith(".pub.pem")
    assert set(worker["secrets"]) <= set(spec["secrets"])


def test_workers_read_artifacts_from_the_trainers_store_and_need_a_token() -> None:
    services = compose()["services"]
    worker = services["worker"]["environment"]
    assert worker["BIFROST_ARTIFACT_STORE"] == services["trainer"]["environment"]["BIFROST_ARTIFACT_STORE"]
    assert worker["BIFROST_WEB_HOST"] == "0.0.0.0"  # inside the container; only `expose`d
    assert "ports" not in services["worker"]
    assert worker["BIFROST_WEB_TOKEN_FILE"].removeprefix("/run/secrets/") in services["worker"]["secrets"]
