"""The listener app: annotate songs while listening, personalize, serve personal curves.

``pdmer app MODEL --songs FOLDER`` serves it; :func:`create_app` builds the
same ASGI application for your own server. Needs the optional dependencies
(``pip install 'pdmer[app]'``); ``import pdmer`` never imports them.
"""

from pdmer.app.server import create_app

__all__ = ["create_app"]
