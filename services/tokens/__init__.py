"""The access-token aggregate: issue, rename, rotate, revoke, delete; and the secret format."""
