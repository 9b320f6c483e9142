"""The pjsua2 test softphone (`voicebot call`, `python -m voicebot.softphone`): the peer our tests and users call
the server with. The server never imports it."""
