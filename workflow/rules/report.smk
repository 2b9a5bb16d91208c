# `snakemake --report report.html`: the workflow description below, the benchmark table
# and figures (captions in workflow/report/), runtimes of every job from benchmark: files.

report: "../report/workflow.rst"
