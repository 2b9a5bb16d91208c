# The offline default: the simulator writes a dandiset-like folder in the DANDI 000688
# layout (plus per-session ground truth for the noise ceiling). Defined only when the
# configured dataset is simulated: its outputs are the preset's fixed session list.

if SIMULATED:

    rule simulate:
        """Simulate every session of the dataset's preset."""
        output:
            nwb=[f"{RAW}/{s['asset_path']}" for s in PLANNED],
            truth=[TRUTH.format(session=s["session"]) for s in PLANNED],
        log:
            f"logs/simulate/{DATASET}.log",
        benchmark:
            f"benchmarks/simulate/{DATASET}.tsv"
        params:
            preset=ENTRY["source"]["preset"],
            seed=ENTRY["source"].get("seed", 0),
            out=raw_root_of,
        shell:
            logged(
                "rpnt simulate --preset {params.preset} --seed {params.seed} "
                "--out {params.out} --force"
            )
