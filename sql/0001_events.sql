-- Append-only log of call events (see callcore.events.CallEvent). Written only by callcore.store.EventWriter.
-- id order is emit order; event_id makes writes idempotent (a retried batch never duplicates a row).
CREATE TABLE call_events (
    -- event_id (UUIDv7, time-ordered) is the key; id only orders events (emit order) and is indexed
    -- with call_id below: one b-tree fewer to maintain on every insert.
    id          bigserial   NOT NULL,
    event_id    uuid        PRIMARY KEY,
    call_id     uuid        NOT NULL,
    channel_id  text        NULL,
    occurred_at timestamptz NOT NULL,
    type        text        NOT NULL,
    payload     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    written_at  timestamptz NOT NULL DEFAULT now()
);

-- One call's events in order; time-range scans; one event type over a time range.
CREATE INDEX call_events_call_id_id_idx ON call_events (call_id, id);
-- BRIN, not b-tree: rows arrive in time order, so a block-range index answers time-range scans of this
-- append-only table at a fraction of a b-tree's write cost (measured in docs/benchmarks.md).
CREATE INDEX call_events_occurred_at_idx ON call_events USING brin (occurred_at);
CREATE INDEX call_events_type_occurred_at_idx ON call_events (type, occurred_at);

COMMENT ON TABLE call_events IS 'append-only call event log; written only by callcore.store.EventWriter';
