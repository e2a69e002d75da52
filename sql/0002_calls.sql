-- One row per call: a projection of call_events maintained by callcore.store.EventWriter in the same
-- transaction as the events it derives from (the one writer of call data).
CREATE TABLE calls (
    call_id           uuid        PRIMARY KEY,
    direction         text        NULL,
    did               text        NULL,
    caller_number     text        NULL,
    caller_name       text        NULL,
    channel_id        text        NULL,
    started_at        timestamptz NULL,
    answered_at       timestamptz NULL,
    ended_at          timestamptz NULL,
    disposition       text        NULL,
    hangup_cause      integer     NULL,
    hangup_cause_text text        NULL,
    config_version    text        NULL,
    variables         jsonb       NOT NULL DEFAULT '{}'::jsonb,
    updated_at        timestamptz NOT NULL DEFAULT now()
);

CREATE INDEX calls_started_at_idx ON calls (started_at);
CREATE INDEX calls_did_started_at_idx ON calls (did, started_at);
CREATE INDEX calls_ended_at_idx ON calls (ended_at);

COMMENT ON TABLE calls IS 'projection of call_events, maintained only by callcore.store.EventWriter';
