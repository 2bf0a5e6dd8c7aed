-- How each SIP user's registered contacts are kept alive through NAT.
ALTER TABLE sip_users ADD COLUMN keepalive TEXT NOT NULL DEFAULT 'options'
    CHECK (keepalive IN ('disabled', 'crlf', 'options', 'options_timeout'));
