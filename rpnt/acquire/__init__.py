"""DANDI downloads through the official ``dandi`` client.

- :mod:`rpnt.acquire.dandi`: list, select and download assets with the official client.
- :mod:`rpnt.acquire.fetch`: ``rpnt fetch``: a registry entry's pinned assets to a folder
  and an asset manifest.

The registry itself (entries, session names, asset manifests) is :mod:`rpnt.registry`.
"""

#: ``rpnt fetch --existing`` choices: values of :class:`dandi.download.DownloadExisting`
#: (kept here, free of heavy imports, so that ``rpnt --help`` stays fast)
EXISTING_CHOICES = ("overwrite-different", "skip", "refresh", "overwrite")
