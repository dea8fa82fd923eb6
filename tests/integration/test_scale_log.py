"""``bench.scale_log.fill`` writes the log the service would have written: the hash chain verifies,
every uniqueness claim is one the handlers would hold for the streams' current state (and every
live account holds its name), and each token's latest secret hash is the hash of the secret the
bench derives for it."""

from bench.scale_log import fill, token_secret
from events.tokens import TokenIssued, TokenRotated
from services import database
from services.accounts import model as accounts
from services.audit.verify import verify
from services.eventstore import PostgresEventStore
from services.teams import model as teams
from services.tokens import model as tokens
from services.tokens.secrets import secret_hash

PEPPER = b"test-pepper-0123456789abcdef0123456789"


async def test_a_filled_log_holds_the_claims_hashes_and_secrets_of_the_service(empty_database: str) -> None:
    pool = await database.create_pool(empty_database, min_size=1, max_size=4)
    try:
        filled = await fill(pool, accounts=60, tokens=400, events=4000, pepper=PEPPER, seed=3)
        store = PostgresEventStore(pool)
        assert filled.events == 4000
        assert (await verify(pool)).intact

        claims = await pool.fetch("SELECT claim, stream_id FROM uniqueness_claims")
        for claim, stream in ((r["claim"], r["stream_id"]) for r in claims):
            kind, _, rest = claim.partition(":")
            events = await store.read_stream(stream)
            if kind == "account-name":
                account = accounts.fold(stream.removeprefix("account-"), events)
                assert account.live and account.name == rest, claim
            elif kind == "token-name":
                account_id, _, name = rest.partition(":")
                token = tokens.fold(stream.removeprefix("token-"), events)
                owner = accounts.fold(account_id, await store.read_stream(accounts.stream_of(account_id)))
                assert not token.deleted and token.name == name and owner.live, claim
            else:
                assert kind == "team-member", claim
                account_id, _, team_id = rest.partition(":")
                assert account_id in teams.fold(team_id, events).members, claim
        held = {r["claim"] for r in claims}
        for account_id in filled.generator.accounts.items:
            account = accounts.fold(account_id, await store.read_stream(accounts.stream_of(account_id)))
            assert accounts.name_claim(account.name) in held

        generator = filled.generator
        for token_id in generator.tokens.items[:50]:
            secrets = [
                e.event.secret_hash
                for e in await store.read_stream(tokens.stream_of(token_id))
                if isinstance(e.event, TokenIssued | TokenRotated)
            ]
            version = generator.token_secret_version[token_id]
            assert secrets[-1] == secret_hash(token_secret(PEPPER, token_id, version), PEPPER)
    finally:
        await pool.close()
