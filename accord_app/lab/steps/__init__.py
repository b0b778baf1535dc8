"""Modules generated from the solution notebooks (cells tagged "export"), for later chapters."""
