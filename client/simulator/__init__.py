"""Traffic simulator: a seeded model of router traffic and a paced publisher."""

from bifrost.client.simulator.model import ArmEffect, ModelProfile, TrafficConfig, generate
from bifrost.client.simulator.runner import SimulationReport, anchored, run_simulation, simulate

__all__ = ["ArmEffect", "ModelProfile", "SimulationReport", "TrafficConfig", "anchored", "generate", "run_simulation", "simulate"]
