"""The role catalogue (``GET /v3/roles``) and the rights tokenledger's own Identity roles confer."""
