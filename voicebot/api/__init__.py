"""voicebot.api"""
