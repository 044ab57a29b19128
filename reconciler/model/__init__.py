"""The nouns every layer shares: references, the manifest, the host inventory, plans and reports."""
