"""How the flows run: the one registry of deployments (schedules, parameters, concurrency)."""
