"""The environment an inference process starts with: an allowlist, never the server's whole
environment.

The child runs model code (custom classes, pickles the user trusted), so it gets only what
running a model needs: where programs, libraries and Python modules are (``PATH``,
``LD_LIBRARY_PATH``, ``VIRTUAL_ENV``; ``PYTHONPATH`` set to the server's ``sys.path``, so
custom model classes import as they do in the server), which accelerator it may use
(``CUDA_VISIBLE_DEVICES``), the user's ``HOME``, locale (``LANG``, ``LC_*``, ``TZ``), the
temporary directory (``TMPDIR``), the thread counts of numeric libraries (``OMP_NUM_THREADS``
and the like), and shipyard's own settings that loading a model reads (``Settings.to_env``,
less the registry URL and the artifact store, which may hold credentials and which the child
never opens). Nothing else: not the serve config, API keys, cloud credentials or any other
variable the server happens to have. A prediction log on an object store does not change
that: the child writes its segments to a local outbox and the server uploads them
(``stores/log_shipping.py``), so no ``AWS_*`` variable ever reaches model code.
"""

from __future__ import annotations

import os
import sys
from collections.abc import Mapping

from shipyard.settings import ENV_VARS, Settings

PASSED = frozenset({"PATH", "HOME", "LANG", "LANGUAGE", "TMPDIR", "TZ", "SYSTEMROOT",
                    "LD_LIBRARY_PATH", "CUDA_VISIBLE_DEVICES", "VIRTUAL_ENV",
                    "PYTHONHASHSEED", "PYTHONUNBUFFERED", "PYTHONDONTWRITEBYTECODE"})
PASSED_PREFIXES = ("LC_",)
# thread pools of numeric libraries (a deployment may pin them to share the cores)
THREAD_COUNTS = frozenset({"OMP_NUM_THREADS", "MKL_NUM_THREADS", "OPENBLAS_NUM_THREADS",
                           "BLIS_NUM_THREADS", "VECLIB_MAXIMUM_THREADS",
                           "NUMEXPR_NUM_THREADS", "NUMEXPR_MAX_THREADS"})
# shipyard settings a child never needs: a database URL or a store URL can hold a password
WITHHELD_SETTINGS = frozenset({ENV_VARS["registry_url"], ENV_VARS["artifacts"]})


def child_environment(settings: Settings,
                      environ: Mapping[str, str] | None = None) -> dict[str, str]:
    """The variables an inference process gets (see the module docstring)."""
    env = dict(os.environ if environ is None else environ)
    out = {name: value for name, value in env.items()
           if name in PASSED or name in THREAD_COUNTS or name.startswith(PASSED_PREFIXES)}
    out.update({name: value for name, value in settings.to_env().items()
                if name not in WITHHELD_SETTINGS})
    out["PYTHONPATH"] = os.pathsep.join(p for p in sys.path if p)
    return out
