from pathlib import Path

from ciprivacy.reporting import plot_reconstructions
from ciprivacy.runtime import end_job_process, job_log

w = snakemake.wildcards
with job_log(snakemake.log[0]):
    plot_reconstructions(
        snakemake.input.samples,
        [Path(f).parent.name for f in snakemake.input.samples],
        snakemake.output.figure,
        title=f"{w.dataset} / {w.arch} / {w.defense} / seed {w.seed}",
        n=snakemake.params.n,
    )
end_job_process()  # outputs written and closed: skip the interpreter teardown (~1 s)
