"""Clients of the servers govdeploy talks to: the MLflow registry, S3 storage and the Prefect API.

The only modules of the core that import ``mlflow``, ``boto3`` or ``prefect`` clients.
"""
