"""What a command writes: the output folder (`outdir`), results files (`results`), the summary (`summary`),
plots (`plots`) and provenance (`provenance`)."""
