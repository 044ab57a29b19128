"""The one door to each Docker daemon: every call, deadline, quirk and error of the engine lives here."""
