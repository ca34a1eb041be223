"""The few places where the gateway must reach into an SDK's private names.

DESIGN.md: we build on the a2a, mcp and DBOS SDKs through their public API;
where a private name is unavoidable it is touched here, one module per SDK,
each with a test (tests/gateway/compat/) that fails when an upgrade moves it.
Nothing outside this package imports an SDK's private module or reads its
private attributes."""
