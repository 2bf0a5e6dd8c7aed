-- UAC Auth: the carrier's registrar the server registers to (IP:port; no DNS).
ALTER TABLE servers ADD COLUMN uac_auth_registrar TEXT;
