"""The console's pages, one module per part of the model: sign-in, accounts, tokens, teams, roles,
audit. Each module's ``add_routes`` registers its paths on the console's application."""
