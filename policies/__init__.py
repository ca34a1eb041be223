"""Pure decisions about who may do what, and the token machinery behind them.

`policies.jws` is the only module in the project that imports python-jose.
"""
