"""Test support: the building blocks the test suites share.

``tests`` is on pytest's ``pythonpath`` (pyproject ``[tool.pytest.ini_options]``),
so every suite imports these as ``from support.<module> import ...``; no test
puts a directory on ``sys.path`` itself (pytest runs with
``--import-mode=importlib``, which adds none).
"""
