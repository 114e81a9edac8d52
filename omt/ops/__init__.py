"""Running the assistant: the page server, the local stack, the cluster, retention and checks."""
