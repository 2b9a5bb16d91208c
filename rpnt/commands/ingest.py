"""``rpnt ingest``: one NWB session -> one Zarr store (schema v2)."""

from __future__ import annotations

import argparse

NAME = "ingest"
HELP = "convert one NWB session into a Zarr store (binned counts, raw spikes, behaviour, splits)"
DESCRIPTION = """\
Reads one NWB file (DANDI 000688 / Perich-Miller, NLB, FALCON M1/M2/H1 (already binned:
their bins are kept), or a layout described by a registry entry) directly with h5py (the
'waveforms' column is never read), bins spikes into half-open bins [t, t+bin), averages
behaviour per bin, splits valid trials 70/10/20
(seed 42) and writes an xarray Dataset as a Zarr v3 store, schema v2
(docs/store-schema.md). The store is written to a temporary path and renamed at the end,
so a failed run leaves nothing at --out.

examples:
  rpnt ingest sub-C_ses-CO-20160909_behavior+ecephys.nwb --out C.zarr
  rpnt ingest file.nwb --out s.zarr --bin-ms 10 --dataset perich_miller \\
      --registry config/datasets.yaml --asset-manifest resources/raw/perich_miller/assets.tsv
"""


def add_arguments(p: argparse.ArgumentParser) -> None:
    p.add_argument("nwb", metavar="NWB", help="the NWB file of one session")
    p.add_argument("--out", required=True, metavar="STORE.zarr", help="store to write")
    p.add_argument("--bin-ms", type=float, default=20.0, help="bin size in ms (default 20)")
    p.add_argument("--adapter", default="auto",
                   choices=["auto", "perich_miller", "nlb", "generic", "falcon"],
                   help="NWB layout; auto decides by the objects in the file (default)")
    p.add_argument("--dataset", metavar="NAME",
                   help="dataset name recorded in the store and looked up in --registry")
    p.add_argument("--registry", metavar="YAML",
                   help="dataset registry (config/datasets.yaml): adapter, generic mapping, "
                        "dandiset id/version")
    p.add_argument("--asset-manifest", metavar="TSV",
                   help="asset manifest written by rpnt fetch (path, asset_id, size, sha256, "
                        "dandiset_id, version): provenance of downloaded files")
    p.add_argument("--split-seed", type=int, default=42, help="trial shuffle seed (default 42)")
    p.add_argument("--split-fractions", type=float, nargs=3, default=(0.7, 0.1, 0.2),
                   metavar=("TRAIN", "VALID", "TEST"),
                   help="fractions of valid trials (default 0.7 0.1 0.2)")
    p.add_argument("--split-padding-s", type=float, default=1.0,
                   help="training bins stay this many seconds away from valid/test trials "
                        "(default 1.0)")
    p.add_argument("--threads", type=int, default=None, metavar="N",
                   help="threads for counting spikes and compressing the store; the store "
                        "does not depend on it (default: the CPUs this process may use; the "
                        "workflow passes the rule's threads)")
    p.add_argument("--force", action="store_true", help="replace an existing store")


def _hash_in_background(path: str):
    """Start the file's SHA-256 in a daemon thread now, before the heavy imports (hashing
    releases the GIL, so it overlaps them, and a large file's hash bounds the command);
    returns a function that waits for the digest (or re-raises the thread's error)."""
    import threading

    box: dict = {}

    def work() -> None:
        try:
            from rpnt.provenance import sha256_file

            box["sha"] = sha256_file(path)
        except BaseException as exc:  # handed to the caller by result()
            box["error"] = exc

    thread = threading.Thread(target=work, daemon=True)  # a failed ingest need not wait
    thread.start()

    def result() -> str:
        thread.join()
        if "error" in box:
            raise box["error"]
        return box["sha"]

    return result


def run(args: argparse.Namespace) -> int:
    sha256 = _hash_in_background(args.nwb)
    # imports here, after the hash started: rpnt --help must not load h5py or numpy
    from rpnt.ingest import IngestConfig, SplitConfig, ingest_file
    from rpnt.machine import usable_cpus

    cfg = IngestConfig(
        bin_ms=args.bin_ms, adapter=args.adapter, dataset=args.dataset,
        split=SplitConfig(seed=args.split_seed, fractions=tuple(args.split_fractions),
                          padding_s=args.split_padding_s),
    )
    out = ingest_file(args.nwb, args.out, cfg=cfg, registry=args.registry,
                      asset_manifest=args.asset_manifest, force=args.force,
                      threads=max(1, args.threads or usable_cpus()), sha256=sha256)
    print(out)
    return 0
