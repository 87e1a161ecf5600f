"""The server's commands: ``cleanfeed init``, ``serve``, ``token …``, ``witness …``, ``guard …``.

One module per concept: :mod:`.server` (``init`` and ``serve``: the data
directory and the service), :mod:`.tokens`, :mod:`.witnesses`,
:mod:`.guards`, and :mod:`.common` (the options, audit actor, one-line
failures and database session every server command shares, including
``cleanfeed account``, ``appeals`` and ``report``). ``cleanfeed/cli.py``
imports each command from its module on first use.

Output that scripts rely on (DESIGN.md, "Interfaces other programs rely
on"): with ``--json`` each command prints exactly one JSON object. Without
``--json`` the output is for people.
"""

__all__: list[str] = []
