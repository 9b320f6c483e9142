"""voicebot.channels"""
