"""The HTTP layer: the Starlette app, its routes, middleware, uploads and shutdown. It knows the service layer only."""
