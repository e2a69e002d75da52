"""Production operations: status of the running process, secrets from files, data retention and GDPR erasure.

Modules (none imports the others at package import time):

* :mod:`callcore.ops.secrets`: ``CALLCORE_*_FILE`` secrets, refused when group/world-readable;
* :mod:`callcore.ops.config`: the ``retention:`` section of the YAML;
* :mod:`callcore.ops.status`: what ``callcore status`` shows, built from the running app, served by ``GET /status``
  and written to ``state_dir/status.json``;
* :mod:`callcore.ops.sdnotify`: systemd's notify protocol (READY, RELOADING, STOPPING, STATUS, WATCHDOG) without
  a dependency;
* :mod:`callcore.ops.retention`: the retention job and ``callcore gdpr forget``;
* :mod:`callcore.ops.cli`: the ``status``, ``retention`` and ``gdpr`` commands.
"""
