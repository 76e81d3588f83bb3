"""Artifact announcements → canary rollouts, after the signature checks out."""
