"""The engine: per-endpoint admission (``limiter``), one cell's attempts and retries
(``attempts``), and the scheduler that runs cells under one structured scope (``scheduler``)."""
