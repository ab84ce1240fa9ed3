"""Prefect flows of govdeploy; they only wire tasks."""
