"""Built-in demo backend: sample customers, accounts, orders … served as webhooks (`POST /hooks/<name>`).

    backend = await start_demo_backend()        # 127.0.0.1, a free port
    endpoints = backend.endpoints()             # {"finance.verify": "http://127.0.0.1:PORT/hooks/finance.verify", …}
    await backend.close()
"""

from voicebot.demo_backend.app import INDUSTRY_MODULES, DemoBackend, build_app, load_handlers, start_demo_backend

__all__ = ["INDUSTRY_MODULES", "DemoBackend", "build_app", "load_handlers", "start_demo_backend"]
