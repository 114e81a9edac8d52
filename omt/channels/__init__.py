"""Our own Rasa input channels, loaded by module path from credentials.yml."""
