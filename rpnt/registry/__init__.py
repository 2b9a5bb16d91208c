"""The dataset registry ``config/datasets.yaml``: the one reader of it.

- :mod:`rpnt.registry.entries`: load and validate the registry, pinned versions, API URLs,
  asset selection, the sessions a dataset will have.
- :mod:`rpnt.registry.naming`: session ids (subject, task, date) from asset file names.
- :mod:`rpnt.registry.assets`: asset manifest TSVs (committed and fetched) and finding a
  file's row in one.

Every reader of the registry (the workflow, ``rpnt fetch``, ``rpnt ingest``) goes through
:func:`rpnt.registry.entries.load_registry`, which validates it against
``rpnt/schemas/datasets.schema.yaml``.
"""
