"""OMT patient assistant: knowledge, safety screening, rendering and channels."""
