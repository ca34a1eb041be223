"""Corpora for `bench.tool_search` beyond the project's own
(`bench.search_corpus`): tools as their servers publish them."""
