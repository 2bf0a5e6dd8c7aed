-- Registrations, written behind the in-memory location store so that a restart of the
-- process (or a node) loses none. Keep-alive figures are not kept: they are re-measured.
CREATE TABLE registrations (
    aor                   TEXT    NOT NULL,
    contact               TEXT    NOT NULL,
    expires_at            INTEGER NOT NULL,
    received              TEXT    NOT NULL,
    transport             TEXT    NOT NULL CHECK (transport IN ('udp', 'tcp')),
    call_id               TEXT    NOT NULL,
    cseq                  INTEGER NOT NULL,
    user_agent            TEXT,
    PRIMARY KEY (aor, contact)
);
CREATE INDEX registrations_expiry ON registrations(expires_at);
