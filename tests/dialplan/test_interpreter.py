"""The pure interpreter, driven with text events: every node feature and counter rule."""

from __future__ import annotations

import textwrap

import pytest

from voicebot.dialplan import actions as act
from voicebot.dialplan import events as ev
from voicebot.dialplan.interpreter import MASK, Interpreter
from voicebot.dialplan.loader import check_dialplan
from voicebot.dialplan.schema import Dialplan
from voicebot.dialplan.state import State
from voicebot.yamlsrc import ConfigErrors, load_yaml_text, validate


def make(text: str) -> Dialplan:
    data, lines = load_yaml_text(textwrap.dedent(text), "t.yaml")
    plan = validate(Dialplan, data, lines, "t.yaml")
    errors, _ = check_dialplan(plan, data, lines, "t.yaml")
    if errors:
        raise ConfigErrors(errors)
    return plan


def says(actions: list[act.Action]) -> list[str]:
    return [a.text for a in actions if isinstance(a, act.Say)]


def kinds(actions: list[act.Action]) -> list[str]:
    return [type(a).__name__ for a in actions if not isinstance(a, act.LogEvent)]


def logs(actions: list[act.Action], kind: str) -> list[dict]:
    return [a.data for a in actions if isinstance(a, act.LogEvent) and a.kind == kind]


class Call:
    """Drive one call through an interpreter, keeping the latest state and actions."""

    def __init__(self, plan: Dialplan, **context: object) -> None:
        self.interpreter = Interpreter(plan)
        self.state, self.actions = self.interpreter.start(ev.CallContext(**context))  # type: ignore[arg-type]

    def send(self, event: ev.Event) -> list[act.Action]:
        self.state, self.actions = self.interpreter.handle(self.state, event)
        return self.actions

    def say(self, text: str, intent: str | None = None, **kw: object) -> list[act.Action]:
        return self.send(ev.Heard(text, intent, **kw))  # type: ignore[arg-type]

    def keys(self, digits: str) -> list[act.Action]:
        return self.send(ev.Keys(digits))


MENU = """
dialplan: menu
languages: [en-US, zh-CN]
start: menu
global:
  intents: {agent: human, repeat: {repeat: true}, goodbye: bye, chinese: {lang: zh-CN}}
  dtmf: {"0": human, "*": {repeat: true}}
nodes:
  menu:
    say:
      - {en: "Main menu. Say sales or support.", zh: "主菜单。"}
      - {en: "Say sales, or support.", zh: "请说销售或支持。"}
    listen:
      intents: {sales: sales, support: {goto: support, set: {topic: "{{ 'help' }}"}}, agent: local_agent}
      dtmf: {"1": sales, "2": support}
      min_confidence: 0.5
      noinput: {max: 3, say: ["I heard nothing.", "Still nothing."], then: human}
      nomatch: {max: 2, say: "No match."}
  sales: {say: "Sales here.", hangup: sales_done}
  support: {say: "Support about {{ vars.topic }}.", hangup: true}
  local_agent: {say: "Local agent route.", hangup: true}
  human: {say: "Connecting a human.", hangup: human}
  bye: {say: "Goodbye.", hangup: true}
"""


# ------------------------------------------------------------------------------------------ basics


def test_start_plays_first_prompt_and_listens_for_speech_and_keys() -> None:
    call = Call(make(MENU), caller="+1555", lang="en-US")
    assert says(call.actions) == ["Main menu. Say sales or support."]
    listen = [a for a in call.actions if isinstance(a, act.Listen)]
    assert len(listen) == 1 and listen[0].mode == "both" and listen[0].max_digits == 1
    assert (call.state.node, call.state.step, call.state.lang) == ("menu", "listen", "en-US")
    assert call.state.caller["number"] == "+1555"


def test_handle_does_not_mutate_the_given_state() -> None:
    call = Call(make(MENU))
    before = call.state.to_json()
    new_state, _ = call.interpreter.handle(call.state, ev.Heard("sales", "sales"))
    assert call.state.to_json() == before
    assert new_state.node == "sales" and new_state.ended


def test_intent_and_dtmf_routes_with_transition_set() -> None:
    call = Call(make(MENU))
    assert says(call.say("support please", "support")) == ["Support about help."]
    assert call.state.vars["topic"] == "help"
    assert call.state.end_reason == "completed"
    call = Call(make(MENU))
    actions = call.keys("1")
    assert says(actions) == ["Sales here."] and kinds(actions)[-1] == "Hangup"
    assert call.state.end_reason == "sales_done"


def test_low_confidence_intent_counts_as_nomatch() -> None:
    call = Call(make(MENU))
    actions = call.say("sails?", "sales", confidence=0.3)
    assert says(actions)[0] == "No match."
    assert call.state.node == "menu" and call.state.counters["menu.nomatch"] == 1


# ------------------------------------------------------------------------------- counters, prompts


def test_noinput_counts_with_prompt_list_then_goes_to_then() -> None:
    call = Call(make(MENU))
    assert says(call.send(ev.NoInput())) == ["I heard nothing.", "Say sales, or support."]
    assert says(call.send(ev.NoInput())) == ["Still nothing.", "Say sales, or support."]  # last entry repeats
    assert call.state.counters["menu.noinput"] == 2
    actions = call.send(ev.NoInput())
    assert says(actions) == ["Connecting a human."] and call.state.end_reason == "human"


def test_noinput_and_nomatch_are_counted_separately() -> None:
    call = Call(make(MENU))
    call.send(ev.NoInput())
    call.send(ev.NoInput())
    call.send(ev.NoMatch())
    assert call.state.counters == {**call.state.counters, "menu.noinput": 2, "menu.nomatch": 1}
    assert not call.state.ended


def test_exhausted_nomatch_without_then_and_without_fallback_hangs_up() -> None:
    call = Call(make(MENU))
    call.say("what", None)
    actions = call.say("huh", None)
    assert kinds(actions) == ["Hangup"] and call.state.end_reason == "max_retries"


def test_exhausted_retries_use_the_dialplan_fallback() -> None:
    plan = make(MENU.replace("start: menu", "start: menu\nfallback: human"))
    call = Call(plan)
    call.keys("9")
    actions = call.keys("9")
    assert says(actions) == ["Connecting a human."]


def test_counters_reset_when_the_node_is_entered_again() -> None:
    plan = make("""
        dialplan: loop
        start: a
        nodes:
          a:
            say: ["first", "second"]
            listen: {dtmf: {"1": b}, nomatch: {max: 3}}
          b: {say: "b", listen: {dtmf: {"1": a}}}
    """)
    call = Call(plan)
    call.keys("5")
    assert call.state.counters["a.nomatch"] == 1
    call.keys("1")
    actions = call.keys("1")
    assert says(actions) == ["first"]
    assert "a.nomatch" not in call.state.counters and call.state.counters["a.say"] == 1


def test_reprompt_false_says_only_the_handler_words() -> None:
    plan = make("""
        dialplan: r
        start: a
        nodes:
          a: {say: "Question?", listen: {dtmf: {"1": a}, nomatch: {max: 3, say: "Try again.", reprompt: false}}}
    """)
    call = Call(plan)
    assert says(call.keys("7")) == ["Try again."]


# --------------------------------------------------------------------------------- global handlers


def test_local_route_wins_over_global_intent() -> None:
    call = Call(make(MENU))
    assert says(call.say("agent", "agent")) == ["Local agent route."]


def test_global_handlers_work_in_listen_ask_and_confirm() -> None:
    plan = make(MENU.replace("sales: sales,", "sales: ask_it,") + """
  ask_it:
    ask: {slot: code, type: digits, length: 4, say: "Code?", confirm: true}
    goto: bye
""")
    call = Call(plan)
    call.say("sales", "sales")
    assert call.state.step == "ask"
    assert says(call.say("bye now", "goodbye")) == ["Goodbye."]
    call = Call(plan)
    call.say("sales", "sales")
    call.keys("1234")
    assert call.state.step == "confirm"
    assert says(call.keys("0")) == ["Connecting a human."]


def test_digit_ask_takes_digits_before_global_keys() -> None:
    plan = make(MENU.replace("sales: sales,", "sales: ask_it,") + """
  ask_it:
    ask: {slot: code, type: digits, min_length: 1, max_length: 4, say: "Code?"}
    goto: bye
""")
    call = Call(plan)
    call.say("sales", "sales")
    call.keys("0")  # a valid one-digit code: the slot, not the global "0"
    assert call.state.slots == {"code": "0"} and call.state.node == "bye"


def test_repeat_replays_without_advancing_and_keeps_listening() -> None:
    call = Call(make(MENU))
    actions = call.keys("*")
    assert says(actions) == ["Main menu. Say sales or support."] and kinds(actions) == ["Say", "Listen"]
    assert call.state.counters["menu.say"] == 1


def test_language_switch_repeats_the_prompt_in_the_new_language() -> None:
    call = Call(make(MENU))
    actions = call.say("中文", "chinese")
    assert says(actions) == ["主菜单。"]
    assert call.state.lang == "zh-CN"
    assert [a.lang for a in actions if isinstance(a, act.Listen)] == ["zh-CN"]


def test_auto_language_follows_the_recognised_language() -> None:
    plan = make(MENU.replace("start: menu", "start: menu\nauto_language: true"))
    call = Call(plan)
    actions = call.say("我要销售", "sales", lang="zh")
    assert call.state.lang == "zh-CN"
    assert actions[0] == act.LogEvent("language", {"node": "menu", "lang": "zh-CN"})


def test_call_language_from_context_matches_primary_subtag() -> None:
    call = Call(make(MENU), lang="zh")
    assert call.state.lang == "zh-CN" and says(call.actions) == ["主菜单。"]
    assert Call(make(MENU), lang="fr-FR").state.lang == "en-US"


# ------------------------------------------------------------------------------------ slot filling

SLOTS = """
dialplan: slots
start: start
fallback: agent
global: {intents: {agent: agent}}
nodes:
  start:
    say: "What do you need?"
    listen: {intents: {book: date}}
  date:
    ask: {slot: day, type: date, say: "Which day?"}
    goto: pin
  pin:
    ask:
      slot: pin
      type: digits
      length: 4
      sensitive: true
      say: "PIN?"
      confirm: "You said {{ value }}?"
      max_attempts: 2
      on_fail: failed
    goto: people
  people:
    ask: {slot: people, type: number, say: "How many?", reprompts: ["Just the number of people.", "Number please."]}
    goto: done
  done: {say: "Booked {{ slots.day }} for {{ slots.people }}.", hangup: true}
  failed: {say: "Too many tries.", hangup: failed}
  agent: {say: "Agent.", hangup: agent}
"""


def test_entities_heard_earlier_fill_later_slots_without_asking() -> None:
    call = Call(make(SLOTS))
    actions = call.say("book for 2024-05-03", "book", entities={"date": "2024-05-03"})
    assert "Which day?" not in says(actions)
    assert call.state.slots["day"] == "2024-05-03"
    assert says(actions)[-1] == "PIN?" and call.state.node == "pin"
    assert "date" not in call.state.entities  # used once


def test_unanswered_slot_is_asked_and_parsed_from_text() -> None:
    call = Call(make(SLOTS))
    call.say("book", "book")
    assert says(call.actions) == ["Which day?"]
    call.say("on 2024-12-24 please")
    assert call.state.slots["day"] == "2024-12-24"


def test_sensitive_slot_pauses_recording_masks_transcript_and_confirms() -> None:
    call = Call(make(SLOTS))
    call.say("book", "book", entities={"date": "2024-05-03"})
    assert kinds(call.actions)[-3:] == ["SetRecording", "Say", "Listen"]
    assert call.actions[-3] == act.SetRecording(paused=True) and call.state.recording_paused
    actions = call.say("one two three four")
    assert says(actions) == ["You said 1 2 3 4?"]
    assert call.state.step == "confirm" and call.state.candidate == "1234"
    actions = call.say("yes")
    assert call.state.slots["pin"] == "1234"
    assert act.SetRecording(paused=False) in actions and not call.state.recording_paused
    assert logs(actions, "slot") == [{"node": "pin", "slot": "pin", "value": MASK}]
    texts = [entry["text"] for entry in call.state.history]
    assert "one two three four" not in texts and "You said 1 2 3 4?" not in texts
    assert "You said ****?" in texts and MASK in texts


def test_rejected_confirmation_asks_again_and_attempts_are_capped() -> None:
    call = Call(make(SLOTS))
    call.say("book", "book", entities={"date": "2024-05-03"})
    call.keys("1111")
    actions = call.say("no", None)
    assert says(actions) == ["PIN?"] and call.state.step == "ask" and "pin" not in call.state.slots
    call.keys("2222")
    actions = call.say("no")
    assert says(actions) == ["Too many tries."] and call.state.end_reason == "failed"
    assert act.SetRecording(paused=False) in actions


def test_invalid_answer_uses_reprompts_by_attempt_then_fallback() -> None:
    call = Call(make(SLOTS))
    call.say("book", "book", entities={"date": "2024-05-03"})
    call.keys("1234")
    call.keys("1")  # yes
    assert says(call.actions) == ["How many?"]
    assert says(call.say("lots")) == ["Just the number of people."]
    assert says(call.send(ev.NoInput())) == ["Number please."]
    actions = call.say("many")
    assert says(actions) == ["Agent."]  # no on_fail: the dialplan fallback


def test_confirmation_accepts_keys_and_leaving_by_global_resumes_recording() -> None:
    call = Call(make(SLOTS))
    call.say("book", "book", entities={"date": "2024-05-03"})
    assert call.state.recording_paused
    actions = call.say("agent please", "agent")
    assert actions[1] == act.SetRecording(paused=False) or act.SetRecording(paused=False) in actions
    assert says(actions) == ["Agent."] and not call.state.recording_paused


def test_full_slot_flow_renders_slots_in_templates() -> None:
    call = Call(make(SLOTS))
    call.say("book", "book", entities={"date": "2024-05-03"})
    call.keys("1234")
    call.keys("1")
    actions = call.say("we are 3")
    assert says(actions) == ["Booked 2024-05-03 for 3."]


# ---------------------------------------------------------------------------------------- webhooks

HOOKS = """
dialplan: hooks
start: lookup
fallback: sorry
nodes:
  lookup:
    webhook:
      url: "https://crm.example/{{ caller.number }}"
      method: GET
      args: {n: "{{ caller.number }}", vip: "{{ caller.vip }}"}
      timeout_s: 2
      retries: 2
      result: {name: "{{ result.name }}", level: "{{ result.level }}"}
      on_error: offline
    branch:
      - {if: "result.level > 3", goto: gold, set: {tier: gold}}
      - {if: "result.level > 1", goto: silver}
      - {else: plain}
  gold: {say: "Hello {{ vars.name }}, {{ vars.tier }} member.", hangup: true}
  silver: {say: "Hello {{ vars.name }}.", hangup: true}
  plain: {say: "Hello.", hangup: true}
  offline: {say: "Systems are offline.", hangup: true}
  sorry: {say: "Sorry.", hangup: true}
"""


def test_webhook_action_renders_url_args_and_waits() -> None:
    call = Call(make(HOOKS), caller="+1555", profile={"vip": True})
    hooks = [a for a in call.actions if isinstance(a, act.Webhook)]
    assert hooks == [act.Webhook(None, "https://crm.example/+1555", "GET", {"n": "+1555", "vip": True}, {}, 2.0, 2)]
    assert call.state.step == "webhook"
    assert kinds(call.send(ev.Heard("hello"))) == []  # speech while waiting is ignored


@pytest.mark.parametrize(
    ("data", "expected"),
    [({"name": "Ann", "level": 5}, "Hello Ann, gold member."), ({"name": "Bo", "level": 2}, "Hello Bo."),
     ({"name": "Cy", "level": 0}, "Hello.")],
)
def test_webhook_result_mapping_and_branch_conditions(data: dict, expected: str) -> None:
    call = Call(make(HOOKS))
    actions = call.send(ev.WebhookResult(True, data))
    assert says(actions) == [expected]
    assert call.state.vars["name"] == data["name"] and call.state.result["ok"] is True


@pytest.mark.parametrize("error", ["timeout after 2 s", "HTTP 500", "malformed JSON in the response"])
def test_webhook_errors_follow_on_error(error: str) -> None:
    call = Call(make(HOOKS))
    actions = call.send(ev.WebhookResult(False, None, error))
    assert says(actions) == ["Systems are offline."]
    assert call.state.result == {"ok": False, "error": error}
    assert logs(actions, "webhook_error")[0]["error"] == error


def test_webhook_error_without_on_error_goes_to_fallback() -> None:
    call = Call(make(HOOKS.replace("      on_error: offline\n", "")))
    assert says(call.send(ev.WebhookResult(False, None, "HTTP 503"))) == ["Sorry."]


def test_branch_condition_error_is_logged_and_treated_as_false() -> None:
    plan = make(HOOKS.replace('"result.level > 3"', '"result.level > \'x\'"'))
    call = Call(plan)
    actions = call.send(ev.WebhookResult(True, {"name": "Ann", "level": 5}))
    assert says(actions) == ["Hello Ann."]
    assert logs(actions, "template_error")


def test_lookup_profile_feeds_caller_templates_and_failure_continues() -> None:
    plan = make("""
        dialplan: lk
        start: hi
        lookup: {name: crm.lookup, args: {ani: "{{ caller.number }}"}}
        nodes:
          hi: {say: "Hi {{ caller.name or 'there' }}{{ ' (VIP)' if caller.vip }}.", hangup: true}
    """)
    call = Call(plan, caller="+1")
    assert kinds(call.actions) == ["Webhook"] and call.state.step == "lookup"
    assert says(call.send(ev.WebhookResult(True, {"name": "Ann", "vip": True}))) == ["Hi Ann (VIP)."]
    assert call.state.caller["profile"] == {"name": "Ann", "vip": True}
    call = Call(plan, caller="+1")
    assert says(call.send(ev.WebhookResult(False, None, "timeout"))) == ["Hi there."]


# ----------------------------------------------------------------------------------------- subflows

SUB = """
dialplan: sub
start: main
nodes:
  main: {say: "main", call: {node: sub_a, then: after}}
  sub_a: {say: "in sub", call: {node: sub_b, then: sub_end}}
  sub_b: {say: "nested", return: true}
  sub_end: {say: "sub end", return: true}
  after: {say: "back in main", hangup: true}
"""


def test_subflow_call_and_nested_return() -> None:
    call = Call(make(SUB))
    assert says(call.actions) == ["main", "in sub", "nested", "sub end", "back in main"]
    assert call.state.stack == [] and call.state.trail == ["main", "sub_a", "sub_b", "sub_end", "after"]


def test_return_reached_without_call_goes_to_fallback() -> None:
    plan = make("""
        dialplan: sub2
        start: main
        fallback: oops
        nodes:
          main: {say: "main", listen: {dtmf: {"1": direct, "2": proper}}}
          proper: {call: {node: direct, then: done}}
          direct: {say: "in sub", return: true}
          done: {say: "done", hangup: true}
          oops: {say: "Oops.", hangup: true}
    """)
    call = Call(plan)
    assert says(call.keys("2")) == ["in sub", "done"]
    call = Call(plan)
    actions = call.keys("1")
    assert says(actions) == ["in sub", "Oops."]
    assert logs(actions, "error")[0]["message"] == "return outside a subflow"


# ------------------------------------------------------------------------------ queues and transfers

QUEUE = """
dialplan: q
start: start
global: {intents: {goodbye: bye}}
nodes:
  start:
    ask: {slot: pin, type: digits, length: 4, say: "PIN?", sensitive: true}
    goto: wait
  wait:
    enqueue:
      queue: "{{ 'vip' if caller.vip else 'main' }}"
      skills: [cards, "lang:{{ lang }}"]
      priority: "{{ 10 if caller.vip else 0 }}"
      context: {why: cards}
      announce_wait: true
      offer_callback_after: 120
      callback: cb
      on_failure: closed
  cb: {say: "We will call you.", hangup: callback}
  closed: {say: "Closed.", hangup: closed}
  bye: {say: "Bye.", hangup: true}
  op: {transfer: {to: "sip:{{ vars.ext }}@pbx", context: {ext: "{{ vars.ext }}"}, on_failure: closed}}
"""


def queued(vip: bool = True) -> Call:
    call = Call(make(QUEUE), caller="+1", profile={"vip": vip})
    call.keys("1234")
    return call


def test_enqueue_renders_queue_skills_priority_and_masked_context() -> None:
    call = queued()
    enqueue = [a for a in call.actions if isinstance(a, act.Enqueue)][0]
    assert (enqueue.queue, enqueue.skills, enqueue.priority) == ("vip", ("cards", "lang:en-US"), 10)
    assert enqueue.context["slots"] == {"pin": MASK} and enqueue.context["why"] == "cards"
    assert queued(vip=False).actions[-1].priority == 0  # type: ignore[union-attr]


def test_queue_updates_announce_and_offer_callback_once() -> None:
    call = queued()
    assert says(call.send(ev.QueueUpdate(3, 90))) == [
        "You are number 3 in the queue. The expected wait is about 2 minutes."]
    actions = call.send(ev.QueueUpdate(2, 150))
    assert says(actions)[-1].startswith("If you would like us to call you back")
    assert call.state.step == "callback_offer"
    call.send(ev.NoInput())
    assert call.state.step == "queue"
    assert len(says(call.send(ev.QueueUpdate(1, 200)))) == 1  # announcement only, no second offer


def test_the_wait_told_to_the_caller_is_logged_for_the_call_record() -> None:
    call = queued()
    actions = call.send(ev.QueueUpdate(3, 90))  # the dialplan's phrase: "about 2 minutes"
    assert logs(actions, "ewt_announced") == [{"node": call.state.node, "low_s": 60.0, "high_s": 120.0,
                                                "position": 3}]
    actions = call.send(ev.QueueUpdate(2, 150, announcement="The wait is about 2 to 4 minutes.", told_s=(120, 240)))
    assert logs(actions, "ewt_announced")[0]["low_s"] == 120 and logs(actions, "ewt_announced")[0]["high_s"] == 240
    assert not logs(queued().send(ev.QueueUpdate(2, -1.0)), "ewt_announced")  # no estimate, nothing told


def test_accepting_callback_leaves_the_queue() -> None:
    call = queued()
    call.send(ev.QueueUpdate(2, 150))
    actions = call.say("yes please")
    assert kinds(actions) == ["LeaveQueue", "Say", "Hangup"] and call.state.end_reason == "callback"


def test_global_goodbye_in_queue_leaves_it() -> None:
    call = queued()
    actions = call.say("bye", "goodbye")
    assert kinds(actions) == ["LeaveQueue", "Say", "Hangup"]
    assert actions[0] == act.LeaveQueue("vip", "caller_left")  # type: ignore[comparison-overlap]


def test_agent_answer_ends_the_bot_part_and_transfer_failure_takes_on_failure() -> None:
    call = queued()
    call.send(ev.AgentAnswered("alice"))
    assert call.state.ended and call.state.end_reason == "agent"
    call = queued()
    assert says(call.send(ev.TransferFailed("no agents"))) == ["Closed."]


def test_direct_transfer_target_and_context() -> None:
    plan = make(QUEUE.replace("goto: wait", "goto: op").replace("dialplan: q", "dialplan: q\nvars: {ext: 204}"))
    call = Call(plan)
    actions = call.keys("1234")
    transfer = [a for a in actions if isinstance(a, act.Transfer)][0]
    assert transfer.target == "sip:204@pbx" and transfer.context["ext"] == 204
    assert call.state.step == "transfer"
    assert says(call.send(ev.TransferFailed("busy"))) == ["Closed."]


# --------------------------------------------------------------------------------- ending, templates


def test_caller_hangup_ends_and_later_events_are_ignored() -> None:
    call = Call(make(MENU))
    call.send(ev.Hangup())
    assert call.state.ended and call.state.end_reason == "caller_hangup"
    actions = call.keys("1")
    assert kinds(actions) == [] and logs(actions, "event_after_end")


def test_template_sandbox_refuses_python_internals_at_run_time() -> None:
    plan = make("""
        dialplan: t
        start: a
        vars: {x: 1}
        nodes:
          a: {say: "{{ vars.x }}", hangup: true}
    """)
    node = plan.nodes["a"].model_copy(update={"say": "{{ ''.__class__.__mro__ }}"})
    plan = plan.model_copy(update={"nodes": {"a": node}})
    call = Call(plan)
    assert says(call.actions) == [""]
    assert "__class__" in logs(call.actions, "template_error")[0]["message"]


def test_template_goto_to_unknown_node_goes_to_fallback() -> None:
    plan = make("""
        dialplan: t
        start: a
        fallback: f
        vars: {next: nowhere}
        nodes:
          a: {goto: "{{ vars.next }}"}
          f: {say: "Fallback.", hangup: true}
    """)
    call = Call(plan)
    assert says(call.actions) == ["Fallback."]
    assert "nowhere" in logs(call.actions, "error")[0]["message"]


def test_run_time_loop_is_stopped_even_when_the_loader_was_bypassed() -> None:
    text = """
        dialplan: t
        start: a
        nodes:
          a: {set: {n: 1}, goto: "{{ 'b' if vars.n else 'a' }}"}
          b: {goto: "{{ 'a' }}"}
    """
    with pytest.raises(ConfigErrors, match="loop with no listen"):
        make(text)
    data, lines = load_yaml_text(textwrap.dedent(text), "t.yaml")
    plan = validate(Dialplan, data, lines, "t.yaml")
    call = Call(plan)
    assert isinstance(call.actions[-1], act.Hangup) and call.state.end_reason == "error"
    assert "loop" in logs(call.actions, "error")[0]["message"]


def test_ssml_breaks_become_pause_parts() -> None:
    plan = make("""
        dialplan: t
        start: a
        nodes:
          a: {say: 'One. <break time="1.5s"/> Two.', hangup: true}
    """)
    say = [a for a in Call(plan).actions if isinstance(a, act.Say)][0]
    assert say.parts == ("One.", 1500, "Two.") and say.text == "One. Two."


def test_state_survives_json_round_trip_mid_call() -> None:
    call = Call(make(SLOTS))
    call.say("book", "book", entities={"date": "2024-05-03"})
    restored = State.from_json(call.state.to_json())
    assert restored == call.state
    state, actions = call.interpreter.handle(restored, ev.Keys("1234"))
    assert state.step == "confirm" and says(actions) == ["You said 1 2 3 4?"]
    with pytest.raises(ValueError, match="unknown State fields: bogus"):
        State.from_dict({**call.state.to_dict(), "bogus": 1})


# ------------------------------------------------------------------------------------ out of scope

SCOPED = MENU.replace("start: menu\n", """start: menu
out_of_scope:
  nodes: [menu]
  min_confidence: 0.8
  say: {en: "I can help with sales and support. Shall I get you a person?", zh: "我可以帮您转销售或支持。需要转人工吗？"}
  person: {goto: human, set: {reason: out_of_scope}}
""")


def test_out_of_scope_request_hears_what_the_bot_can_do_and_yes_reaches_a_person() -> None:
    call = Call(make(SCOPED))
    actions = call.say("can I book a table for two", None)
    assert says(actions) == ["I can help with sales and support. Shall I get you a person?"]
    assert logs(actions, "out_of_scope") == [{"node": "menu", "count": 1}]
    assert (call.state.node, call.state.step) == ("menu", "scope_offer")
    assert call.state.counters["menu.nomatch"] == 1
    actions = call.say("yes please", "affirm")
    assert says(actions) == ["Connecting a human."]
    assert call.state.vars["reason"] == "out_of_scope" and call.state.end_reason == "human"


def test_out_of_scope_threshold_applies_to_menu_intents_in_its_nodes() -> None:
    call = Call(make(SCOPED))  # the listen's own min_confidence is 0.5: the path's 0.8 is in force
    actions = call.say("can I open a sales account", "sales", confidence=0.7)
    assert (call.state.node, call.state.step) == ("menu", "scope_offer"), says(actions)
    listen = [a for a in call.actions if isinstance(a, act.Listen)][-1]
    assert listen.early is not None and listen.early.min_confidence >= 0.8
    call = Call(make(MENU))  # without the path: the nearest intent answers at 0.7
    call.say("can I open a sales account", "sales", confidence=0.7)
    assert call.state.node == "sales"


def test_after_the_offer_no_replays_the_menu_and_a_menu_answer_still_routes() -> None:
    call = Call(make(SCOPED))
    call.say("can I book a table for two", None)
    actions = call.say("no thanks", "deny")
    assert says(actions) == ["Say sales, or support."] and call.state.step == "listen"
    call = Call(make(SCOPED))
    call.say("can I book a table for two", None)
    actions = call.say("no thanks", "goodbye", confidence=0.9)  # a no to the offer, though the NLU hears goodbye
    assert says(actions) == ["Say sales, or support."] and not call.state.ended
    assert says(call.say("goodbye", "goodbye", confidence=0.9)) == ["Goodbye."]
    call = Call(make(SCOPED))
    call.say("can I book a table for two", None)
    assert says(call.say("support please", "support", confidence=0.9)) == ["Support about help."]
    call = Call(make(SCOPED))
    call.say("can I book a table for two", None)
    call.keys("1")
    assert call.state.node == "sales"


def test_out_of_scope_again_counts_towards_the_menus_nomatch_max() -> None:
    call = Call(make(SCOPED))
    call.say("can I book a table for two", None)
    actions = call.say("what is the weather like", None)
    assert call.state.counters["menu.nomatch"] == 2
    assert "scope_offer" != call.state.step and call.state.end_reason == "max_retries", says(actions)


def test_unrecognised_speech_keeps_the_plain_retry_and_other_nodes_are_untouched() -> None:
    call = Call(make(SCOPED))
    assert says(call.send(ev.NoMatch())) == ["No match.", "Say sales, or support."]  # no words: no scope offer
    assert call.state.step == "listen"


def test_out_of_scope_in_chinese() -> None:
    call = Call(make(SCOPED), lang="zh-CN")
    assert says(call.say("帮我订机票", None)) == ["我可以帮您转销售或支持。需要转人工吗？"]
    call.say("对", "affirm")
    assert call.state.node == "human"


def test_the_repairs_switch_turns_the_dialogue_repairs_off() -> None:
    plan = make(SCOPED)
    call = Call(plan)
    call.interpreter = Interpreter(plan, repairs=False)
    call.state, call.actions = call.interpreter.start(ev.CallContext())
    call.say("can I book a table for two", None)
    assert call.state.step == "listen" and says(call.actions) == ["No match.", "Say sales, or support."]
    call.say("can I open a sales account", "sales", confidence=0.7)  # the listen's 0.5, not the path's 0.8
    assert call.state.node == "sales"
    garbled = Call(plan)
    garbled.say("US please", "agent", confidence=0.58)  # below global.min_confidence 0.7: a nomatch
    assert garbled.state.node == "menu"
    garbled.interpreter = Interpreter(plan, repairs=False)
    garbled.state, _ = garbled.interpreter.start(ev.CallContext())
    garbled.say("US please", "agent", confidence=0.58)
    assert garbled.state.node == "local_agent"  # the menu's own agent route at the listen's 0.5
