"""Our own Rasa input channels (REST, socket.io, SMS, forget me) and the SMS renderer.

Loaded by module path from credentials.yml; they use the Rasa layer and the core below them.
"""
