"""The HTTP API (`/v1/...`): routers, the error body, and their dependencies."""
