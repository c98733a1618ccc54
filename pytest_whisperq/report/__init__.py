"""The run written out once, after the tests: a JSON document (every figure, the checkpoints'
identities, versions, device) and a Markdown page built from it (pull-request comment, CI job
summary, the model card's Evaluation section)."""
