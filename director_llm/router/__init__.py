"""The only code that imports LiteLLM: building the Router, its callbacks, and dispatching one attempt."""
