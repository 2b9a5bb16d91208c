"""Sessions in memory and everything cut from them: windows, RPNT batches, scenarios.

:mod:`rpnt.data.session` (``SessionData``), :mod:`rpnt.data.windows` (window starts),
:mod:`rpnt.data.batches` (sessions -> RPNT inputs: ``Vocab``, ``SessionWindows``,
``BatchSampler``), :mod:`rpnt.data.device` (``to_device``) and
:mod:`rpnt.data.scenarios` (which sessions and units each stage may see).
"""
