"""One call over a channel: the dialplan session (conversation), the keypad demo session, the stereo recording and
hold audio. (DESIGN: calls/ owns a call's legs, session and recorder.)"""
