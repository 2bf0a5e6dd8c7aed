-- Node releases: the node settings the operator publishes. A node runs the release it
-- started with; a newer one is a pending update until the server is updated.
CREATE TABLE node_releases (
    revision          INTEGER PRIMARY KEY,
    keepalive_seconds INTEGER NOT NULL CHECK (keepalive_seconds > 0),
    published_at      INTEGER NOT NULL,
    published_by      INTEGER REFERENCES users(id)
);
