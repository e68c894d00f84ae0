"""``shipyard loadtest``: load a served model with realistic rows and measure it.

``bodies.py`` builds the requests from the package's reference rows, ``connection.py`` sends
them over keep-alive HTTP/1.1 connections, ``steps.py`` runs the open loop (each request
timed from its due time), the closed loop and the ramp, and keeps latencies in an HDR
histogram.
"""

from shipyard.loadtest.bodies import reference_bodies
from shipyard.loadtest.steps import LoadResult, closed_loop, open_loop, ramp, run

__all__ = ["LoadResult", "closed_loop", "open_loop", "ramp", "reference_bodies", "run"]
