"""The store's tables, their migrations, and which columns hold (encrypted) secrets.

Conventions: ids are random hex strings; every `*_at` column is epoch seconds (DOUBLE, like
`TokenSet.expires_at`; `to_timestamp(x)` in SQL for display); JSON columns hold canonical JSON
text; `agent_id = ''` means "no agent" (a connector's shared credential, or a tool list that does
not depend on who asks). Secrets live only in the BLOB columns listed in `SECRET_TABLES`, as
AES-GCM blobs (`core.store.crypto`); there is no plaintext secret column anywhere, which
`tests/test_store_schema.py` checks against the live catalog.

Tables (version 1):

- `schema_version(version, description, applied_at)`: one row per applied migration.
- `connectors`: one MCP server. `url` is the canonical server URL; `auth_type` none | bearer |
  api_key_header | oauth | client_credentials; `header_name` for api_key_header;
  `credential_mode` shared | per_agent; `scopes` an operator override (NULL: what discovery
  suggests); `allow_plain_pkce`; discovery results `prm`, `as_metadata` (JSON) and `issuer`; a
  pre-registered client `client_id` + `client_secret` (encrypted) and `registration_method`
  pre_registered | cimd | dcr; sync state `status` (never_synced | connected | needs_auth | error),
  `last_sync_at`, `last_error`.
- `agents`: id, unique name, description.
- `credentials`: one row per (connector_id, agent_id). `kind` bearer | api_key | oauth |
  client_credentials; secrets `secret` (static) or `access_token` + `refresh_token`, encrypted and
  bound to (connector, agent, issuer, client_id, resource); `fingerprint` (8 hex of SHA-256 of the
  secret or access token, for display and audit); `version` for compare-and-swap; `status`
  connected | needs_reauth | error with `status_reason`; refresh and 401/403 times for health.
- `oauth_clients`: client registrations per (issuer, redirect_uri); `client_secret` encrypted.
- `pending_authorizations`: in-flight authorizations keyed by `state_hash` (hex SHA-256 of the state,
  which is never stored); `code_verifier` encrypted; `expires_at` 10 minutes after creation.
- `tool_snapshots`: one row per *distinct* tool list seen for (connector, agent): a sync that finds
  the same list only moves `verified_at`. `is_current` marks the latest; older ones are history for
  drift, pruned to the newest few.
- `tools`: full definitions of every tool of every kept snapshot (`raw` is the wire definition;
  `def_hash` its canonical SHA-256; `changed_at` when this definition first appeared).
- `current_tools`: the listing columns of the current snapshots only, with the derived fields the
  inventory filters and sorts on, a lower-cased `search_text` and the connector's name (copied, and
  updated on rename, so sorting by connector needs no join), so inventory pages never scan history
  nor the wide JSON columns.
- `audit_log`: one row per tool call (`called_at`); arguments redacted, the credential only as a
  fingerprint.
- `auth_trace`: the steps of authorization attempts (`recorded_at`; URLs without query or userinfo).
- `key_usage`: encryptions performed per key, to rotate before the AES-GCM random-nonce limit.

Version 2 (the agent gateway; `core/store/repositories/gateway.py`):

- `agent_tokens`: bearer tokens agents present to the gateway, as SHA-256 hex of the token only
  (`token_hash`; the token itself is shown once and never stored); `label`, `expires_at`,
  `revoked_at`, `last_used_at`.
- `agent_policies`: per agent, ordered allow/deny `rules` (JSON) and the limits
  `requests_per_minute` / `max_concurrent_calls` (NULL: the gateway's defaults).
- `tool_pinning`: per connector, how tool definitions are approved: `auto` (on first sync) or
  `manual` (an operator approves each one).
- `tool_approvals`: per (connector, agent, tool) the approved definition hash (`tools.def_hash`).
  A current tool whose hash differs is quarantined; one without a row awaits approval.
- `gateway_changes`: one row; `generation` moves on every gateway-relevant write, so gateway
  processes notice another process's change with one cheap read.
- `gateway_instances`: gateway processes and their last heartbeat (limits are shared among them).
- `audit_log` gains `token_id` and `outcome` (why a gateway call was refused, or how it ended).

Version 3 (the PostgreSQL store):

- `flash_messages`: one-time messages from the OAuth callback to the page it redirects to, keyed by
  the SHA-256 of their random key, so any dashboard replica can show what another one put.
- On PostgreSQL only, the inventory's search and sort indexes (`postgres_engine.py`).

Version 4 (dashboard sign-in, `core/store/repositories/operators.py`):

- `operators`: who may sign in to the dashboard with `--auth basic`: unique `name`, `role` viewer |
  operator | admin, `password_hash` the Argon2id hash of their password, encrypted like the
  secrets (bound to the name), `created_at`, `updated_at`.

Version 5 (sign-out that reaches every replica, `core/store/repositories/operators.py`):

- `ended_sessions`: dashboard sessions signed out before their cookie expires, by the SHA-256 of
  the session's random id (`session_hash`), kept until `expires_at` (when the cookie would have
  expired anyway). Every request and every open page asks it.

Version 1 is the last released schema. Versions 2 and 3 were written on two branches at once (the
gateway and the PostgreSQL store) and numbered when they met, the gateway's first: main's
development stores already carry its version 2.

Types are written as `${double}`, `${blob}`, `${json}` (DuckDB DOUBLE, BLOB, JSON; PostgreSQL DOUBLE
PRECISION, BYTEA, JSON), so one numbering serves both engines.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass
from string import Template

from core.store.crypto import SecretContext


@dataclass(frozen=True)
class SecretTable:
    """A table with encrypted columns. Each blob is bound to the row's `key` columns and its
    `context` columns; changing any of them requires re-encrypting the row's secrets."""

    table: str
    key: tuple[str, ...]
    context: tuple[str, ...]
    columns: tuple[str, ...]
    versioned: bool = False  # has a `version` column used for compare-and-swap

    def secret_context(self, column: str, row: Mapping[str, object]) -> SecretContext:
        return SecretContext(self.table, column, tuple(str(row[c] or "") for c in self.key + self.context))


CONNECTOR_SECRETS = SecretTable("connectors", ("id",), (), ("client_secret",))
CREDENTIAL_SECRETS = SecretTable(
    "credentials",
    ("connector_id", "agent_id"),
    ("issuer", "client_id", "resource"),
    ("secret", "access_token", "refresh_token"),
    versioned=True,
)
CLIENT_SECRETS = SecretTable("oauth_clients", ("issuer", "redirect_uri"), ("client_id",), ("client_secret",))
PENDING_SECRETS = SecretTable("pending_authorizations", ("state_hash",), (), ("code_verifier",))
# An Argon2id hash is not the password, but a copy of the database without the key file should not
# even give something to guess passwords against offline.
OPERATOR_SECRETS = SecretTable("operators", ("name",), (), ("password_hash",))
SECRET_TABLES = (CONNECTOR_SECRETS, CREDENTIAL_SECRETS, CLIENT_SECRETS, PENDING_SECRETS, OPERATOR_SECRETS)


@dataclass(frozen=True)
class Migration:
    """One forward-only step, numbered alike on both engines. `statements` are written once, with
    `${name}` for what the engines spell differently (`Engine.types`); an engine adds statements of
    its own for the same version (indexes, roles: `Engine.migration_statements`)."""

    version: int
    description: str
    statements: tuple[str, ...]

    def render(self, types: Mapping[str, str]) -> list[str]:
        return [Template(statement).substitute(types) for statement in self.statements]


SCHEMA_VERSION_TABLE = (
    "CREATE TABLE IF NOT EXISTS schema_version ("
    "version INTEGER PRIMARY KEY, description VARCHAR NOT NULL, applied_at ${double} NOT NULL)"
)


MIGRATIONS: tuple[Migration, ...] = (
    Migration(
        1,
        "initial schema",
        (
            """CREATE TABLE connectors (
            id VARCHAR PRIMARY KEY,
            name VARCHAR NOT NULL UNIQUE,
            url VARCHAR NOT NULL,
            auth_type VARCHAR NOT NULL
                CHECK (auth_type IN ('none', 'bearer', 'api_key_header', 'oauth', 'client_credentials')),
            header_name VARCHAR,
            credential_mode VARCHAR NOT NULL DEFAULT 'shared' CHECK (credential_mode IN ('shared', 'per_agent')),
            scopes VARCHAR[],
            allow_plain_pkce BOOLEAN NOT NULL DEFAULT false,
            prm ${json},
            as_metadata ${json},
            issuer VARCHAR,
            client_id VARCHAR,
            client_secret ${blob},
            registration_method VARCHAR CHECK (registration_method IN ('pre_registered', 'cimd', 'dcr')),
            status VARCHAR NOT NULL DEFAULT 'never_synced'
                CHECK (status IN ('never_synced', 'connected', 'needs_auth', 'error')),
            last_sync_at ${double},
            last_error VARCHAR,
            created_at ${double} NOT NULL,
            updated_at ${double} NOT NULL)""",
            """CREATE TABLE agents (
            id VARCHAR PRIMARY KEY,
            name VARCHAR NOT NULL UNIQUE,
            description VARCHAR NOT NULL DEFAULT '',
            created_at ${double} NOT NULL)""",
            """CREATE TABLE credentials (
            connector_id VARCHAR NOT NULL,
            agent_id VARCHAR NOT NULL DEFAULT '',
            kind VARCHAR NOT NULL CHECK (kind IN ('bearer', 'api_key', 'oauth', 'client_credentials')),
            secret ${blob},
            access_token ${blob},
            refresh_token ${blob},
            token_type VARCHAR,
            expires_at ${double},
            issued_at ${double},
            scopes VARCHAR[] NOT NULL DEFAULT ${empty_list},
            issuer VARCHAR NOT NULL DEFAULT '',
            client_id VARCHAR NOT NULL DEFAULT '',
            resource VARCHAR NOT NULL DEFAULT '',
            token_endpoint VARCHAR NOT NULL DEFAULT '',
            identity VARCHAR,
            fingerprint VARCHAR,
            version BIGINT NOT NULL,
            status VARCHAR NOT NULL DEFAULT 'connected' CHECK (status IN ('connected', 'needs_reauth', 'error')),
            status_reason VARCHAR,
            last_refresh_at ${double},
            last_401_at ${double},
            last_403_at ${double},
            created_at ${double} NOT NULL,
            updated_at ${double} NOT NULL,
            PRIMARY KEY (connector_id, agent_id),
            CHECK ((kind IN ('bearer', 'api_key')) = (secret IS NOT NULL)),
            CHECK ((kind IN ('oauth', 'client_credentials')) = (access_token IS NOT NULL)))""",
            """CREATE TABLE oauth_clients (
            issuer VARCHAR NOT NULL,
            redirect_uri VARCHAR NOT NULL DEFAULT '',
            client_id VARCHAR NOT NULL,
            client_secret ${blob},
            method VARCHAR NOT NULL CHECK (method IN ('pre_registered', 'cimd', 'dcr')),
            token_endpoint_auth_method VARCHAR NOT NULL DEFAULT 'none',
            redirect_uris VARCHAR[] NOT NULL DEFAULT ${empty_list},
            client_secret_expires_at BIGINT,
            registration ${json} NOT NULL DEFAULT '{}',
            created_at ${double} NOT NULL,
            updated_at ${double} NOT NULL,
            PRIMARY KEY (issuer, redirect_uri))""",
            """CREATE TABLE pending_authorizations (
            state_hash VARCHAR PRIMARY KEY,
            connector_id VARCHAR NOT NULL,
            agent_id VARCHAR NOT NULL DEFAULT '',
            code_verifier ${blob} NOT NULL,
            issuer VARCHAR NOT NULL,
            client_id VARCHAR NOT NULL,
            redirect_uri VARCHAR NOT NULL,
            resource VARCHAR NOT NULL,
            scopes VARCHAR[] NOT NULL DEFAULT ${empty_list},
            return_to VARCHAR NOT NULL DEFAULT '',
            token_endpoint VARCHAR NOT NULL DEFAULT '',
            iss_parameter_supported BOOLEAN NOT NULL DEFAULT false,
            created_at ${double} NOT NULL,
            expires_at ${double} NOT NULL)""",
            "CREATE SEQUENCE tool_snapshot_ids START 1",
            """CREATE TABLE tool_snapshots (
            id BIGINT PRIMARY KEY,
            connector_id VARCHAR NOT NULL,
            agent_id VARCHAR NOT NULL DEFAULT '',
            synced_at ${double} NOT NULL,
            verified_at ${double} NOT NULL,
            tool_count INTEGER NOT NULL,
            hash VARCHAR NOT NULL,
            is_current BOOLEAN NOT NULL)""",
            # No primary key on the two tool tables: ART indexes would slow the bulk inserts and cost
            # memory at every open; (snapshot_id, name) uniqueness is enforced when a snapshot is built,
            # and zone maps on snapshot_id / connector_id (rows arrive grouped by snapshot) do the pruning.
            """CREATE TABLE tools (
            snapshot_id BIGINT NOT NULL,
            name VARCHAR NOT NULL,
            title VARCHAR,
            description VARCHAR,
            input_schema ${json},
            output_schema ${json},
            annotations ${json},
            raw ${json} NOT NULL,
            def_hash VARCHAR NOT NULL,
            first_seen_at ${double} NOT NULL,
            changed_at ${double} NOT NULL)""",
            """CREATE TABLE current_tools (
            connector_id VARCHAR NOT NULL,
            connector_name VARCHAR NOT NULL,
            agent_id VARCHAR NOT NULL,
            snapshot_id BIGINT NOT NULL,
            name VARCHAR NOT NULL,
            title VARCHAR,
            description VARCHAR,
            parameter_count INTEGER NOT NULL,
            read_only BOOLEAN,
            destructive BOOLEAN,
            def_hash VARCHAR NOT NULL,
            first_seen_at ${double} NOT NULL,
            changed_at ${double} NOT NULL,
            drift BOOLEAN NOT NULL,
            search_text VARCHAR NOT NULL)""",
            "CREATE SEQUENCE audit_ids START 1",
            """CREATE TABLE audit_log (
            id BIGINT NOT NULL DEFAULT nextval('audit_ids'),
            called_at ${double} NOT NULL,
            operator VARCHAR,
            agent_id VARCHAR NOT NULL DEFAULT '',
            connector_id VARCHAR NOT NULL,
            tool VARCHAR NOT NULL,
            arguments ${json},
            status VARCHAR NOT NULL CHECK (status IN ('ok', 'tool_error', 'error')),
            latency_ms ${double},
            credential_fingerprint VARCHAR
                CHECK (credential_fingerprint IS NULL OR ${fingerprint_ok}),
            error VARCHAR)""",
            "CREATE SEQUENCE auth_trace_ids START 1",
            """CREATE TABLE auth_trace (
            id BIGINT NOT NULL DEFAULT nextval('auth_trace_ids'),
            attempt_id VARCHAR NOT NULL,
            connector_id VARCHAR NOT NULL,
            agent_id VARCHAR NOT NULL DEFAULT '',
            step VARCHAR NOT NULL,
            method VARCHAR,
            url VARCHAR,
            http_status INTEGER,
            duration_ms ${double},
            detail VARCHAR,
            recorded_at ${double} NOT NULL)""",
            """CREATE TABLE key_usage (
            key_id VARCHAR PRIMARY KEY,
            encryptions BIGINT NOT NULL)""",
        ),
    ),
    Migration(
        2,
        "agent gateway: tokens, policies, tool pinning",
        (
            """CREATE TABLE agent_tokens (
            id VARCHAR PRIMARY KEY,
            agent_id VARCHAR NOT NULL,
            token_hash VARCHAR NOT NULL UNIQUE,
            label VARCHAR NOT NULL DEFAULT '',
            created_at ${double} NOT NULL,
            expires_at ${double},
            revoked_at ${double},
            last_used_at ${double})""",
            """CREATE TABLE agent_policies (
            agent_id VARCHAR PRIMARY KEY,
            rules ${json} NOT NULL,
            requests_per_minute INTEGER,
            max_concurrent_calls INTEGER,
            updated_at ${double} NOT NULL)""",
            """CREATE TABLE tool_pinning (
            connector_id VARCHAR PRIMARY KEY,
            approval VARCHAR NOT NULL CHECK (approval IN ('auto', 'manual')),
            updated_at ${double} NOT NULL)""",
            """CREATE TABLE tool_approvals (
            connector_id VARCHAR NOT NULL,
            agent_id VARCHAR NOT NULL DEFAULT '',
            tool VARCHAR NOT NULL,
            approved_hash VARCHAR NOT NULL,
            approved_at ${double} NOT NULL,
            approved_by VARCHAR NOT NULL,
            PRIMARY KEY (connector_id, agent_id, tool))""",
            # What was synced before pinning existed counts as approved on its first sync.
            """INSERT INTO tool_approvals
            SELECT connector_id, agent_id, name, def_hash, changed_at, 'auto' FROM current_tools""",
            "CREATE TABLE gateway_changes (id INTEGER PRIMARY KEY, generation BIGINT NOT NULL)",
            "INSERT INTO gateway_changes VALUES (1, 0)",
            """CREATE TABLE gateway_instances (
            id VARCHAR PRIMARY KEY,
            started_at ${double} NOT NULL,
            seen_at ${double} NOT NULL)""",
            "ALTER TABLE audit_log ADD COLUMN token_id VARCHAR",
            "ALTER TABLE audit_log ADD COLUMN outcome VARCHAR",
        ),
    ),
    Migration(
        3,
        "flash messages in the store; PostgreSQL search indexes",
        (
            """CREATE TABLE flash_messages (
            key_hash VARCHAR PRIMARY KEY,
            message ${json} NOT NULL,
            expires_at ${double} NOT NULL)""",
        ),
    ),
    Migration(
        4,
        "dashboard operators (--auth basic)",
        (
            """CREATE TABLE operators (
            name VARCHAR PRIMARY KEY,
            role VARCHAR NOT NULL CHECK (role IN ('viewer', 'operator', 'admin')),
            password_hash ${blob} NOT NULL,
            created_at ${double} NOT NULL,
            updated_at ${double} NOT NULL)""",
        ),
    ),
    Migration(
        5,
        "dashboard sessions ended by sign-out",
        (
            """CREATE TABLE ended_sessions (
            session_hash VARCHAR PRIMARY KEY,
            expires_at ${double} NOT NULL)""",
        ),
    ),
)

LATEST_VERSION = MIGRATIONS[-1].version
