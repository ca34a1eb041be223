"""The semantic leg's embeddings (`registry.tool_embedder`) and the leg
(`registry.semantic_leg`): a paraphrase sharing no word with a tool's text
lands nearest it. Needs the extra ``switchboard[semantic]``."""

from __future__ import annotations

import asyncio

import pytest

from registry.semantic_leg import SemanticLeg
from registry.tool_embedder import BLOCKED_ROWS, Embedder
from tests.support.semantic import skip_unless_installed

skip_unless_installed()

TOOLS = {
    "iot__thermostat_setpoint": "iot thermostat setpoint. Set the target temperature of a zone",
    "hr__approve_time_off": "hr approve time off. Approve an employee's leave request",
    "github__merge_pull_request": "github merge pull request. Merge a pull request into its base",
}


@pytest.fixture(scope="module")
def embedder() -> Embedder:
    return Embedder.load()


def test_unit_vectors_and_a_paraphrase_nearest_its_tool(embedder: Embedder) -> None:
    vectors = embedder.embed([*TOOLS.values(), "make the meeting room warmer"])
    assert vectors.shape == (4, embedder.dimensions)
    assert abs(float((vectors * vectors).sum(axis=1).min()) - 1) < 1e-4
    similarity = vectors[:3] @ vectors[3]
    assert list(TOOLS)[int(similarity.argmax())] == "iot__thermostat_setpoint"


def test_a_text_embeds_alike_alone_and_in_a_padded_batch(embedder: Embedder) -> None:
    alone = embedder.embed(["merge"])
    batched = embedder.embed(["merge", "a much longer text that pads the short one in its batch"])
    assert float(alone[0] @ batched[0]) > 0.9999


def test_a_few_rows_by_blocks_embed_as_the_whole_product_does(embedder: Embedder) -> None:
    """A query alone runs its linear layers by blocks of the weights'
    columns; in a batch of over `BLOCKED_ROWS` tokens, by the whole matrix."""
    filler = "a tool's description long enough to need many tokens, " * 4
    batch = ["merge the pull request", *[f"{filler} {n}" for n in range(8)]]
    rows = [len(e.ids) for e in embedder._tokenizer.encode_batch(batch)]
    assert rows[0] <= BLOCKED_ROWS < sum(rows)
    alone = embedder.embed(batch[:1])
    among_many = embedder.embed(batch)
    assert float(abs(alone[0] - among_many[0]).max()) < 1e-5


def test_the_leg_ranks_only_the_callers_tools_and_forgets_a_removed_one() -> None:
    async def run() -> tuple[list[str] | None, list[str] | None]:
        leg = SemanticLeg()
        for name, text in TOOLS.items():
            leg.put(name, text)
        assert await leg.settled()
        among = {"hr__approve_time_off", "github__merge_pull_request"}
        mine = await leg.ranking("land my branch's changes", among, 5)
        leg.remove("github__merge_pull_request")
        after = await leg.ranking("land my branch's changes", among, 5)
        return mine, after

    mine, after = asyncio.run(run())
    assert mine == ["github__merge_pull_request", "hr__approve_time_off"]
    assert after == ["hr__approve_time_off"]


def test_a_caller_with_a_tool_still_to_embed_is_answered_lexically() -> None:
    """A server just registered: until its tools are embedded they have no
    semantic rank and would lose to every embedded tool the fusion gives
    one, so the leg answers None (lexical) for a caller who has any."""

    async def run() -> tuple[list[str] | None, list[str] | None]:
        leg = SemanticLeg()
        leg.put("hr__approve_time_off", TOOLS["hr__approve_time_off"])
        assert await leg.settled()
        leg.put("github__merge_pull_request", TOOLS["github__merge_pull_request"])
        among = {"hr__approve_time_off", "github__merge_pull_request"}
        pending = await leg.ranking("land my branch's changes", among, 5)
        assert await leg.settled()
        return pending, await leg.ranking("land my branch's changes", among, 5)

    pending, embedded = asyncio.run(run())
    assert pending is None
    assert embedded == ["github__merge_pull_request", "hr__approve_time_off"]
