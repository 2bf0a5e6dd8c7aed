-- The control plane's store. Times are Unix seconds (UTC); money is US cents.

CREATE TABLE accounts (
    id                    INTEGER PRIMARY KEY,
    company               TEXT    NOT NULL,
    balance_cents         INTEGER NOT NULL DEFAULT 0,
    first_top_up_at       INTEGER,
    terms_accepted_at     INTEGER,
    is_operator           INTEGER NOT NULL DEFAULT 0,
    created_at            INTEGER NOT NULL
);

CREATE TABLE users (
    id                    INTEGER PRIMARY KEY,
    account_id            INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    email                 TEXT    NOT NULL UNIQUE,
    password_hash         TEXT    NOT NULL,
    created_at            INTEGER NOT NULL
);

-- Only a hash of the session token is kept: a copy of the store signs nobody in.
CREATE TABLE sessions (
    token_hash            TEXT    PRIMARY KEY,
    user_id               INTEGER NOT NULL REFERENCES users(id) ON DELETE CASCADE,
    created_at            INTEGER NOT NULL,
    expires_at            INTEGER NOT NULL
);
CREATE INDEX sessions_expiry ON sessions(expires_at);

-- Zones come from the settings file and are synced at start.
CREATE TABLE zones (
    name                  TEXT    PRIMARY KEY,
    label                 TEXT    NOT NULL,
    pool_first            TEXT    NOT NULL,
    pool_last             TEXT    NOT NULL
);

CREATE TABLE clusters (
    id                    INTEGER PRIMARY KEY,
    account_id            INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    name                  TEXT    NOT NULL,
    created_at            INTEGER NOT NULL,
    UNIQUE (account_id, name)
);

CREATE TABLE servers (
    id                    INTEGER PRIMARY KEY,
    account_id            INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    alias                 TEXT    NOT NULL,
    zone                  TEXT    NOT NULL REFERENCES zones(name),
    kind                  TEXT    NOT NULL CHECK (kind IN ('dispatcher', 'switch')),
    cluster_id            INTEGER REFERENCES clusters(id),
    ip                    TEXT    NOT NULL UNIQUE,
    channels              INTEGER NOT NULL CHECK (channels BETWEEN 1 AND 100000),
    cps                   INTEGER NOT NULL CHECK (cps BETWEEN 1 AND 10000),
    -- A resize waits for its activation time (PRODUCT.md: "active at …").
    pending_channels      INTEGER CHECK (pending_channels BETWEEN 1 AND 100000),
    pending_channels_at   INTEGER,
    status                TEXT    NOT NULL CHECK (status IN
                              ('installing', 'running', 'stopped', 'rebooting', 'updating', 'expired')),
    expires_at            INTEGER NOT NULL,
    created_at            INTEGER NOT NULL,
    failover_enabled      INTEGER NOT NULL DEFAULT 0,
    failover_target_id    INTEGER REFERENCES servers(id) ON DELETE SET NULL,
    interconnect          INTEGER NOT NULL DEFAULT 0,
    uac_auth_username     TEXT,
    uac_auth_password     TEXT,
    fqdn                  TEXT,
    auto_upgrade          INTEGER NOT NULL DEFAULT 0,
    disable_uac_ping      INTEGER NOT NULL DEFAULT 0,
    uac_location_sharing  INTEGER NOT NULL DEFAULT 0,
    tls_internals         INTEGER NOT NULL DEFAULT 0,
    restrict_direct       INTEGER NOT NULL DEFAULT 0,
    tcp_sip_trace         INTEGER NOT NULL DEFAULT 0,
    data_zone             TEXT    NOT NULL DEFAULT 'us' CHECK (data_zone IN ('us', 'eu')),
    udp_port              INTEGER NOT NULL DEFAULT 5060 CHECK (udp_port BETWEEN 1024 AND 65535),
    tcp_port              INTEGER NOT NULL DEFAULT 5060 CHECK (tcp_port BETWEEN 1024 AND 65535),
    tls_port              INTEGER NOT NULL DEFAULT 5061 CHECK (tls_port BETWEEN 1024 AND 65535),
    -- What the node last reported running; compared with the control plane's current build.
    engine_build          TEXT,
    config_version        INTEGER NOT NULL DEFAULT 1,
    UNIQUE (account_id, alias)
);
CREATE INDEX servers_account ON servers(account_id, id);

CREATE TABLE certificates (
    id                    INTEGER PRIMARY KEY,
    account_id            INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    chain_pem             TEXT    NOT NULL,
    key_pem               TEXT    NOT NULL,
    subject               TEXT    NOT NULL,
    sans                  TEXT    NOT NULL,
    issuer                TEXT    NOT NULL,
    not_after             INTEGER NOT NULL,
    created_at            INTEGER NOT NULL
);

CREATE TABLE server_certificates (
    server_id             INTEGER NOT NULL REFERENCES servers(id) ON DELETE CASCADE,
    certificate_id        INTEGER NOT NULL REFERENCES certificates(id) ON DELETE CASCADE,
    usage                 TEXT    NOT NULL CHECK (usage IN ('server', 'client')),
    PRIMARY KEY (server_id, certificate_id)
);

-- The operator's media relays.
CREATE TABLE rtp_servers (
    id                    INTEGER PRIMARY KEY,
    ip                    TEXT    NOT NULL UNIQUE,
    aliases               TEXT    NOT NULL DEFAULT '',
    zone                  TEXT    NOT NULL REFERENCES zones(name)
);

-- Every change: who, what, when. Never updated or deleted by the product.
CREATE TABLE audit_log (
    id                    INTEGER PRIMARY KEY,
    account_id            INTEGER,
    user_id               INTEGER,
    action                TEXT    NOT NULL,
    subject               TEXT    NOT NULL,
    detail                TEXT    NOT NULL DEFAULT '',
    at                    INTEGER NOT NULL
);
CREATE INDEX audit_account ON audit_log(account_id, at);
