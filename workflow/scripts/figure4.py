from ciprivacy.reporting.paper_figures import figure4
from ciprivacy.runtime import job_log

w = snakemake.wildcards
with job_log(snakemake.log[0]):
    figure4(
        snakemake.input.samples,
        snakemake.input.metrics,
        snakemake.output.figure,
        title=f"Figure 4: reconstructions, {w.dataset} / {w.arch}",
        n=snakemake.params.n,
    )
