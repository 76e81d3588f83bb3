"""The trainer: data quality, triage model, policy search, validation, signed artifacts.

Offline core (no Kafka): bootstrap an artifact from a full-information dataset, evaluate
any artifact on one, and keep artifacts in a versioned store. Heavy dependencies
(LightGBM, Optuna) load with :mod:`bifrost.trainer.bootstrap`, not with this package.

Example:
    >>> from bifrost.trainer.bootstrap import bootstrap_artifact  # doctest: +SKIP
    >>> from bifrost.trainer.evaluate import evaluate_artifact  # doctest: +SKIP
    >>> artifact, report = bootstrap_artifact(  # doctest: +SKIP
    ...     "llmrouter-dc.jsonl.gz", trials=200, seed=0, signing_key="key.pem"
    ... )
    >>> print(evaluate_artifact(artifact, "llmrouter-dc.jsonl.gz").to_markdown())  # doctest: +SKIP
"""
