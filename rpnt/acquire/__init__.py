"""Dataset registry (``config/datasets.yaml``) and DANDI downloads through the ``dandi`` client.

- :mod:`rpnt.acquire.naming`: session ids from asset file names.
- :mod:`rpnt.acquire.registry`: load and validate the registry, plan sessions per dataset.
- :mod:`rpnt.acquire.manifest`: asset manifest TSVs (committed and fetched).
- :mod:`rpnt.acquire.dandi`: list, select and download assets with the official client.
"""

#: ``rpnt fetch --existing`` choices: values of :class:`dandi.download.DownloadExisting`
#: (kept here, free of heavy imports, so that ``rpnt --help`` stays fast)
EXISTING_CHOICES = ("overwrite-different", "skip", "refresh", "overwrite")
