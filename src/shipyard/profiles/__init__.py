"""Reference and window profiles: compact, mergeable summaries of tables (L1 pure core).

    from shipyard.profiles import profile
    ref = profile(train_df)                  # per-column stats, sketches, a row sample
    cur = profile(window_df, kinds=ref.kinds)
    ref["age"].cdf([30, 40]); cur["city"].frequencies()
    both = ref.merge(cur)                    # = profile(train_df + window_df) within error
    Profile.from_bytes(ref.to_bytes())       # no pickle

Modules: ``columns`` (ColumnKind, ColumnProfile, merging one column), ``build`` (an array ->
ColumnProfile), ``frame`` (DataFrame / Arrow / mapping -> arrays), ``reservoir`` (the row
sample), ``table`` (Profile, profile()), ``codec`` (the binary layout).
"""

from shipyard.profiles.columns import ColumnKind, ColumnProfile, value_key
from shipyard.profiles.table import Profile, profile

__all__ = ["ColumnKind", "ColumnProfile", "Profile", "profile", "value_key"]
