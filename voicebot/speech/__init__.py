"""voicebot.speech"""
