"""The web console: server-rendered pages (Jinja2, enhanced with htmx) for the people who manage
service accounts, served by the same process as the API at ``/console``.

It is a door like the API, an adapter beside it: it sends the same commands through the same
dispatcher, as the signed-in token (``context.act``), and reads the same read models (reusing the
API's queries, representations and request Structs, so a form value is bounded and refused exactly
as the same JSON field would be). ``sessions`` keeps server-side sessions in PostgreSQL, ``guard``
checks the session's token on every request, CSRF on every form and sets the headers of every
response, ``views`` holds the pages, ``queries`` the reads the API has no listing for, ``chart`` the
usage chart's geometry, ``app`` mounts it all.
"""
