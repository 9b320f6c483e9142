"""`python -m voicebot.softphone ARGS`: place one call with the test softphone."""

import sys

from voicebot.softphone.phone import main

sys.exit(main())
