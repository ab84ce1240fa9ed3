"""Model-serving gateway: authentication, authorisation and rate limiting of API requests."""
