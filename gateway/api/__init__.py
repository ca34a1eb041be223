"""HTTP routers: decode the request, call one service, encode the answer."""
