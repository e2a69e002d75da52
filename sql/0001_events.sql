-- Append-only log of call events (see callcore.events.CallEvent). Written only by callcore.store.EventWriter.
-- id order is emit order; event_id makes writes idempotent (a retried batch never duplicates a row).
CREATE TABLE call_events (
    id          bigserial   PRIMARY KEY,
    event_id    uuid        NOT NULL UNIQUE,
    call_id     uuid        NOT NULL,
    channel_id  text        NULL,
    occurred_at timestamptz NOT NULL,
    type        text        NOT NULL,
    payload     jsonb       NOT NULL DEFAULT '{}'::jsonb,
    written_at  timestamptz NOT NULL DEFAULT now()
);

-- One call's events in order; time-range scans; one event type over a time range.
CREATE INDEX call_events_call_id_id_idx ON call_events (call_id, id);
CREATE INDEX call_events_occurred_at_idx ON call_events (occurred_at);
CREATE INDEX call_events_type_occurred_at_idx ON call_events (type, occurred_at);

COMMENT ON TABLE call_events IS 'append-only call event log; written only by callcore.store.EventWriter';
