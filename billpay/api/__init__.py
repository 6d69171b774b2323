"""The HTTP API for client apps (FastAPI, served by ``billpay api``). No Prefect here: it shares
the domain and the store with the pipeline through the composition root (``billpay.app.App``)."""

from billpay.api.app import create_app

__all__ = ["create_app"]
