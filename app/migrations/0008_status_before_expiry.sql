-- What a server was doing when its period ended unpaid: a renewal puts it back to that
-- (a server stopped before it expired comes back Stopped, with no node started for it).
-- NULL while the server is not Expired.
ALTER TABLE servers ADD COLUMN status_before_expiry TEXT
    CHECK (status_before_expiry IN ('installing', 'running', 'stopped', 'rebooting', 'updating'));
