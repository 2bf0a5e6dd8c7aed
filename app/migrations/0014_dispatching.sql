-- A Dispatcher balances over the Switch servers of its cluster: its algorithm and the
-- health probing of its switches, and AnyReg. A Switch's weight is its share under the
-- weighted algorithm.
ALTER TABLE servers ADD COLUMN balancing TEXT NOT NULL DEFAULT 'round-robin';
ALTER TABLE servers ADD COLUMN probe_interval INTEGER NOT NULL DEFAULT 5;
ALTER TABLE servers ADD COLUMN probe_failures INTEGER NOT NULL DEFAULT 2;
ALTER TABLE servers ADD COLUMN probe_successes INTEGER NOT NULL DEFAULT 2;
ALTER TABLE servers ADD COLUMN any_reg INTEGER NOT NULL DEFAULT 0;
ALTER TABLE servers ADD COLUMN weight INTEGER NOT NULL DEFAULT 1;
