"""Off the request path: loader, sessionizer, demo generator. Idempotent."""
