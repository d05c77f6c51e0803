"""The Smart Zone dashboard: a FastAPI app over settlement's read model (see ``dashboard.app.create_app``)."""
