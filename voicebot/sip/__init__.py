"""voicebot.sip"""
