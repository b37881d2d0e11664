"""Agent compose: converter → critic → judge, offline or with a model, as durable jobs."""
