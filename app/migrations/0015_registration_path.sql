-- A registration remembers the Path it came through (RFC 3327): the Dispatcher that holds
-- the phone's NAT mapping, which calls to the phone must pass after a restart too.
--
-- The Path's entries (header values such as `<sip:203.0.113.5:5060;lr;nat=198.51.100.7~41000>`,
-- nearest the registrar first) are joined by a line feed: a SIP header value is one line
-- once read (RFC 3261 §7.3.1 folds continuation lines into one), so a line feed never
-- occurs inside an entry, whereas a comma may (in a URI's user part, in a quoted display
-- name). Empty: the phone registered directly.
ALTER TABLE registrations ADD COLUMN path TEXT NOT NULL DEFAULT '';
