-- Agent state changes (callcore.events.AgentEvent), written only by callcore.store.EventWriter, in the same
-- transactions as the call events. Append-only; event_id (UUIDv7) keeps retried batches idempotent.
CREATE TABLE agent_events (
    id          bigserial   NOT NULL,
    event_id    uuid        PRIMARY KEY,
    agent_id    text        NOT NULL,
    occurred_at timestamptz NOT NULL,
    state       text        NOT NULL,
    previous    text        NULL,
    reason      text        NULL,
    call_id     uuid        NULL,
    queue       text        NULL,
    written_at  timestamptz NOT NULL DEFAULT now()
);

-- One agent's timeline; a call's offers and connections; time ranges (reports, occupancy).
CREATE INDEX agent_events_agent_id_id_idx ON agent_events (agent_id, id);
CREATE INDEX agent_events_call_id_idx ON agent_events (call_id) WHERE call_id IS NOT NULL;
CREATE INDEX agent_events_occurred_at_idx ON agent_events USING brin (occurred_at);

COMMENT ON TABLE agent_events IS 'append-only agent state log; written only by callcore.store.EventWriter';
