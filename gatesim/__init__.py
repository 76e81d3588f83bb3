"""The gate simulator: development code that measures the rollback gates, never loaded by the worker.

Monte-Carlo rollouts through the real gates and the real rollout controller
(:mod:`.simulation`), with synthetic traffic folded straight into window statistics
(:mod:`.traffic`), the scenario suite behind the README's results table (:mod:`.suite`),
its Markdown table (:mod:`.table`), the fixed-threshold baseline the gates are compared
with (:mod:`.naive`) and ``bifrost-opt simulate-gates`` (:mod:`.cli`, which the command
line loads only when that command runs). ``bench/gates_bench.py`` runs the suite.

It imports the production gates (``bifrost.streams.rollout``); production code never
imports it (``tests/architecture/boundaries.py``).
"""
