"""Channel renderers: how one turn's replies look on a channel that cannot show the chat form."""
