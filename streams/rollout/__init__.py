"""Progressive canary rollouts: the pure state machine, the gates, and the agent."""
