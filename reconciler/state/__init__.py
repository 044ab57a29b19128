"""What reconcile keeps on disk: state directory, locks, run history, usage state, plan files, metrics."""
