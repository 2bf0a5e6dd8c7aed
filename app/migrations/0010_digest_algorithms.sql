-- The digest algorithms a server's challenges offer, in order. MD5 first by default:
-- phones that read only the first challenge and know only MD5 (many hard phones, SIPp 3.6)
-- could not register when SHA-256 came first.
ALTER TABLE servers ADD COLUMN digest_algorithms TEXT NOT NULL DEFAULT 'md5-sha256'
    CHECK (digest_algorithms IN ('md5-sha256', 'sha256-md5', 'sha256'));
