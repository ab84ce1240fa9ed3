"""Where the servers are on each profile: the checks ``Settings`` runs on its endpoint variables.

On the external profile an endpoint comes from govdeploy's variable or from the client's own
(``MLFLOW_TRACKING_URI``, ``PREFECT_API_URL``); when both are set they must agree, so govdeploy
never overrides what the operator set for MLflow's or Prefect's own clients.
"""

from __future__ import annotations

import ipaddress
import os

# govdeploy's variables that name an external endpoint, by field, and the client's own variable
# each one stands for ("" for S3: boto3 has several, AWS_ENDPOINT_URL_S3, AWS_ENDPOINT_URL, config)
ENDPOINTS = {
    "mlflow_tracking_uri": ("GOVDEPLOY_MLFLOW_TRACKING_URI", "MLFLOW_TRACKING_URI"),
    "prefect_api": ("GOVDEPLOY_PREFECT_API_URL", "PREFECT_API_URL"),
    "s3_endpoint_url": ("GOVDEPLOY_S3_ENDPOINT_URL", ""),
}
AWS_S3 = "https://s3.amazonaws.com"  # what messages name when boto3 picks AWS's endpoint itself


def check_local(host: str, given: list[str]) -> None:
    """The local profile: no external endpoint, servers on a loopback address; ValueError otherwise."""
    if given:
        raise ValueError(
            f"{', '.join(given)} set, but GOVDEPLOY_PROFILE is 'local' (govdeploy runs MLflow, Prefect and "
            "S3 itself): set GOVDEPLOY_PROFILE=external to use them, or unset them"
        )
    if host != "localhost" and not ipaddress.ip_address(host).is_loopback:
        raise ValueError(
            f"host {host!r} is not a loopback address; the local stack listens on 127.0.0.1 (or another "
            "127.x address) only (on the external profile, GOVDEPLOY_PROFILE=external, it may be any)"
        )


def external_url(own: str | None, field: str) -> str:
    """The endpoint from govdeploy's variable or the client's own; ValueError when both are set and
    differ, or neither is."""
    own_variable, variable = ENDPOINTS[field]
    standard = os.environ.get(variable) or None
    if own and standard and own.rstrip("/") != standard.rstrip("/"):
        raise ValueError(
            f"{own_variable}={own!r} and {variable}={standard!r} name different servers; unset one of them"
        )
    url = own or standard
    if url is None:
        raise ValueError(
            f"the external profile needs {variable} (or {own_variable}): govdeploy starts no server there"
        )
    return http_url(url, own_variable if own else variable)


def http_url(url: str, variable: str) -> str:
    """``url`` without a trailing slash; ValueError naming the variable unless it is http(s)."""
    if not url.startswith(("http://", "https://")):
        raise ValueError(f"{variable}={url!r} is not an http(s) URL")
    return url.rstrip("/")


def aws_endpoint_variable() -> str | None:
    """The S3 endpoint boto3 takes from the environment when it is given none."""
    return os.environ.get("AWS_ENDPOINT_URL_S3") or os.environ.get("AWS_ENDPOINT_URL") or None
