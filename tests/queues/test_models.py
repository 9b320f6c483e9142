"""Agents/queues YAML: the demo files load; mistakes are reported with file:line and a fix."""

from __future__ import annotations

from pathlib import Path

import pytest

from voicebot.queues.models import (
    AgentsConfig, QueuesConfig, check_queues_servable, load_agents, load_queues, parse_requirements,
)
from voicebot.yamlsrc import ConfigErrors

ROOT = Path(__file__).resolve().parents[2]


def test_demo_configs_load_and_every_queue_is_servable():
    agents = load_agents(ROOT / "sip_config/agents.yaml")
    queues = load_queues(ROOT / "sip_config/queues.yaml")
    ids = [a.id for a in agents.agents]
    assert len(ids) == len(set(ids)) >= 3
    assert all(a.sip_uri and "@127.0.0.1:" in a.sip_uri for a in agents.agents)
    assert queues.by_name()["cards"].overflow.queue == "general"
    check_queues_servable(queues, agents, ROOT / "sip_config/queues.yaml")


def test_every_queue_a_shipped_dialplan_uses_is_configured():
    """A dialplan's enqueue must land in a configured queue, or callers asking for a human get 'no agents'."""
    import re

    queues = load_queues(ROOT / "sip_config/queues.yaml").by_name()
    used = set()
    for plan in (ROOT / "dialplans").glob("*.yaml"):
        if plan.name.endswith(".tests.yaml"):
            continue
        used |= set(re.findall(r"^\s+queue:\s*([A-Za-z0-9_-]+)\s*$", plan.read_text(), re.M))
    assert used and used <= set(queues), f"not configured: {sorted(used - set(queues))}"


def _errors(tmp_path, loader, text) -> list[str]:
    path = tmp_path / "x.yaml"
    path.write_text(text)
    with pytest.raises(ConfigErrors) as caught:
        loader(path)
    return [str(e) for e in caught.value.errors]


def test_agent_errors_name_line_and_fix(tmp_path):
    errors = _errors(tmp_path, load_agents, """agents:
  - id: a1
    name: A
    languages: [en-US]
  - id: a1
    name: B
    sip_uri: "http://x"
    languages: [english]
    skills: {Cards: 3}
""")
    text = "\n".join(errors)
    assert "x.yaml:2:" in text and "cannot be reached" in text and "sip_uri" in text
    assert "x.yaml:7:" in text and "not a SIP URI" in text
    assert "x.yaml:8:" in text and "not a language tag" in text
    assert "x.yaml:9:" in text and "not a skill name" in text


def test_queue_errors(tmp_path):
    text = "\n".join(_errors(tmp_path, load_queues, """queues:
  - name: cards
    skills: ["cards>=x"]
    overflow: {queue: nowhere, after_s: 60}
    business_hours: {timezone: Mars/Base, weekly: {mon: ["18:00-09:00"], funday: []}}
"""))
    assert "x.yaml:3:" in text and "skill>=LEVEL" in text
    assert "unknown time zone 'Mars/Base'" in text
    assert "x.yaml:5:" in text and "'18:00-09:00' ends before it starts" in text
    second = "\n".join(_errors(tmp_path, load_queues, """queues:
  - name: cards
    overflow: {queue: nowhere, after_s: 60}
  - name: cards
"""))
    assert "x.yaml:4:" in second and "queue 'cards' is defined twice" in second
    third = "\n".join(_errors(tmp_path, load_queues, """queues:
  - name: cards
    overflow: {queue: nowhere, after_s: 60}
"""))
    assert "x.yaml:3:" in third and "overflow queue 'nowhere' is not defined" in third and "use one of: cards" in third


def test_unservable_queue_is_reported(tmp_path):
    agents = AgentsConfig.model_validate({"agents": [{"id": "a", "name": "A", "browser": True, "languages": ["en"]}]})
    queues = QueuesConfig.model_validate({"queues": [{"name": "loans", "skills": ["loans>=3"]}]})
    with pytest.raises(ConfigErrors, match="no agent has the skills"):
        check_queues_servable(queues, agents, tmp_path / "missing.yaml")


def test_business_hours_in_the_queue_time_zone():
    queues = QueuesConfig.model_validate({"queues": [{"name": "q", "business_hours": {
        "timezone": "Asia/Shanghai", "weekly": {"mon": ["09:00-17:00"]}, "closed_dates": ["2024-01-08"]}}]})
    queue = queues.queues[0]
    monday_0930_shanghai = 1704677400 + 7 * 86400 * 0  # 2024-01-08 09:30 +08:00 is a holiday
    assert not queue.is_open(monday_0930_shanghai)
    next_monday = monday_0930_shanghai + 7 * 86400
    assert queue.is_open(next_monday)
    assert not queue.is_open(next_monday - 3600)  # 08:30
    assert not queue.is_open(next_monday + 8 * 3600)  # 17:30


def test_requirements_parse_and_match():
    wanted = parse_requirements(["cards>=3", "lang:zh-CN", "loans"])
    assert wanted.skills == {"cards": 3, "loans": 1} and wanted.languages == ("zh-CN",)
    agents = AgentsConfig.model_validate({"agents": [
        {"id": "a", "name": "A", "browser": True, "skills": {"cards": 3, "loans": 1}, "languages": ["zh"]},
        {"id": "b", "name": "B", "browser": True, "skills": {"cards": 2, "loans": 9}, "languages": ["zh-CN"]},
    ]}).agents
    assert [wanted.met_by(a) for a in agents] == [True, False]
    with pytest.raises(ValueError, match="not a skill requirement"):
        parse_requirements(["cards >= 3"])
    with pytest.raises(ValueError):
        parse_requirements(["lang:klingon!"])


def test_agent_phone_accounts_need_a_password_source_and_unique_users(tmp_path):
    text = "\n".join(_errors(tmp_path, load_agents, """agents:
  - id: a1
    name: A
    languages: [en-US]
    sip_user: alice
  - id: a2
    name: B
    languages: [en-US]
    sip_user: bob
    password: hunter2
  - id: a3
    name: C
    languages: [en-US]
    sip_password_env: C_PW
    sip_uri: sip:c@127.0.0.1:5090
"""))
    assert "x.yaml:5:" in text and "has a sip_user but no password" in text and "sip_password_env" in text
    assert "x.yaml:10:" in text and "'password' is not allowed" in text and "sip_password_file" in text
    assert "x.yaml:14:" in text and "SIP password but no sip_user" in text
    text = "\n".join(_errors(tmp_path, load_agents, """agents:
  - {id: a1, name: A, languages: [en-US], sip_user: alice, sip_password_env: A_PW}
  - {id: a2, name: B, languages: [en-US], sip_user: alice, sip_password_file: /run/secrets/b}
"""))
    assert "x.yaml:3:" in text and "sip_user 'alice' is used twice" in text
    (tmp_path / "ok.yaml").write_text("agents:\n  - {id: a1, name: A, languages: [en-US], sip_user: alice, "
                                      "sip_password_file: /run/secrets/a}\n")
    agent = load_agents(tmp_path / "ok.yaml").agents[0]
    assert (agent.sip_user, agent.sip_uri, agent.sip_password_file) == ("alice", None, "/run/secrets/a")


def test_agent_media_encryption_is_validated_with_its_line(tmp_path):
    text = "\n".join(_errors(tmp_path, load_agents, """agents:
  - {id: a1, name: A, languages: [en-US], sip_uri: "sip:a@127.0.0.1", media_encryption: srtp}
"""))
    assert "x.yaml:2:" in text and "media_encryption" in text and "'required'" in text
    (tmp_path / "ok.yaml").write_text("agents:\n  - {id: a1, name: A, languages: [en-US], sip_uri: \"sip:a@h\", "
                                      "media_encryption: required}\n")
    assert load_agents(tmp_path / "ok.yaml").agents[0].media_encryption == "required"
