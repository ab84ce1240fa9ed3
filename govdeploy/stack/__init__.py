"""The local stack: a local S3 endpoint, MLflow, Prefect and the deployment server, on loopback."""
