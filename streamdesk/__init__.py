"""StreamDesk's web side: configuration, storage, the relay and the views.

Nothing imported here pulls in Flask: ``streamdesk.sse`` is shared with the providers.
"""
