"""Kafka client configuration shared by every bifrost process (worker, trainer, CLI, clients)."""

from bifrost.kafka.security import KafkaSecurity, KafkaSecurityError, mask_secrets

__all__ = ["KafkaSecurity", "KafkaSecurityError", "mask_secrets"]
