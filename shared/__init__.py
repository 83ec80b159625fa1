"""Code every service of the wallet-and-shop stack imports: settings, money, tokens, errors, defaults."""
