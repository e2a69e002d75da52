"""Webhooks: events POSTed to HTTP receivers, signed, from a transactional outbox in PostgreSQL.

* :mod:`~callcore.webhooks.config`: the ``webhooks:`` section of the YAML;
* :mod:`~callcore.webhooks.payload`: events' public names and JSON bodies (shared with the ``/events`` WebSocket);
* :mod:`~callcore.webhooks.outbox`: the :class:`~callcore.store.writer.EventWriter` hook that inserts outbox rows
  in the same transaction as the events;
* :mod:`~callcore.webhooks.delivery`: the :class:`~callcore.webhooks.delivery.Deliverer` that sends them;
* :mod:`~callcore.webhooks.signing`: the HMAC-SHA256 signature.

See docs/webhooks.md. This package's ``__init__`` imports nothing, so the config can load it cheaply.
"""
