"""Register jobs (batch reclassification): a whole register (CSV/TSV, JSONL, Parquet, Excel) through the Predictor, resumably.

How it works
- Rows stream in chunks (``chunk_size`` rows); memory is bounded by the chunk, not by the file. The only thing
  that grows with the file is the index of ids seen so far (one short string per row, for the duplicate check).
- Every input row yields exactly one output row, in input order: a prediction, or an error row whose ``error``
  says why (empty text, not UTF-8, duplicate id, malformed line, ...). Nothing is dropped.
- Each finished chunk becomes a part file in ``OUT.partial/`` (written under a temporary name, fsynced, renamed)
  and is then recorded in ``OUT.partial/state.json`` (the same way). A run killed at any moment (kill -9) resumes
  with ``resume=True`` after the last recorded chunk: no row lost, none twice. A part written but not yet
  recorded is discarded and computed again.
- The final OUT is assembled from the parts into a temporary file beside OUT and renamed over it, so OUT is
  always either the old file or the complete new one. ``OUT.manifest.json`` records the model, the input's
  sha256, the counts, the times, the settings, and where the texts were embedded (``embedding``: the devices and
  embedder ids the chunks record).
- Engines: ``local`` (in this process, the default) and ``ray`` (Ray Data, one Predictor per worker actor). Both
  turn rows into output rows with :func:`predict_rows`, which calls ``Predictor.predict_many``; their outputs
  are identical.

Output rows have the fields of ``laari predict --output`` (``id, laari, laari_scores, fit, fit_verdict, tags,
tag_scores, explanation, model_version``, then ``out_of_theme_probability, language, warnings``), plus ``error``
(null, or the reason the row could not be classified) and ``row`` (the input row number, 1-based as
``classifier.tables`` counts: JSONL lines, data rows after the header for tables). From a known register export
(EURA 2021) they also carry the export's official columns (``Hankekoodi``, ``Et``, ...), under the export's
names (``classifier.result_rows.output_fields``); the export's footer rows are not projects and are skipped, each
named in the manifest (``input.skipped_rows``).

Modules, one job each: ``settings`` (what a run is asked to do), ``predict`` (input rows in, output rows out),
``local_engine`` and ``ray_engine`` (where the prediction runs), ``workdir`` (the checkpointed parts and journal),
``write`` (the final output and its manifest), ``xlsx_out`` (a streamed Excel sheet), ``run`` (a run: start or resume, chunks, finish), ``compare`` (the
reclassification report) and ``cli`` (``laari predict`` and ``laari batch``). Reading the input and reading an
output back are in the library (``classifier.project_rows``, ``classifier.result_rows``), as reports read them too.
"""
