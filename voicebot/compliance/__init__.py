"""voicebot.compliance"""
