-- SIP users that register to an account's servers. The password is kept as given: digest
-- authentication needs it (or an HA1 per realm, and each server is its own realm).
CREATE TABLE sip_users (
    id                    INTEGER PRIMARY KEY,
    account_id            INTEGER NOT NULL REFERENCES accounts(id) ON DELETE CASCADE,
    username              TEXT    NOT NULL,
    password              TEXT    NOT NULL,
    created_at            INTEGER NOT NULL,
    UNIQUE (account_id, username)
);
