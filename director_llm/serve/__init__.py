"""``director-llm serve``: an OpenAI-compatible HTTP gateway (Starlette + uvicorn).

Install the extra: ``pip install 'director-llm[serve]'``. ``create_app(director or config
path)`` returns the ASGI app; ``director-llm serve`` runs it (``--workers N``: uvicorn's
worker processes, sharing breaker, budget and cache state through Redis). See
``docs/serving.md``. Importing this package imports Starlette.
"""

from director_llm.serve.app import app_from_env, create_app

__all__ = ["app_from_env", "create_app"]
