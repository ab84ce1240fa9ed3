"""The release path: data, validation, training, evaluation, the policy gate, approval and promotion."""
