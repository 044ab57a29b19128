"""Carrying out a plan through the daemon seam, re-checking the host before each destructive step."""
