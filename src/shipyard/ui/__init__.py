"""The dashboard: server-rendered HTML pages with inline SVG charts, no script and nothing
from elsewhere. ``shipyard serve`` mounts it at ``/ui``; ``shipyard ui`` serves it alone.

- ``source.py``: where the numbers come from (monitor results, registry, prediction log,
  the data plane when served);
- ``overview.py``, ``endpoint_page.py``, ``feature_page.py``, ``models_page.py``,
  ``rollouts_page.py``, ``tryit.py``: one page each;
- ``actions.py``: the admin actions' confirmation pages and registry calls;
- ``access.py``: who may see (any valid key) and act (an admin key);
- ``layout.py``: the page shell and stylesheet; ``app.py``: the routes.
"""

from shipyard.ui.access import Access
from shipyard.ui.app import create_dashboard
from shipyard.ui.source import DashboardSource

__all__ = ["Access", "DashboardSource", "create_dashboard"]
