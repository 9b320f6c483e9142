"""voicebot.queues"""
