"""Pure decisions: what to pull, tag, untag and remove, retention, freed space, the removal guard."""
