# Noise ceilings of a simulated benchmark: R^2 of the best decoder from the true latents,
# one metrics JSON per scenario and target session, all of them computed by one job (one
# process; a session targeted by several scenarios is computed once). Defined only when
# the dataset is simulated and the config asks for the ceiling row.

if PLAN is not None and PLAN.ceiling_runs():

    rule ceiling:
        """Noise ceilings of every target session of the benchmark."""
        input:
            stores=sorted({STORE.format(session=s) for _, s in PLAN.ceiling_runs()}),
            truths=sorted({TRUTH.format(session=s) for _, s in PLAN.ceiling_runs()}),
        output:
            [CEILING.format(scenario=sc, session=s) for sc, s in PLAN.ceiling_runs()],
        log:
            f"{LOGS}/ceiling.log",
        # cluster runs: one SLURM job with the table and figures (after the training)
        group: "report"
        params:
            runs=" ".join(
                f"--run {STORE.format(session=s)} {TRUTH.format(session=s)} "
                f"{CEILING.format(scenario=sc, session=s)} model=ceiling scenario={sc}"
                for sc, s in PLAN.ceiling_runs()
            ),
        shell:
            logged("rpnt ceiling {params.runs}")
