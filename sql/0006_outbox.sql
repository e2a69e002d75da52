-- Transactional outbox of webhooks (callcore.webhooks): one row per (webhook, event) to deliver.
-- Rows are inserted by callcore.store.EventWriter IN THE SAME TRANSACTION as the events they carry (so an event is
-- queued for its webhooks if and only if it is stored), and sent by callcore.webhooks.delivery.Deliverer.
-- A row is delivered (delivered_at) only after a 2xx answer; after max_attempts it is given up (failed_at) and kept
-- with its last error. Both kinds are purged after a retention period; pending rows never are.
CREATE TABLE webhook_outbox (
    id              bigserial   PRIMARY KEY,               -- commit order of the events (first attempts follow it)
    webhook         text        NOT NULL,                  -- the webhook's name in the config
    event_id        uuid        NOT NULL,
    event_type      text        NOT NULL,                  -- public name: call.*, acd.*, agent.*
    payload         jsonb       NOT NULL,                  -- the body sent (see callcore.webhooks.payload)
    created_at      timestamptz NOT NULL DEFAULT now(),
    next_attempt_at timestamptz NOT NULL DEFAULT now(),    -- due time; while an attempt runs, the end of its lease
    attempts        integer     NOT NULL DEFAULT 0 CHECK (attempts >= 0),
    last_status     integer     NULL,                      -- HTTP status of the last attempt (NULL: no answer)
    last_error      text        NULL,
    delivered_at    timestamptz NULL,
    failed_at       timestamptz NULL,                      -- gave up after max_attempts
    -- A retried writer batch never queues an event twice for one webhook.
    CONSTRAINT webhook_outbox_webhook_event_key UNIQUE (webhook, event_id),
    CHECK (delivered_at IS NULL OR failed_at IS NULL)
);

-- The deliverer's question, per webhook: due rows, oldest first (FOR UPDATE SKIP LOCKED).
CREATE INDEX webhook_outbox_due_idx ON webhook_outbox (webhook, next_attempt_at, id)
    WHERE delivered_at IS NULL AND failed_at IS NULL;
-- Retention purges.
CREATE INDEX webhook_outbox_delivered_at_idx ON webhook_outbox (delivered_at) WHERE delivered_at IS NOT NULL;
CREATE INDEX webhook_outbox_failed_at_idx ON webhook_outbox (failed_at) WHERE failed_at IS NOT NULL;

COMMENT ON TABLE webhook_outbox IS 'webhook deliveries; rows written only by callcore.store.EventWriter with their events';
