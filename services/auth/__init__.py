"""Authentication of access tokens: the verifier (secret -> principal, cached but never staler than the
log), the principal and rejection types, and usage recording (the usage log of every verification,
``token.used``, sliding expiry).

Wiring (composition root): construct ``TokenVerifier(pool, notifications, pepper)`` and
``UsageRecorder(dispatcher, expiry=verifier, log=UsageLog(pool, pepper))``; ``await verifier.start()``
then ``await usage.start()``; on shutdown ``await usage.stop()`` (flushes) then
``await verifier.stop()``. Writers call ``verifier.note_appended(appends, result)`` after each
successful append.
"""
