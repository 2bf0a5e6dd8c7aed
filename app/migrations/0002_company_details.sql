-- The Getting Started checklist's first item: the company's billing details.
ALTER TABLE accounts ADD COLUMN address TEXT;
ALTER TABLE accounts ADD COLUMN country TEXT;
ALTER TABLE accounts ADD COLUMN company_details_at INTEGER;
