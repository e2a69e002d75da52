-- Data retention and GDPR erasure (callcore.ops.retention, callcore.ops.gdpr; docs/security.md).
-- When a call's personal data (caller number and name, numbers in its dial string and event payloads, personal
-- variables) was replaced by anonymisation markers. NULL: not yet. The retention job anonymises each call once.
ALTER TABLE calls ADD COLUMN anonymised_at timestamptz NULL;

-- The retention job's question: calls started before the limit and not anonymised yet, oldest first.
CREATE INDEX calls_not_anonymised_idx ON calls (started_at, call_id) WHERE anonymised_at IS NULL;

COMMENT ON COLUMN calls.anonymised_at IS 'when personal data of this call was anonymised (retention job or GDPR erasure)';
