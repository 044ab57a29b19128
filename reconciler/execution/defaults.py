"""How apply runs unless told otherwise; apart from the executor so the CLI's options need not import it."""

DEFAULT_HOST_TIMEOUT = 1800.0  # seconds: half an hour for one host's whole turn
DEFAULT_PULL_TIMEOUT = 900.0  # seconds for one whole pull, retries included
DEFAULT_PARALLELISM = 8  # pulls at once: a pull waits mostly on registry round trips (dockerd bounds
# each pull's layer downloads itself, max-concurrent-downloads); 20 small pulls behind a 50 ms registry
# took 3.7 s four at a time, 2.5 s eight at a time
DEFAULT_BUILD_TIMEOUT = 1800.0  # seconds for one build or load
DEFAULT_REMOVAL_WORKERS = 8  # untags and removals of different images at once: dockerd 20.10 serialises much
# of a delete, 8 at once gave it 1.8x the deletes per second of one at a time, 4 at once 1.6x
