"""``KafkaSecurity.from_env``: the shared settings machinery's rules, plus its own two."""

from __future__ import annotations

import pytest

from bifrost.kafka.security import KafkaSecurity, KafkaSecurityError


def test_text_is_stripped_but_secrets_are_kept_exactly() -> None:
    security = KafkaSecurity.from_env(
        {
            "BIFROST_KAFKA_SECURITY_PROTOCOL": " SASL_PLAINTEXT\n",
            "BIFROST_KAFKA_SASL_USERNAME": "user \n",
            "BIFROST_KAFKA_SASL_PASSWORD": " pass word \n",
            "BIFROST_KAFKA_SSL_KEY_PASSWORD": "\tkey ",
        }
    )
    assert (security.protocol, security.sasl_username) == ("SASL_PLAINTEXT", "user")
    assert (security.sasl_password, security.ssl_key_password) == (" pass word \n", "\tkey ")


def test_empty_values_mean_unset_and_booleans_are_parsed() -> None:
    assert KafkaSecurity.from_env({"BIFROST_KAFKA_SECURITY_PROTOCOL": ""}) == KafkaSecurity()
    assert KafkaSecurity.from_env({"BIFROST_KAFKA_SSL_CHECK_HOSTNAME": " Off "}).ssl_check_hostname is False


def test_errors_are_kafka_security_errors_naming_the_variable() -> None:
    with pytest.raises(KafkaSecurityError, match=r"^BIFROST_KAFKA_SSL_CHECK_HOSTNAME='maybe' is not a boolean"):
        KafkaSecurity.from_env({"BIFROST_KAFKA_SSL_CHECK_HOSTNAME": "maybe"})
    with pytest.raises(KafkaSecurityError, match="SASL_SSL needs BIFROST_KAFKA_SASL_USERNAME"):
        KafkaSecurity.from_env({"BIFROST_KAFKA_SECURITY_PROTOCOL": "SASL_SSL"})
