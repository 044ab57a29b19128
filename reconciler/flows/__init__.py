"""One command's work on each host: read the facts, plan, apply, record; returns outcomes, prints nothing."""
