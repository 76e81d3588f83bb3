"""Traffic simulator: a seeded model of router traffic and a paced publisher.

Real prompts instead of a synthetic model: :mod:`bifrost.client.simulator.replay` replays a
full-information dataset through verified artifacts (:mod:`~bifrost.client.simulator.arms`,
:mod:`~bifrost.client.simulator.launch`). It is imported on demand, since it loads numpy
and the reference router.
"""

from bifrost.client.simulator.model import ArmEffect, ModelProfile, TrafficConfig, generate
from bifrost.client.simulator.runner import SimulationReport, anchored, run_simulation, simulate

__all__ = [
    "ArmEffect",
    "ModelProfile",
    "SimulationReport",
    "TrafficConfig",
    "anchored",
    "generate",
    "run_simulation",
    "simulate",
]
