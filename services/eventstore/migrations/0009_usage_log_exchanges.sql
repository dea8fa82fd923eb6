-- Refused token exchanges (POST /v3/oauth/token) in the usage log: no tokenledger token is
-- presented there, so such a row names no token (presented_hash is the keyed hash of the id-token),
-- and says what the exchange knew when it was refused: the federated credential it was matched to
-- and the issuer the id-token claimed (client text, made recordable and bounded by the writer).
-- Both are null on every other row.

ALTER TABLE usage_log
    ADD COLUMN federated_credential_id uuid,
    ADD COLUMN issuer text;
