"""Signing operators in to the dashboard: the configuration, the dashboard secret, sealed browser
values, OpenID Connect and passwords. The roles themselves are `core/roles.py`.

    settings.py  the sign-in mode and its settings, from the environment (`SWITCHBOARD_AUTH`, …)
    secret.py    the dashboard secret (signs Bokeh session ids; keys for the cookies)
    sealed.py    AES-GCM sealed values with an expiry (the session cookie, the OIDC flow cookie)
    oidc.py      OpenID Connect sign-in: discovery, code + PKCE, state, nonce, ID token validation
                 (imported where used: it loads the OAuth pieces, authlib and joserfc)
"""

from core.signin.sealed import Sealer
from core.signin.secret import dashboard_secret, derive_key
from core.signin.settings import MODES, OidcSettings, SignInSettings, load_signin_settings

__all__ = [
    "MODES",
    "OidcSettings",
    "Sealer",
    "SignInSettings",
    "dashboard_secret",
    "derive_key",
    "load_signin_settings",
]
