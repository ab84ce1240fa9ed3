"""Serving: the governed gateway, traffic rollout between versions and canary judgement."""
