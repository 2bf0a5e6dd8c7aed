-- A registration remembers the transport it really came over: TLS and secure WebSocket
-- (WebRTC) phones too, no longer filed as TCP. SQLite cannot change a CHECK constraint in
-- place, so the table is rebuilt with the wider one; rows keep what they had.
CREATE TABLE registrations_new (
    aor                   TEXT    NOT NULL,
    contact               TEXT    NOT NULL,
    expires_at            INTEGER NOT NULL,
    received              TEXT    NOT NULL,
    transport             TEXT    NOT NULL CHECK (transport IN ('udp', 'tcp', 'tls', 'ws', 'wss')),
    call_id               TEXT    NOT NULL,
    cseq                  INTEGER NOT NULL,
    user_agent            TEXT,
    PRIMARY KEY (aor, contact)
);
INSERT INTO registrations_new SELECT * FROM registrations;
DROP TABLE registrations;
ALTER TABLE registrations_new RENAME TO registrations;
CREATE INDEX registrations_expiry ON registrations(expires_at);
