"""Signing operators in to the dashboard: the configuration, the dashboard secret, sealed browser
values, OpenID Connect and passwords. The roles themselves are `core/roles.py`.

    settings.py   the sign-in mode and its settings, from the environment (`SWITCHBOARD_AUTH`, …)
    secret.py     the dashboard secret (signs Bokeh session ids; keys for the cookies)
    sealed.py     AES-GCM sealed values with an expiry (the session cookie, the OIDC flow cookie)
    oidc.py       OpenID Connect sign-in: discovery, code + PKCE, state, nonce, ID token validation
    passwords.py  Argon2id hashes of operators' passwords (`--auth basic`)
    accounts.py   what basic sign-in reads of the operators (`OperatorDirectory`: the store provides it)
    basic.py      basic sign-in: the password check, sessions bound to the account as it was

Only the settings are exported here: the other modules load cryptography, authlib, joserfc or
argon2 and are imported where they are used, so the CLI's `--help` stays light.
"""

from core.signin.settings import MODES, OidcSettings, SignInSettings, load_signin_settings

__all__ = ["MODES", "OidcSettings", "SignInSettings", "load_signin_settings"]
