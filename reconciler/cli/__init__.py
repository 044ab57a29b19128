"""The reconcile command: click commands, options, consoles and every rendering of plans and reports."""
