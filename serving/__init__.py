"""c2s-serving: engine adapter, task registry, Ray Serve deployments, gateway, jobs, CLI."""
