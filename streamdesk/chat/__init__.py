"""One chat turn without the web: preparing it (``turn.py``), writing the reply on a greenlet
of its own (``replies.py``, ``relay.py``) as typed events (``events.py``) with heartbeats in
silence (``silence.py``), keeping its unsaved events for followers (``live.py``) with ids any
worker can resume from (``stream_index.py``), reaching other workers and instances
(``bus.py``), saving it as it grows (``progress.py``), reporting on it (``observer.py``) and
ending it cleanly when the server stops (``lifecycle.py``)."""
