"""Batch mode's engine: a run's requests through the providers' Batch APIs.

- :mod:`.session`  the batch part of one session of a run (``runner`` opens it)
- :mod:`.driver`   the :class:`~.driver.Batcher`: plan, submit, recover, poll, collect, cancel
- :mod:`.files`    request files: the grid's requests as JSONL lines, cut at a file's limits
- :mod:`.outputs`  a finished batch's output and error files, read back as result rows

**One name, one module per layer.** Batch mode is called ``batch`` wherever it lives, and it
lives in each layer the online path goes through, beside that layer's online part:
:mod:`promptgrid.providers.batch` (the Batch API client: the network boundary, where the SDK
is imported and its errors translated), :mod:`promptgrid.store.batch` (the chunks' record:
every remote step written before and after), this package (the driver, which the runner
calls) and :mod:`promptgrid.testing.batch` (the fault server's Files and Batch APIs).

Why not one ``promptgrid.batch`` package holding all of it: each layer has a rule the batch
part keeps by living there — only ``providers`` speaks to the network (a test maps every SDK
error there), only ``store`` holds SQL, imports flow providers <- store <- engine <- runner.
A batch package across the layers would import from all of them and be imported by some, and
a reader looking for "every SQL statement" or "every network call" would have one more place
to look. Batch mode reuses each layer's online parts (the chat and responses
normalisers, the store's commit path, the budget, the retry policy of :mod:`..attempts`), so
it is found where those are.

Nothing is imported here: the driver imports the openai SDK, which a run without batches never
loads.
"""
