-- Free addresses per zone are counted over the address order (platform-wide), and a
-- cluster's members are found by their cluster, without scanning every server.
CREATE INDEX servers_by_ip ON servers (ip_order);
CREATE INDEX servers_by_cluster ON servers (cluster_id);
