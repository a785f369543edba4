"""`soclake app`: a local, read-only web application over a lake (pool gallery, SQL console,
jobs, images with their masks and expressions, audit), its pages and assets shipped in this
package. create_app builds it for any ASGI server; serve runs it with uvicorn."""
from soclake.app.server import create_app, serve

__all__ = ["create_app", "serve"]
