"""voicebot.dialplan"""
