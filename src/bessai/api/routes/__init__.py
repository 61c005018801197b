"""The API's routers, one per resource; `bessai.api.app.create_app` mounts them under /api/v1."""
