-- The Servers list filters on zone, type and status and sorts by alias, status or expiry
-- (store::server_page). With an index per filter and order, a page is read by walking
-- one index and stopping after its rows, rather than by sorting the account's whole fleet.
CREATE INDEX servers_by_account_and_zone ON servers (account_id, zone, ip_order);
CREATE INDEX servers_by_account_and_kind ON servers (account_id, kind, ip_order);
CREATE INDEX servers_by_account_and_status ON servers (account_id, status, ip_order);
CREATE INDEX servers_by_account_and_alias ON servers (account_id, alias);
CREATE INDEX servers_by_account_and_expiry ON servers (account_id, expires_at, ip_order);
