"""One chat turn without the web: preparing it (``turn.py``), relaying the reply as typed
events (``relay.py``, ``events.py``) with its reader greenlet (``pump.py``), saving it as it
grows (``progress.py``), reporting on it (``observer.py``) and ending it cleanly when the
server stops (``lifecycle.py``)."""
