"""One call over a channel: its lifecycle (leg, session, recorder, record, teardown), its typed event stream and
observers, the dialplan session (conversation), the keypad demo session, the stereo recording and hold audio.
(DESIGN: calls/ owns a call's legs, session and recorder.)"""
