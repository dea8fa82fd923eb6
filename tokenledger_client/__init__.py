"""The tokenledger client: ``tokenledger accounts|tokens|roles|teams|introspect|audit events ...``.

An adapter of the HTTP API only (so it works against any deployment, goes through authorisation and
lands in the audit trail): it imports nothing of the server (``lint-imports`` holds that). Modules:
``errors`` (exit codes), ``target`` (where the API is and the token: environment or the login file),
``http`` (a blocking facade over aiohttp's client), ``output`` (tables, JSON, YAML), ``resolve``
(names or ids), ``durations`` (``30d``, ``1y``), and the command groups (``accounts``, ``tokens``,
``roles``, ``teams``, ``session`` for login and introspect, ``audit``), which ``services.cli`` mounts
into the one ``tokenledger`` CLI.
"""
