"""Training data: the prompt DataModule, the paper tasks' prepared (NOVER) format, prompt templates and
the converters."""
