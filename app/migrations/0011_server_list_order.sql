-- The Servers list is filtered, sorted and paged by the query. Addresses sort as numbers
-- (127.0.1.9 before 127.0.1.10), so each server keeps its IPv4 address as one: ip_order.
ALTER TABLE servers ADD COLUMN ip_order INTEGER NOT NULL DEFAULT 0;

WITH first AS (SELECT id, ip, instr(ip, '.') AS dot FROM servers),
second AS (
    SELECT id, CAST(substr(ip, 1, dot - 1) AS INTEGER) AS a, substr(ip, dot + 1) AS rest
    FROM first
),
third AS (
    SELECT id, a, CAST(substr(rest, 1, instr(rest, '.') - 1) AS INTEGER) AS b,
           substr(rest, instr(rest, '.') + 1) AS rest
    FROM second
),
octets AS (
    SELECT id, a, b, CAST(substr(rest, 1, instr(rest, '.') - 1) AS INTEGER) AS c,
           CAST(substr(rest, instr(rest, '.') + 1) AS INTEGER) AS d
    FROM third
)
UPDATE servers SET ip_order = ((octets.a * 256 + octets.b) * 256 + octets.c) * 256 + octets.d
FROM octets WHERE octets.id = servers.id;

CREATE INDEX servers_by_account_and_ip ON servers (account_id, ip_order);
