"""The continuous optimizer: goal tracking, trend tests, recommendations with measured impact, alerts.

Pure modules (no Kafka, no Faust): ``trends`` (Mann-Kendall, seasonal Kendall, Sen's slope),
``goals``, ``series`` (hourly points per router, bucket, model), ``counterfactual`` (logged
requests replayed through the reference router, valued with IPS/SNIPS/DR), ``rules``
(recommendations), ``alerting`` (alerts and the degradation trigger), ``analysis`` (one
router, all of it), ``apply`` (authenticating "apply this recommendation"). Shells:
``service`` (the worker's scheduled analysis and publishing), ``ledger`` (what is already on
a topic, read back from Kafka), ``views`` (HTTP).
"""
