"""The dashboard's public address and the OAuth URLs derived from it — read by core and dashboard alike.

`SWITCHBOARD_PUBLIC_URL` (default `http://localhost:5006`) is where browsers reach the dashboard.
From it, and never from a request's Host header:

- the OAuth redirect URI, `<public url>/oauth/callback` (the dashboard's callback route);
- over https only, the URL of Switchboard's client ID metadata document,
  `<public url>/oauth/client-metadata.json`, which an authorization server fetches instead of taking
  a registration (it must be able to fetch it, and A-14 requires https).

The services use the redirect URI by default and offer the metadata document only with it (the CLI's
loopback redirect registers the classic way); `dashboard/plugins.py` serves the routes at these paths
and `dashboard/serve.py` allows the public URL's websocket origin.
"""

from __future__ import annotations

import os
from typing import Any

PUBLIC_URL_ENV = "SWITCHBOARD_PUBLIC_URL"
DEFAULT_PUBLIC_URL = "http://localhost:5006"
CALLBACK_PATH = "/oauth/callback"
CLIENT_METADATA_PATH = "/oauth/client-metadata.json"
CLIENT_NAME = "Switchboard"


def public_url() -> str:
    """Where browsers reach the dashboard, without a trailing slash."""
    return os.environ.get(PUBLIC_URL_ENV, DEFAULT_PUBLIC_URL).rstrip("/")


def dashboard_redirect_uri() -> str:
    """The dashboard's OAuth callback."""
    return public_url() + CALLBACK_PATH


def client_metadata_url() -> str | None:
    """Where the dashboard publishes the client ID metadata document; None unless served over https."""
    public = public_url()
    return public + CLIENT_METADATA_PATH if public.startswith("https://") else None


def client_metadata() -> dict[str, Any] | None:
    """The client ID metadata document the dashboard serves (None when not on https)."""
    url = client_metadata_url()
    if url is None:
        return None
    from core.oauth import client_metadata_document  # the OAuth package loads only for this route

    return client_metadata_document(
        url, client_name=CLIENT_NAME, redirect_uris=[dashboard_redirect_uri()], application_type="web"
    )
