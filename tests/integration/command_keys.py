"""Operator and pipeline keys for integration tests: the allow-list workers get, signers for the test."""

from __future__ import annotations

import hashlib
from dataclasses import dataclass
from pathlib import Path

from bifrost.client.rollout import new_command, wait_for_outcome
from bifrost.config import Settings
from bifrost.router.keys import generate_private_key
from bifrost.schemas.command_signing import CommandSigner
from bifrost.schemas.rollout import CommandKind, RolloutState
from bifrost.streams.rollout.auth import public_line


@dataclass(frozen=True)
class CommandKeys:
    operator: CommandSigner
    pipeline: CommandSigner
    operator_file: Path
    pipeline_file: Path

    @property
    def allow_list(self) -> str:
        return "\n".join(
            [
                public_line(self.operator.name, "operator", self.operator.key),
                public_line(self.pipeline.name, "pipeline", self.pipeline.key),
            ]
        )

    def worker(self, settings: Settings) -> Settings:
        """What a worker gets: the allow-list and the pipeline private key (never the operator's)."""
        return Settings.from_env(
            settings.to_env(),
            command_keys=self.allow_list,
            pipeline_key_file=str(self.pipeline_file),
            pipeline_key_name=self.pipeline.name,
            operator_key_file="",
        )

    def cli(self, settings: Settings) -> Settings:
        """What the operator's CLI gets: its private key."""
        return Settings.from_env(
            settings.to_env(), operator_key_file=str(self.operator_file), operator_key_name=self.operator.name
        )


def command_keys(folder: Path) -> CommandKeys:
    folder.mkdir(parents=True, exist_ok=True)
    operator_file, pipeline_file = folder / "operator.pem", folder / "pipeline.pem"
    return CommandKeys(
        operator=CommandSigner("operator", generate_private_key(operator_file)),
        pipeline=CommandSigner("pipeline", generate_private_key(pipeline_file)),
        operator_file=operator_file,
        pipeline_file=pipeline_file,
    )


async def mark_verified(settings: Settings, keys: CommandKeys, router: str, version: str) -> RolloutState:
    """What the artifact listener sends after checking an artifact (for tests whose arms are synthetic)."""
    sha = hashlib.sha256(version.encode()).hexdigest()
    command = keys.pipeline.sign(new_command(router, CommandKind.ARTIFACT_VERIFIED, artifact=version, sha256=sha))
    state = await wait_for_outcome(settings.kafka_bootstrap, settings.topics, command)
    assert state is not None and state.last_command is not None and state.last_command.accepted, state
    return state
