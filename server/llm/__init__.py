"""LLM providers behind one interface (see :mod:`server.llm.base`)."""
