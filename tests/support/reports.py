"""Tables that tests fill and the run prints at the end (see pytest_terminal_summary in conftest)."""

fault_injection: list[tuple[str, str]] = []
concurrency: list[str] = []
fault_matrix: list[tuple[str, str, str]] = []  # command, fault, outcome
online_migrations: list[
    tuple[str, int, int, int, str]
] = []  # update, requests, failed, tickets written, timing
