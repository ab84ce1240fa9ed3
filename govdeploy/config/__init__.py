"""Configuration: process settings, policy-as-code, the model catalog, approver identities, suites."""
