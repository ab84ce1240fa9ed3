"""HTTP API of the gateway: dependencies and one router module per resource."""
