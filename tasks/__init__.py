"""Prefect tasks: thin, typed wrappers over the govdeploy core that add retries, logging and
UI artifacts."""
