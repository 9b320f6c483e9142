"""voicebot.nlu"""
