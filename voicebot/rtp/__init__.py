"""voicebot.rtp"""
