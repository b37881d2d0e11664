"""The prompts domain on both databases: versions, labels, deletion, export/import, limits.

Every operation goes through :mod:`server.prompts` (and so the repository), with real
transactions; the concurrency test saves 20 versions of one prompt at once, each in its own
session and connection.
"""

from __future__ import annotations

import asyncio
from collections.abc import AsyncIterator
from dataclasses import dataclass, replace
from typing import Any

import pytest
from sqlalchemy import select
from sqlalchemy.ext.asyncio import AsyncSession, async_sessionmaker

from server.prompts import exchange, labels, service
from server.prompts.context import Actor, PromptLimits
from server.prompts.errors import InvalidPrompt, NotPromptOwner, PromptConflict, PromptNotFound
from server.prompts.publishing import LiveText, initial_text_for_version, publish
from server.prompts.service import VersionInput
from storage.engine import create_engine, create_session_factory
from storage.models import CollaborationSession, PromptVersion, Run
from storage.repositories.collaboration import create_session
from tests.support.accounts import create_accounts

LIMITS = PromptLimits()


@dataclass
class World:
    sessions: async_sessionmaker[AsyncSession]
    ana: Actor
    bob: Actor  # same tenant as ana
    eve: Actor  # another tenant


@pytest.fixture
async def world(migrated_database_url: str) -> AsyncIterator[World]:
    ana, bob = await create_accounts(migrated_database_url, ["Ana", "Bob"])
    (eve,) = await create_accounts(migrated_database_url, ["Eve"])
    engine = create_engine(migrated_database_url)
    try:
        yield World(
            create_session_factory(engine),
            Actor(ana.tenant_id, ana.user_id),
            Actor(bob.tenant_id, bob.user_id),
            Actor(eve.tenant_id, eve.user_id),
        )
    finally:
        await engine.dispose()


async def _new_prompt(world: World, first: VersionInput | None = None) -> str:
    async with world.sessions() as db:
        prompt, _ = await service.create_prompt(
            db, world.ana, name="Greeter", description="says hi", first=first, limits=LIMITS
        )
        await db.commit()
        return prompt.id


async def _save(world: World, prompt_id: str, text: str, actor: Actor | None = None) -> int:
    async with world.sessions() as db:
        saved = await service.save_version(
            db, actor or world.ana, prompt_id, VersionInput(content=text), LIMITS
        )
        await db.commit()
        return saved.version.version


async def test_versions_are_numbered_and_latest_moves_on_every_save(world: World) -> None:
    prompt_id = await _new_prompt(world, VersionInput(content="v1", message="first"))
    assert await _save(world, prompt_id, "v2") == 2
    assert await _save(world, prompt_id, "v3", world.bob) == 3
    async with world.sessions() as db:
        current, events, total = await labels.label_history(
            db, world.ana, prompt_id, limit=10, offset=0
        )
        versions, count = await service.list_versions(db, world.ana, prompt_id, limit=2, offset=0)
        first = await service.get_version(db, world.ana, prompt_id, 1)
    assert current == {"latest": 3}
    assert total == 3
    assert [(e.label, e.from_version, e.to_version) for e in events] == [
        ("latest", 2, 3),
        ("latest", 1, 2),
        ("latest", None, 1),
    ]
    assert events[0].user_id == world.bob.user_id
    assert [v.version for v in versions] == [3, 2] and count == 3
    assert first.message == "first" and first.created_by == world.ana.user_id


async def test_twenty_concurrent_saves_get_twenty_consecutive_numbers(world: World) -> None:
    prompt_id = await _new_prompt(world)
    numbers = await asyncio.gather(*(_save(world, prompt_id, f"text {i}") for i in range(20)))
    assert sorted(numbers) == list(range(1, 21))
    async with world.sessions() as db:
        stored = await db.scalars(
            select(PromptVersion.version).where(PromptVersion.prompt_id == prompt_id)
        )
        _, events, total = await labels.label_history(db, world.ana, prompt_id, limit=50, offset=0)
    assert sorted(stored) == list(range(1, 21))
    assert total == 20 and {e.to_version for e in events} == set(range(1, 21))


async def test_another_tenant_sees_nothing(world: World) -> None:
    prompt_id = await _new_prompt(world, VersionInput(content="x"))
    async with world.sessions() as db:
        listed, total = await service.list_prompts(db, world.eve, q=None, limit=10, offset=0)
        assert listed == [] and total == 0
        for call in (
            service.get_prompt(db, world.eve, prompt_id),
            service.get_version(db, world.eve, prompt_id, 1),
            service.save_version(db, world.eve, prompt_id, VersionInput(content="y"), LIMITS),
            labels.set_label(db, world.eve, prompt_id, "staging", 1, LIMITS),
            exchange.export_prompt(db, world.eve, prompt_id),
            initial_text_for_version(db, world.eve, prompt_id, None),
        ):
            with pytest.raises(PromptNotFound):
                await call


async def test_search_matches_name_or_description_case_insensitively(world: World) -> None:
    async with world.sessions() as db:
        for name, description in [("Alpha 100%", None), ("beta", "the ALPHA one"), ("gamma", "")]:
            await service.create_prompt(
                db, world.ana, name=name, description=description, first=None, limits=LIMITS
            )
        await db.commit()
        found, total = await service.list_prompts(db, world.ana, q="alpha", limit=10, offset=0)
        assert {p.name for p in found} == {"Alpha 100%", "beta"} and total == 2
        literal, _ = await service.list_prompts(db, world.ana, q="0%", limit=10, offset=0)
        assert [p.name for p in literal] == ["Alpha 100%"]
        wildcard, _ = await service.list_prompts(db, world.ana, q="_", limit=10, offset=0)
        assert wildcard == []
        page, total = await service.list_prompts(db, world.ana, q=None, limit=2, offset=2)
        assert len(page) == 1 and total == 3


async def test_labels_move_with_history_and_production_is_the_active_version(world: World) -> None:
    prompt_id = await _new_prompt(world, VersionInput(content="one"))
    await _save(world, prompt_id, "two")
    async with world.sessions() as db:
        moved = await labels.set_label(db, world.ana, prompt_id, "production", 1, LIMITS)
        assert (moved.from_version, moved.to_version) == (None, 1)
        await labels.set_label(db, world.bob, prompt_id, "staging", 2, LIMITS)
        again = await labels.set_label(db, world.ana, prompt_id, "staging", 2, LIMITS)
        assert (again.from_version, again.to_version) == (2, 2)  # no move, no event
        await labels.set_label(db, world.ana, prompt_id, "production", 2, LIMITS)
        await db.commit()

        detail = await service.prompt_detail(db, world.ana, prompt_id)
        assert detail.labels == {"latest": 2, "production": 2, "staging": 2}
        assert detail.active_version is not None and detail.active_version.version == 2
        assert detail.prompt.active_version_id == detail.active_version.id
        prompt = await service.get_prompt(db, world.ana, prompt_id)
        assert (await labels.resolve(db, prompt, None)).version == 2
        assert (await labels.resolve(db, prompt, "staging")).version == 2

        removed = await labels.delete_label(db, world.ana, prompt_id, "production")
        assert (removed.from_version, removed.to_version) == (2, None)
        await labels.delete_label(db, world.ana, prompt_id, "staging")
        await db.commit()
        assert (await labels.resolve(db, prompt, None)).version == 2  # latest
        with pytest.raises(PromptNotFound):
            await labels.resolve(db, prompt, "staging")
        with pytest.raises(PromptNotFound):
            await labels.delete_label(db, world.ana, prompt_id, "staging")
        with pytest.raises(PromptNotFound) as unknown_version:
            await labels.set_label(db, world.ana, prompt_id, "staging", 9, LIMITS)
        assert unknown_version.value.field == "version"
        with pytest.raises(InvalidPrompt):
            await labels.set_label(db, world.ana, prompt_id, "latest", 1, LIMITS)
        _, events, _ = await labels.label_history(db, world.ana, prompt_id, limit=50, offset=0)
    moves = [(e.label, e.from_version, e.to_version) for e in reversed(events)]
    assert moves == [
        ("latest", None, 1),
        ("latest", 1, 2),
        ("production", None, 1),
        ("staging", None, 2),
        ("production", 1, 2),
        ("production", 2, None),
        ("staging", 2, None),
    ]


async def test_the_label_limit_is_enforced_at_its_edge(world: World) -> None:
    prompt_id = await _new_prompt(world, VersionInput(content="one"))
    limits = replace(LIMITS, max_labels=2)
    async with world.sessions() as db:
        await labels.set_label(db, world.ana, prompt_id, "a", 1, limits)
        await labels.set_label(db, world.ana, prompt_id, "b", 1, limits)
        await labels.set_label(db, world.ana, prompt_id, "production", 1, limits)  # not counted
        await labels.set_label(db, world.ana, prompt_id, "a", 1, limits)  # existing: a move
        with pytest.raises(PromptConflict):
            await labels.set_label(db, world.ana, prompt_id, "c", 1, limits)


async def test_version_limits_are_enforced_at_their_edge(world: World) -> None:
    prompt_id = await _new_prompt(world)
    limits = replace(LIMITS, max_text_chars=10, max_variables=1)
    async with world.sessions() as db:
        ok = VersionInput(content="12345", variables=[{"name": "a", "value": "12345"}])
        assert (await service.save_version(db, world.ana, prompt_id, ok, limits)).version.version
        with pytest.raises(InvalidPrompt) as too_long:
            await service.save_version(
                db, world.ana, prompt_id, VersionInput(content="x" * 11), limits
            )
        assert too_long.value.field == "content"
        two = VersionInput(content="x", variables=[{"name": "a"}, {"name": "b"}])
        with pytest.raises(InvalidPrompt) as too_many:
            await service.save_version(db, world.ana, prompt_id, two, limits)
        assert too_many.value.field == "variables"
        with pytest.raises(InvalidPrompt):
            await service.save_version(db, world.ana, prompt_id, VersionInput(), limits)


async def test_deleting_a_prompt_is_for_its_owner_and_keeps_runs(world: World) -> None:
    prompt_id = await _new_prompt(world, VersionInput(content="one"))
    async with world.sessions() as db:
        version = await service.get_version(db, world.ana, prompt_id, 1)
        await labels.set_label(db, world.ana, prompt_id, "staging", 1, LIMITS)
        run = Run(prompt_version_id=version.id, sections={}, model="m", temperature=70, output="o")
        db.add(run)
        await db.commit()
        with pytest.raises(NotPromptOwner):
            await service.delete_prompt(db, world.bob, prompt_id)
        await service.delete_prompt(db, world.ana, prompt_id)
        await db.commit()
        with pytest.raises(PromptNotFound):
            await service.get_prompt(db, world.ana, prompt_id)
        await db.refresh(run)
        assert run.prompt_version_id is None
        assert await db.scalar(select(PromptVersion).where(PromptVersion.id == version.id)) is None


async def test_render_and_diff_by_number_and_label(world: World) -> None:
    first = VersionInput(
        sections={"system": "Be {{tone}}", "user": "{{q}}"},
        variables=[{"name": "tone", "value": "brief"}, {"name": "q"}],
        model_config={"model": "m1"},
    )
    prompt_id = await _new_prompt(world, first)
    async with world.sessions() as db:
        await service.save_version(
            db,
            world.ana,
            prompt_id,
            replace(first, sections={"system": "Be {{tone}}!", "user": "{{q}}"}),
            LIMITS,
        )
        await labels.set_label(db, world.ana, prompt_id, "production", 1, LIMITS)
        version, rendered = await service.render_version(
            db, world.ana, prompt_id, number=None, label=None, values={"q": "{{tone}}?"}
        )
        assert version.version == 1
        assert [m.content for m in rendered.messages] == ["Be brief", "{{tone}}?"]
        version, _ = await service.render_version(
            db, world.ana, prompt_id, number=None, label="latest", values={"q": "x"}
        )
        assert version.version == 2
        with pytest.raises(InvalidPrompt):
            await service.pick_version(db, world.ana, prompt_id, number=1, label="latest")
        result = await service.diff(db, world.ana, prompt_id, from_version=1, to_version=2)
        assert [t.name for t in result.texts if t.changed] == ["system"]
        assert result.model_config == [] and result.variables == []


def _without_ids_and_times(document: dict[str, Any]) -> dict[str, Any]:
    stripped = dict(document, exported_at=None)
    stripped["versions"] = [dict(v, created_at=None) for v in document["versions"]]
    return stripped


async def test_export_import_export_round_trips(world: World) -> None:
    prompt_id = await _new_prompt(
        world,
        VersionInput(content="c", variables=[{"name": "x", "value": "1", "id": "vx"}], message="m"),
    )
    await _save(world, prompt_id, "two")
    async with world.sessions() as db:
        await service.save_version(
            db,
            world.ana,
            prompt_id,
            VersionInput(sections={"user": "u"}, model_config={"model": "m", "temperature": 0.5}),
            LIMITS,
        )
        await labels.set_label(db, world.ana, prompt_id, "production", 2, LIMITS)
        await labels.set_label(db, world.ana, prompt_id, "canary", 3, LIMITS)
        await db.commit()
        exported = await exchange.export_prompt(db, world.ana, prompt_id)
        assert exported["labels"] == {"canary": 3, "latest": 3, "production": 2}
        imported = await exchange.import_prompt(db, world.bob, exported, LIMITS)
        await db.commit()
        assert imported.id != prompt_id and imported.owner_id == world.bob.user_id
        again = await exchange.export_prompt(db, world.bob, imported.id)
    assert _without_ids_and_times(again) == _without_ids_and_times(exported)


@pytest.mark.parametrize(
    ("change", "field"),
    [
        ({"format": "other"}, "format"),
        ({"format_version": 2}, "format_version"),
        ({"prompt": {"name": " "}}, "prompt.name"),
        ({"versions": [{"version": 1, "content": "a"}, {"version": 1, "content": "b"}]}, "versions.1.version"),
        ({"versions": [{"version": 0, "content": "a"}]}, "versions.0.version"),
        ({"versions": [{"version": 2**31, "content": "a"}]}, "versions.0.version"),
        ({"versions": [{"version": 1}]}, "versions.0.content"),
        ({"versions": [{"version": 1, "content": "a", "variables": [{"name": "9"}]}]}, "versions.0.variables.0.name"),
        ({"labels": {"staging": 5}}, "labels.staging"),
        ({"labels": {"Bad": 1}}, "labels.Bad"),
        ({"labels": {"latest": 1}, "versions": [{"version": 1, "content": "a"}, {"version": 2, "content": "b"}]}, "labels.latest"),
    ],
)  # fmt: skip
async def test_import_refuses_bad_documents_naming_the_field(
    world: World, change: dict[str, Any], field: str
) -> None:
    document: dict[str, Any] = {
        "format": exchange.FORMAT,
        "format_version": exchange.FORMAT_VERSION,
        "prompt": {"name": "n", "description": None},
        "versions": [{"version": 1, "content": "a"}],
        "labels": {},
        **change,
    }
    async with world.sessions() as db:
        with pytest.raises(InvalidPrompt) as caught:
            await exchange.import_prompt(db, world.ana, document, LIMITS)
    assert caught.value.field == field


async def test_import_version_limit_is_enforced_at_its_edge(world: World) -> None:
    limits = replace(LIMITS, max_import_versions=2)
    versions = [{"version": n, "content": str(n)} for n in (1, 5)]
    document = {
        "format": exchange.FORMAT,
        "format_version": exchange.FORMAT_VERSION,
        "prompt": {"name": "n"},
        "versions": versions,
        "labels": {"latest": 5},
    }
    async with world.sessions() as db:
        prompt = await exchange.import_prompt(db, world.ana, document, limits)
        assert await labels.current_labels(db, prompt) == {"latest": 5}
        await db.commit()
        assert await _save(world, prompt.id, "next") == 6
        with pytest.raises(InvalidPrompt) as caught:
            document["versions"] = [*versions, {"version": 7, "content": "7"}]
            await exchange.import_prompt(db, world.ana, document, limits)
    assert caught.value.field == "versions"


async def test_sessions_start_from_a_version_and_publish_back(world: World) -> None:
    prompt_id = await _new_prompt(
        world,
        VersionInput(
            sections={"system": "S {{x}}", "user": "U"},
            variables=[{"name": "x", "value": "1"}],
            model_config={"model": "m"},
        ),
    )
    async with world.sessions() as db:
        text = await initial_text_for_version(db, world.ana, prompt_id, 1)
        assert text == "--- system ---\nS {{x}}\n--- user ---\nU"
        assert await initial_text_for_version(db, world.ana, prompt_id, None) == text
        with pytest.raises(PromptNotFound) as caught:
            await initial_text_for_version(db, world.ana, prompt_id, 4)
        assert caught.value.field == "version"
        session = await create_session(
            db,
            tenant_id=world.ana.tenant_id,
            owner_id=world.ana.user_id,
            name="live",
            share_token="tok-publish",
        )
        with pytest.raises(InvalidPrompt) as no_prompt:
            await publish(
                db, world.ana, session, LiveText(text, 7), prompt_id=None, message=None,
                limits=LIMITS,
            )  # fmt: skip
        assert no_prompt.value.field == "prompt_id"
        saved = await publish(
            db,
            world.ana,
            session,
            LiveText(text.replace("U", "U2"), 7),
            prompt_id=prompt_id,
            message="from the session",
            limits=LIMITS,
        )
        await db.commit()
        version = saved.version
        assert version.version == 2 and version.message == "from the session"
        assert version.sections == {"system": "S {{x}}", "user": "U2"}
        assert version.variables is not None
        assert version.variables == [{"id": version.variables[0]["id"], "name": "x", "value": "1"}]
        assert version.model_config == {"model": "m"}
        assert (version.source_session_id, version.source_edit_id) == (session.id, 7)
        stored = await db.get(CollaborationSession, session.id)
        assert stored is not None and stored.prompt_id == prompt_id
        # The session remembers its prompt: no prompt_id needed from now on.
        again = await publish(
            db, world.ana, session, LiveText("plain", None), prompt_id=None, message=None,
            limits=LIMITS,
        )  # fmt: skip
        assert again.version.version == 3 and again.version.content == "plain"
        await db.commit()
        await service.delete_prompt(db, world.ana, prompt_id)
        await db.commit()
        await db.refresh(stored)
        assert stored.prompt_id is None


async def test_a_prompt_at_the_highest_version_number_refuses_saves(world: World) -> None:
    document = {
        "format": exchange.FORMAT,
        "format_version": exchange.FORMAT_VERSION,
        "prompt": {"name": "n"},
        "versions": [{"version": 2**31 - 1, "content": "last"}],
    }
    async with world.sessions() as db:
        prompt = await exchange.import_prompt(db, world.ana, document, LIMITS)
        await db.commit()
        with pytest.raises(PromptConflict):
            await service.save_version(db, world.ana, prompt.id, VersionInput(content="x"), LIMITS)
        with pytest.raises(PromptNotFound):
            await service.get_version(db, world.ana, prompt.id, 2**40)
